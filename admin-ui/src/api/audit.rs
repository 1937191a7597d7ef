//! `/admin/api/v1/audit`: search or export the audit log, read an entry, verify the chain.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;

use super::{ApiResult, ok, who};
use crate::Console;
use crate::forms::AuditQuery;
use crate::{export, ops};

pub(super) async fn search(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    match q.format.as_deref() {
        None => ok(ops::search_audit(&c, &who, q.search(0)).await?),
        Some(format) => Ok(export::audit_log(&c, &who, &q, format).await?),
    }
}

pub(super) async fn show(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::audit_entry(&c, &who(&c, &h).await?, &id).await?)
}

pub(super) async fn verify(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::verify_audit(&c, &who(&c, &h).await?).await?)
}
