//! The CA API's errors: a status with `{"error", "message"}` (a 401 with its challenge), from
//! the CA's domain errors, the caller checks and the database (503 while it is unreachable).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use kizuna_core::access::Denied;
use kizuna_core::auth::{Refused, challenge};
use kizuna_core::web::ProtocolResponse;

use crate::CaError;

/// An API error: a status with `{"error", "message"}`; a 401 carries its challenge.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For `insufficient_user_authentication`: the level to sign in at (RFC 9470).
    acr_level: Option<u8>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            code,
            message,
            acr_level: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                challenge("kizuna-ca", self.code, self.acr_level),
            );
        }
        kizuna_core::web::retry_after_if_unavailable(&mut response);
        response.extensions_mut().insert(ProtocolResponse);
        response
    }
}

impl From<CaError> for ApiError {
    fn from(e: CaError) -> Self {
        let message = e.to_string();
        match e {
            CaError::Csr(crate::csr::CsrError::TooLarge) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "csr_too_large", message)
            }
            CaError::Csr(crate::csr::CsrError::KeyNotAllowed(_)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_allowed", message)
            }
            CaError::Csr(_) => ApiError::new(StatusCode::BAD_REQUEST, "bad_csr", message),
            CaError::UnknownProfile(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_profile", message)
            }
            CaError::NotAllowed(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_allowed", message)
            }
            CaError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            CaError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            CaError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            CaError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            CaError::NotReady(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
            }
            CaError::Db(e) if kizuna_core::db::is_unavailable(&e) => {
                tracing::error!(error = %e, "{}", kizuna_core::db::unavailable_reason(&e));
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    if kizuna_core::db::is_disk_full(&e) {
                        "the database cannot store anything now; try again later".into()
                    } else {
                        "the database is unreachable; try again shortly".into()
                    },
                )
            }
            other => {
                tracing::error!(error = %other, "CA failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the CA could not complete the request".into(),
                )
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        CaError::Db(e).into()
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::InvalidToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is not valid, expired or revoked".into(),
            ),
            Refused::InsufficientScope(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", m)
            }
            Refused::InsufficientUserAuthentication(level) => ApiError {
                acr_level: Some(level),
                ..ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "insufficient_user_authentication",
                    format!(
                        "your roles need a sign-in at urn:kizuna:aal:{level}; ask for it with acr_values"
                    ),
                )
            },
            Refused::NoRights(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            Refused::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the caller could not be checked; try again".into(),
            ),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            Denied::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what}"))
            }
        }
    }
}
