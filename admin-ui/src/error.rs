//! The console's error, and its one mapping to an HTTP status and an API error code. Pages
//! and API answer with the same status for the same failure.

use axum::http::StatusCode;

use kizuna_ca::CaError;
use kizuna_core::access::Denied;
use kizuna_core::auth::Refused;
use kizuna_core::orgs::{OrgError, Organization};
use kizuna_idp::assurance::AssuranceError;
use kizuna_idp::clients::{Client, ClientError};
use kizuna_idp::federation::{FederationError, Upstream};
use kizuna_idp::mfa::MfaError;
use kizuna_idp::quota::QuotaError;
use kizuna_idp::users::UserError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    Unauthorized(String),
    /// A person's token from a sign-in below the level (1–3) their roles need (RFC 9470).
    #[error("your roles need a sign-in at urn:kizuna:aal:{0}; ask for it with acr_values")]
    StepUp(u8),
    #[error("{0}")]
    Forbidden(String),
    /// The token is valid but lacks the scope the API needs.
    #[error("{0}")]
    InsufficientScope(String),
    /// The request body is not what the API takes (malformed JSON, unknown fields).
    #[error("{0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// An edit made on a stale copy; the newer version is carried back to show.
    #[error("this was changed by someone else since you loaded it; the newer version is shown")]
    Stale(Stale),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The current version of what a stale edit tried to change.
#[derive(Debug)]
pub enum Stale {
    Client(Box<Client>),
    Org(Box<Organization>),
    Upstream(Box<Upstream>),
}

impl ConsoleError {
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Unauthorized(_) | ConsoleError::StepUp(_) => StatusCode::UNAUTHORIZED,
            ConsoleError::Forbidden(_) | ConsoleError::InsufficientScope(_) => {
                StatusCode::FORBIDDEN
            }
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ConsoleError::Conflict(_) | ConsoleError::Stale(_) => StatusCode::CONFLICT,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            ConsoleError::Unauthorized(_) => "invalid_token",
            ConsoleError::StepUp(_) => "insufficient_user_authentication",
            ConsoleError::Forbidden(_) => "forbidden",
            ConsoleError::InsufficientScope(_) => "insufficient_scope",
            ConsoleError::BadRequest(_) => "invalid_request",
            ConsoleError::NotFound(_) => "not_found",
            ConsoleError::Invalid(_) => "invalid_request",
            ConsoleError::Conflict(_) => "conflict",
            ConsoleError::Stale(_) => "stale",
            ConsoleError::Internal(_) => "server_error",
        }
    }

    /// What may be shown to the caller (internal details stay in the log).
    pub fn public_message(&self) -> String {
        match self {
            ConsoleError::Internal(detail) => {
                tracing::error!(error = %detail, "console failure");
                "internal error".into()
            }
            other => other.to_string(),
        }
    }
}

impl From<Denied> for ConsoleError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Forbidden(m) => ConsoleError::Forbidden(m),
            Denied::NotFound(what) => ConsoleError::NotFound(what),
        }
    }
}

impl From<Refused> for ConsoleError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::InvalidToken => ConsoleError::Unauthorized(
                "the access token is not valid, expired or revoked".into(),
            ),
            Refused::InsufficientScope(m) => ConsoleError::InsufficientScope(m),
            Refused::InsufficientUserAuthentication(level) => ConsoleError::StepUp(level),
            Refused::NoRights(m) => ConsoleError::Forbidden(m),
            Refused::Unavailable => {
                ConsoleError::Internal("the caller could not be checked".into())
            }
        }
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Internal(format!("storage: {e}"))
    }
}

impl From<CaError> for ConsoleError {
    fn from(e: CaError) -> Self {
        match e {
            CaError::NotFound(m) => ConsoleError::NotFound(m),
            CaError::Forbidden(m) => ConsoleError::Forbidden(m),
            CaError::Conflict(m) => ConsoleError::Conflict(m),
            CaError::Invalid(m) | CaError::NotAllowed(m) => ConsoleError::Invalid(m),
            CaError::UnknownProfile(_) | CaError::Csr(_) => ConsoleError::Invalid(e.to_string()),
            other => ConsoleError::Internal(other.to_string()),
        }
    }
}

impl From<ClientError> for ConsoleError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(m) => ConsoleError::Invalid(m),
            ClientError::NotFound(m) => ConsoleError::NotFound(format!("client {m}")),
            ClientError::Stale(c) => ConsoleError::Stale(Stale::Client(c)),
            ClientError::Storage(e) => e.into(),
        }
    }
}

impl From<FederationError> for ConsoleError {
    fn from(e: FederationError) -> Self {
        match e {
            FederationError::UnknownUpstream(m) => ConsoleError::NotFound(format!("upstream {m}")),
            FederationError::AliasTaken(_) => ConsoleError::Conflict(e.to_string()),
            FederationError::Stale(u) => ConsoleError::Stale(Stale::Upstream(u)),
            FederationError::Storage(e) => e.into(),
            e if e.is_internal() => ConsoleError::Internal(e.to_string()),
            other => ConsoleError::Invalid(other.to_string()),
        }
    }
}

impl From<AssuranceError> for ConsoleError {
    fn from(e: AssuranceError) -> Self {
        match e {
            AssuranceError::NoAccount(m) => ConsoleError::NotFound(format!("account {m}")),
            AssuranceError::AlreadyBound => ConsoleError::Conflict(e.to_string()),
            AssuranceError::Storage(e) => e.into(),
            e if e.is_internal() => ConsoleError::Internal(e.to_string()),
            other => ConsoleError::Invalid(other.to_string()),
        }
    }
}

impl From<QuotaError> for ConsoleError {
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::Invalid(m) => ConsoleError::Invalid(m),
            QuotaError::UnknownClient(m) => ConsoleError::NotFound(format!("client {m}")),
            QuotaError::Storage(e) => e.into(),
            QuotaError::Audit(e) => e.into(),
        }
    }
}

impl From<OrgError> for ConsoleError {
    fn from(e: OrgError) -> Self {
        match e {
            OrgError::NotFound(m) => ConsoleError::NotFound(format!("organization {m}")),
            OrgError::NameTaken(_) => ConsoleError::Conflict(e.to_string()),
            OrgError::Stale(o) => ConsoleError::Stale(Stale::Org(o)),
            OrgError::Storage(e) => e.into(),
            other => ConsoleError::Invalid(other.to_string()),
        }
    }
}

impl From<UserError> for ConsoleError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound(m) => ConsoleError::NotFound(format!("account {m}")),
            UserError::UsernameTaken(_) => ConsoleError::Conflict(e.to_string()),
            UserError::Storage(e) => e.into(),
            other => ConsoleError::Invalid(other.to_string()),
        }
    }
}

impl From<MfaError> for ConsoleError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::NoAccount(m) => ConsoleError::NotFound(format!("account {m}")),
            e if e.is_internal() => ConsoleError::Internal(e.to_string()),
            other => ConsoleError::Invalid(other.to_string()),
        }
    }
}

impl From<kizuna_core::audit::AuditError> for ConsoleError {
    fn from(e: kizuna_core::audit::AuditError) -> Self {
        ConsoleError::Internal(e.to_string())
    }
}
