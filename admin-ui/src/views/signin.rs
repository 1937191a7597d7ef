//! Signing in to the console (through Kizuna's own OpenID provider) and out.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use kizuna_core::web::local_path;

use super::{error_page, see_other};
use crate::Console;
use crate::auth::{self, CallbackQuery, Finished, Signed};

#[derive(serde::Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

pub(super) async fn login(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    let next = if next.starts_with("/admin") {
        next
    } else {
        "/admin".into()
    };
    let aal = match auth::session(&c, &headers).await {
        Ok(Signed::Out(aal)) => aal,
        Ok(Signed::In(_)) => return see_other(&next),
        Err(e) => return error_page(&c, &headers, None, e),
    };
    match auth::start(&c, &next, aal).await {
        Ok(r) => r,
        Err(e) => error_page(&c, &headers, None, e),
    }
}

pub(super) async fn callback(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    match auth::finish(&c, &headers, q).await {
        Ok(Finished::Session(r) | Finished::StepUp(r)) => r,
        Err(e) => error_page(&c, &headers, None, e),
    }
}

pub(super) async fn logout(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| auth::end(&c, &headers, &p.who).await)
}
