//! `/admin/api/v1/clients`: register, edit, delete, rotate secrets, approve, disable and
//! enable relying parties, and their identity assurance settings and request quota.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use kizuna_idp::clients::ClientEdit;

use super::{ApiResult, body, created, ok, who};
use crate::Console;
use crate::forms::ClientRequest;
use crate::messages::Msg;
use crate::ops::{self, ClientChange};
use kizuna_core::access::Action;

pub(super) async fn list(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::list_clients(&c, &who(&c, &h).await?).await?)
}

pub(super) async fn show(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::client(&c, &who(&c, &h).await?, &id).await?)
}

pub(super) async fn create(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<ClientRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let new = body(b)?.into_new()?;
    created(ops::create_client(&c, &who, new).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientPatch {
    redirect_uris: Vec<String>,
    #[serde(default)]
    min_aal: u8,
    /// The `version` the edit was made on.
    version: i64,
}

pub(super) async fn edit(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ClientPatch>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let p = body(b)?;
    let edit = ClientEdit {
        redirect_uris: p.redirect_uris,
        min_aal: p.min_aal,
        expected_version: p.version,
    };
    ok(ops::edit_client(&c, &who, &id, edit).await?)
}

pub(super) async fn delete(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ops::require_in(
        &who,
        Action::ApproveClients,
        None,
        Msg::NoClient { id: id.clone() },
    )?;
    kizuna_idp::clients::delete(&c.idp.core, who.actor.clone(), &id).await?;
    c.idp.clients.forget(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /admin/api/v1/clients/{id}/assurance`: a client's identity assurance settings.
pub(super) async fn show_assurance(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::client_assurance(&c, &who(&c, &h).await?, &id).await?)
}

/// `PUT /admin/api/v1/clients/{id}/assurance`: a client's identity assurance settings.
pub(super) async fn set_assurance(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<kizuna_idp::assurance::ClientAssurance>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::set_client_assurance(&c, &who, &id, body(b)?).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaBody {
    /// Requests per minute; `null` removes the limit.
    requests_per_minute: Option<i64>,
}

/// `PUT /admin/api/v1/clients/{id}/quota`: a client's request quota (city administrators).
pub(super) async fn set_quota(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<QuotaBody>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let quota = body(b)?;
    ok(ops::set_client_quota(&c, &who, &id, quota.requests_per_minute).await?)
}

/// `GET /admin/api/v1/clients/{id}/quota`: a client's request quota.
pub(super) async fn show_quota(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::client_quota(&c, &who(&c, &h).await?, &id).await?)
}

pub(super) async fn rotate_secret(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let secret = ops::rotate_client_secret(&c, &who(&c, &h).await?, &id).await?;
    ok(json!({"client_id": id, "client_secret": secret}))
}

async fn client_change(c: &Console, h: &HeaderMap, id: &str, change: ClientChange) -> ApiResult {
    ok(ops::change_client(c, &who(c, h).await?, id, change).await?)
}

pub(super) async fn approve(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    client_change(&c, &h, &id, ClientChange::Approve).await
}

pub(super) async fn disable(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    client_change(&c, &h, &id, ClientChange::Disable).await
}

pub(super) async fn enable(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    client_change(&c, &h, &id, ClientChange::Enable).await
}

/// `GET /admin/api/v1/clients/{id}/consent-terms`: what residents are asked to agree to.
pub(super) async fn show_consent_terms(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::client_consent_terms(&c, &who(&c, &h).await?, &id).await?)
}

/// `PUT /admin/api/v1/clients/{id}/consent-terms`: the purpose, lifetime and optional claims.
pub(super) async fn set_consent_terms(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<kizuna_idp::consent::NewTerms>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::set_client_consent_terms(&c, &who, &id, body(b)?).await?)
}

/// `GET /admin/api/v1/clients/{id}/linkages`: what the client may obtain from other services.
pub(super) async fn show_linkages(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::client_linkages(&c, &who(&c, &h).await?, &id).await?)
}

/// `PUT /admin/api/v1/clients/{id}/linkages`: set (no scopes: remove) one offer.
pub(super) async fn set_linkage(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<kizuna_idp::consent::NewLinkage>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::set_client_linkage(&c, &who, &id, body(b)?).await?)
}
