//! `/admin/api/v1/reviews` and `/admin/api/v1/users/bulk-disable`: the periodic access
//! review and what it leads to.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::{ApiResult, body, ok, who};
use crate::Console;
use crate::ops;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkRequest {
    user_ids: Vec<String>,
}

pub(super) async fn bulk_disable(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<BulkRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    ok(json!({"disabled": ops::bulk_disable(&c, &who, &req.user_ids).await?}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    pub days: Option<i64>,
}

pub(super) async fn show(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<ReviewQuery>,
) -> ApiResult {
    ok(ops::review(&c, &who(&c, &h).await?, q.days.unwrap_or(90)).await?)
}
