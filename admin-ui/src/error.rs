//! The console's error, and its one mapping to an HTTP status and an API error code. Pages
//! and API answer with the same status for the same failure. Each error carries a catalogue
//! message ([`crate::messages`]); one passed through from a domain crate keeps the domain's
//! own text as the message's detail.

use axum::http::StatusCode;

use kizuna_ca::CaError;
use kizuna_core::access::Denied;
use kizuna_core::auth::Refused;
use kizuna_core::orgs::{OrgError, Organization};
use kizuna_core::web::Lang;
use kizuna_idp::assurance::AssuranceError;
use kizuna_idp::clients::{Client, ClientError};
use kizuna_idp::consent::ConsentError;
use kizuna_idp::federation::{FederationError, Upstream};
use kizuna_idp::mfa::MfaError;
use kizuna_idp::quota::QuotaError;
use kizuna_idp::users::UserError;

use crate::messages::{Message, Msg};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    Unauthorized(Message),
    /// A person's token from a sign-in below the level (1–3) their roles need (RFC 9470).
    #[error("{}", step_up(*.0).render(Lang::En))]
    StepUp(u8),
    #[error("{0}")]
    Forbidden(Message),
    /// The token is valid but lacks the scope the API needs.
    #[error("{0}")]
    InsufficientScope(Message),
    /// The request body is not what the API takes (malformed JSON, unknown fields).
    #[error("{0}")]
    BadRequest(Message),
    #[error("{0}")]
    NotFound(Message),
    #[error("{0}")]
    Invalid(Message),
    #[error("{0}")]
    Conflict(Message),
    /// An edit made on a stale copy; the newer version is carried back to show.
    #[error("{}", Msg::Stale.render(Lang::En))]
    Stale(Stale),
    /// A failure the caller cannot act on; its text goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
    /// The database is unreachable for now (503 with `Retry-After`); its text goes to the
    /// log only.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// The current version of what a stale edit tried to change.
#[derive(Debug)]
pub enum Stale {
    Client(Box<Client>),
    Org(Box<Organization>),
    Upstream(Box<Upstream>),
}

fn step_up(level: u8) -> Msg {
    Msg::StepUp {
        acr: format!("urn:kizuna:aal:{level}"),
    }
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
            ConsoleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            ConsoleError::Unavailable(_) => "temporarily_unavailable",
        }
    }

    /// What may be shown to the caller: the message, with a domain error's own text as its
    /// detail (an internal failure's text stays in the log).
    pub fn public(&self) -> Message {
        match self {
            ConsoleError::Unauthorized(m)
            | ConsoleError::Forbidden(m)
            | ConsoleError::InsufficientScope(m)
            | ConsoleError::BadRequest(m)
            | ConsoleError::NotFound(m)
            | ConsoleError::Invalid(m)
            | ConsoleError::Conflict(m) => m.clone(),
            ConsoleError::StepUp(level) => step_up(*level).into(),
            ConsoleError::Stale(_) => Msg::Stale.into(),
            ConsoleError::Internal(detail) => {
                tracing::error!(error = %detail, "console failure");
                Msg::Internal.into()
            }
            ConsoleError::Unavailable(detail) => {
                tracing::error!("{detail}");
                Msg::Unavailable.into()
            }
        }
    }
}

impl From<Denied> for ConsoleError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Forbidden(m) => ConsoleError::Forbidden(Msg::NotPermitted.with_detail(m)),
            Denied::NotFound(_) => {
                ConsoleError::NotFound(Msg::NotFound.with_detail(denied.to_string()))
            }
        }
    }
}

impl From<Refused> for ConsoleError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::InvalidToken => ConsoleError::Unauthorized(Msg::InvalidToken.into()),
            Refused::InsufficientScope(m) => {
                ConsoleError::InsufficientScope(Msg::InsufficientScope.with_detail(m))
            }
            Refused::InsufficientUserAuthentication(level) => ConsoleError::StepUp(level),
            Refused::NoRights(m) => ConsoleError::Forbidden(Msg::NoStaffRights.with_detail(m)),
            Refused::Unavailable => {
                ConsoleError::Unavailable("the caller could not be checked".into())
            }
        }
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        if kizuna_core::db::is_unavailable(&e) {
            return ConsoleError::Unavailable(format!(
                "{} ({e})",
                kizuna_core::db::unavailable_reason(&e)
            ));
        }
        ConsoleError::Internal(format!("storage: {e}"))
    }
}

