//! What waits while a person is at an upstream: the pending authorization (state or
//! RelayState, nonce or SAML request id, PKCE verifier, continuation), bound to the browser
//! by a cookie and used once, and the audit of an answer that was refused.

use axum::http::{HeaderMap, HeaderValue};
use serde_json::json;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::secret;
use kizuna_core::web::cookie;

use super::client::{Continuation, Refused, UpstreamIdentity};
use super::upstreams::Upstream;
use super::{FederationError, clean_text};
use crate::Idp;
use crate::store::federation as store;

/// How long a person has to finish at the upstream.
pub(super) const PENDING_TTL_SECS: i64 = 600;

/// How the upstream's answer comes back to Kizuna, which decides how the cookie binding it
/// to the browser is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Return {
    /// A redirect (OpenID Connect): a top-level GET, so `SameSite=Lax` is sent along.
    Redirect,
    /// A form POST from the upstream's site (SAML HTTP-POST binding): a cross-site POST,
    /// which carries only a `SameSite=None` cookie. The cookie only binds the answer to the
    /// browser; the request it names was made once, for this upstream, and is used once.
    Post,
}

fn cookie_name(secure: bool, ret: Return) -> &'static str {
    match (secure, ret) {
        (true, Return::Redirect) => "__Host-kizuna_fed",
        (false, Return::Redirect) => "kizuna_fed",
        (true, Return::Post) => "__Host-kizuna_saml",
        (false, Return::Post) => "kizuna_saml",
    }
}

/// What is stored while the person is at the upstream.
pub(super) struct Pending<'a> {
    pub state: &'a str,
    pub upstream_id: &'a str,
    /// The OIDC nonce, or the SAML request id the answer must be `InResponseTo`.
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub continuation: &'a Continuation,
}

/// Stores a pending upstream authorization (single use, bound to this browser's cookie);
/// returns the cookie to set when the browser had none.
pub(super) async fn pend(
    idp: &Idp,
    pending: Pending<'_>,
    headers: &HeaderMap,
    ret: Return,
) -> Result<Option<HeaderValue>, FederationError> {
    let secure = idp.core.secure_cookies;
    let name = cookie_name(secure, ret);
    let existing = cookie(headers, name)
        .filter(|v| v.len() == 43)
        .map(str::to_string);
    let (browser, set_cookie) = match existing {
        Some(value) => (value, None),
        None => {
            let value = secret::random_token();
            // Browsers refuse SameSite=None without Secure; a development setup on plain
            // HTTP keeps Lax, which serves an upstream on the same site.
            let same_site = match ret {
                Return::Post if secure => "None",
                _ => "Lax",
            };
            let header = HeaderValue::from_str(&format!(
                "{name}={value}; Path=/; Max-Age={PENDING_TTL_SECS}; HttpOnly; SameSite={same_site}{}",
                if secure { "; Secure" } else { "" }
            ))
            .expect("cookie value is URL-safe base64");
            (value, Some(header))
        }
    };
    let now = kizuna_core::time::now_unix();
    store::insert_authorization(
        &idp.core.db,
        &store::NewAuthorization {
            state_hash: &secret::token_hash(pending.state),
            upstream_id: pending.upstream_id,
            browser_hash: &secret::token_hash(&browser),
            nonce: pending.nonce,
            pkce_verifier: pending.pkce_verifier,
            continuation: pending.continuation,
        },
        now,
        now + PENDING_TTL_SECS,
    )
    .await?;
    Ok(set_cookie)
}

/// An answer's result, with a refusal audited (`federation.callback`) and carrying what was
/// known by then.
pub(super) async fn refused(
    idp: &Idp,
    result: Result<(UpstreamIdentity, Continuation), FederationError>,
    known: (Option<Upstream>, Option<Continuation>),
) -> Result<(UpstreamIdentity, Continuation), Refused> {
    if let Err(error) = &result {
        let target = known
            .0
            .as_ref()
            .map_or("upstream:unknown".to_string(), |u: &Upstream| {
                format!("upstream:{}", u.id)
            });
        let event = AuditEvent::new(Actor::anonymous(), "federation.callback", target)
            .outcome(if matches!(error, FederationError::Upstream(_)) {
                Outcome::Denied
            } else {
                Outcome::Failure
            })
            .details(json!({
                "alias": known.0.as_ref().map(|u: &Upstream| u.alias.clone()),
                "protocol": if known.0.as_ref().is_some_and(|u| u.saml.is_some()) { "saml" } else { "oidc" },
                "reason": error.reason(),
                "detail": clean_text(&error.to_string(), 300),
            }));
        if let Err(e) = idp.core.audit.record(event).await {
            tracing::error!(error = %e, "auditing a refused upstream answer");
        }
    }
    result.map_err(|error| Refused {
        error,
        upstream: known.0,
        continuation: known.1,
    })
}

/// Takes the pending authorization `state` names, when it was started in this browser and
/// has not expired; a stranger's attempt does not spend it.
pub(super) async fn take_pending(
    idp: &Idp,
    headers: &HeaderMap,
    state: &str,
    ret: Return,
) -> Result<store::Authorization, FederationError> {
    let state_hash = secret::token_hash(state);
    let row = store::find_authorization(&idp.core.db, &state_hash)
        .await?
        .ok_or(FederationError::BadState)?;
    let browser = cookie(headers, cookie_name(idp.core.secure_cookies, ret))
        .map(secret::token_hash)
        .unwrap_or_default();
    if !secret::constant_time_eq(browser.as_bytes(), row.browser_hash.as_bytes()) {
        return Err(FederationError::BadState);
    }
    let taken = store::delete_authorization(&idp.core.db, &state_hash).await?;
    if !taken || row.expires_at <= kizuna_core::time::now_unix() {
        return Err(FederationError::BadState);
    }
    Ok(row)
}
