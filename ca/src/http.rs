//! The CA's HTTP surface: CA certificates, issued certificates and (with the revocation
//! issue) CRLs at stable URLs in DER and PEM, and the issuance API.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use kizuna_core::auth::{Principal, bearer};
use kizuna_core::web::ProtocolResponse;

use crate::issue::{IssueRequest, pem};
use crate::names::San;
use crate::store::{self, Filter};
use crate::{Ca, CaError, hierarchy};

pub fn router(ca: Ca) -> Router {
    Router::new()
        .route("/pki/ca/{file}", get(ca_certificate))
        .route("/pki/cert/{file}", get(certificate))
        .route("/ca/api/v1/certificates", post(issue).get(list))
        .route("/ca/api/v1/certificates/{serial}", get(show))
        .route("/ca/api/v1/cas", get(cas))
        .with_state(ca)
}

/// An API error: a status with `{"error", "message"}`.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.0, Json(json!({"error": self.1, "message": self.2}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"kizuna-ca\""),
            );
        }
        response.extensions_mut().insert(ProtocolResponse);
        response
    }
}

impl From<CaError> for ApiError {
    fn from(e: CaError) -> Self {
        let message = e.to_string();
        match e {
            CaError::Csr(crate::csr::CsrError::TooLarge) => {
                ApiError(StatusCode::PAYLOAD_TOO_LARGE, "csr_too_large", message)
            }
            CaError::Csr(_) => ApiError(StatusCode::BAD_REQUEST, "bad_csr", message),
            CaError::UnknownProfile(_) => {
                ApiError(StatusCode::BAD_REQUEST, "unknown_profile", message)
            }
            CaError::NotAllowed(_) => {
                ApiError(StatusCode::UNPROCESSABLE_ENTITY, "not_allowed", message)
            }
            CaError::Invalid(_) => ApiError(StatusCode::BAD_REQUEST, "invalid_request", message),
            CaError::Forbidden(_) => ApiError(StatusCode::FORBIDDEN, "forbidden", message),
            CaError::NotReady(_) => ApiError(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message),
            other => {
                tracing::error!(error = %other, "CA failure");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the CA could not complete the request".into(),
                )
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        CaError::Db(e).into()
    }
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
        Ok(Some(record)) => match record.cert_der {
            Some(der) => certificate_response(der, as_pem, "application/pkix-cert"),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
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

async fn principal(ca: &Ca, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "a bearer access token is required".into(),
        )
    })?;
    ca.auth.authenticate(token).await.ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is not valid, expired or revoked".into(),
        )
    })
}

const ADMIN_SCOPE: &str = "kizuna:admin";

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

/// `POST /ca/api/v1/certificates`: needs the profile's scope (`kizuna:cert:<profile>`) or
/// `kizuna:admin`. The certificate belongs to the caller's organization.
async fn issue(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Result<Json<IssueBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let who = principal(&ca, &headers).await?;
    let Json(body) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let profile = ca
        .profiles
        .get(&body.profile)
        .ok_or_else(|| ApiError::from(CaError::UnknownProfile(body.profile.clone())))?;
    let admin = who.has_scope(ADMIN_SCOPE);
    if !admin && !who.has_scope(&profile.scope) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!(
                "requesting {} needs the {} scope",
                profile.name, profile.scope
            ),
        ));
    }
    let org_id = match (admin, body.org_id) {
        (true, Some(org)) => Some(org),
        (false, Some(org)) if who.org_id.as_deref() != Some(org.as_str()) => {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only administrators may issue for another organization".into(),
            ));
        }
        (_, _) => who.org_id.clone(),
    };
    let sans = body
        .sans
        .map(|list| {
            list.iter()
                .map(|s| s.parse::<San>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e))?;
    let issued = crate::issue::issue(
        &ca,
        IssueRequest {
            csr: body.csr.into_bytes(),
            profile: body.profile,
            sans,
            org_id,
            actor: who.actor(),
            internal: false,
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

/// `GET /ca/api/v1/certificates`: administrators see all; others their organization's.
async fn list(
    State(ca): State<Ca>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let who = principal(&ca, &headers).await?;
    let org_id = if who.has_scope(ADMIN_SCOPE) {
        q.org
    } else {
        Some(who.org_id.clone().ok_or_else(|| {
            ApiError(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the caller belongs to no organization".into(),
            )
        })?)
    };
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
    let who = principal(&ca, &headers).await?;
    let record = store::get(&ca.core.db, &serial)
        .await?
        .filter(|r| who.has_scope(ADMIN_SCOPE) || (r.org_id.is_some() && r.org_id == who.org_id))
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no certificate {serial}"),
            )
        })?;
    let pem_text = pem("CERTIFICATE", &record.der);
    Ok(Json(json!({"certificate": record, "certificate_pem": pem_text})).into_response())
}

/// `GET /ca/api/v1/cas`: the hierarchy (public information).
async fn cas(State(ca): State<Ca>) -> Result<Response, ApiError> {
    Ok(Json(hierarchy::list(&ca).await?).into_response())
}