impl From<CaError> for ConsoleError {
    fn from(e: CaError) -> Self {
        match e {
            CaError::NotFound(m) => ConsoleError::NotFound(Msg::NotFound.with_detail(m)),
            CaError::Forbidden(m) => ConsoleError::Forbidden(Msg::CaForbidden.with_detail(m)),
            CaError::Conflict(m) => ConsoleError::Conflict(Msg::CaConflict.with_detail(m)),
            CaError::Invalid(m) => ConsoleError::Invalid(Msg::CaInvalid.with_detail(m)),
            CaError::NotAllowed(m) => {
                ConsoleError::Invalid(Msg::CertificateNotAllowed.with_detail(m))
            }
            CaError::UnknownProfile(_) => {
                ConsoleError::Invalid(Msg::UnknownProfile.with_detail(e.to_string()))
            }
            CaError::Csr(_) => ConsoleError::Invalid(Msg::BadCsr.with_detail(e.to_string())),
            other => ConsoleError::Internal(other.to_string()),
        }
    }
}

impl From<ClientError> for ConsoleError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(m) => ConsoleError::Invalid(Msg::ClientInvalid.with_detail(m)),
            ClientError::NotFound(id) => ConsoleError::NotFound(Msg::NoClient { id }.into()),
            ClientError::Stale(c) => ConsoleError::Stale(Stale::Client(c)),
            ClientError::Storage(e) => e.into(),
        }
    }
}

impl From<FederationError> for ConsoleError {
    fn from(e: FederationError) -> Self {
        match e {
            FederationError::UnknownUpstream(id) => {
                ConsoleError::NotFound(Msg::NoUpstream { id }.into())
            }
            FederationError::AliasTaken(_) => {
                ConsoleError::Conflict(Msg::UpstreamAliasTaken.with_detail(e.to_string()))
            }
            FederationError::Stale(u) => ConsoleError::Stale(Stale::Upstream(u)),
            FederationError::Storage(e) => e.into(),
            e if e.is_internal() => ConsoleError::Internal(e.to_string()),
            FederationError::Discovery(_) => {
                ConsoleError::Invalid(Msg::DiscoveryFailed.with_detail(e.to_string()))
            }
            other => ConsoleError::Invalid(Msg::UpstreamInvalid.with_detail(other.to_string())),
        }
    }
}

impl From<AssuranceError> for ConsoleError {
    fn from(e: AssuranceError) -> Self {
        match e {
            AssuranceError::NoAccount(id) => ConsoleError::NotFound(Msg::NoAccount { id }.into()),
            AssuranceError::AlreadyBound => {
                ConsoleError::Conflict(Msg::IdentityBound.with_detail(e.to_string()))
            }
            AssuranceError::Storage(e) => e.into(),
            e if e.is_internal() => ConsoleError::Internal(e.to_string()),
            other => ConsoleError::Invalid(Msg::ProofingInvalid.with_detail(other.to_string())),
        }
    }
}

impl From<ConsentError> for ConsoleError {
    fn from(e: ConsentError) -> Self {
        match e {
            ConsentError::Invalid(m) => {
                ConsoleError::Invalid(Msg::ConsentTermsInvalid.with_detail(m))
            }
            ConsentError::NotFound => ConsoleError::NotFound(Msg::NotFound.into()),
            ConsentError::Storage(e) => e.into(),
        }
    }
}

impl From<QuotaError> for ConsoleError {
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::Invalid(m) => ConsoleError::Invalid(Msg::QuotaInvalid.with_detail(m)),
            QuotaError::UnknownClient(id) => ConsoleError::NotFound(Msg::NoClient { id }.into()),
            QuotaError::Storage(e) => e.into(),
            QuotaError::Audit(e) => e.into(),
        }
    }
}

impl From<OrgError> for ConsoleError {
    fn from(e: OrgError) -> Self {
        match e {
            OrgError::NotFound(id) => ConsoleError::NotFound(Msg::NoOrg { id }.into()),
            OrgError::NameTaken(_) => {
                ConsoleError::Conflict(Msg::OrgNameTaken.with_detail(e.to_string()))
            }
            OrgError::Stale(o) => ConsoleError::Stale(Stale::Org(o)),
            OrgError::Storage(e) => e.into(),
            other => ConsoleError::Invalid(Msg::OrgInvalid.with_detail(other.to_string())),
        }
    }
}

impl From<UserError> for ConsoleError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound(id) => ConsoleError::NotFound(Msg::NoAccount { id }.into()),
            UserError::UsernameTaken(_) => {
                ConsoleError::Conflict(Msg::UsernameTaken.with_detail(e.to_string()))
            }
            UserError::Storage(e) => e.into(),
            other => ConsoleError::Invalid(Msg::AccountInvalid.with_detail(other.to_string())),
        }
    }
}

impl From<MfaError> for ConsoleError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::NoAccount(id) => ConsoleError::NotFound(Msg::NoAccount { id }.into()),
            e if e.is_internal() => ConsoleError::Internal(e.to_string()),
            other => ConsoleError::Invalid(Msg::FactorsInvalid.with_detail(other.to_string())),
        }
    }
}

impl From<kizuna_core::audit::AuditError> for ConsoleError {
    fn from(e: kizuna_core::audit::AuditError) -> Self {
        ConsoleError::Internal(e.to_string())
    }
}
