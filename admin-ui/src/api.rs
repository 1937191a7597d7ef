//! The admin JSON API (`/admin/api/v1/…`): every console action, through the same functions
//! in [`crate::ops`]. Authenticated by a Kizuna access token: from `client_credentials` for a
//! client registered with `kizuna:admin` (city administrator) or `kizuna:role:<role>` scopes
//! (that role in the client's organization), or from a person's sign-in with `kizuna:admin`
//! (their own roles). Every change is audited with the caller as actor.

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use kizuna_ca::devices::NewDevice;
use kizuna_ca::enroll::tokens::TokenSpec;
use kizuna_ca::revoke::Reason;
use kizuna_core::orgs::{NewOrganization, OrgKind};
use kizuna_core::web::ProtocolResponse;
use kizuna_idp::clients::{AuthMethod, ClientEdit, GrantType, NewClient};
use kizuna_idp::federation::ceiling::{AcrMap, TrustCeiling};
use kizuna_idp::federation::claims::{ClaimMap, default_map};
use kizuna_idp::federation::upstreams::{
    self as upstream_settings, acr_entries, acr_map_from, claim_entries, claim_map_from,
};
use kizuna_idp::federation::{ClientAuth, NewUpstream, UpstreamEdit};
use kizuna_idp::users::{self, NewUser, Role};

use crate::Console;
use crate::auth::api_caller;
use crate::error::{ConsoleError, Stale};
use crate::ops::{self, ClientChange, DeviceChange, Target, UpstreamChange};
use crate::store::{AuditSearch, CertSearch, DeviceSearch};
use kizuna_core::access::{Action, Caller};

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/admin/api/openapi.json", get(crate::openapi::document))
        .route("/admin/api/v1/dashboard", get(dashboard))
        .route("/admin/api/v1/devices", get(devices).post(create_device))
        .route("/admin/api/v1/devices/{id}", get(device))
        .route("/admin/api/v1/devices/{id}/suspend", post(suspend_device))
        .route("/admin/api/v1/devices/{id}/resume", post(resume_device))
        .route("/admin/api/v1/devices/{id}/retire", post(retire_device))
        .route("/admin/api/v1/certificates", get(certificates))
        .route("/admin/api/v1/certificates/{serial}", get(certificate))
        .route("/admin/api/v1/certificates/{serial}/unhold", post(unhold))
        .route("/admin/api/v1/revocations", post(revoke))
        .route(
            "/admin/api/v1/enrollment-tokens",
            get(enrollment_tokens).post(create_enrollment_token),
        )
        .route(
            "/admin/api/v1/enrollment-tokens/{id}/void",
            post(void_enrollment_token),
        )
        .route("/admin/api/v1/audit", get(audit))
        .route("/admin/api/v1/audit/verify", post(verify_audit))
        .route("/admin/api/v1/audit/{id}", get(audit_entry))
        .route("/admin/api/v1/users", get(list_users).post(create_user))
        .route("/admin/api/v1/users/bulk-disable", post(bulk_disable))
        .route("/admin/api/v1/users/{id}", get(user))
        .route("/admin/api/v1/users/{id}/disable", post(disable_user))
        .route("/admin/api/v1/users/{id}/enable", post(enable_user))
        .route("/admin/api/v1/users/{id}/sessions/end", post(end_sessions))
        .route("/admin/api/v1/users/{id}/password", post(set_password))
        .route("/admin/api/v1/users/{id}/mfa-reset", post(mfa_reset))
        .route("/admin/api/v1/users/{id}/roles", post(change_role))
        .route(
            "/admin/api/v1/users/{id}/proofing",
            get(show_proofing).post(record_proofing),
        )
        .route("/admin/api/v1/reviews", get(review))
        .route(
            "/admin/api/v1/clients",
            get(list_clients).post(create_client),
        )
        .route(
            "/admin/api/v1/clients/{id}",
            get(show_client).patch(edit_client).delete(delete_client),
        )
        .route(
            "/admin/api/v1/clients/{id}/rotate-secret",
            post(rotate_secret),
        )
        .route(
            "/admin/api/v1/clients/{id}/quota",
            get(show_quota).put(set_quota),
        )
        .route(
            "/admin/api/v1/clients/{id}/assurance",
            get(show_client_assurance).put(set_client_assurance),
        )
        .route("/admin/api/v1/clients/{id}/approve", post(approve_client))
        .route("/admin/api/v1/clients/{id}/disable", post(disable_client))
        .route("/admin/api/v1/clients/{id}/enable", post(enable_client))
        .route(
            "/admin/api/v1/upstreams",
            get(list_upstreams).post(create_upstream),
        )
        .route(
            "/admin/api/v1/upstreams/{id}",
            get(show_upstream).patch(edit_upstream),
        )
        .route(
            "/admin/api/v1/upstreams/{id}/approve",
            post(approve_upstream),
        )
        .route(
            "/admin/api/v1/upstreams/{id}/disable",
            post(disable_upstream),
        )
        .route("/admin/api/v1/upstreams/{id}/enable", post(enable_upstream))
        .route("/admin/api/v1/orgs", get(list_orgs).post(create_org))
        .route("/admin/api/v1/orgs/{id}", get(org).patch(update_org))
        .route("/admin/api/v1/orgs/{id}/disable", post(disable_org))
        .route("/admin/api/v1/orgs/{id}/enable", post(enable_org))
        .with_state(console)
}

