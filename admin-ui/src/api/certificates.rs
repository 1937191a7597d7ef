//! `/admin/api/v1/certificates` and `/admin/api/v1/revocations`: search and read
//! certificates, revoke, release from hold.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use kizuna_ca::revoke::Reason;

use super::{ApiResult, body, ok, who};
use crate::Console;
use crate::error::ConsoleError;
use crate::forms::CertQuery;
use crate::messages::Msg;
use crate::ops::{self, Target};

pub(super) async fn search(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<CertQuery>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::search_certificates(&c, &who, q.search()?).await?)
}

pub(super) async fn show(
    State(c): State<Console>,
    h: HeaderMap,
    Path(serial): Path<String>,
) -> ApiResult {
    let cert = ops::certificate(&c, &who(&c, &h).await?, &serial).await?;
    let pem = kizuna_ca::issue::pem("CERTIFICATE", &cert.der);
    let mut value = json!(cert);
    value["pem"] = json!(pem);
    ok(value)
}

pub(super) async fn unhold(
    State(c): State<Console>,
    h: HeaderMap,
    Path(serial): Path<String>,
) -> ApiResult {
    ops::unhold(&c, &who(&c, &h).await?, &serial).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A revocation: exactly one of `serial`, `device_id` (with `org_id` when the id exists in
/// several organizations) or `org_id` alone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub serial: Option<String>,
    pub device_id: Option<String>,
    pub org_id: Option<String>,
    pub reason: String,
}

impl RevokeRequest {
    pub fn target(&self) -> Result<(Target, Reason), ConsoleError> {
        let reason = crate::forms::reason(&self.reason)?;
        let target = match (&self.serial, &self.device_id, &self.org_id) {
            (Some(s), None, None) => Target::Serial(s.clone()),
            (None, Some(d), org) => Target::Device {
                device_id: d.clone(),
                org_id: org.clone(),
            },
            (None, None, Some(o)) => Target::Org(o.clone()),
            _ => {
                return Err(ConsoleError::Invalid(Msg::NameExactlyOneTarget.into()));
            }
        };
        Ok((target, reason))
    }
}

pub(super) async fn revoke(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<RevokeRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let (target, reason) = body(b)?.target()?;
    ok(ops::revoke(&c, &who, target, reason).await?)
}
