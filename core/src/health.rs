//! Liveness (`/healthz`), readiness (`/readyz`: database reachable, schema current),
//! Prometheus metrics (`/metrics`), the language switch and the shared stylesheet.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use crate::Core;
use crate::web::{ErrorPage, LANG_COOKIE, Lang, local_path};

pub fn router(core: Core) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/lang/{code}", get(switch_lang))
        .route(
            "/assets/kizuna.css",
            get(|| async { crate::web::error::stylesheet_response() }),
        )
        .with_state(core)
}

/// How long readiness waits for the database before saying it is unreachable.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(State(core): State<Core>) -> Response {
    let status = match tokio::time::timeout(READY_TIMEOUT, core.db.schema_status()).await {
        Ok(status) => status,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    };
    match status {
        Ok(schema) if schema.is_compatible() => Json(json!({
            "status": "ready",
            "database": core.db.backend().name(),
            "schema_version": schema.applied,
            "binary_schema_version": schema.expected,
            "newer_compatible_schema": schema.applied > schema.expected,
        }))
        .into_response(),
        Ok(schema) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "not_ready",
                "reason": if schema.applied < schema.expected {
                    "the database schema is older than this binary's: it has not been migrated"
                } else {
                    "the database schema is newer than this binary can use (a contracting migration): run the newer release"
                },
                "schema_version": schema.applied,
                "binary_schema_version": schema.expected,
                "readers_from": schema.readers_from,
            })),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready", "reason": "database unreachable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(core): State<Core>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        core.metrics.render(core.db.pool_stats()),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct Next {
    next: Option<String>,
}

/// Remembers the chosen language in a cookie and returns to the page the switch was on.
async fn switch_lang(
    State(core): State<Core>,
    Path(code): Path<String>,
    Query(next): Query<Next>,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return ErrorPage::not_found().into_response();
    };
    let secure = if core.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}",
        lang.code()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, local_path(next.next.as_deref())),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}
