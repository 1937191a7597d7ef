//! Who is calling an API: a principal established from a bearer access token. The identity
//! provider implements [`Authenticator`]; other feature crates take it as a trait object, so
//! they never depend on the identity provider itself.

use std::future::Future;
use std::pin::Pin;

use crate::audit::Actor;

/// The caller behind a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject: an account id, or the client id for `client_credentials`.
    pub subject: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The organization the subject belongs to, if any.
    pub org_id: Option<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// True when the token was issued to a client acting for itself.
    pub fn is_client(&self) -> bool {
        self.subject == self.client_id
    }

    /// The principal as it appears in the audit log.
    pub fn actor(&self) -> Actor {
        if self.is_client() {
            Actor::client(&self.client_id)
        } else {
            Actor::user(&self.subject)
        }
    }
}

pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Option<Principal>> + Send + 'a>>;

/// Verifies bearer access tokens.
pub trait Authenticator: Send + Sync {
    /// The principal of a valid, unexpired, unrevoked token; `None` otherwise.
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
}

/// The bearer token of an `Authorization` header (RFC 6750 §2.1).
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}
