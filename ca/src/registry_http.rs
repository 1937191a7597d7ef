//! The registry API for the console and automation, in the CA API's style
//! (`/ca/api/v1/…`, bearer access tokens, `{"error", "message"}` errors): devices,
//! enrollment tokens and ACME binding keys. Callers are resolved and decided on as on every
//! management API (`kizuna_core::access`): staff roles in their scopes, or an automation
//! client's `kizuna:devices` scope in its own organization.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use kizuna_core::access::{Action, Caller, Denied};

use crate::Ca;
use crate::devices::{self, DeviceFilter, NewDevice};
use crate::enroll::tokens::{self, TokenSpec};
use crate::http::{ApiError, acting_for, caller};

pub fn router(ca: Ca) -> Router {
    Router::new()
        .route("/ca/api/v1/devices", get(list).post(create))
        .route("/ca/api/v1/devices/{id}", get(show))
        .route("/ca/api/v1/devices/{id}/{action}", post(change_status))
        .route(
            "/ca/api/v1/enrollment-tokens",
            get(list_tokens).post(create_tokens),
        )
        .route("/ca/api/v1/acme/eab", post(create_eab))
        .with_state(ca)
}

/// The caller and the organization it acts for with `action`: the one it names (if its
/// rights reach it), its own, or none (a city-wide caller's listing).
async fn caller_for(
    ca: &Ca,
    headers: &HeaderMap,
    action: Action,
    asked: Option<String>,
) -> Result<(Caller, Option<String>), ApiError> {
    let who = caller(ca, headers).await?;
    let org = acting_for(ca, &who, action, asked).await?;
    Ok((who, org))
}

/// The organization a creating request acts for (administrators must name one).
fn required(org_id: Option<String>) -> Result<String, ApiError> {
    org_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "give org_id".into(),
        )
    })
}

/// The device, if the caller may take `action` on it ("not found" otherwise).
async fn device_for(
    ca: &Ca,
    headers: &HeaderMap,
    id: &str,
    action: Action,
) -> Result<(Caller, devices::Device), ApiError> {
    let who = caller(ca, headers).await?;
    who.require(action)?;
    let what = format!("device {id}");
    let device = devices::get(&ca.core.db, id)
        .await?
        .ok_or_else(|| ApiError::from(Denied::NotFound(what.clone())))?;
    who.require_in(action, Some(&device.org_id), &what)?;
    Ok((who, device))
}

fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
}

#[derive(Deserialize)]
struct ListQuery {
    org: Option<String>,
    status: Option<String>,
    model: Option<String>,
    limit: Option<i64>,
}

/// `GET /ca/api/v1/devices`.
async fn list(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (_, org_id) = caller_for(&ca, &headers, Action::ViewDevices, q.org).await?;
    let filter = DeviceFilter {
        org_id,
        status: q.status.as_deref().map(str::parse).transpose()?,
        model: q.model,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(devices::list(&ca.core.db, &filter).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    hardware_serial: Option<String>,
    #[serde(default)]
    location: String,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
    #[serde(default)]
    installer: String,
}

/// `POST /ca/api/v1/devices`: registers a device (pending).
async fn create(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Result<Json<DeviceBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&ca, &headers).await?;
    let body = json_body(body)?;
    let org_id = acting_for(&ca, &who, Action::ManageDevices, body.org_id).await?;
    let org_id = required(org_id)?;
    let coordinates = match (body.latitude, body.longitude) {
        (Some(lat), Some(lon)) => Some((lat, lon)),
        (None, None) => None,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give latitude and longitude together".into(),
            ));
        }
    };
    let device = devices::create(
        &ca.core.db,
        who.actor.clone(),
        NewDevice {
            id: body.id,
            org_id,
            model: body.model,
            hardware_serial: body.hardware_serial,
            location: body.location,
            coordinates,
            installer: body.installer,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(device)).into_response())
}

/// `GET /ca/api/v1/devices/{id}`: the device and its certificates over time.
async fn show(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, device) = device_for(&ca, &headers, &id, Action::ViewDevices).await?;
    let certificates = devices::certificates(&ca.core.db, &id).await?;
    Ok(Json(json!({"device": device, "certificates": certificates})).into_response())
}

/// `POST /ca/api/v1/devices/{id}/suspend|resume|retire`.
async fn change_status(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (who, _) = device_for(&ca, &headers, &id, Action::RevokeCertificates).await?;
    let change = match action.as_str() {
        "suspend" => devices::suspend(&ca, &id, who.actor.clone()).await?,
        "resume" => devices::resume(&ca, &id, who.actor.clone()).await?,
        "retire" => devices::retire(&ca, &id, who.actor.clone()).await?,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no action {action}: use suspend, resume or retire"),
            ));
        }
    };
    Ok(Json(change).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensBody {
    #[serde(default)]
    org_id: Option<String>,
    profile: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    subject_pattern: Option<String>,
    #[serde(default)]
    ttl_secs: Option<i64>,
    #[serde(default)]
    count: Option<usize>,
}

/// `POST /ca/api/v1/enrollment-tokens`: the tokens are in this answer only.
async fn create_tokens(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Result<Json<TokensBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&ca, &headers).await?;
    let body = json_body(body)?;
    let org_id = acting_for(&ca, &who, Action::ManageDevices, body.org_id).await?;
    let spec = TokenSpec {
        org_id: required(org_id)?,
        profile: body.profile,
        device_id: body.device_id,
        model: body.model,
        subject_pattern: body.subject_pattern.unwrap_or_else(|| "*".into()),
        ttl_secs: body.ttl_secs.unwrap_or(ca.config.enrollment.token_ttl_secs),
        count: body.count.unwrap_or(1),
    };
    let created = tokens::create(&ca, who.actor.clone(), &spec, &mut |_| {}).await?;
    Ok((StatusCode::CREATED, Json(json!({"tokens": created}))).into_response())
}

#[derive(Deserialize)]
struct TokensQuery {
    org: Option<String>,
    batch: Option<String>,
    limit: Option<i64>,
}

/// `GET /ca/api/v1/enrollment-tokens`: never the secrets.
async fn list_tokens(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Query(q): Query<TokensQuery>,
) -> Result<Response, ApiError> {
    let (_, org_id) = caller_for(&ca, &headers, Action::ViewDevices, q.org).await?;
    let list = tokens::list(
        &ca.core.db,
        org_id.as_deref(),
        q.batch.as_deref(),
        q.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(list).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EabBody {
    #[serde(default)]
    org_id: Option<String>,
}

/// `POST /ca/api/v1/acme/eab`: a binding key for ACME clients (shown once).
async fn create_eab(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Result<Json<EabBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&ca, &headers).await?;
    let body = json_body(body)?;
    let org_id = acting_for(&ca, &who, Action::ManageDevices, body.org_id).await?;
    let org_id = required(org_id)?;
    let key = crate::acme::eab::create(&ca, who.actor.clone(), &org_id)
        .await
        .map_err(ApiError::from)?;
    Ok((StatusCode::CREATED, Json(key)).into_response())
}