/// An API error: the console error's status and `{"error", "message"}` (and, for a stale
/// edit, the current version as `current`).
pub struct ApiError(ConsoleError);

macro_rules! api_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError(e.into())
            }
        }
    )*};
}

api_error_from!(
    sqlx::Error,
    kizuna_ca::CaError,
    kizuna_idp::clients::ClientError,
    kizuna_core::orgs::OrgError,
    kizuna_idp::users::UserError,
    kizuna_idp::quota::QuotaError,
    kizuna_idp::federation::FederationError,
    kizuna_core::access::Denied
);

impl From<ConsoleError> for ApiError {
    fn from(e: ConsoleError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let mut body = json!({"error": self.0.code(), "message": self.0.public_message()});
        if let ConsoleError::Stale(stale) = &self.0 {
            body["current"] = match stale {
                Stale::Client(c) => json!(c),
                Stale::Org(o) => json!(o),
                Stale::Upstream(u) => json!(u),
            };
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let level = match &self.0 {
                ConsoleError::StepUp(level) => Some(*level),
                _ => None,
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                kizuna_core::auth::challenge("kizuna-admin", self.0.code(), level),
            );
        }
        response.extensions_mut().insert(ProtocolResponse);
        response
    }
}

type ApiResult = Result<Response, ApiError>;

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| ApiError(ConsoleError::BadRequest(e.body_text())))
}

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

fn created(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

async fn who(c: &Console, headers: &HeaderMap) -> Result<Caller, ApiError> {
    Ok(api_caller(c, headers).await?)
}

async fn dashboard(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::dashboard(&c, &who(&c, &h).await?).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    pub q: Option<String>,
    pub org: Option<String>,
    pub status: Option<String>,
}

impl DeviceQuery {
    pub fn search(self) -> Result<DeviceSearch, ConsoleError> {
        Ok(DeviceSearch {
            text: ops::search_text(self.q)?,
            org_id: ops::search_text(self.org)?,
            status: ops::search_text(self.status)?,
        })
    }
}

async fn devices(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<DeviceQuery>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::search_devices(&c, &who, q.search()?).await?)
}

async fn device(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ok(ops::device(&c, &who(&c, &h).await?, &id).await?)
}

async fn device_change(c: &Console, h: &HeaderMap, id: &str, change: DeviceChange) -> ApiResult {
    ok(ops::change_device(c, &who(c, h).await?, id, change).await?)
}

async fn suspend_device(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    device_change(&c, &h, &id, DeviceChange::Suspend).await
}

async fn resume_device(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    device_change(&c, &h, &id, DeviceChange::Resume).await
}

async fn retire_device(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    device_change(&c, &h, &id, DeviceChange::Retire).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    pub id: Option<String>,
    pub org_id: String,
    pub model: String,
    pub hardware_serial: Option<String>,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub installer: String,
}

