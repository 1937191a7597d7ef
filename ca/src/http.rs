//! The CA's HTTP surface: CA certificates, issued certificates and (with the revocation
//! issue) CRLs at stable URLs in DER and PEM, and the issuance API.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use kizuna_core::access::{Action, Caller, Denied, Reach};
use kizuna_core::auth::bearer;
use kizuna_core::web::ProtocolResponse;

use crate::issue::{IssueRequest, pem};
use crate::names::San;
use crate::store::{self, Filter};
use crate::{Ca, CaError, hierarchy};

mod error;

pub(crate) use error::ApiError;

pub fn router(ca: Ca) -> Router {
    Router::new()
        .route("/pki/ca/{file}", get(ca_certificate))
        .route("/pki/trust-bundle.pem", get(trust_bundle))
        .route("/pki/cert/{file}", get(certificate))
        .route("/ca/api/v1/certificates", post(issue).get(list))
        .route("/ca/api/v1/certificates/{serial}", get(show))
        .route("/ca/api/v1/cas", get(cas))
        .route("/ca/api/v1/certificates/{serial}/revoke", post(revoke_one))
        .route("/ca/api/v1/certificates/{serial}/unhold", post(unhold_one))
        .route("/ca/api/v1/revocations", post(revoke_many))
        .route("/pki/crl/{file}", get(full_crl))
        .route("/pki/crl/{ca}/{file}", get(shard_crl))
        .with_state(ca)
}

fn der_or_pem(file: &str) -> Option<(&str, bool)> {
    file.strip_suffix(".der")
        .map(|id| (id, false))
        .or_else(|| file.strip_suffix(".crt").map(|id| (id, false)))
        .or_else(|| file.strip_suffix(".pem").map(|id| (id, true)))
}

fn certificate_response(der: Vec<u8>, as_pem: bool, content_type: &'static str) -> Response {
    let mut response = if as_pem {
        (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            pem("CERTIFICATE", &der),
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], der).into_response()
    };
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=3600"),
    );
    response.extensions_mut().insert(ProtocolResponse);
    response
}

