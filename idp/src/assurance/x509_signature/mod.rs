//! The `x509-signature` proofing provider: the person's card-reader app signs a
//! server-issued challenge with the JPKI signature certificate (署名用電子証明書). Kizuna
//! checks the signature, the path to a configured trust anchor (RFC 5280 §6, names and
//! signatures, CA flags, validity), revocation by the CRL at the certificate's distribution
//! point (§4.2.1.13, fetched and cached; unreachable means refused), and reads the four
//! basic attributes from the certificate's subjectAltName otherNames.

mod certificate;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode, DecodePem};
use x509_cert::ext::pkix::KeyUsage;

use kizuna_core::web::Lang;

use super::config::X509Config;
use super::{
    AssuranceError, Attributes, Evidence, EvidenceType, Ial, Proofing, ProofingProvider, Verifier,
    json_error,
};
use crate::Idp;
use crate::sessions;
use certificate::{
    challenge_algorithm, crl_signed_by, crl_urls, current, decode_b64, in_validity, is_ca,
    issued_by, parse_certificate, unix, verify_with,
};

pub use certificate::attributes;

/// The provider id.
pub const ID: &str = "x509-signature";

/// The identity a signature certificate binds to one account: its issuer and serial number
/// (lower-case hex of the DER INTEGER). Stored only as a keyed hash.
pub fn binding_identity(issuer: &str, serial: &str) -> String {
    format!("jpki-signature:{issuer}:{serial}")
}

const MAX_CHAIN: usize = 4;
const MAX_CRL_BYTES: usize = 16 * 1024 * 1024;

/// A trust anchor and the CRLs fetched for certificates under it.
pub struct X509Signature {
    anchors: Vec<Certificate>,
    ceiling: Ial,
    valid_days: i64,
    crl_cache_secs: i64,
    http: reqwest::Client,
    crls: Mutex<HashMap<String, CachedCrl>>,
}

#[derive(Clone)]
struct CachedCrl {
    crl: CertificateList,
    fetched_at: i64,
}

impl ProofingProvider for X509Signature {
    fn id(&self) -> String {
        ID.into()
    }
    fn label(&self, lang: Lang) -> String {
        lang.pick(
            "マイナンバーカードの署名用電子証明書（カードリーダーアプリ）",
            "My Number card signature certificate (card reader app)",
        )
        .into()
    }
    fn ceiling(&self) -> Ial {
        self.ceiling
    }
    fn start_path(&self) -> Option<String> {
        Some("/assurance/x509/start".into())
    }
}

/// Why a certificate or signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum X509Error {
    #[error("the certificate could not be read: {0}")]
    Malformed(String),
    #[error("the signature does not verify over the challenge with the certificate's key")]
    BadSignature,
    #[error("the certificate has expired (or is not yet valid)")]
    Expired,
    #[error("the certificate does not chain to a trusted certification authority")]
    Untrusted,
    #[error("the certificate has been revoked")]
    Revoked,
    #[error(
        "the revocation list could not be checked ({0}); the certificate is not accepted until it can be"
    )]
    CrlUnavailable(String),
    #[error("the certificate is not a signature certificate (key usage)")]
    WrongUsage,
    #[error(
        "the certificate does not carry the expected attributes (name, birthdate, gender and address): {0}"
    )]
    MissingAttributes(String),
}

impl X509Error {
    fn status(&self) -> StatusCode {
        match self {
            X509Error::CrlUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// What a checked certificate gave.
#[derive(Debug)]
pub struct Checked {
    pub attributes: Attributes,
    pub issuer: String,
    pub serial: String,
    pub not_after: i64,
}

impl X509Signature {
    /// The provider when trust anchors are configured.
    pub fn new(config: &X509Config) -> Result<Option<X509Signature>, String> {
        if config.trust_anchors.is_empty() {
            return Ok(None);
        }
        let mut anchors = Vec::new();
        for path in &config.trust_anchors {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read trust anchor {}: {e}", path.display()))?;
            let certs = Certificate::load_pem_chain(&pem).map_err(|e| {
                format!(
                    "trust anchor {} is not PEM certificates: {e}",
                    path.display()
                )
            })?;
            anchors.extend(certs);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.crl_timeout_secs))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("kizuna/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Some(X509Signature {
            anchors,
            ceiling: Ial::from_level(config.ceiling as i64).unwrap_or(Ial::Three),
            valid_days: config.valid_days,
            crl_cache_secs: config.crl_cache_secs,
            http,
            crls: Mutex::new(HashMap::new()),
        }))
    }