impl From<DeviceRequest> for NewDevice {
    fn from(r: DeviceRequest) -> NewDevice {
        NewDevice {
            id: r.id.filter(|s| !s.trim().is_empty()),
            org_id: r.org_id,
            model: r.model,
            hardware_serial: r.hardware_serial.filter(|s| !s.trim().is_empty()),
            location: r.location,
            coordinates: None,
            installer: r.installer,
        }
    }
}

async fn create_device(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<DeviceRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    created(ops::create_device(&c, &who, body(b)?.into()).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CertQuery {
    pub q: Option<String>,
    pub org: Option<String>,
    pub device: Option<String>,
    pub status: Option<String>,
}

impl CertQuery {
    pub fn search(self) -> Result<CertSearch, ConsoleError> {
        Ok(CertSearch {
            text: ops::search_text(self.q)?,
            org_id: ops::search_text(self.org)?,
            device_id: ops::search_text(self.device)?,
            status: ops::search_text(self.status)?,
        })
    }
}

async fn certificates(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<CertQuery>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::search_certificates(&c, &who, q.search()?).await?)
}

async fn certificate(
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

async fn unhold(State(c): State<Console>, h: HeaderMap, Path(serial): Path<String>) -> ApiResult {
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
        let reason: Reason = self.reason.parse().map_err(ConsoleError::Invalid)?;
        let target = match (&self.serial, &self.device_id, &self.org_id) {
            (Some(s), None, None) => Target::Serial(s.clone()),
            (None, Some(d), org) => Target::Device {
                device_id: d.clone(),
                org_id: org.clone(),
            },
            (None, None, Some(o)) => Target::Org(o.clone()),
            _ => {
                return Err(ConsoleError::Invalid(
                    "name exactly one of serial, device_id (with org_id if needed) or org_id"
                        .into(),
                ));
            }
        };
        Ok((target, reason))
    }
}

async fn revoke(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<RevokeRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let (target, reason) = body(b)?.target()?;
    ok(ops::revoke(&c, &who, target, reason).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgQuery {
    org: String,
}

async fn enrollment_tokens(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<OrgQuery>,
) -> ApiResult {
    ok(ops::enrollment_tokens(&c, &who(&c, &h).await?, &q.org).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub org_id: String,
    #[serde(default = "device_profile")]
    pub profile: String,
    pub device_id: Option<String>,
    #[serde(default = "any_subject")]
    pub subject_pattern: String,
    #[serde(default = "day")]
    pub ttl_secs: i64,
}

fn device_profile() -> String {
    "device".into()
}
fn any_subject() -> String {
    "*".into()
}
fn day() -> i64 {
    86_400
}

impl From<TokenRequest> for TokenSpec {
    fn from(r: TokenRequest) -> TokenSpec {
        TokenSpec {
            org_id: r.org_id,
            profile: r.profile,
            device_id: r.device_id.filter(|s| !s.trim().is_empty()),
            model: None,
            subject_pattern: r.subject_pattern,
            ttl_secs: r.ttl_secs,
            count: 1,
        }
    }
}

async fn create_enrollment_token(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<TokenRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    created(ops::create_enrollment_token(&c, &who, body(b)?.into()).await?)
}

async fn void_enrollment_token(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::void_enrollment_token(&c, &who(&c, &h).await?, &id).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// `jsonl` or `csv` for an export (all matching entries, oldest first).
    pub format: Option<String>,
}

impl AuditQuery {
    pub fn search(&self, limit: i64) -> AuditSearch {
        let f = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        AuditSearch {
            actor: f(&self.actor),
            action: f(&self.action),
            target: f(&self.target),
            since: f(&self.since),
            until: f(&self.until),
            limit,
        }
    }
}

async fn audit(State(c): State<Console>, h: HeaderMap, Query(q): Query<AuditQuery>) -> ApiResult {
    let who = who(&c, &h).await?;
    match q.format.as_deref() {
        None => ok(ops::search_audit(&c, &who, q.search(0)).await?),
        Some(format) => Ok(export(&c, &who, &q, format).await?),
    }
}

/// The matching entries as a download, oldest first: JSON lines or CSV.
pub async fn export(
    c: &Console,
    who: &Caller,
    q: &AuditQuery,
    format: &str,
) -> Result<Response, ConsoleError> {
    let mut entries = ops::search_audit(c, who, q.search(100_000)).await?;
    entries.reverse();
    let (content_type, name, text) = match format {
        "jsonl" => {
            let mut out = String::new();
            for e in &entries {
                out.push_str(
                    &serde_json::to_string(e).map_err(|e| ConsoleError::Internal(e.to_string()))?,
                );
                out.push('\n');
            }
            ("application/jsonl", "audit.jsonl", out)
        }
        "csv" => {
            let mut out = String::from(
                "seq,id,at,actor_kind,actor_id,action,target,outcome,source_ip,request_id,details,hash\n",
            );
            for e in &entries {
                let fields = [
                    e.seq.to_string(),
                    e.id.clone(),
                    e.at.clone(),
                    e.actor_kind.clone(),
                    e.actor_id.clone(),
                    e.action.clone(),
                    e.target.clone(),
                    e.outcome.clone(),
                    e.source_ip.clone().unwrap_or_default(),
                    e.request_id.clone().unwrap_or_default(),
                    e.details.clone(),
                    e.hash.clone(),
                ];
                let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&row.join(","));
                out.push('\n');
            }
            ("text/csv; charset=utf-8", "audit.csv", out)
        }
        other => {
            return Err(ConsoleError::Invalid(format!(
                "unknown export format {other:?}: use jsonl or csv"
            )));
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        text,
    )
        .into_response())
}

/// A CSV field (RFC 4180), with formula-leading characters neutralized for spreadsheets.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

async fn audit_entry(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ok(ops::audit_entry(&c, &who(&c, &h).await?, &id).await?)
}

async fn verify_audit(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::verify_audit(&c, &who(&c, &h).await?).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    pub q: Option<String>,
}

async fn list_users(
    State(c): State<Console>,
    h: HeaderMap,
    Query(q): Query<UserQuery>,
) -> ApiResult {
    ok(ops::search_users(&c, &who(&c, &h).await?, q.q).await?)
}

async fn user(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ok(ops::user(&c, &who(&c, &h).await?, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// The organization the account belongs to (staff of a stakeholder).
    #[serde(default)]
    org_id: Option<String>,
}

async fn create_user(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<UserRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    let org = req.org_id.clone().filter(|o| !o.trim().is_empty());
    who.require_in(
        Action::ManageUsers,
        org.as_deref(),
        &format!("organization {}", org.as_deref().unwrap_or("*")),
    )?;
    if let Some(org) = &org {
        kizuna_core::orgs::find(&c.idp.core.db, org).await?;
    }
    let user = users::create_account(
        &c.idp.core,
        who.actor.clone(),
        NewUser {
            username: req.username,
            email: req.email,
            name: req.name,
            password_hash: None,
            org_id: org,
        },
        req.password.as_deref(),
    )
    .await?;
    created(user)
}

async fn disable_user(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ops::set_user_status(&c, &who(&c, &h).await?, &id, false).await?;
    ok(store_user(&c, &id).await?)
}

async fn enable_user(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ops::set_user_status(&c, &who(&c, &h).await?, &id, true).await?;
    ok(store_user(&c, &id).await?)
}

async fn store_user(c: &Console, id: &str) -> Result<crate::store::UserRow, ConsoleError> {
    crate::store::user(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("account {id}")))
}

async fn end_sessions(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let ended = ops::end_sessions(&c, &who(&c, &h).await?, &id).await?;
    ok(json!({"sessions_ended": ended}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    password: String,
}

async fn set_password(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<PasswordRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    who.require_in(Action::ManageUsers, None, "accounts")?;
    let req = body(b)?;
    users::change_password(&c.idp.core, who.actor.clone(), &id, &req.password).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaResetRequest {
    /// For an account proven at IAL2 or above, the id of a fresh proofing record of this
    /// person at that level; for an IAL1 account, the helpdesk's own reference.
    reproofing_reference: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn mfa_reset(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<MfaResetRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    ok(ops::reset_factors(
        &c,
        &who,
        &id,
        &req.reproofing_reference,
        req.reason.as_deref(),
    )
    .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    pub role: String,
    /// An organization id, or `*` for the whole city.
    pub scope: String,
    #[serde(default = "yes")]
    pub granted: bool,
}

fn yes() -> bool {
    true
}

async fn change_role(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<RoleRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    let role: Role = req.role.parse().map_err(ConsoleError::Invalid)?;
    ops::change_role(&c, &who, &id, role, &req.scope, req.granted).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    user_ids: Vec<String>,
}

async fn bulk_disable(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<BulkRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    ok(json!({"disabled": ops::bulk_disable(&c, &who, &req.user_ids).await?}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    pub days: Option<i64>,
}

async fn review(State(c): State<Console>, h: HeaderMap, Query(q): Query<ReviewQuery>) -> ApiResult {
    ok(ops::review(&c, &who(&c, &h).await?, q.days.unwrap_or(90)).await?)
}

async fn list_clients(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::list_clients(&c, &who(&c, &h).await?).await?)
}

async fn show_client(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ok(ops::client(&c, &who(&c, &h).await?, &id).await?)
}

/// Client registration metadata, in RFC 7591 names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    pub client_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    #[serde(default)]
    pub require_consent: Option<bool>,
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// The lowest authentication assurance level (1-3) sign-ins for this client must reach.
    #[serde(default)]
    pub min_aal: u8,
}

impl ClientRequest {
    pub fn into_new(self) -> Result<NewClient, ConsoleError> {
        let grant_types = self
            .grant_types
            .iter()
            .map(|g| g.parse::<GrantType>())
            .collect::<Result<Vec<_>, _>>()?;
        let auth_method = self
            .token_endpoint_auth_method
            .as_deref()
            .map(str::parse::<AuthMethod>)
            .transpose()?;
        Ok(NewClient {
            name: self.client_name,
            description: self.description,
            org_id: self.org_id.filter(|o| !o.trim().is_empty()),
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            public: auth_method == Some(AuthMethod::None),
            grant_types,
            auth_method,
            scopes: self
                .scope
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            id_token_alg: self.id_token_signed_response_alg,
            require_par: self.require_pushed_authorization_requests,
            require_consent: self.require_consent,
            backchannel_logout_uri: self.backchannel_logout_uri,
            min_aal: self.min_aal,
        })
    }
}

async fn create_client(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<ClientRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let new = body(b)?.into_new()?;
    created(ops::create_client(&c, &who, new).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientPatch {
    redirect_uris: Vec<String>,
    #[serde(default)]
    min_aal: u8,
    /// The `version` the edit was made on.
    version: i64,
}

async fn edit_client(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ClientPatch>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let p = body(b)?;
    let edit = ClientEdit {
        redirect_uris: p.redirect_uris,
        min_aal: p.min_aal,
        expected_version: p.version,
    };
    ok(ops::edit_client(&c, &who, &id, edit).await?)
}

async fn delete_client(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    who.require_in(Action::ApproveClients, None, &format!("client {id}"))?;
    kizuna_idp::clients::delete(&c.idp.core, who.actor.clone(), &id).await?;
    c.idp.clients.forget(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /admin/api/v1/users/{id}/proofing`: the person's IAL and current proofing record.
async fn show_proofing(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::proofing(&c, &who(&c, &h).await?, &id).await?)
}

/// `POST /admin/api/v1/users/{id}/proofing`: a registrar's in-person check.
async fn record_proofing(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<kizuna_idp::assurance::counter::CounterCheck>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let record = ops::record_proofing(&c, &who, &id, body(b)?).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `GET /admin/api/v1/clients/{id}/assurance`: a client's identity assurance settings.
async fn show_client_assurance(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::client_assurance(&c, &who(&c, &h).await?, &id).await?)
}

/// `PUT /admin/api/v1/clients/{id}/assurance`: a client's identity assurance settings.
async fn set_client_assurance(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<kizuna_idp::assurance::ClientAssurance>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    ok(ops::set_client_assurance(&c, &who, &id, body(b)?).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    /// Requests per minute; `null` removes the limit.
    requests_per_minute: Option<i64>,
}

/// `PUT /admin/api/v1/clients/{id}/quota`: a client's request quota (city administrators).
async fn set_quota(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<QuotaBody>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let quota = body(b)?;
    ok(ops::set_client_quota(&c, &who, &id, quota.requests_per_minute).await?)
}

/// `GET /admin/api/v1/clients/{id}/quota`: a client's request quota.
async fn show_quota(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ok(ops::client_quota(&c, &who(&c, &h).await?, &id).await?)
}

async fn rotate_secret(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let secret = ops::rotate_client_secret(&c, &who(&c, &h).await?, &id).await?;
    ok(json!({"client_id": id, "client_secret": secret}))
}

async fn client_change(c: &Console, h: &HeaderMap, id: &str, change: ClientChange) -> ApiResult {
    ok(ops::change_client(c, &who(c, h).await?, id, change).await?)
}

async fn approve_client(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    client_change(&c, &h, &id, ClientChange::Approve).await
}

async fn disable_client(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    client_change(&c, &h, &id, ClientChange::Disable).await
}

async fn enable_client(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    client_change(&c, &h, &id, ClientChange::Enable).await
}

async fn list_upstreams(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::list_upstreams(&c, &who(&c, &h).await?).await?)
}

async fn show_upstream(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    ok(ops::upstream(&c, &who(&c, &h).await?, &id).await?)
}

fn one() -> u8 {
    1
}

/// A trust ceiling from the API, checked (levels 1 to 3).
fn ceiling(c: TrustCeiling) -> Result<TrustCeiling, ConsoleError> {
    TrustCeiling::new(c.max_ial, c.max_aal).map_err(ConsoleError::Invalid)
}

/// A claim mapping from the API (`{attribute: claim}`), checked as the CLI checks it.
fn claim_map(map: &ClaimMap) -> Result<ClaimMap, ConsoleError> {
    Ok(claim_map_from(&claim_entries(map), ClaimMap::new())?)
}

/// An acr mapping from the API (`{value: {aal, ial}}`), checked as the CLI checks it.
fn acr_map(map: &AcrMap) -> Result<AcrMap, ConsoleError> {
    Ok(acr_map_from(&acr_entries(map))?)
}

/// An upstream OpenID provider to add; the names are those `GET` answers with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRequest {
    pub alias: String,
    pub name: String,
    /// The organization that runs the provider (id or name).
    pub org_id: String,
    pub issuer: String,
    pub client_id: String,
    /// `client_secret_basic` (the default; needs `client_secret`) or `private_key_jwt`
    /// (Kizuna generates the key; its public JWK Set is in the answer).
    #[serde(default)]
    pub client_auth: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The private_key_jwt key type: `p256` (default) or `rsa2048`.
    #[serde(default)]
    pub key_algorithm: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// Which upstream claim fills each account attribute; the standard claims by default.
    #[serde(default)]
    pub claim_map: Option<ClaimMap>,
    #[serde(default)]
    pub acr_map: AcrMap,
    #[serde(default)]
    pub ceiling: Option<TrustCeiling>,
    #[serde(default = "yes")]
    pub jit: bool,
    #[serde(default)]
    pub email_domains: Vec<String>,
    #[serde(default = "yes")]
    pub propagate_logout: bool,
}

impl UpstreamRequest {
    pub fn into_new(self) -> Result<NewUpstream, ConsoleError> {
        let client_auth =
            ClientAuth::parse(self.client_auth.as_deref().unwrap_or("client_secret_basic"))?;
        let key_algorithm = self
            .key_algorithm
            .as_deref()
            .unwrap_or("p256")
            .parse()
            .map_err(|e: kizuna_core::custody::CustodyError| {
                ConsoleError::Invalid(e.to_string())
            })?;
        Ok(NewUpstream {
            alias: self.alias,
            name: self.name,
            org_id: self.org_id,
            issuer: self.issuer,
            client_id: self.client_id,
            client_auth,
            client_secret: self.client_secret.filter(|s| !s.is_empty()),
            key_algorithm,
            scopes: upstream_settings::with_openid(self.scopes),
            acr_values: self.acr_values,
            claim_map: match self.claim_map {
                Some(map) => Some(claim_map_from(&claim_entries(&map), default_map())?),
                None => None,
            },
            acr_map: acr_map(&self.acr_map)?,
            ceiling: ceiling(self.ceiling.unwrap_or(TrustCeiling {
                max_ial: one(),
                max_aal: one(),
            }))?,
            jit: self.jit,
            email_domains: self
                .email_domains
                .iter()
                .map(|d| d.trim().to_lowercase())
                .collect(),
            propagate_logout: self.propagate_logout,
        })
    }
}

async fn create_upstream(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<UpstreamRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let new = body(b)?.into_new()?;
    created(ops::create_upstream(&c, &who, new).await?)
}

/// An edit of an upstream: what is given replaces what is there; `version` is the one the
/// edit was made on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamPatch {
    pub version: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub acr_values: Option<Vec<String>>,
    #[serde(default)]
    pub claim_map: Option<ClaimMap>,
    #[serde(default)]
    pub acr_map: Option<AcrMap>,
    #[serde(default)]
    pub ceiling: Option<TrustCeiling>,
    #[serde(default)]
    pub jit: Option<bool>,
    #[serde(default)]
    pub email_domains: Option<Vec<String>>,
    #[serde(default)]
    pub propagate_logout: Option<bool>,
}

impl UpstreamPatch {
    pub fn into_edit(self) -> Result<UpstreamEdit, ConsoleError> {
        Ok(UpstreamEdit {
            expected_version: self.version,
            name: self.name,
            client_secret: self.client_secret,
            scopes: self.scopes.map(upstream_settings::with_openid),
            acr_values: self.acr_values,
            claim_map: self.claim_map.as_ref().map(claim_map).transpose()?,
            acr_map: self.acr_map.as_ref().map(acr_map).transpose()?,
            ceiling: self.ceiling.map(ceiling).transpose()?,
            jit: self.jit,
            email_domains: self
                .email_domains
                .map(|d| d.iter().map(|d| d.trim().to_lowercase()).collect()),
            propagate_logout: self.propagate_logout,
        })
    }
}

async fn edit_upstream(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<UpstreamPatch>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let edit = body(b)?.into_edit()?;
    ok(ops::edit_upstream(&c, &who, &id, edit).await?)
}

async fn upstream_change(
    c: &Console,
    h: &HeaderMap,
    id: &str,
    change: UpstreamChange,
) -> ApiResult {
    ok(ops::change_upstream(c, &who(c, h).await?, id, change).await?)
}

async fn approve_upstream(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    upstream_change(&c, &h, &id, UpstreamChange::Approve).await
}

async fn disable_upstream(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    upstream_change(&c, &h, &id, UpstreamChange::Disable).await
}

async fn enable_upstream(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    upstream_change(&c, &h, &id, UpstreamChange::Enable).await
}

async fn list_orgs(State(c): State<Console>, h: HeaderMap) -> ApiResult {
    ok(ops::list_orgs(&c, &who(&c, &h).await?).await?)
}

async fn org(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ok(ops::org(&c, &who(&c, &h).await?, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgRequest {
    pub name: String,
    #[serde(default)]
    pub name_ja: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// For an edit: the `version` it was made on.
    #[serde(default)]
    pub version: Option<i64>,
}

impl OrgRequest {
    pub fn organization(&self) -> Result<NewOrganization, ConsoleError> {
        let kind: OrgKind = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => k
                .parse()
                .map_err(|e: kizuna_core::orgs::OrgError| ConsoleError::from(e))?,
            None => OrgKind::Other,
        };
        Ok(NewOrganization {
            name: self.name.clone(),
            name_ja: self.name_ja.clone().filter(|n| !n.trim().is_empty()),
            kind,
        })
    }
}

async fn create_org(
    State(c): State<Console>,
    h: HeaderMap,
    b: Result<Json<OrgRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let new = body(b)?.organization()?;
    created(ops::create_org(&c, &who, new).await?)
}

async fn update_org(
    State(c): State<Console>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<OrgRequest>, JsonRejection>,
) -> ApiResult {
    let who = who(&c, &h).await?;
    let req = body(b)?;
    let version = req
        .version
        .ok_or_else(|| ConsoleError::Invalid("version is required for an edit".into()))?;
    ok(ops::update_org(&c, &who, &id, version, req.organization()?).await?)
}

async fn disable_org(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ok(ops::set_org_status(&c, &who(&c, &h).await?, &id, false).await?)
}

async fn enable_org(State(c): State<Console>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    ok(ops::set_org_status(&c, &who(&c, &h).await?, &id, true).await?)
}
