//! The admin JSON API (`/admin/api/v1/…`), the surface the console's pages will call too.
//! Authenticated by a Kizuna access token with the `kizuna:admin` scope: from
//! `client_credentials` for a client registered with that scope (automation), or from a
//! sign-in by an account holding the `city-admin` role. Every change is audited with the
//! caller as actor.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use kizuna_core::audit::Actor;
use kizuna_core::web::ProtocolResponse;
use kizuna_idp::Idp;
use kizuna_idp::assurance::{self, AssuranceError, ClientAssurance, counter::CounterCheck};
use kizuna_idp::clients::{self, AuthMethod, ClientError, GrantType, NewClient};
use kizuna_idp::mfa::{self, MfaError};
use kizuna_idp::tokens::{self, AccessClaims};
use kizuna_idp::userinfo::bearer_token;
use kizuna_idp::users::{self, NewUser, Role, UserError};

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "kizuna:admin";

pub fn router(idp: Idp) -> Router {
    Router::new()
        .route(
            "/admin/api/v1/clients",
            get(list_clients).post(create_client),
        )
        .route(
            "/admin/api/v1/clients/{id}",
            get(show_client).delete(delete_client),
        )
        .route("/admin/api/v1/users", get(list_users).post(create_user))
        .route("/admin/api/v1/users/{id}/disable", post(disable_user))
        .route("/admin/api/v1/users/{id}/enable", post(enable_user))
        .route("/admin/api/v1/users/{id}/password", post(set_password))
        .route("/admin/api/v1/users/{id}/mfa-reset", post(mfa_reset))
        .route(
            "/admin/api/v1/users/{id}/proofing",
            get(show_proofing).post(record_proofing),
        )
        .route(
            "/admin/api/v1/clients/{id}/assurance",
            axum::routing::put(set_client_assurance),
        )
        .with_state(idp)
}

/// An API error: a status and a JSON body `{"error", "message"}`.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.0, Json(json!({"error": self.1, "message": self.2}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"kizuna-admin\""),
            );
        }
        response.extensions_mut().insert(ProtocolResponse);
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "admin API storage failure");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "storage failure".into(),
        )
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(m) => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_client_metadata",
                m,
            ),
            ClientError::NotFound(m) => {
                ApiError(StatusCode::NOT_FOUND, "not_found", format!("no client {m}"))
            }
            ClientError::Storage(e) => e.into(),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            UserError::UsernameTaken(_) => {
                ApiError(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            UserError::Storage(e) => e.into(),
            other => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_user",
                other.to_string(),
            ),
        }
    }
}

/// Who is calling: the verified token's subject, as an audit actor.
async fn caller(idp: &Idp, headers: &HeaderMap) -> Result<Actor, ApiError> {
    caller_in(idp, headers, &[Role::CityAdmin]).await
}

/// The caller, who must hold one of `roles` (or be a client with the admin scope).
async fn caller_in(idp: &Idp, headers: &HeaderMap, roles: &[Role]) -> Result<Actor, ApiError> {
    let unauthorized = |m: &str| ApiError(StatusCode::UNAUTHORIZED, "invalid_token", m.to_string());
    let token = bearer_token(headers, &[])
        .ok_or_else(|| unauthorized("a bearer access token is required"))?;
    let claims: AccessClaims = tokens::check_access_token(idp, &token)
        .await?
        .map_err(|_| unauthorized("the access token is not valid, expired or revoked"))?;
    if !claims.scope.split(' ').any(|s| s == ADMIN_SCOPE) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("the token lacks {ADMIN_SCOPE}"),
        ));
    }
    if claims.sub == claims.client_id {
        return Ok(Actor::client(claims.client_id));
    }
    let mut conn = idp.core.db.conn().await?;
    for role in roles {
        if users::has_role(&mut conn, &claims.sub, *role).await? {
            return Ok(Actor::user(claims.sub));
        }
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(ApiError(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("the account holds none of the roles {}", names.join(", ")),
    ))
}

async fn list_clients(State(idp): State<Idp>, headers: HeaderMap) -> Result<Response, ApiError> {
    caller(&idp, &headers).await?;
    Ok(Json(clients::list(&idp.core.db).await?).into_response())
}

async fn show_client(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller(&idp, &headers).await?;
    let client = clients::get(&idp.core.db, &id).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no client {id}"),
        )
    })?;
    Ok(Json(client).into_response())
}

/// Client registration metadata, in RFC 7591 names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRequest {
    client_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    jwks: Option<serde_json::Value>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    #[serde(default)]
    require_consent: Option<bool>,
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
    /// The lowest authentication assurance level (1-3) sign-ins for this client must reach.
    #[serde(default)]
    min_aal: u8,
}

