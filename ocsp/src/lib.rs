//! Kizuna's OCSP responder (RFC 6960, RFC 5019 profile). It answers from a cache of
//! pre-signed responses (one per certificate, signed by the issuing CA's delegated OCSP
//! signer), refreshed before nextUpdate and replaced as soon as a certificate changes: at
//! once for changes in this process, and within a fraction of a second for changes made by
//! other replicas (it follows the CA's change feed). Requests with a nonce are signed on
//! the fly so the nonce can be echoed. Runs inside `kizuna serve` or alone
//! (`kizuna ocsp serve`).

pub mod codec;
mod config;
mod responder;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;

use kizuna_core::web::ProtocolResponse;

use codec::ErrorStatus;
pub use config::OcspConfig;
pub use responder::{Prepared, Responder, ResponderState};

#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("key custody: {0}")]
    Custody(#[from] kizuna_core::custody::CustodyError),
    #[error("{0}")]
    Invalid(String),
}

/// The responder's routes: `POST /ocsp[/{ca}]` and `GET /ocsp/{ca}/{base64 request}`.
pub fn router(responder: Responder) -> Router {
    Router::new()
        .route("/ocsp", post(post_request))
        .route("/ocsp/{ca}", post(post_request_for))
        .route("/ocsp/{ca}/{*request}", get(get_request))
        .with_state(responder)
}

fn http_response(
    der: Bytes,
    prepared: Option<&Prepared>,
    cacheable: bool,
    config: &OcspConfig,
) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "application/ocsp-response")], der).into_response();
    if let (Some(p), true) = (prepared, cacheable) {
        let now = kizuna_core::time::now_unix();
        let max_age = (p.next_update - now).clamp(0, config.max_age_secs);
        let h = response.headers_mut();
        for (name, value) in [
            (
                header::CACHE_CONTROL,
                format!("max-age={max_age}, public, no-transform, must-revalidate"),
            ),
            (header::ETAG, p.etag.clone()),
            (header::LAST_MODIFIED, http_date(p.this_update)),
            (header::EXPIRES, http_date(p.next_update)),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                h.insert(name, value);
            }
        }
    } else {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response.extensions_mut().insert(ProtocolResponse);
    response
}

fn http_date(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).unwrap_or_default()
}

async fn post_request(State(responder): State<Responder>, body: Bytes) -> Response {
    let (der, prepared) = responder.respond(&body).await;
    http_response(der, prepared.as_deref(), false, &responder.config)
}

async fn post_request_for(
    State(responder): State<Responder>,
    Path(_ca): Path<String>,
    body: Bytes,
) -> Response {
    post_request(State(responder), body).await
}

/// RFC 5019 §5: GET with the base64 request (URL-encoded) in the path; cacheable.
async fn get_request(
    State(responder): State<Responder>,
    Path((_ca, encoded)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let cleaned: String = encoded
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace(' ', "+");
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(cleaned.trim_start_matches('/'))
    else {
        return http_response(
            Bytes::from(codec::error(ErrorStatus::MalformedRequest)),
            None,
            false,
            &responder.config,
        );
    };
    let (der, prepared) = responder.respond(&der).await;
    if let Some(p) = &prepared {
        let matches = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == p.etag));
        if matches {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response.extensions_mut().insert(ProtocolResponse);
            return response;
        }
    }
    http_response(der, prepared.as_deref(), true, &responder.config)
}
