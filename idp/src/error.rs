//! The crate's errors and their protocol forms: OAuth error JSON (RFC 6749 §5.2) at the token
//! and API endpoints, redirects with `error` at the authorization endpoint, pages for people.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use kizuna_core::web::{ErrorPage, ProtocolResponse};

/// An OAuth 2.0 / OpenID Connect error code with its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
    pub status: StatusCode,
}

impl OAuthError {
    fn new(code: &'static str, status: StatusCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            status,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", StatusCode::UNAUTHORIZED, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", StatusCode::BAD_REQUEST, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new("unauthorized_client", StatusCode::BAD_REQUEST, d)
    }
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_grant_type", StatusCode::BAD_REQUEST, d)
    }
    /// RFC 8693 §2.2.2: the requested audience is not acceptable.
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new("invalid_target", StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new("invalid_scope", StatusCode::BAD_REQUEST, d)
    }
    pub fn unsupported_response_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_response_type", StatusCode::BAD_REQUEST, d)
    }
    pub fn access_denied(d: impl Into<String>) -> Self {
        Self::new("access_denied", StatusCode::BAD_REQUEST, d)
    }
    pub fn login_required(d: impl Into<String>) -> Self {
        Self::new("login_required", StatusCode::BAD_REQUEST, d)
    }
    pub fn unmet_authentication_requirements(d: impl Into<String>) -> Self {
        Self::new(
            "unmet_authentication_requirements",
            StatusCode::BAD_REQUEST,
            d,
        )
    }
    pub fn consent_required(d: impl Into<String>) -> Self {
        Self::new("consent_required", StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new("invalid_token", StatusCode::UNAUTHORIZED, d)
    }
    pub fn insufficient_scope(d: impl Into<String>) -> Self {
        Self::new("insufficient_scope", StatusCode::FORBIDDEN, d)
    }
    pub fn authorization_pending() -> Self {
        Self::new(
            "authorization_pending",
            StatusCode::BAD_REQUEST,
            "the user has not yet finished",
        )
    }
    pub fn slow_down() -> Self {
        Self::new(
            "slow_down",
            StatusCode::BAD_REQUEST,
            "polling too fast; wait longer between requests",
        )
    }
    pub fn expired_token(d: impl Into<String>) -> Self {
        Self::new("expired_token", StatusCode::BAD_REQUEST, d)
    }
    pub fn unsupported_token_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_token_type", StatusCode::BAD_REQUEST, d)
    }
    pub fn temporarily_unavailable(d: impl Into<String>) -> Self {
        Self::new(
            "temporarily_unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            d,
        )
    }
    /// A client over its request quota (RFC 6585 429; the code is RFC 6749's
    /// `temporarily_unavailable`, with `Retry-After`).
    pub fn rate_limited(d: impl Into<String>) -> Self {
        Self::new("temporarily_unavailable", StatusCode::TOO_MANY_REQUESTS, d)
    }
    /// The database is unreachable for now (RFC 6749's `temporarily_unavailable`, HTTP 503
    /// with `Retry-After`).
    pub fn unavailable() -> Self {
        Self::new(
            "temporarily_unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is temporarily unavailable; try again shortly",
        )
    }
    pub fn server_error() -> Self {
        Self::new(
            "server_error",
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server could not complete the request",
        )
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        if kizuna_core::db::is_unavailable(&e) {
            tracing::error!(error = %e, "{}", kizuna_core::db::unavailable_reason(&e));
            return OAuthError::unavailable();
        }
        tracing::error!(error = %e, "storage failure");
        OAuthError::server_error()
    }
}

impl From<kizuna_core::custody::CustodyError> for OAuthError {
    fn from(e: kizuna_core::custody::CustodyError) -> Self {
        tracing::error!(error = %e, "key custody failure");
        OAuthError::server_error()
    }
}

impl From<kizuna_core::audit::AuditError> for OAuthError {
    fn from(e: kizuna_core::audit::AuditError) -> Self {
        match e {
            kizuna_core::audit::AuditError::Storage(e) => e.into(),
            e => {
                tracing::error!(error = %e, "audit failure");
                OAuthError::server_error()
            }
        }
    }
}

/// The JSON form, as the token, introspection, revocation, PAR and device endpoints answer.
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({"error": self.code, "error_description": self.description})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.code == "invalid_token" {
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    self.description.replace('"', "'")
                )
            } else {
                "Basic realm=\"kizuna\"".to_string()
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        kizuna_core::web::retry_after_if_unavailable(&mut response);
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::quota::WINDOW_SECS),
            );
        }
        response.extensions_mut().insert(ProtocolResponse);
        response
    }
}

/// A page for the person at the browser when the request cannot be sent back to the client
/// (unknown client, unregistered redirect URI).
pub fn request_error_page(title_en: &str, title_ja: &str, detail: &str) -> Response {
    ErrorPage::new(StatusCode::BAD_REQUEST, title_ja, title_en)
        .detail(detail)
        .into_response()
}
