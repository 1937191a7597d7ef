//! `GET /admin/api/v1/dashboard`.

use axum::extract::State;
use axum::http::HeaderMap;

use super::{ApiResult, ok, who};
use crate::Console;
use crate::ops;

pub(super) async fn show(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::dashboard(&c, &who(&c, &h).await?).await?)
}