/// `GET /pki/ca/{id}.der|.crt|.pem` — the AIA caIssuers URL serves DER.
async fn ca_certificate(State(ca): State<Ca>, Path(file): Path<String>) -> Response {
    let Some((id, as_pem)) = der_or_pem(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match hierarchy::get(&ca, id).await {
        // A retired root (and its cross-certificates) is no longer published.
        Ok(Some(record)) if record.status != "retired" => match record.cert_der {
            Some(der) => certificate_response(der, as_pem, "application/pkix-cert"),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /pki/trust-bundle.pem` — the roots to trust now and, during a root rollover's
/// overlap, the cross-certificates between them.
async fn trust_bundle(State(ca): State<Ca>) -> Response {
    match hierarchy::trust_bundle(&ca).await {
        Ok(bundle) => {
            let text: String = bundle
                .iter()
                .filter_map(|r| r.cert_der.as_deref())
                .map(|der| pem("CERTIFICATE", der))
                .collect();
            let mut response = (
                [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
                text,
            )
                .into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("public, max-age=300"),
            );
            response.extensions_mut().insert(ProtocolResponse);
            response
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /pki/cert/{serial}.der|.pem`.
async fn certificate(State(ca): State<Ca>, Path(file): Path<String>) -> Response {
    let Some((serial, as_pem)) = der_or_pem(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if serial.len() > 64 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match store::get(&ca.core.db, serial).await {
        Ok(Some(record)) => certificate_response(record.der, as_pem, "application/pkix-cert"),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The management caller behind the request's bearer token, resolved as on every API.
pub(crate) async fn caller(ca: &Ca, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "a bearer access token is required".into(),
        )
    })?;
    ca.auth.authenticate(token).await.map_err(ApiError::from)
}

/// The organization a request acts for: the one it names, if the caller's rights for
/// `action` reach it; else the caller's one organization; `None` for a city-wide caller.
pub(crate) async fn acting_for(
    ca: &Ca,
    who: &Caller,
    action: Action,
    asked: Option<String>,
) -> Result<Option<String>, ApiError> {
    let reach = who.require(action)?;
    match asked {
        Some(asked) => {
            let id = ca.organization(&asked).await?.0.id;
            if who.may_in(action, Some(&id)) {
                Ok(Some(id))
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("you may not act for organization {asked}"),
                ))
            }
        }
        None if reach == Reach::City => Ok(None),
        None => who.own_org(action).map(Some).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "your rights reach several organizations: name one (org_id / org)".into(),
            )
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    /// The PKCS#10 request, PEM (or base64 DER).
    csr: String,
    profile: String,
    /// Names as `dns:…`, `ip:…`, `uri:…`, `email:…`; default: those in the request.
    #[serde(default)]
    sans: Option<Vec<String>>,
    /// For administrators only: the owning organization (others get their own).
    #[serde(default)]
    org_id: Option<String>,
}

/// `POST /ca/api/v1/certificates`: a role that issues certificates in the organization, or
/// an automation client's profile scope (`kizuna:cert:<profile>`) in its own. The
/// certificate belongs to the organization the request acts for.
async fn issue(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Result<Json<IssueBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&ca, &headers).await?;
    let Json(body) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let profile = ca
        .profiles
        .get(&body.profile)
        .ok_or_else(|| ApiError::from(CaError::UnknownProfile(body.profile.clone())))?;
    let org_id = match body.org_id {
        Some(asked) => Some(ca.organization(&asked).await?.0.id),
        None => who
            .own_org(Action::IssueCertificates)
            .or_else(|| who.grants.iter().map(|(_, org)| org.clone()).next()),
    };
    if !who.may_issue(&profile.scope, org_id.as_deref()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!(
                "requesting {} certificates for {} needs the {} scope or a role there",
                profile.name,
                org_id.as_deref().unwrap_or("the city"),
                profile.scope
            ),
        ));
    }
    let sans = body
        .sans
        .map(|list| {
            list.iter()
                .map(|s| s.parse::<San>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e))?;
    let issued = crate::issue::issue(
        &ca,
        IssueRequest {
            csr: body.csr.into_bytes(),
            profile: body.profile,
            sans,
            org_id,
            actor: who.actor.clone(),
            internal: false,
            common_name: None,
            ca_id: None,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    org: Option<String>,
    device: Option<String>,
    profile: Option<String>,
    status: Option<String>,
    ca: Option<String>,
    name: Option<String>,
    limit: Option<i64>,
}

/// `GET /ca/api/v1/certificates`: what the caller's rights to see devices reach.
async fn list(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&ca, &headers).await?;
    let org_id = acting_for(&ca, &who, Action::ViewDevices, q.org).await?;
    let filter = Filter {
        ca_id: q.ca,
        org_id,
        device_id: q.device,
        profile: q.profile,
        status: q.status,
        expiring_before: None,
        name: q.name.filter(|n| n.len() <= 256),
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(store::list(&ca.core.db, &filter).await?).into_response())
}

async fn show(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Result<Response, ApiError> {
    let record = certificate_for(&ca, &headers, &serial, Action::ViewDevices)
        .await?
        .1;
    let pem_text = pem("CERTIFICATE", &record.der);
    Ok(Json(json!({"certificate": record, "certificate_pem": pem_text})).into_response())
}

/// `GET /ca/api/v1/cas`: the hierarchy (public information).
async fn cas(State(ca): State<Ca>) -> Result<Response, ApiError> {
    Ok(Json(hierarchy::list(&ca).await?).into_response())
}

/// An HTTP date (RFC 9110 §5.6.7).
fn http_date(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).unwrap_or_default()
}

/// Serves a stored CRL (DER, or PEM for `.pem`) with validators for caches and CDNs.
async fn crl_response(
    ca: &Ca,
    ca_id: &str,
    shard: i64,
    as_pem: bool,
    headers: &HeaderMap,
) -> Response {
    let (der_bytes, this_update, next_update) = match crate::crl::stored(ca, ca_id, shard).await {
        Ok(Some(found)) => found,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let etag = format!(
        "\"{}\"",
        &kizuna_core::secret::hex(&kizuna_core::secret::sha256(&der_bytes))[..32]
    );
    let max_age = (next_update - kizuna_core::time::now_unix()).clamp(0, 3600);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if as_pem {
        (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            pem("X509 CRL", &der_bytes),
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/pkix-crl")], der_bytes).into_response()
    };
    let h = response.headers_mut();
    for (name, value) in [
        (header::ETAG, etag),
        (header::LAST_MODIFIED, http_date(this_update)),
        (header::EXPIRES, http_date(next_update)),
        (
            header::CACHE_CONTROL,
            format!("public, max-age={max_age}, no-transform"),
        ),
    ] {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            h.insert(name, value);
        }
    }
    response.extensions_mut().insert(ProtocolResponse);
    response
}

/// `GET /pki/crl/{ca}.crl|.pem`: the full CRL.
async fn full_crl(State(ca): State<Ca>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    let (id, as_pem) = match (file.strip_suffix(".crl"), file.strip_suffix(".pem")) {
        (Some(id), _) => (id, false),
        (_, Some(id)) => (id, true),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    crl_response(&ca, id, crate::crl::FULL, as_pem, &headers).await
}

/// `GET /pki/crl/{ca}/{shard}.crl|.pem`: one partition.
async fn shard_crl(
    State(ca): State<Ca>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (shard, as_pem) = match (file.strip_suffix(".crl"), file.strip_suffix(".pem")) {
        (Some(s), _) => (s, false),
        (_, Some(s)) => (s, true),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match shard.parse::<i64>() {
        Ok(shard) if shard >= 0 => crl_response(&ca, &id, shard, as_pem, &headers).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The certificate `serial` and its caller, if the caller may take `action` on it; else
/// "not found", so an organization cannot probe another's serials.
async fn certificate_for(
    ca: &Ca,
    headers: &HeaderMap,
    serial: &str,
    action: Action,
) -> Result<(Caller, store::CertRecord), ApiError> {
    let who = caller(ca, headers).await?;
    who.require(action)?;
    let what = format!("certificate {serial}");
    let record = store::get(&ca.core.db, serial)
        .await?
        .ok_or_else(|| ApiError::from(Denied::NotFound(what.clone())))?;
    who.require_in(action, record.org_id.as_deref(), &what)?;
    Ok((who, record))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: String,
}

/// `POST /ca/api/v1/certificates/{serial}/revoke`: a caller whose rights to revoke reach
/// the certificate's organization (`kizuna:cert:revoke` for an organization's client).
async fn revoke_one(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    body: Result<Json<RevokeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let (who, record) = certificate_for(&ca, &headers, &serial, Action::RevokeCertificates).await?;
    let Json(body) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let reason: crate::revoke::Reason = body
        .reason
        .parse()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e))?;
    let report = crate::revoke::revoke(
        &ca,
        &crate::revoke::Selector::Serial(record.serial),
        reason,
        who.actor,
    )
    .await?;
    Ok(Json(report).into_response())
}

async fn unhold_one(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Result<Response, ApiError> {
    let (who, record) = certificate_for(&ca, &headers, &serial, Action::RevokeCertificates).await?;
    crate::revoke::unhold(&ca, &record.serial, who.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeManyBody {
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
    reason: String,
    /// Without it, answers how many certificates would be revoked and changes nothing.
    #[serde(default)]
    confirm: bool,
}

/// `POST /ca/api/v1/revocations`: every certificate of a device (`device_id`, with `org_id`
/// when the id is used in several organizations) or of an organization (`org_id` alone), in
/// one transaction, for a caller whose rights to revoke reach that organization; without
/// `confirm`, a count.
async fn revoke_many(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Result<Json<RevokeManyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&ca, &headers).await?;
    who.require(Action::RevokeCertificates)?;
    let Json(body) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let reason: crate::revoke::Reason = body
        .reason
        .parse()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e))?;
    let (selector, org) = match (body.device_id, body.org_id) {
        (Some(d), org) => {
            let org = match org {
                Some(o) => Some(ca.organization(&o).await?.0.id),
                None => None,
            };
            let selector = crate::revoke::device(&ca, &d, org.as_deref()).await?;
            let owner = match &selector {
                crate::revoke::Selector::Device { org_id, .. } => Some(org_id.clone()),
                _ => None,
            };
            (selector, owner)
        }
        (None, Some(o)) => {
            let id = ca.organization(&o).await?.0.id;
            (crate::revoke::Selector::Organization(id.clone()), Some(id))
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give device_id or org_id".into(),
            ));
        }
    };
    who.require_in(
        Action::RevokeCertificates,
        org.as_deref(),
        "device or organization you may revoke for",
    )?;
    if !body.confirm {
        let count = crate::revoke::count(&ca, &selector).await?;
        return Ok(Json(
            json!({"would_revoke": count, "confirm": "repeat with \"confirm\": true"}),
        )
        .into_response());
    }
    let report = crate::revoke::revoke(&ca, &selector, reason, who.actor).await?;
    Ok(Json(report).into_response())
}
