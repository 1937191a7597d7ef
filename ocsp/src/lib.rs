//! Kizuna's OCSP responder (RFC 6960), run inside `kizuna serve` or alone.

use axum::Router;
use kizuna_core::Core;

/// The responder's routes.
pub fn router(_core: Core) -> Router {
    Router::new()
}
