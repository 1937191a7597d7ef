//! The `webhook` proofing provider: an eKYC vendor. Kizuna posts a transaction to the vendor
//! and sends the person to the URL it answers; the vendor later posts the result back as a
//! compact JWS (RFC 7515) signed with its configured key. The result is verified, checked
//! for freshness and replay, mapped to a proofing record and capped at the vendor's ceiling.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::jose::Jws;
use kizuna_core::web::Lang;

use super::config::WebhookConfig;
use super::{AssuranceError, Evidence, EvidenceType, Ial, Proofing, ProofingProvider, Verifier};
use crate::Idp;
use crate::store::assurance as store;

/// The signature algorithms a vendor may sign results with.
const RESULT_ALGS: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// One configured vendor.
pub struct Webhook {
    config: WebhookConfig,
    jwk: serde_json::Value,
    ceiling: Ial,
    http: reqwest::Client,
}

impl ProofingProvider for Webhook {
    fn id(&self) -> String {
        format!("webhook:{}", self.config.name)
    }
    fn label(&self, lang: Lang) -> String {
        let label = lang.pick(&self.config.label_ja, &self.config.label_en);
        if label.is_empty() {
            lang.pick("オンライン本人確認（eKYC）", "Online identity check (eKYC)")
                .to_string()
        } else {
            label.to_string()
        }
    }
    fn ceiling(&self) -> Ial {
        self.ceiling
    }
    fn start_path(&self) -> Option<String> {
        Some(format!("/assurance/webhook/{}/start", self.config.name))
    }
}

/// The result a vendor signs.
#[derive(Debug, Deserialize)]
struct VendorResult {
    /// The transaction Kizuna opened.
    txn: String,
    /// A unique id of this result (replay check).
    jti: String,
    iat: i64,
    /// The level the vendor says its check reached.
    level: i64,
    evidence: VendorEvidence,
    #[serde(default)]
    claims: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct VendorEvidence {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    document_type: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    time: Option<i64>,
}

impl Webhook {
    pub fn new(config: &WebhookConfig) -> Result<Webhook, String> {
        let jwk: serde_json::Value = serde_json::from_str(&config.jwk)
            .map_err(|e| format!("assurance.webhook {}: jwk: {e}", config.name))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kizuna/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Webhook {
            ceiling: Ial::from_level(config.ceiling as i64).unwrap_or(Ial::Two),
            config: config.clone(),
            jwk,
            http,
        })
    }

    /// Opens the vendor transaction; returns the URL to send the person to.
    pub async fn open(
        &self,
        idp: &Idp,
        txn: &str,
        return_url: &str,
    ) -> Result<String, AssuranceError> {
        let callback = idp.endpoint(&format!("/assurance/webhook/{}/callback", self.config.name));
        let answer = self
            .http
            .post(&self.config.start_url)
            .json(&json!({
                "transaction_id": txn,
                "callback_url": callback,
                "return_url": return_url,
            }))
            .send()
            .await
            .map_err(|e| {
                AssuranceError::Unavailable(if e.is_timeout() {
                    "the identity verification service did not answer in time".into()
                } else {
                    "the identity verification service cannot be reached".into()
                })
            })?;
        if !answer.status().is_success() {
            return Err(AssuranceError::Unavailable(format!(
                "the identity verification service answered {}",
                answer.status()
            )));
        }
        let body: serde_json::Value = answer.json().await.map_err(|_| {
            AssuranceError::Unavailable(
                "the identity verification service answered nonsense".into(),
            )
        })?;
        body["redirect_url"]
            .as_str()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(str::to_string)
            .ok_or_else(|| {
                AssuranceError::Unavailable(
                    "the identity verification service gave no redirect_url".into(),
                )
            })
    }

