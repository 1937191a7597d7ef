//! Federation: Kizuna as a broker in front of the identity providers a city's stakeholders
//! already run. Upstream OpenID providers (configured by OpenID Connect Discovery, owned by an
//! organization, each with a trust ceiling), the upstream authorization code flow with PKCE
//! and nonce checked through the `openidconnect` crate (`client`, with discovery in
//! `discovery` and UserInfo in `userinfo`), claim mapping (`claims`),
//! the trust ceiling (`ceiling`), account resolution, just-in-time provisioning and linking
//! (`accounts`), and logout in both directions (`logout`). SAML 2.0 upstreams (`saml`) share
//! all of it but the protocol. The pages live in
//! `pages::federation`; `docs/federation.md` explains the design.

pub mod accounts;
pub mod ceiling;
pub mod claims;
pub mod client;
pub mod discovery;
pub mod logout;
mod pending;
pub mod saml;
pub mod upstreams;
mod userinfo;

pub use client::{Continuation, Started, UpstreamIdentity};
pub use discovery::Federation;
pub use upstreams::{ClientAuth, NewUpstream, Upstream, UpstreamEdit, UpstreamStatus};

/// Why an upstream could not be configured or a federated sign-in not finished.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("{0}")]
    Invalid(String),
    #[error("no upstream {0:?}")]
    UnknownUpstream(String),
    #[error("an upstream with the alias {0:?} already exists")]
    AliasTaken(String),
    #[error("this upstream is disabled")]
    Disabled,
    /// An edit made on an older version; the current one is carried back.
    #[error("this upstream was changed by someone else since it was loaded")]
    Stale(Box<Upstream>),
    #[error("the upstream's discovery document could not be used: {0}")]
    Discovery(String),
    #[error("the sign-in state is unknown, expired, already used or from another browser")]
    BadState,
    #[error("the upstream answered with an error: {0}")]
    Upstream(String),
    /// The authorization response does not name the upstream as its issuer (RFC 9207).
    #[error("the authorization response is not the upstream's: {0}")]
    IssuerMixUp(String),
    #[error("the token request to the upstream failed: {0}")]
    Token(String),
    #[error("the upstream's ID token was refused: {0}")]
    IdToken(String),
    #[error("the upstream's UserInfo answer was refused: {0}")]
    UserInfo(String),
    /// A SAML message the verifier refused (signature, wrapping, conditions, …).
    #[error("the upstream's SAML answer was refused: {0}")]
    Saml(#[from] saml::verify::SamlError),
    /// A verified SAML message that still cannot be used (replayed, no usable subject, …).
    #[error("the upstream's SAML answer was refused: {0}")]
    Assertion(String),
    #[error("the linked account is not active")]
    AccountInactive,
    #[error("{0}")]
    Link(&'static str),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("key custody failed: {0}")]
    Custody(#[from] kizuna_core::custody::CustodyError),
}

impl FederationError {
    /// True for failures on our side (shown as an internal error, not a message).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            FederationError::Storage(_) | FederationError::Custody(_)
        )
    }

    /// A short stable name for the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            FederationError::Invalid(_) => "invalid",
            FederationError::UnknownUpstream(_) => "unknown upstream",
            FederationError::AliasTaken(_) => "alias taken",
            FederationError::Disabled => "upstream disabled",
            FederationError::Stale(_) => "stale edit",
            FederationError::Discovery(_) => "discovery failed",
            FederationError::BadState => "bad state",
            FederationError::Upstream(_) => "upstream error",
            FederationError::IssuerMixUp(_) => "issuer mix-up",
            FederationError::Token(_) => "token request failed",
            FederationError::IdToken(_) => "ID token refused",
            FederationError::UserInfo(_) => "userinfo refused",
            FederationError::Saml(e) => e.reason(),
            FederationError::Assertion(_) => "assertion refused",
            FederationError::AccountInactive => "account inactive",
            FederationError::Link(_) => "link refused",
            FederationError::Storage(_) => "storage",
            FederationError::Custody(_) => "custody",
        }
    }
}

/// Records the message `id` an upstream sent (its `jti`, assertion or request id) under
/// `issuer` until `expires_at`, on every replica; one seen before is refused as `replayed`.
pub(crate) async fn use_once(
    idp: &crate::Idp,
    issuer: &str,
    id: &str,
    expires_at: i64,
    replayed: FederationError,
) -> Result<(), FederationError> {
    match crate::store::clients::record_jti(&idp.core.db, issuer, id, expires_at).await {
        Ok(()) => Ok(()),
        Err(e) if kizuna_core::db::is_unique_violation(&e) => Err(replayed),
        Err(e) => Err(FederationError::Storage(e)),
    }
}

/// Audits what an upstream's logout message (`action`) did, or why it was refused.
pub(crate) async fn audit_logout<T>(
    idp: &crate::Idp,
    upstream: &Upstream,
    action: &str,
    result: &Result<T, FederationError>,
    done: impl FnOnce(&T) -> serde_json::Value,
) {
    use kizuna_core::audit::{Actor, AuditEvent, Outcome};
    let (outcome, mut details) = match result {
        Ok(value) => (Outcome::Success, done(value)),
        Err(e) => (
            Outcome::Failure,
            serde_json::json!({"reason": e.reason(), "detail": clean_text(&e.to_string(), 300)}),
        ),
    };
    details["upstream"] = serde_json::json!(upstream.alias);
    let event = AuditEvent::new(
        Actor::system(format!("upstream:{}", upstream.alias)),
        action,
        format!("upstream:{}", upstream.id),
    )
    .outcome(outcome)
    .details(details);
    if let Err(e) = idp.core.audit.record(event).await {
        tracing::error!(error = %e, action, "auditing an upstream's logout message");
    }
}

/// Text from an upstream, made safe to show and store: at most `max` characters, no control
/// characters.
pub(crate) fn clean_text(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