    /// Checks a signature over `challenge` by `certificate` (with `chain`, the intermediates
    /// the app sent): signature, path to an anchor, revocation, attributes.
    pub async fn check(
        &self,
        challenge: &str,
        signature_b64: &str,
        certificate: &str,
        chain: &[String],
    ) -> Result<Checked, X509Error> {
        let leaf = parse_certificate(certificate)?;
        let intermediates = chain
            .iter()
            .take(MAX_CHAIN)
            .map(|c| parse_certificate(c))
            .collect::<Result<Vec<_>, _>>()?;
        let sig = decode_b64(signature_b64)
            .ok_or_else(|| X509Error::Malformed("the signature is not base64".into()))?;
        if !verify_with(
            leaf.tbs_certificate().subject_public_key_info(),
            challenge_algorithm(&leaf),
            challenge.as_bytes(),
            &sig,
        ) {
            return Err(X509Error::BadSignature);
        }
        if let Ok(Some((_, usage))) = leaf.tbs_certificate().get_extension::<KeyUsage>()
            && !(usage.digital_signature() || usage.non_repudiation())
        {
            return Err(X509Error::WrongUsage);
        }
        let now = kizuna_core::time::now_unix();
        if !in_validity(&leaf, now) {
            return Err(X509Error::Expired);
        }
        let path = self.path(&leaf, &intermediates, now)?;
        for pair in path.windows(2) {
            self.check_revocation(pair[0], pair[1], now).await?;
        }
        let attributes = attributes(&leaf)?;
        Ok(Checked {
            attributes,
            issuer: leaf.tbs_certificate().issuer().to_string(),
            serial: kizuna_core::secret::hex(leaf.tbs_certificate().serial_number().as_bytes()),
            not_after: unix(&leaf.tbs_certificate().validity().not_after),
        })
    }

    /// The path from the leaf to an anchor, leaf first, anchor last.
    fn path<'a>(
        &'a self,
        leaf: &'a Certificate,
        intermediates: &'a [Certificate],
        now: i64,
    ) -> Result<Vec<&'a Certificate>, X509Error> {
        let mut path = vec![leaf];
        for _ in 0..=MAX_CHAIN {
            let last = *path.last().unwrap_or(&leaf);
            if let Some(anchor) = self.anchors.iter().find(|a| issued_by(last, a)) {
                path.push(anchor);
                return Ok(path);
            }
            match intermediates
                .iter()
                .find(|c| issued_by(last, c) && !path.contains(c))
            {
                Some(next) if is_ca(next) && in_validity(next, now) => path.push(next),
                Some(next) if is_ca(next) => return Err(X509Error::Expired),
                _ => return Err(X509Error::Untrusted),
            }
        }
        Err(X509Error::Untrusted)
    }

    /// Checks `cert` against its issuer's CRL from the distribution point; fails closed.
    async fn check_revocation(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        now: i64,
    ) -> Result<(), X509Error> {
        let urls = crl_urls(cert);
        if urls.is_empty() {
            return Err(X509Error::CrlUnavailable(
                "the certificate names no CRL distribution point".into(),
            ));
        }
        let mut last_error = String::new();
        for url in &urls {
            match self.crl(url, issuer, now).await {
                Ok(crl) => {
                    let serial = cert.tbs_certificate().serial_number();
                    let revoked = crl
                        .tbs_cert_list
                        .revoked_certificates
                        .iter()
                        .flatten()
                        .any(|r| r.serial_number.as_bytes() == serial.as_bytes());
                    return if revoked {
                        Err(X509Error::Revoked)
                    } else {
                        Ok(())
                    };
                }
                Err(e) => last_error = e,
            }
        }
        Err(X509Error::CrlUnavailable(last_error))
    }

    /// A current CRL from `url` signed by `issuer`: cached until its nextUpdate or the cache
    /// limit, else fetched.
    async fn crl(
        &self,
        url: &str,
        issuer: &Certificate,
        now: i64,
    ) -> Result<CertificateList, String> {
        let cached = self
            .crls
            .lock()
            .ok()
            .and_then(|c| c.get(url).cloned())
            .filter(|c| now - c.fetched_at < self.crl_cache_secs && current(&c.crl, now));
        if let Some(c) = cached
            && crl_signed_by(&c.crl, issuer)
        {
            return Ok(c.crl);
        }
        let fetched = self.http.get(url).send().await.map_err(|e| {
            format!(
                "the CRL at {url} could not be fetched: {}",
                if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    e.without_url().to_string()
                }
            )
        })?;
        if !fetched.status().is_success() {
            return Err(format!("the CRL at {url} answered {}", fetched.status()));
        }
        let body = fetched
            .bytes()
            .await
            .map_err(|e| format!("the CRL at {url} could not be read: {}", e.without_url()))?;
        if body.len() > MAX_CRL_BYTES {
            return Err(format!("the CRL at {url} is too large"));
        }
        let crl = CertificateList::from_der(&body)
            .or_else(|_| CertificateList::from_pem(&body))
            .map_err(|e| format!("the CRL at {url} is malformed: {e}"))?;
        if !crl_signed_by(&crl, issuer) {
            return Err(format!(
                "the CRL at {url} is not signed by the certificate's issuer"
            ));
        }
        if !current(&crl, now) {
            return Err(format!(
                "the CRL at {url} is out of date (past its nextUpdate)"
            ));
        }
        if let Ok(mut cache) = self.crls.lock() {
            cache.insert(
                url.to_string(),
                CachedCrl {
                    crl: crl.clone(),
                    fetched_at: now,
                },
            );
        }
        Ok(crl)
    }
}