async fn create_client(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: Result<Json<ClientRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = caller(&idp, &headers).await?;
    let Json(req) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let grant_types = req
        .grant_types
        .iter()
        .map(|g| g.parse::<GrantType>())
        .collect::<Result<Vec<_>, _>>()?;
    let auth_method = req
        .token_endpoint_auth_method
        .as_deref()
        .map(str::parse::<AuthMethod>)
        .transpose()?;
    let created = clients::create(
        &idp.core,
        actor,
        NewClient {
            name: req.client_name,
            description: req.description,
            org_id: req.org_id,
            redirect_uris: req.redirect_uris,
            post_logout_redirect_uris: req.post_logout_redirect_uris,
            public: auth_method == Some(AuthMethod::None),
            grant_types,
            auth_method,
            scopes: req
                .scope
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            jwks: req.jwks,
            jwks_uri: req.jwks_uri,
            id_token_alg: req.id_token_signed_response_alg,
            require_par: req.require_pushed_authorization_requests,
            require_consent: req.require_consent,
            backchannel_logout_uri: req.backchannel_logout_uri,
            min_aal: req.min_aal,
        },
    )
    .await?;
    idp.keys
        .ensure(&created.client.id_token_alg)
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            )
        })?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn delete_client(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = caller(&idp, &headers).await?;
    clients::delete(&idp.core, actor, &id).await?;
    idp.clients.forget(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_users(State(idp): State<Idp>, headers: HeaderMap) -> Result<Response, ApiError> {
    caller(&idp, &headers).await?;
    let mut conn = idp.core.db.conn().await?;
    Ok(Json(users::list(&mut conn).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

async fn create_user(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: Result<Json<UserRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = caller(&idp, &headers).await?;
    let Json(req) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let user = users::create_account(
        &idp.core,
        actor,
        NewUser {
            username: req.username,
            email: req.email,
            name: req.name,
            password_hash: None,
            org_id: None,
        },
        req.password.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

async fn disable_user(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = caller(&idp, &headers).await?;
    let user = users::change_status(&idp.core, actor, &id, false).await?;
    Ok(Json(user).into_response())
}

async fn enable_user(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = caller(&idp, &headers).await?;
    let user = users::change_status(&idp.core, actor, &id, true).await?;
    Ok(Json(user).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    password: String,
}

async fn set_password(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<PasswordRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = caller(&idp, &headers).await?;
    let Json(req) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    users::change_password(&idp.core, actor, &id, &req.password).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaResetRequest {
    /// The record of the person's re-proofing (identity checked again).
    reproofing_reference: String,
    #[serde(default)]
    reason: Option<String>,
}

/// The helpdesk reset of a person who lost every factor (city administrators and the
/// helpdesk role); needs the re-proofing reference.
async fn mfa_reset(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<MfaResetRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = caller_in(&idp, &headers, &[Role::CityAdmin, Role::Helpdesk]).await?;
    let Json(req) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    match mfa::reset::reset(
        &idp,
        actor,
        &id,
        &req.reproofing_reference,
        req.reason.as_deref(),
    )
    .await
    {
        Ok(report) => Ok(Json(report).into_response()),
        Err(MfaError::NoAccount(m)) => Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no account {m}"),
        )),
        Err(MfaError::Storage(e)) => Err(e.into()),
        Err(e) => Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            e.to_string(),
        )),
    }
}

impl From<AssuranceError> for ApiError {
    fn from(e: AssuranceError) -> Self {
        match e {
            AssuranceError::NoAccount(_) => {
                ApiError(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            AssuranceError::AlreadyBound => {
                ApiError(StatusCode::CONFLICT, "already_bound", e.to_string())
            }
            AssuranceError::Storage(e) => e.into(),
            e if e.is_internal() => {
                tracing::error!(error = %e, "admin API assurance failure");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "key custody failure".into(),
                )
            }
            other => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                other.to_string(),
            ),
        }
    }
}

fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
}

/// The person's current proofing record (city administrators, registrars, the helpdesk).
async fn show_proofing(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller_in(
        &idp,
        &headers,
        &[Role::CityAdmin, Role::Registrar, Role::Helpdesk],
    )
    .await?;
    let mut conn = idp.core.db.conn().await?;
    let user = users::find_by_login(&mut conn, &id).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no account {id}"),
        )
    })?;
    let record = assurance::current(&mut conn, &user.id).await?;
    Ok(Json(json!({
        "user_id": user.id,
        "ial": record.as_ref().map(|r| r.level).unwrap_or(1),
        "record": record,
    }))
    .into_response())
}

/// A registrar records an in-person check at the counter, under their own account (an
/// automation client cannot: a person must have seen the document).
async fn record_proofing(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<CounterCheck>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = caller_in(&idp, &headers, &[Role::Registrar]).await?;
    if actor.kind != kizuna_core::audit::ActorKind::User {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an in-person check is recorded by a registrar's own account".into(),
        ));
    }
    let check = json_body(body)?;
    let record = assurance::counter::record_check(&idp, &actor.id, &id, check).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// Sets a client's identity assurance settings (city administrators).
async fn set_client_assurance(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ClientAssurance>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = caller(&idp, &headers).await?;
    let settings = json_body(body)?;
    let saved = assurance::set_client_settings(&idp, actor, &id, settings).await?;
    Ok(Json(saved).into_response())
}
