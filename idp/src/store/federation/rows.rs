//! The rows of the federation tables as the rest of the crate sees them.

/// An upstream as stored: lists and maps as JSON text, flags as integers, the client secret
/// sealed by key custody.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct UpstreamRow {
    pub id: String,
    pub alias: String,
    pub name: String,
    pub org_id: String,
    pub issuer: String,
    pub client_id: String,
    pub client_auth: String,
    pub client_secret: Option<Vec<u8>>,
    pub key_id: Option<String>,
    /// A SAML upstream's settings as JSON.
    pub saml: Option<String>,
    pub scopes: String,
    pub acr_values: String,
    pub claim_map: String,
    pub acr_map: String,
    pub max_ial: i64,
    pub max_aal: i64,
    pub jit: i64,
    pub email_domains: String,
    pub propagate_logout: i64,
    pub status: String,
    pub created_at: i64,
    pub version: i64,
}
