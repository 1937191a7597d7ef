//! `/admin/api/v1/orgs`: list, add, edit, disable and enable organizations.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;

use super::{ApiResult, body, created, ok, who};
use crate::Console;
use crate::error::ConsoleError;
use crate::forms::{ClientScopesRequest, OrgRequest};
use crate::messages::Msg;
use crate::ops;

pub(super) async fn list(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::list_orgs(&c, &who(&c, &h).await?).await?)
}

pub(super) async fn show(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::org(&c, &who(&c, &h).await?, &id).await?)
}

pub(super) async fn create(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<OrgRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let new = body(b)?.organization()?;
    created(ops::create_org(&c, &who, new).await?)
}

pub(super) async fn update(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<OrgRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    let version = req
        .version
        .ok_or_else(|| ConsoleError::Invalid(Msg::VersionRequired.into()))?;
    ok(ops::update_org(&c, &who, &id, version, req.organization()?).await?)
}

pub(super) async fn disable(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::set_org_status(&c, &who(&c, &h).await?, &id, false).await?)
}

pub(super) async fn enable(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::set_org_status(&c, &who(&c, &h).await?, &id, true).await?)
}

pub(super) async fn client_scopes(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::client_scopes(&c, &who(&c, &h).await?, &id).await?)
}

pub(super) async fn set_client_scopes(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ClientScopesRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::set_client_scopes(&c, &who, &id, body(b)?).await?)
}

/// The body of `PUT /admin/api/v1/orgs/{id}/consent-lifetime`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentLifetime {
    lifetime_days: Option<i64>,
}

pub(super) async fn set_consent_lifetime(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ConsentLifetime>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let days = body(b)?.lifetime_days;
    ok(ops::set_consent_lifetime(&c, &who, &id, days).await?)
}
