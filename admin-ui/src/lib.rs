//! Kizuna's admin console and admin API: the one-time bootstrap that creates the first city
//! administrator, the server-rendered console (an OpenID Connect client of Kizuna itself),
//! and the admin JSON API the console's actions share (described at
//! `/admin/api/openapi.json`).

mod api;
mod auth;
pub mod bootstrap;
mod config;
mod decode;
mod error;
mod export;
mod forms;
mod messages;
mod openapi;
mod ops;
mod pages;
mod store;
mod views;

use std::sync::Arc;

use axum::Router;
use kizuna_ca::Ca;
use kizuna_idp::Idp;

pub use config::ConsoleConfig;
pub use error::ConsoleError;

/// What the console and the admin API work with. Cheap to clone.
#[derive(Clone)]
pub struct Console(Arc<ConsoleState>);

pub struct ConsoleState {
    pub idp: Idp,
    pub ca: Ca,
    pub config: ConsoleConfig,
}

impl std::ops::Deref for Console {
    type Target = ConsoleState;
    fn deref(&self) -> &ConsoleState {
        &self.0
    }
}

impl Console {
    pub fn new(idp: Idp, ca: Ca, config: ConsoleConfig) -> Console {
        Console(Arc::new(ConsoleState { idp, ca, config }))
    }
}

/// Registers the console as a client of this provider; call once at start-up.
pub async fn init(console: &Console) -> Result<(), ConsoleError> {
    auth::register(console).await
}

/// The console's and the admin API's routes.
pub fn router(console: Console) -> Router {
    pages::router(console.idp.core.clone())
        .merge(api::router(console.clone()))
        .merge(views::router(console))
}
