//! Kizuna's admin console and admin API: the one-time bootstrap that creates the first city
//! administrator, and the admin JSON API for clients and accounts.

pub mod api;
pub mod bootstrap;
mod pages;

use axum::Router;
use kizuna_idp::Idp;

/// The console's and the admin API's routes.
pub fn router(idp: Idp) -> Router {
    pages::router(idp.core.clone()).merge(api::router(idp))
}
