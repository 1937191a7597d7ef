//! The `x509-signature` proofing provider: the person's card-reader app signs a
//! server-issued challenge with the JPKI signature certificate (署名用電子証明書). Kizuna
//! checks the signature, the path to a configured trust anchor (RFC 5280 §6, names and
//! signatures, CA flags, validity), revocation by the CRL at the certificate's distribution
//! point (§4.2.1.13, fetched and cached; unreachable means refused), and reads the four
//! basic attributes from the certificate's subjectAltName otherNames.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::json;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{BasicConstraints, CrlDistributionPoints, KeyUsage, SubjectAltName};

use kizuna_core::web::Lang;

use super::config::X509Config;
use super::{
    AssuranceError, Attributes, Evidence, EvidenceType, Ial, Proofing, ProofingProvider, Verifier,
    json_error,
};
use crate::Idp;
use crate::sessions;

/// The provider id.
pub const ID: &str = "x509-signature";

/// The identity a signature certificate binds to one account: its issuer and serial number
/// (lower-case hex of the DER INTEGER). Stored only as a keyed hash.
pub fn binding_identity(issuer: &str, serial: &str) -> String {
    format!("jpki-signature:{issuer}:{serial}")
}

/// The JPKI personal-data arc (1.2.392.200149.8.5.5): subjectAltName otherNames of the
/// signature certificate carrying the four basic attributes.
const JPKI_NAME: &str = "1.2.392.200149.8.5.5.1";
const JPKI_GENDER: &str = "1.2.392.200149.8.5.5.3";
const JPKI_BIRTHDATE: &str = "1.2.392.200149.8.5.5.4";
const JPKI_ADDRESS: &str = "1.2.392.200149.8.5.5.5";

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

/// The DER bytes of a PEM or base64 (standard or URL-safe) certificate.
fn certificate_der(text: &str) -> Result<Vec<u8>, X509Error> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return Certificate::from_pem(text.as_bytes())
            .and_then(|c| c.to_der())
            .map_err(|e| X509Error::Malformed(e.to_string()));
    }
    decode_b64(text).ok_or_else(|| X509Error::Malformed("not base64".into()))
}

fn decode_b64(text: &str) -> Option<Vec<u8>> {
    [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD]
        .iter()
        .find_map(|e| e.decode(text.trim()).ok())
}

fn parse_certificate(text: &str) -> Result<Certificate, X509Error> {
    Certificate::from_der(&certificate_der(text)?).map_err(|e| X509Error::Malformed(e.to_string()))
}

fn unix(t: &x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// The to-be-signed part of a signed structure (certificate or CRL) as encoded.
fn tbs_bytes(signed_der: &[u8]) -> Option<&[u8]> {
    let (outer, _) = kizuna_core::der::read_tlv(signed_der, 0x30)?;
    let (_, rest) = kizuna_core::der::read_tlv(outer, 0x30)?;
    Some(&outer[..outer.len() - rest.len()])
}

/// Verifies `sig` over `message` with the key of `spki` under the X.509 signature
/// algorithm `alg` (RSA PKCS#1 v1.5 with SHA-256/384/512, ECDSA P-256/P-384).
fn verify_with(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    alg: &str,
    message: &[u8],
    sig: &[u8],
) -> bool {
    let key = spki.subject_public_key.raw_bytes();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
        .map(|o| o.to_string());
    let verifier: &dyn signature::VerificationAlgorithm = match (alg, curve.as_deref()) {
        ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.10045.4.3.2", Some("1.2.840.10045.3.1.7")) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.3.132.0.34")) => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return false,
    };
    UnparsedPublicKey::new(verifier, key)
        .verify(message, sig)
        .is_ok()
}

/// The algorithm a person's key signs a challenge with: SHA-256 with RSA or ECDSA.
fn challenge_algorithm(cert: &Certificate) -> &'static str {
    match cert
        .tbs_certificate()
        .subject_public_key_info()
        .algorithm
        .oid
        .to_string()
        .as_str()
    {
        "1.2.840.10045.2.1" => "1.2.840.10045.4.3.2",
        _ => "1.2.840.113549.1.1.11",
    }
}

/// True when `cert` is signed by `issuer` (names match and the signature verifies).
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let Ok(der) = cert.to_der() else {
        return false;
    };
    let (Some(tbs), Some(sig)) = (tbs_bytes(&der), cert.signature().as_bytes()) else {
        return false;
    };
    verify_with(
        issuer.tbs_certificate().subject_public_key_info(),
        &cert.signature_algorithm().oid.to_string(),
        tbs,
        sig,
    )
}

