//! Kizuna's OpenID provider. Today it holds the account store (users, roles, password
//! hashing) that the rest of the server builds on; the protocol endpoints mount here.

pub mod password;
pub mod users;

use axum::Router;
use kizuna_core::Core;

/// The identity provider's routes.
pub fn router(_core: Core) -> Router {
    Router::new()
}
