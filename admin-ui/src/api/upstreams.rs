//! `/admin/api/v1/upstreams`: register, edit, approve, disable and enable upstream identity
//! providers.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;

use super::{ApiResult, body, created, ok, who};
use crate::Console;
use crate::forms::{UpstreamPatch, UpstreamRequest};
use crate::ops::{self, UpstreamChange};

pub(super) async fn list(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::list_upstreams(&c, &who(&c, &h).await?).await?)
}

pub(super) async fn show(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::upstream(&c, &who(&c, &h).await?, &id).await?)
}

pub(super) async fn create(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<UpstreamRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let request = body(b)?;
    let saml = request.saml_metadata_url.clone();
    let new = request.into_new()?;
    created(ops::create_upstream(&c, &who, new, saml.as_deref()).await?)
}

pub(super) async fn edit(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<UpstreamPatch>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let edit = body(b)?.into_edit()?;
    ok(ops::edit_upstream(&c, &who, &id, edit).await?)
}

async fn upstream_change(
    c: &Console,
    h: &HeaderMap,
    id: &str,
    change: UpstreamChange,
) -> ApiResult {
    ok(ops::change_upstream(c, &who(c, h).await?, id, change).await?)
}

pub(super) async fn approve(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    upstream_change(&c, &h, &id, UpstreamChange::Approve).await
}

pub(super) async fn disable(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    upstream_change(&c, &h, &id, UpstreamChange::Disable).await
}

pub(super) async fn enable(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    upstream_change(&c, &h, &id, UpstreamChange::Enable).await
}