    /// Verifies a result and turns it into a proofing of the attempt's person.
    async fn accept(&self, idp: &Idp, body: &str) -> Result<(super::Attempt, Proofing), Refusal> {
        let jws = Jws::parse(body.trim())
            .map_err(|_| Refusal::bad("malformed", "the result is not a compact JWS"))?;
        jws.verify(&self.jwk, &RESULT_ALGS).map_err(|_| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "the result's signature does not verify with the vendor key",
            )
        })?;
        let result: VendorResult = jws
            .claims()
            .map_err(|_| Refusal::bad("malformed", "the result's claims are not as documented"))?;
        let now = kizuna_core::time::now_unix();
        if (now - result.iat).abs() > self.config.max_result_age_secs {
            return Err(Refusal::bad("stale", "the result is too old (iat)"));
        }
        if result.jti.is_empty() || result.jti.len() > 128 {
            return Err(Refusal::bad("malformed", "jti is missing"));
        }
        let fresh = store::record_result_id(
            &idp.core.db,
            &self.id(),
            &result.jti,
            now + 2 * self.config.max_result_age_secs,
        )
        .await
        .map_err(Refusal::storage)?;
        if !fresh {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "replayed",
                "this result was already delivered",
            ));
        }
        let attempt = super::take_attempt(idp, &result.txn, &self.id())
            .await
            .map_err(Refusal::storage)?
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::CONFLICT,
                    "unknown_transaction",
                    "the transaction is unknown, expired or already finished",
                )
            })?;
        let kind = EvidenceType::parse(&result.evidence.kind).ok_or_else(|| {
            Refusal::bad("malformed", "evidence.type is not an IDA evidence type")
        })?;
        let claimed = Ial::from_level(result.level)
            .ok_or_else(|| Refusal::bad("malformed", "level must be 1, 2 or 3"))?;
        let attributes = super::clean_attributes(&result.claims)
            .map_err(|e| Refusal::bad("malformed", &e.to_string()))?;
        let proofing = Proofing {
            provider: self.id(),
            claimed,
            ceiling: self.ceiling,
            evidence: Evidence {
                kind,
                method: result.evidence.method,
                issuer: result.evidence.issuer,
                document: result.evidence.document_type,
                number: result.evidence.number,
                time: result.evidence.time.unwrap_or(result.iat),
            },
            attributes,
            expires_at: now + self.config.valid_days * 86_400,
            verifier: Verifier::System(self.id()),
            binding: None,
        };
        Ok((attempt, proofing))
    }
}

/// A refused result: the status, error code and message the vendor gets.
struct Refusal(StatusCode, &'static str, String);

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: &str) -> Refusal {
        Refusal(status, code, message.to_string())
    }
    fn bad(code: &'static str, message: &str) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn storage(e: sqlx::Error) -> Refusal {
        tracing::error!(error = %e, "eKYC result storage");
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "storage failure",
        )
    }
    fn response(&self) -> Response {
        super::json_error(self.0, self.1, self.2.clone())
    }
}

/// The configured vendor named `name`.
pub fn find<'a>(idp: &'a Idp, name: &str) -> Option<&'a Webhook> {
    idp.assurance
        .webhooks
        .iter()
        .find(|w| w.config.name == name)
        .map(|w| w.as_ref())
}

/// `POST /assurance/webhook/{name}/callback`: the vendor's signed result.
pub async fn callback(
    State(idp): State<Idp>,
    Path(name): Path<String>,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(webhook) = find(&idp, &name) else {
        return Refusal::new(StatusCode::NOT_FOUND, "not_found", "no such provider").response();
    };
    let text = String::from_utf8_lossy(&body);
    let (attempt, proofing) = match webhook.accept(&idp, &text).await {
        Ok(ok) => ok,
        Err(refusal) => {
            let event = AuditEvent::new(
                Actor::system(webhook.id()),
                "assurance.proofing",
                format!("provider:{}", webhook.id()),
            )
            .outcome(Outcome::Denied)
            .details(json!({"provider": webhook.id(), "reason": refusal.1, "message": refusal.2}));
            if let Err(e) = idp.core.audit.record(event).await {
                tracing::error!(error = %e, "auditing a refused eKYC result");
            }
            return refusal.response();
        }
    };
    match super::record(&idp, &attempt.user_id, proofing).await {
        Ok(record) => Json(json!({"status": "recorded", "level": record.level})).into_response(),
        Err(e) if e.is_internal() => {
            tracing::error!(error = %e, "recording an eKYC result");
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "storage failure",
            )
            .response()
        }
        Err(e) => Refusal::new(StatusCode::CONFLICT, "refused", &e.to_string()).response(),
    }
}