fn is_ca(cert: &Certificate) -> bool {
    matches!(
        cert.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}

fn in_validity(cert: &Certificate, now: i64) -> bool {
    let v = cert.tbs_certificate().validity();
    unix(&v.not_before) <= now && now <= unix(&v.not_after)
}

/// The CRL distribution point URLs (http or https) of a certificate.
fn crl_urls(cert: &Certificate) -> Vec<String> {
    let Ok(Some((_, points))) = cert
        .tbs_certificate()
        .get_extension::<CrlDistributionPoints>()
    else {
        return Vec::new();
    };
    points
        .0
        .iter()
        .filter_map(|dp| match &dp.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .collect()
}

/// A text value of an otherName (UTF8String, PrintableString or IA5String).
fn other_name_text(value: &x509_cert::der::Any) -> Option<String> {
    Utf8StringRef::try_from(value)
        .map(|s| s.to_string())
        .or_else(|_| PrintableStringRef::try_from(value).map(|s| s.to_string()))
        .or_else(|_| Ia5StringRef::try_from(value).map(|s| s.to_string()))
        .ok()
}

/// The basic attributes of a JPKI signature certificate: the name (family and given name
/// split at the full-width space), the birthdate (an era digit and YYYYMMDD), the gender
/// code (1 male, 2 female, 3 other) and the address.
pub fn attributes(cert: &Certificate) -> Result<Attributes, X509Error> {
    let sans = match cert.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san.0,
        _ => Vec::new(),
    };
    let mut found: HashMap<String, String> = HashMap::new();
    for name in sans {
        if let GeneralName::OtherName(other) = name
            && let Some(text) = other_name_text(&other.value)
        {
            found.insert(other.type_id.to_string(), text);
        }
    }
    let missing: Vec<&str> = [
        (JPKI_NAME, "name"),
        (JPKI_BIRTHDATE, "birthdate"),
        (JPKI_GENDER, "gender"),
        (JPKI_ADDRESS, "address"),
    ]
    .iter()
    .filter(|(oid, _)| found.get(*oid).is_none_or(|v| v.trim().is_empty()))
    .map(|(_, n)| *n)
    .collect();
    if !missing.is_empty() {
        return Err(X509Error::MissingAttributes(format!(
            "missing {}",
            missing.join(", ")
        )));
    }
    let bad = |what: &str| X509Error::MissingAttributes(format!("{what} is malformed"));
    let name = found[JPKI_NAME].trim().to_string();
    let birth = found[JPKI_BIRTHDATE].trim();
    let digits = birth
        .get(birth.len().saturating_sub(8)..)
        .filter(|d| birth.len() >= 8 && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad("birthdate"))?;
    let birthdate = format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..]);
    let gender = match found[JPKI_GENDER].trim() {
        "1" => "male",
        "2" => "female",
        "3" => "other",
        _ => return Err(bad("gender")),
    };
    let mut out = Attributes::new();
    if let Some((family, given)) = name.split_once('\u{3000}') {
        out.insert("family_name".into(), family.trim().to_string());
        out.insert("given_name".into(), given.trim().to_string());
    }
    out.insert("name".into(), name.replace('\u{3000}', " "));
    out.insert("birthdate".into(), birthdate);
    out.insert("gender".into(), gender.into());
    out.insert("address".into(), found[JPKI_ADDRESS].trim().to_string());
    let raw: std::collections::BTreeMap<String, String> = out.clone().into_iter().collect();
    super::clean_attributes(&raw).map_err(|e| X509Error::MissingAttributes(e.to_string()))
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

fn current(crl: &CertificateList, now: i64) -> bool {
    unix(&crl.tbs_cert_list.this_update) <= now + 300
        && crl
            .tbs_cert_list
            .next_update
            .as_ref()
            .is_some_and(|n| unix(n) > now)
}

fn crl_signed_by(crl: &CertificateList, issuer: &Certificate) -> bool {
    if &crl.tbs_cert_list.issuer != issuer.tbs_certificate().subject() {
        return false;
    }
    let Ok(der) = crl.to_der() else {
        return false;
    };
    let (Some(tbs), Some(sig)) = (tbs_bytes(&der), crl.signature.as_bytes()) else {
        return false;
    };
    verify_with(
        issuer.tbs_certificate().subject_public_key_info(),
        &crl.signature_algorithm.oid.to_string(),
        tbs,
        sig,
    )
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
