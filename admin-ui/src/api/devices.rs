//! `/admin/api/v1/devices`: search, look up, register, suspend, resume and retire devices.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;

use super::{ApiResult, body, created, ok, who};
use crate::Console;
use crate::forms::{DeviceQuery, DeviceRequest};
use crate::ops::{self, DeviceChange};

pub(super) async fn search(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<DeviceQuery>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::search_devices(&c, &who, q.search()?).await?)
}

pub(super) async fn show(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::device(&c, &who(&c, &h).await?, &id).await?)
}

async fn device_change(c: &Console, h: &HeaderMap, id: &str, change: DeviceChange) -> ApiResult {
    ok(ops::change_device(c, &who(c, h).await?, id, change).await?)
}

pub(super) async fn suspend(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    device_change(&c, &h, &id, DeviceChange::Suspend).await
}

pub(super) async fn resume(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    device_change(&c, &h, &id, DeviceChange::Resume).await
}

pub(super) async fn retire(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    device_change(&c, &h, &id, DeviceChange::Retire).await
}

pub(super) async fn create(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<DeviceRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    created(ops::create_device(&c, &who, body(b)?.into()).await?)
}
