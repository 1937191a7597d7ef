//! Kizuna core: storage, migrations, the audit log, key custody, organizations, and the HTTP
//! plumbing (request context, metrics, error pages, TLS) shared by the feature crates.

pub mod access;
pub mod audit;
pub mod auth;
pub mod custody;
pub mod db;
pub mod der;
pub mod events;
mod health;
pub mod jose;
pub mod metrics;
pub mod net;
pub mod orgs;
pub mod pki;
pub mod secret;
pub mod settings;
pub mod time;
pub mod web;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

pub use health::router;

/// What every feature crate is given: the database, key custody, the audit log, metrics and
/// the public base URL. Cheap to clone; holds no per-user state, so any replica serves any
/// request.
#[derive(Clone)]
pub struct Core {
    pub db: db::Db,
    pub custody: custody::KeyCustody,
    pub audit: audit::AuditLog,
    pub metrics: metrics::Metrics,
    /// The external base URL (the OIDC issuer and the base of URLs in certificates), without
    /// a trailing slash.
    pub public_url: Arc<str>,
    /// Whether cookies carry `Secure` (true unless the public URL is plain HTTP on loopback).
    pub secure_cookies: bool,
    /// Certificate changes, for listeners in this process.
    pub changes: events::ChangeBus,
    /// The sign-in levels staff roles need, on the console and every management API.
    pub levels: access::Levels,
    /// How long access tokens live (`oidc.access_token_ttl_secs`): how far back a revocation
    /// looks for the tokens bound to a certificate that it ends.
    pub token_ttl_secs: i64,
}
