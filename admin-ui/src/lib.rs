//! Kizuna's admin console and admin API. Today: the one-time bootstrap that creates the first
//! city administrator on a fresh install.

pub mod bootstrap;
mod pages;

use axum::Router;
use kizuna_core::Core;

/// The console's routes.
pub fn router(core: Core) -> Router {
    pages::router(core)
}
