//! The admin JSON API (`/admin/api/v1/…`): every console action, through the same functions
//! in [`crate::ops`]. Authenticated by a Kizuna access token: from `client_credentials` for a
//! client registered with `kizuna:admin` (city administrator) or `kizuna:role:<role>` scopes
//! (that role in the client's organization), or from a person's sign-in with `kizuna:admin`
//! (their own roles). Every change is audited with the caller as actor.
//! Errors answer `{"error", "message", "detail"?}`: a stable code, the catalogue message in
//! the language of `Accept-Language` (English without one), and a domain error's own text.
//! One module of handlers per resource; this one holds the router (every route is listed
//! here) and the error and response plumbing the handlers share.

mod audit;
mod certificates;
mod clients;
mod dashboard;
mod devices;
mod enrollment;
mod orgs;
mod reviews;
mod upstreams;
mod users;

use axum::Router;
use axum::extract::Request;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use serde_json::json;

use kizuna_core::web::{Lang, ProtocolResponse};

use crate::Console;
use crate::auth::api_caller;
use crate::error::{ConsoleError, Stale};
use crate::messages::Msg;
use kizuna_core::access::Caller;

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/admin/api/openapi.json", get(crate::openapi::document))
        .route("/admin/api/v1/dashboard", get(dashboard::show))
        .route(
            "/admin/api/v1/devices",
            get(devices::search).post(devices::create),
        )
        .route("/admin/api/v1/devices/{id}", get(devices::show))
        .route("/admin/api/v1/devices/{id}/suspend", post(devices::suspend))
        .route("/admin/api/v1/devices/{id}/resume", post(devices::resume))
        .route("/admin/api/v1/devices/{id}/retire", post(devices::retire))
        .route("/admin/api/v1/certificates", get(certificates::search))
        .route(
            "/admin/api/v1/certificates/{serial}",
            get(certificates::show),
        )
        .route(
            "/admin/api/v1/certificates/{serial}/unhold",
            post(certificates::unhold),
        )
        .route("/admin/api/v1/revocations", post(certificates::revoke))
        .route(
            "/admin/api/v1/enrollment-tokens",
            get(enrollment::list).post(enrollment::create),
        )
        .route(
            "/admin/api/v1/enrollment-tokens/{id}/void",
            post(enrollment::void),
        )
        .route("/admin/api/v1/audit", get(audit::search))
        .route("/admin/api/v1/audit/verify", post(audit::verify))
        .route("/admin/api/v1/audit/{id}", get(audit::show))
        .route(
            "/admin/api/v1/users",
            get(users::search).post(users::create),
        )
        .route(
            "/admin/api/v1/users/bulk-disable",
            post(reviews::bulk_disable),
        )
        .route("/admin/api/v1/users/{id}", get(users::show))
        .route("/admin/api/v1/users/{id}/disable", post(users::disable))
        .route("/admin/api/v1/users/{id}/enable", post(users::enable))
        .route(
            "/admin/api/v1/users/{id}/sessions/end",
            post(users::end_sessions),
        )
        .route(
            "/admin/api/v1/users/{id}/password",
            post(users::set_password),
        )
        .route("/admin/api/v1/users/{id}/mfa-reset", post(users::mfa_reset))
        .route("/admin/api/v1/users/{id}/roles", post(users::change_role))
        .route(
            "/admin/api/v1/users/{id}/proofing",
            get(users::show_proofing).post(users::record_proofing),
        )
        .route("/admin/api/v1/reviews", get(reviews::show))
        .route(
            "/admin/api/v1/clients",
            get(clients::list).post(clients::create),
        )
        .route(
            "/admin/api/v1/clients/{id}",
            get(clients::show)
                .patch(clients::edit)
                .delete(clients::delete),
        )
        .route(
            "/admin/api/v1/clients/{id}/rotate-secret",
            post(clients::rotate_secret),
        )
        .route(
            "/admin/api/v1/clients/{id}/quota",
            get(clients::show_quota).put(clients::set_quota),
        )
        .route(
            "/admin/api/v1/clients/{id}/assurance",
            get(clients::show_assurance).put(clients::set_assurance),
        )
        .route(
            "/admin/api/v1/clients/{id}/consent-terms",
            get(clients::show_consent_terms).put(clients::set_consent_terms),
        )
        .route(
            "/admin/api/v1/clients/{id}/linkages",
            get(clients::show_linkages).put(clients::set_linkage),
        )
        .route("/admin/api/v1/clients/{id}/approve", post(clients::approve))
        .route("/admin/api/v1/clients/{id}/disable", post(clients::disable))
        .route("/admin/api/v1/clients/{id}/enable", post(clients::enable))
        .route(
            "/admin/api/v1/upstreams",
            get(upstreams::list).post(upstreams::create),
        )
        .route(
            "/admin/api/v1/upstreams/{id}",
            get(upstreams::show).patch(upstreams::edit),
        )
        .route(
            "/admin/api/v1/upstreams/{id}/approve",
            post(upstreams::approve),
        )
        .route(
            "/admin/api/v1/upstreams/{id}/disable",
            post(upstreams::disable),
        )
        .route(
            "/admin/api/v1/upstreams/{id}/enable",
            post(upstreams::enable),
        )
        .route("/admin/api/v1/orgs", get(orgs::list).post(orgs::create))
        .route(
            "/admin/api/v1/orgs/{id}",
            get(orgs::show).patch(orgs::update),
        )
        .route("/admin/api/v1/orgs/{id}/disable", post(orgs::disable))
        .route("/admin/api/v1/orgs/{id}/enable", post(orgs::enable))
        .route(
            "/admin/api/v1/orgs/{id}/client-scopes",
            get(orgs::client_scopes).put(orgs::set_client_scopes),
        )
        .route(
            "/admin/api/v1/orgs/{id}/consent-lifetime",
            put(orgs::set_consent_lifetime),
        )
        .with_state(console)
        .layer(middleware::from_fn(language))
}

