//! Kizuna's certificate authority: hierarchy, profiles, issuance, CRLs, enrollment and the
//! device registry mount here.

use axum::Router;
use kizuna_core::Core;

/// The CA's routes.
pub fn router(_core: Core) -> Router {
    Router::new()
}
