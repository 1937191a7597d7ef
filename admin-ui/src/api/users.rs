//! `/admin/api/v1/users`: search, create, enable and disable accounts, end their sessions,
//! set passwords, reset factors, change roles, and identity proofing.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use kizuna_idp::users::{self, NewUser};

use super::{ApiResult, body, created, ok, who};
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::ops;
use kizuna_core::access::Action;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    pub q: Option<String>,
}

pub(super) async fn search(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<UserQuery>,
) -> ApiResult {
    ok(ops::search_users(&c, &who(&c, &h).await?, q.q).await?)
}

pub(super) async fn show(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::user(&c, &who(&c, &h).await?, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserRequest {
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// The organization the account belongs to (staff of a stakeholder).
    #[serde(default)]
    org_id: Option<String>,
}

pub(super) async fn create(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<UserRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    let org = req.org_id.clone().filter(|o| !o.trim().is_empty());
    ops::require_in(
        &who,
        Action::ManageUsers,
        org.as_deref(),
        Msg::NoOrg {
            id: org.as_deref().unwrap_or("*").into(),
        },
    )?;
    if let Some(org) = &org {
        kizuna_core::orgs::find(&c.idp.core.db, org).await?;
    }
    let user = users::create_account(
        &c.idp.core,
        who.actor.clone(),
        NewUser {
            username: req.username,
            email: req.email,
            name: req.name,
            password_hash: None,
            org_id: org,
        },
        req.password.as_deref(),
    )
    .await?;
    created(user)
}

pub(super) async fn disable(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ops::set_user_status(&c, &who(&c, &h).await?, &id, false).await?;
    ok(store_user(&c, &id).await?)
}

pub(super) async fn enable(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ops::set_user_status(&c, &who(&c, &h).await?, &id, true).await?;
    ok(store_user(&c, &id).await?)
}

async fn store_user(c: &Console, id: &str) -> Result<crate::store::UserRow, ConsoleError> {
    crate::store::user(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(Msg::NoAccount { id: id.into() }.into()))
}

pub(super) async fn end_sessions(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let ended = ops::end_sessions(&c, &who(&c, &h).await?, &id).await?;
    ok(json!({"sessions_ended": ended}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordRequest {
    password: String,
}

pub(super) async fn set_password(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<PasswordRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ops::require_in(&who, Action::ManageUsers, None, Msg::NoAccounts)?;
    let req = body(b)?;
    users::change_password(&c.idp.core, who.actor.clone(), &id, &req.password).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MfaResetRequest {
    /// For an account proven at IAL2 or above, the id of a fresh proofing record of this
    /// person at that level; for an IAL1 account, the helpdesk's own reference.
    reproofing_reference: String,
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn mfa_reset(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<MfaResetRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    ok(ops::reset_factors(
        &c,
        &who,
        &id,
        &req.reproofing_reference,
        req.reason.as_deref(),
    )
    .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    pub role: String,
    /// An organization id, or `*` for the whole city.
    pub scope: String,
    #[serde(default = "crate::forms::yes")]
    pub granted: bool,
}

pub(super) async fn change_role(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<RoleRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    let role = crate::forms::role(&req.role)?;
    ops::change_role(&c, &who, &id, role, &req.scope, req.granted).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /admin/api/v1/users/{id}/proofing`: the person's IAL and current proofing record.
pub(super) async fn show_proofing(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::proofing(&c, &who(&c, &h).await?, &id).await?)
}

/// `POST /admin/api/v1/users/{id}/proofing`: a registrar's in-person check.
pub(super) async fn record_proofing(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<kizuna_idp::assurance::counter::CounterCheck>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let record = ops::record_proofing(&c, &who, &id, body(b)?).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}