fn provider(idp: &Idp) -> Result<&X509Signature, Response> {
    idp.assurance.x509.as_deref().ok_or_else(|| {
        json_error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "signature-certificate proofing is not configured",
        )
    })
}

#[derive(Deserialize)]
pub struct ChallengeRequest {
    /// The pending authorization request to return to.
    #[serde(default)]
    req: Option<String>,
}

/// Opens a challenge for the signed-in person: a random value, single use, short-lived.
pub async fn new_challenge(
    idp: &Idp,
    user_id: &str,
    req: Option<&str>,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    let challenge = kizuna_core::secret::random_token();
    let opened = super::open_attempt(idp, user_id, ID, Some(&challenge), req).await?;
    Ok(opened.map(|(id, expires_at)| {
        json!({
            "challenge_id": id,
            "challenge": challenge,
            "expires_at": expires_at,
            "verify_url": idp.endpoint("/assurance/x509/verify"),
        })
    }))
}

/// `POST /assurance/x509/challenge` (JSON; the session cookie names the person): a challenge
/// for the card-reader app. A JSON body cannot be posted cross-site without CORS, which is
/// the CSRF defence here.
pub async fn challenge(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: Result<Json<ChallengeRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(r) = provider(&idp) {
        return r;
    }
    let Ok(Json(body)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send a JSON object",
        );
    };
    let session = match sessions::current(&idp, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return json_error(StatusCode::UNAUTHORIZED, "login_required", "sign in first");
        }
        Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "storage"),
    };
    match new_challenge(&idp, &session.user_id, body.req.as_deref()).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many open challenges; use one or wait until they expire",
        ),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "storage"),
    }
}

#[derive(Deserialize)]
pub struct VerifyRequest {
    challenge_id: String,
    signature: String,
    certificate: String,
    #[serde(default)]
    chain: Vec<String>,
}

/// `POST /assurance/x509/verify` (JSON, from the card-reader app): the signed challenge. The
/// challenge is spent whatever the outcome; success records IAL3 (capped by the ceiling).
pub async fn verify(
    State(idp): State<Idp>,
    body: Result<Json<VerifyRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let x509 = match provider(&idp) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(Json(body)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send challenge_id, signature and certificate as JSON",
        );
    };
    if body.certificate.len() > 16_384
        || body.signature.len() > 2048
        || body.chain.len() > MAX_CHAIN
    {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request", "too large");
    }
    let attempt = match super::take_attempt(&idp, &body.challenge_id, ID).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_challenge",
                AssuranceError::AttemptGone.to_string(),
            );
        }
        Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "storage"),
    };
    let challenge = attempt.challenge.clone().unwrap_or_default();
    let checked = match x509
        .check(&challenge, &body.signature, &body.certificate, &body.chain)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            super::audit_refusal(&idp, &attempt.user_id, ID, &e.to_string()).await;
            let code = match e {
                X509Error::CrlUnavailable(_) => "revocation_unavailable",
                X509Error::Revoked => "certificate_revoked",
                X509Error::Expired => "certificate_expired",
                X509Error::Untrusted => "untrusted_certificate",
                X509Error::BadSignature => "bad_signature",
                X509Error::MissingAttributes(_) => "missing_attributes",
                _ => "invalid_certificate",
            };
            return json_error(e.status(), code, e.to_string());
        }
    };
    let now = kizuna_core::time::now_unix();
    let proofing = Proofing {
        provider: ID.into(),
        claimed: Ial::Three,
        ceiling: x509.ceiling,
        evidence: Evidence {
            kind: EvidenceType::ElectronicSignature,
            method: Some("jp_jpki".into()),
            issuer: Some(checked.issuer.clone()),
            document: None,
            number: Some(checked.serial.clone()),
            time: now,
        },
        attributes: checked.attributes,
        expires_at: (now + x509.valid_days * 86_400).min(checked.not_after),
        verifier: Verifier::System(ID.into()),
        binding: Some(binding_identity(&checked.issuer, &checked.serial)),
    };
    finish(&idp, &attempt, proofing).await
}

/// Records a proofing from an attempt and answers the app: the level reached and where the
/// browser continues.
async fn finish(idp: &Idp, attempt: &super::Attempt, proofing: Proofing) -> Response {
    match super::record(idp, &attempt.user_id, proofing).await {
        Ok(record) => Json(json!({
            "level": record.level,
            "attributes": record.attributes.keys().collect::<Vec<_>>(),
            "continue_url": idp.endpoint(&super::pages::continue_path(attempt.req.as_deref())),
        }))
        .into_response(),
        Err(AssuranceError::AlreadyBound) => json_error(
            StatusCode::CONFLICT,
            "already_bound",
            AssuranceError::AlreadyBound.to_string(),
        ),
        Err(e) if e.is_internal() => {
            tracing::error!(error = %e, "recording a proofing");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "storage")
        }
        Err(e) => json_error(StatusCode::UNPROCESSABLE_ENTITY, "refused", e.to_string()),
    }
}
