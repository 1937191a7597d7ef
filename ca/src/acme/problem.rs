//! ACME errors as problem documents (RFC 8555 §6.7, RFC 7807): `application/problem+json`
//! with an `urn:ietf:params:acme:error:*` type, the HTTP status the RFC gives it, and a
//! detail a person can act on.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use kizuna_core::web::ProtocolResponse;

use crate::CaError;

/// The error types Kizuna uses (RFC 8555 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AccountDoesNotExist,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
}

impl Kind {
    pub fn urn(self) -> String {
        let name = match self {
            Kind::AccountDoesNotExist => "accountDoesNotExist",
            Kind::AlreadyRevoked => "alreadyRevoked",
            Kind::BadCsr => "badCSR",
            Kind::BadNonce => "badNonce",
            Kind::BadRevocationReason => "badRevocationReason",
            Kind::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Kind::Connection => "connection",
            Kind::Dns => "dns",
            Kind::ExternalAccountRequired => "externalAccountRequired",
            Kind::IncorrectResponse => "incorrectResponse",
            Kind::InvalidContact => "invalidContact",
            Kind::Malformed => "malformed",
            Kind::OrderNotReady => "orderNotReady",
            Kind::RateLimited => "rateLimited",
            Kind::RejectedIdentifier => "rejectedIdentifier",
            Kind::ServerInternal => "serverInternal",
            Kind::Tls => "tls",
            Kind::Unauthorized => "unauthorized",
            Kind::UnsupportedContact => "unsupportedContact",
            Kind::UnsupportedIdentifier => "unsupportedIdentifier",
        };
        format!("urn:ietf:params:acme:error:{name}")
    }

    fn status(self) -> StatusCode {
        match self {
            Kind::AccountDoesNotExist
            | Kind::BadCsr
            | Kind::BadNonce
            | Kind::BadRevocationReason
            | Kind::BadSignatureAlgorithm
            | Kind::Malformed
            | Kind::UnsupportedIdentifier
            | Kind::AlreadyRevoked
            | Kind::Connection
            | Kind::Dns
            | Kind::IncorrectResponse
            | Kind::InvalidContact
            | Kind::UnsupportedContact
            | Kind::Tls => StatusCode::BAD_REQUEST,
            Kind::ExternalAccountRequired
            | Kind::OrderNotReady
            | Kind::RejectedIdentifier
            | Kind::Unauthorized => StatusCode::FORBIDDEN,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A problem document.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: Kind,
    pub detail: String,
    pub status: StatusCode,
    /// For `badSignatureAlgorithm`: the algorithms accepted.
    pub algorithms: Option<&'static [&'static str]>,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            status: kind.status(),
            algorithms: None,
        }
    }

    pub fn status(mut self, status: StatusCode) -> Problem {
        self.status = status;
        self
    }

    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Malformed, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Unauthorized, detail)
    }

    pub fn not_found(what: &str) -> Problem {
        Problem::malformed(format!("no such {what}")).status(StatusCode::NOT_FOUND)
    }

    pub fn internal() -> Problem {
        Problem::new(
            Kind::ServerInternal,
            "the server could not complete the request",
        )
    }

    /// The problem as JSON (also how a challenge or order records its error).
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = json!({
            "type": self.kind.urn(),
            "detail": self.detail,
            "status": self.status.as_u16(),
        });
        if let Some(algorithms) = self.algorithms {
            body["algorithms"] = json!(algorithms);
        }
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            self.to_json().to_string(),
        )
            .into_response();
        response.extensions_mut().insert(ProtocolResponse);
        response
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "ACME storage failure");
        Problem::internal()
    }
}

impl From<CaError> for Problem {
    fn from(e: CaError) -> Self {
        let detail = e.to_string();
        match e {
            CaError::Csr(_) => Problem::new(Kind::BadCsr, detail),
            CaError::NotAllowed(_) | CaError::Forbidden(_) => {
                Problem::new(Kind::RejectedIdentifier, detail)
            }
            CaError::Invalid(_) | CaError::UnknownProfile(_) => Problem::malformed(detail),
            CaError::NotFound(_) => Problem::malformed(detail).status(StatusCode::NOT_FOUND),
            CaError::Conflict(_) => Problem::malformed(detail).status(StatusCode::CONFLICT),
            other => {
                tracing::error!(error = %other, "ACME: CA failure");
                Problem::internal()
            }
        }
    }
}
