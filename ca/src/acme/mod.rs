//! ACME (RFC 8555) for services, under `/acme/`: directory, nonces, accounts (bound to an
//! organization by external account binding), orders, authorizations with `http-01` and
//! `tls-alpn-01` challenges, finalization, certificate download, revocation and account key
//! rollover. Names are checked against the account's organization's allowed names; every
//! error is a problem document; every response carries a fresh nonce.

mod account;
mod authz;
mod cert;
pub mod eab;
mod jws;
#[cfg(feature = "fuzzing")]
pub(crate) use jws::parse as parse_jws;
mod order;
pub mod problem;
pub mod store;
pub mod validate;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use self::jws::{Signed, Signer};
use self::problem::{Kind, Problem};
use crate::Ca;

pub fn router(ca: Ca) -> Router {
    Router::new()
        .route("/acme/directory", get(directory))
        .route("/acme/new-nonce", get(nonce_get).head(nonce_head))
        .route("/acme/new-account", post(account::new_account))
        .route("/acme/account/{id}", post(account::account))
        .route("/acme/account/{id}/orders", post(account::orders))
        .route("/acme/new-order", post(order::new_order))
        .route("/acme/order/{id}", post(order::order))
        .route("/acme/order/{id}/finalize", post(order::finalize))
        .route("/acme/authz/{id}", post(authz::authorization))
        .route("/acme/chall/{id}", post(authz::challenge))
        .route("/acme/cert/{serial}", post(cert::certificate))
        .route("/acme/revoke-cert", post(cert::revoke_cert))
        .route("/acme/key-change", post(account::key_change))
        .layer(from_fn_with_state(ca.clone(), replay_nonce))
        .with_state(ca)
}

/// Every ACME response carries a fresh nonce, the directory link, and no caching (§6.5, §7.1).
/// A nonce is a stored row, so an address's requests are budgeted
/// (`acme.requests_per_address_per_minute`): past it, `rateLimited` with `Retry-After`
/// (§6.6) and nothing stored.
async fn replay_nonce(State(ca): State<Ca>, req: Request, next: Next) -> Response {
    let address = kizuna_core::web::RequestContext::current().and_then(|c| c.peer_ip);
    if !ca.acme_budget.admit(address) {
        tracing::warn!(client = ?address, "ACME request budget spent: rateLimited");
        let mut response = Problem::new(
            Kind::RateLimited,
            "too many requests from this address; retry later",
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&ca.acme_budget.retry_after_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    match store::new_nonce(&ca.core.db).await {
        Ok(nonce) => {
            if let Ok(value) = HeaderValue::from_str(&nonce) {
                headers.insert("replay-nonce", value);
            }
        }
        Err(e) => tracing::error!(error = %e, "creating an ACME nonce"),
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(link) =
        HeaderValue::from_str(&format!("<{}>;rel=\"index\"", ca.url("/acme/directory")))
    {
        headers.append(header::LINK, link);
    }
    response
}

fn reply(status: StatusCode, body: Value, location: Option<String>) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn order_url(ca: &Ca, id: &str) -> String {
    ca.url(&format!("/acme/order/{id}"))
}

async fn directory(State(ca): State<Ca>) -> Response {
    reply(
        StatusCode::OK,
        json!({
            "newNonce": ca.url("/acme/new-nonce"),
            "newAccount": ca.url("/acme/new-account"),
            "newOrder": ca.url("/acme/new-order"),
            "revokeCert": ca.url("/acme/revoke-cert"),
            "keyChange": ca.url("/acme/key-change"),
            "meta": {
                "website": ca.url("/"),
                "externalAccountRequired": ca.config.acme.require_eab,
            },
        }),
        None,
    )
}

async fn nonce_get() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn nonce_head() -> StatusCode {
    StatusCode::OK
}

/// A request signed by an account (`kid`), verified against its own URL.
struct ByAccount(Signed);

impl FromRequest<Ca> for ByAccount {
    type Rejection = Problem;

    async fn from_request(req: Request, ca: &Ca) -> Result<Self, Problem> {
        let path = req.uri().path().to_string();
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, jws::MAX_BODY)
            .await
            .map_err(|_| Problem::malformed("the request body is too large"))?;
        Ok(ByAccount(
            signed(ca, &parts.headers, &body, &path, Signer::Account).await?,
        ))
    }
}

/// Verifies a request for `path` under the public URL.
async fn signed(
    ca: &Ca,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
    signer: Signer,
) -> Result<Signed, Problem> {
    jws::verify(ca, headers, body, &ca.url(path), signer).await
}

/// Forgets expired nonces (run from the CA's background work).
pub async fn purge(ca: &Ca) {
    if let Err(e) = store::purge_nonces(&ca.core.db).await {
        tracing::warn!(error = %e, "purging ACME nonces");
    }
}
