//! `/admin/api/v1/enrollment-tokens`: list, create and void an organization's tokens.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::{ApiResult, body, created, ok, who};
use crate::Console;
use crate::forms::TokenRequest;
use crate::ops;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrgQuery {
    org: String,
}

pub(super) async fn list(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<OrgQuery>,
) -> ApiResult {
    ok(ops::enrollment_tokens(&c, &who(&c, &h).await?, &q.org).await?)
}

pub(super) async fn create(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<TokenRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    created(ops::create_enrollment_token(&c, &who, body(b)?.into()).await?)
}

pub(super) async fn void(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::void_enrollment_token(&c, &who(&c, &h).await?, &id).await?)
}
