//! Who is calling a management API: a [`Caller`] established from a bearer access token.
//! The identity provider implements [`Authenticator`]; other feature crates take it as a
//! trait object, so they never depend on the identity provider itself, and every API resolves
//! its callers the same way.

use std::future::Future;
use std::pin::Pin;

use crate::access::Caller;

/// Why a bearer token does not establish a management caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not a valid, unexpired, unrevoked token of an active client and account (RFC 6750
    /// `invalid_token`).
    InvalidToken,
    /// The token lacks the scopes that let it act with staff rights (RFC 6750
    /// `insufficient_scope`).
    InsufficientScope(String),
    /// A person's token from a sign-in below the level their roles need (RFC 9470
    /// `insufficient_user_authentication`); carries the level (1–3) to ask for.
    InsufficientUserAuthentication(u8),
    /// A valid token of someone who holds no staff rights.
    NoRights(String),
    /// The check could not be made (storage unavailable).
    Unavailable,
}

pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Caller, Refused>> + Send + 'a>>;

/// Resolves bearer access tokens into management callers.
pub trait Authenticator: Send + Sync {
    /// The caller behind `token`: a person with the roles the token may use (and a sign-in
    /// strong enough for them), or an automation client with its granted scopes.
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
}

/// The bearer token of an `Authorization` header (RFC 6750 §2.1).
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The `WWW-Authenticate` challenge of a 401 answer (RFC 6750 §3): the realm, the error
/// code, and for `insufficient_user_authentication` the level to ask for (RFC 9470 §3).
pub fn challenge(realm: &str, error: &str, acr_level: Option<u8>) -> http::HeaderValue {
    let mut value = format!("Bearer realm=\"{realm}\", error=\"{error}\"");
    if let Some(level) = acr_level {
        value.push_str(&format!(", acr_values=\"urn:kizuna:aal:{level}\""));
    }
    // Built from a realm constant, an error code and a digit: header-safe.
    http::HeaderValue::from_str(&value).unwrap_or(http::HeaderValue::from_static("Bearer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_takes_the_scheme_in_any_case_and_nothing_empty() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn a_step_up_challenge_names_the_level() {
        assert_eq!(
            challenge("kizuna-ca", "insufficient_user_authentication", Some(3)),
            "Bearer realm=\"kizuna-ca\", error=\"insufficient_user_authentication\", acr_values=\"urn:kizuna:aal:3\""
        );
    }
}