tokio::task_local! {
    /// The language of the request being answered, for its error message.
    static LANG: Lang;
}

/// Answers the request in the language its `Accept-Language` asks for, English without one
/// (programs read the code; the message is for the person reading their logs).
async fn language(request: Request, next: Next) -> Response {
    let lang = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or(Lang::En);
    LANG.scope(lang, next.run(request)).await
}

/// An API error: the console error's status and `{"error", "message"}`, with `detail` for
/// a domain error's own text and, for a stale edit, the current version as `current`.
pub struct ApiError(ConsoleError);

macro_rules! api_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError(e.into())
            }
        }
    )*};
}

api_error_from!(
    sqlx::Error,
    kizuna_ca::CaError,
    kizuna_idp::clients::ClientError,
    kizuna_core::orgs::OrgError,
    kizuna_idp::users::UserError,
    kizuna_idp::quota::QuotaError,
    kizuna_idp::federation::FederationError
);

impl From<ConsoleError> for ApiError {
    fn from(e: ConsoleError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let said = self.0.public();
        let lang = LANG.try_with(|lang| *lang).unwrap_or(Lang::En);
        let mut body = json!({"error": self.0.code(), "message": said.msg.render(lang)});
        if let Some(detail) = said.detail {
            body["detail"] = json!(detail);
        }
        if let ConsoleError::Stale(stale) = &self.0 {
            body["current"] = match stale {
                Stale::Client(c) => json!(c),
                Stale::Org(o) => json!(o),
                Stale::Upstream(u) => json!(u),
            };
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let level = match &self.0 {
                ConsoleError::StepUp(level) => Some(*level),
                _ => None,
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                kizuna_core::auth::challenge("kizuna-admin", self.0.code(), level),
            );
        }
        kizuna_core::web::retry_after_if_unavailable(&mut response);
        response.extensions_mut().insert(ProtocolResponse);
        response
    }
}

type ApiResult = Result<Response, ApiError>;

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| {
        ApiError(ConsoleError::BadRequest(
            Msg::MalformedBody.with_detail(e.body_text()),
        ))
    })
}

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

fn created(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

async fn who(c: &Console, headers: &HeaderMap) -> Result<Caller, ApiError> {
    Ok(api_caller(c, headers).await?)
}
