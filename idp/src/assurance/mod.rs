//! Identity assurance: how well a person's identity was proven (NIST SP 800-63A IAL1–3),
//! the proofing records that say so, the providers that raise the level (a signature
//! certificate, an eKYC vendor, a registrar at a counter, the JPKI OpenID provider through
//! the federation's upstream client), one-person-one-account bindings,
//! and what a client may ask for. `docs/assurance.md` explains the levels and choices.

pub mod claims;
pub mod config;
pub mod counter;
pub mod flow;
pub mod jpki_oidc;
pub mod pages;
mod records;
pub mod renewal;
pub mod webhook;
pub mod x509_signature;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::custody::{CustodyError, Rotation};
use kizuna_core::db::AnyConnection;
use kizuna_core::secret;
use kizuna_core::web::Lang;

use crate::Idp;
use crate::store::assurance as store;
use crate::store::clients as store_clients;
pub use config::AssuranceConfig;
pub use records::{audit_refusal, current, edit_name, level, record};

/// An identity assurance level (NIST SP 800-63A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ial {
    /// Self-asserted: nobody checked who the person is.
    One = 1,
    /// Bound to a real person by remote or in-person proofing with evidence.
    Two = 2,
    /// In-person or equivalent strength (the JPKI signature certificate).
    Three = 3,
}

impl Ial {
    pub fn from_level(level: i64) -> Option<Ial> {
        match level {
            1 => Some(Ial::One),
            2 => Some(Ial::Two),
            3 => Some(Ial::Three),
            _ => None,
        }
    }

    pub fn level(self) -> u8 {
        self as u8
    }

    /// The `assurance_level` of released `verified_claims` (`ial2`).
    pub fn name(self) -> String {
        format!("ial{}", self.level())
    }
}

/// The verified attributes a proofing can establish (OpenID Connect Core §5.1 names, with
/// the Japanese kana reading as language-tagged claims, §5.2).
pub const ATTRIBUTES: [&str; 8] = [
    "family_name",
    "given_name",
    "name",
    "family_name#ja-Kana-JP",
    "given_name#ja-Kana-JP",
    "birthdate",
    "gender",
    "address",
];

/// The name attributes the profile page can change (editing one drops the level).
pub const NAME_ATTRIBUTES: [&str; 3] = ["name", "family_name", "given_name"];

/// Verified attribute values by claim name.
pub type Attributes = BTreeMap<String, String>;

/// Keeps the known attributes with sane values: at most 256 characters without control
/// characters, `birthdate` as YYYY-MM-DD, `gender` one of male, female, other.
pub fn clean_attributes(raw: &BTreeMap<String, String>) -> Result<Attributes, AssuranceError> {
    let mut out = Attributes::new();
    for (k, v) in raw {
        if !ATTRIBUTES.contains(&k.as_str()) {
            continue;
        }
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let ok = v.chars().count() <= 256
            && !v.chars().any(char::is_control)
            && match k.as_str() {
                "birthdate" => valid_date(v),
                "gender" => matches!(v, "male" | "female" | "other"),
                _ => true,
            };
        if !ok {
            return Err(AssuranceError::BadAttribute(k.clone()));
        }
        out.insert(k.clone(), v.to_string());
    }
    Ok(out)
}

fn valid_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && v.split('-').all(|p| p.bytes().all(|c| c.is_ascii_digit()))
        && (1..=12).contains(&v[5..7].parse::<u8>().unwrap_or(0))
        && (1..=31).contains(&v[8..10].parse::<u8>().unwrap_or(0))
}

/// Evidence types of OpenID Connect for Identity Assurance 1.0 (§5.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceType {
    Document,
    ElectronicRecord,
    ElectronicSignature,
    Vouch,
}

impl EvidenceType {
    pub const ALL: [EvidenceType; 4] = [
        EvidenceType::Document,
        EvidenceType::ElectronicRecord,
        EvidenceType::ElectronicSignature,
        EvidenceType::Vouch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceType::Document => "document",
            EvidenceType::ElectronicRecord => "electronic_record",
            EvidenceType::ElectronicSignature => "electronic_signature",
            EvidenceType::Vouch => "vouch",
        }
    }

    pub fn parse(s: &str) -> Option<EvidenceType> {
        EvidenceType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What the identity was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub kind: EvidenceType,
    /// How it was checked (IDA `method`, e.g. `pipp` in person) or, for signatures, the
    /// signature type.
    pub method: Option<String>,
    /// Who issued the document or certificate.
    pub issuer: Option<String>,
    /// The document type (`idcard`, `driving_permit`, …) for documents.
    pub document: Option<String>,
    /// The document or certificate number, kept only as a keyed hash.
    pub number: Option<String>,
    /// When the evidence was checked (unix seconds).
    pub time: i64,
}

/// Who did the proofing: a person (a registrar's account) or a system (a provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    Person(String),
    System(String),
}

/// A proofing result, before it is recorded.
#[derive(Debug, Clone)]
pub struct Proofing {
    pub provider: String,
    /// The level the evidence would give; the provider's ceiling caps it.
    pub claimed: Ial,
    pub ceiling: Ial,
    pub evidence: Evidence,
    pub attributes: Attributes,
    pub expires_at: i64,
    pub verifier: Verifier,
    /// A stable identifier of the real person (a JPKI identity): bound to one account only.
    pub binding: Option<String>,
}

/// A stored proofing record.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: String,
    pub user_id: String,
    pub provider: String,
    pub trust_framework: String,
    pub level: u8,
    pub claimed_level: u8,
    pub evidence_type: String,
    pub evidence_method: Option<String>,
    pub evidence_issuer: Option<String>,
    pub evidence_document: Option<String>,
    pub evidence_time: i64,
    pub attributes: Attributes,
    pub verifier_kind: String,
    pub verifier_id: String,
    pub verified_at: i64,
    pub expires_at: i64,
}

impl Record {
    pub fn ial(&self) -> Ial {
        Ial::from_level(self.level as i64).unwrap_or(Ial::One)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AssuranceError {
    #[error("the proofing step is unknown, expired or already used; start again")]
    AttemptGone,
    #[error("this identity is already bound to another account")]
    AlreadyBound,
    #[error("the attribute {0} has an invalid value")]
    BadAttribute(String),
    #[error("{0}")]
    Refused(String),
    #[error("the proofing provider is not available: {0}")]
    Unavailable(String),
    #[error("no account {0:?}")]
    NoAccount(String),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("key custody failed: {0}")]
    Custody(#[from] kizuna_core::custody::CustodyError),
}

impl From<audit::AuditError> for AssuranceError {
    fn from(e: audit::AuditError) -> Self {
        AssuranceError::Unavailable(format!("audit failed: {e}"))
    }
}

impl AssuranceError {
    /// True for failures on our side (shown as an internal error, not a message).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            AssuranceError::Storage(_) | AssuranceError::Custody(_)
        )
    }
}

/// A JSON error for the machine-facing proofing endpoints (the card-reader app, an eKYC
/// vendor): a status and `{"error", "message"}`.
pub fn json_error(
    status: axum::http::StatusCode,
    error: &str,
    message: impl Into<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        status,
        axum::Json(json!({"error": error, "message": message.into()})),
    )
        .into_response()
}

/// A way to raise a person's level. Each provider is a module; the identity page lists the
/// ones a client allows and sends the person to `start_path`.
pub trait ProofingProvider: Send + Sync {
    /// The id clients and records name (`x509-signature`, `webhook:<name>`, `counter`).
    fn id(&self) -> String;
    /// What the person sees.
    fn label(&self, lang: Lang) -> String;
    /// The highest level this provider can grant.
    fn ceiling(&self) -> Ial;
    /// Where the identity page's form posts to start it; `None` when a person cannot start
    /// it alone (a registrar records it).
    fn start_path(&self) -> Option<String>;
}

/// The configured providers and what they share.
pub struct Assurance {
    pub config: AssuranceConfig,
    pub providers: Vec<Arc<dyn ProofingProvider>>,
    pub x509: Option<Arc<x509_signature::X509Signature>>,
    pub webhooks: Vec<Arc<webhook::Webhook>>,
    binding_key: tokio::sync::OnceCell<[u8; 32]>,
}

impl Assurance {
    /// The providers from the configuration; fails on an unreadable trust anchor.
    pub fn new(config: AssuranceConfig) -> Result<Assurance, String> {
        let x509 = x509_signature::X509Signature::new(&config.x509)?.map(Arc::new);
        let webhooks = config
            .webhook
            .iter()
            .map(|w| webhook::Webhook::new(w).map(Arc::new))
            .collect::<Result<Vec<_>, String>>()?;
        let mut providers: Vec<Arc<dyn ProofingProvider>> = Vec::new();
        if let Some(x) = &x509 {
            providers.push(x.clone());
        }
        for w in &webhooks {
            providers.push(w.clone());
        }
        for alias in &config.jpki_oidc.upstreams {
            providers.push(Arc::new(jpki_oidc::JpkiOidc::new(alias)));
        }
        providers.push(Arc::new(counter::Counter::new(&config.counter)));
        Ok(Assurance {
            config,
            providers,
            x509,
            webhooks,
            binding_key: tokio::sync::OnceCell::new(),
        })
    }

    pub fn provider(&self, id: &str) -> Option<&dyn ProofingProvider> {
        self.providers
            .iter()
            .find(|p| p.id() == id)
            .map(|p| p.as_ref())
    }
}

/// The setting that holds the sealed key of identity bindings.
const BINDING_KEY_SETTING: &str = "assurance.binding_key";
const BINDING_KEY_CONTEXT: &str = "assurance:binding-key";

/// The key that turns a stable identifier into its stored form: 32 random bytes, sealed by
/// key custody in the settings table, created once for the installation.
async fn binding_key(idp: &Idp) -> Result<[u8; 32], AssuranceError> {
    idp.assurance
        .binding_key
        .get_or_try_init(|| async {
            let fresh = secret::random_bytes::<32>();
            let sealed = idp.core.custody.seal(BINDING_KEY_CONTEXT, &fresh)?;
            kizuna_core::settings::set_if_absent(
                &idp.core.db,
                BINDING_KEY_SETTING,
                &STANDARD.encode(&sealed),
            )
            .await?;
            let stored = kizuna_core::settings::get(&idp.core.db, BINDING_KEY_SETTING)
                .await?
                .and_then(|v| STANDARD.decode(v).ok())
                .ok_or_else(|| AssuranceError::Unavailable("binding key missing".into()))?;
            let key = idp.core.custody.open(BINDING_KEY_CONTEXT, &stored)?;
            key.try_into()
                .map_err(|_| AssuranceError::Unavailable("binding key malformed".into()))
        })
        .await
        .copied()
}

/// Seals the binding key again under the rotation's new KEK, in the caller's transaction
/// (`kizuna kek rotate`); nothing to do before the key was first needed.
pub(crate) async fn reseal_binding_key(
    conn: &mut AnyConnection,
    rotation: &mut Rotation,
) -> Result<(), CustodyError> {
    let Some(stored) = kizuna_core::settings::get_in(conn, BINDING_KEY_SETTING).await? else {
        return Ok(());
    };
    let what = "the assurance binding key";
    let sealed = STANDARD
        .decode(&stored)
        .map_err(|_| CustodyError::CorruptData(what.into()))?;
    if let Some(next) =
        rotation.reseal_data("assurance_binding_key", BINDING_KEY_CONTEXT, &sealed, what)?
    {
        let value = STANDARD.encode(&next.sealed);
        let updated =
            kizuna_core::settings::replace_in(conn, BINDING_KEY_SETTING, &stored, &value).await?;
        next.stored(updated);
    }
    Ok(())
}

/// HMAC-SHA256 of `value` under the binding key, hex: how identifiers and document numbers
/// are stored.
pub async fn keyed_hash(idp: &Idp, purpose: &str, value: &str) -> Result<String, AssuranceError> {
    let key = binding_key(idp).await?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let tag = ring::hmac::sign(&key, format!("{purpose}\0{value}").as_bytes());
    Ok(secret::hex(tag.as_ref()))
}

/// What a client asks of assurance: its minimum level, the verified claims it may receive,
/// and the proofing providers its residents may use (empty: every configured one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientAssurance {
    pub min_ial: u8,
    pub verified_claims: Vec<String>,
    pub proofing_providers: Vec<String>,
}

pub async fn client_settings(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<ClientAssurance, sqlx::Error> {
    Ok(store::client_settings(conn, client_id)
        .await?
        .map(
            |(min, verified_claims, proofing_providers)| ClientAssurance {
                min_ial: min.clamp(0, 3) as u8,
                verified_claims,
                proofing_providers,
            },
        )
        .unwrap_or_default())
}

/// Sets a client's assurance settings (validated, audited, one transaction).
pub async fn set_client_settings(
    idp: &Idp,
    actor: Actor,
    client_id: &str,
    settings: ClientAssurance,
) -> Result<ClientAssurance, AssuranceError> {
    if settings.min_ial > 3 {
        return Err(AssuranceError::Refused(
            "min_ial must be 0 (none), 1, 2 or 3".into(),
        ));
    }
    if let Some(bad) = settings
        .verified_claims
        .iter()
        .find(|c| !ATTRIBUTES.contains(&c.as_str()))
    {
        return Err(AssuranceError::Refused(format!(
            "{bad:?} is not a verifiable claim: use {}",
            ATTRIBUTES.join(", ")
        )));
    }
    if let Some(bad) = settings
        .proofing_providers
        .iter()
        .find(|p| idp.assurance.provider(p).is_none())
    {
        return Err(AssuranceError::Refused(format!(
            "{bad:?} is not a configured proofing provider"
        )));
    }
    let mut tx = idp.core.db.begin().await?;
    if store_clients::find(tx.conn(), client_id).await?.is_none() {
        return Err(AssuranceError::Refused(format!("no client {client_id}")));
    }
    store::set_client_settings(
        tx.conn(),
        client_id,
        settings.min_ial as i64,
        &settings.verified_claims,
        &settings.proofing_providers,
        kizuna_core::time::now_unix(),
    )
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "client.set_assurance", format!("client:{client_id}"))
                .details(json!(settings)),
        ],
    )
    .await?;
    tx.commit().await?;
    idp.clients.forget(client_id);
    audit::publish(&entries);
    Ok(settings)
}

/// How many unfinished, unexpired attempts one person may have open at once.
const MAX_OPEN_ATTEMPTS: i64 = 10;

/// Opens a proofing attempt for the person (a challenge to sign, or a vendor transaction),
/// remembering the authorization request to return to. `None` when the person already has
/// [`MAX_OPEN_ATTEMPTS`] open (nobody needs more; it bounds what one account can store).
pub async fn open_attempt(
    idp: &Idp,
    user_id: &str,
    provider: &str,
    challenge: Option<&str>,
    req: Option<&str>,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let id = secret::random_token();
    let now = kizuna_core::time::now_unix();
    if store::open_attempts(&idp.core.db, user_id, now).await? >= MAX_OPEN_ATTEMPTS {
        return Ok(None);
    }
    let expires_at = now + idp.assurance.config.attempt_ttl_secs;
    store::insert_attempt(
        &idp.core.db,
        &store::NewAttempt {
            id: &id,
            user_id,
            provider,
            challenge,
            req,
            created_at: now,
            expires_at,
        },
    )
    .await?;
    Ok(Some((id, expires_at)))
}

/// An attempt taken for use.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub user_id: String,
    pub challenge: Option<String>,
    pub req: Option<String>,
}

/// Spends an attempt of `provider` (once, before it expires); `None` when it is unknown,
/// expired, already used, or another provider's.
pub async fn take_attempt(
    idp: &Idp,
    id: &str,
    provider: &str,
) -> Result<Option<Attempt>, sqlx::Error> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let Some((user_id, challenge, req)) = store::live_attempt(tx.conn(), id, provider, now).await?
    else {
        return Ok(None);
    };
    let spent = store::use_attempt(tx.conn(), id, now).await?;
    tx.commit().await?;
    Ok(spent.then_some(Attempt {
        user_id,
        challenge,
        req,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_kept_only_when_known_and_sane() {
        let mut raw = BTreeMap::new();
        raw.insert("family_name".to_string(), "山田".to_string());
        raw.insert("birthdate".to_string(), "1980-01-31".to_string());
        raw.insert("favourite_colour".to_string(), "blue".to_string());
        let clean = clean_attributes(&raw).unwrap();
        assert_eq!(clean.len(), 2);
        raw.insert("birthdate".to_string(), "1980-13-01".to_string());
        assert!(clean_attributes(&raw).is_err());
        raw.insert("birthdate".to_string(), "1980-01-31".to_string());
        raw.insert("gender".to_string(), "unknown".to_string());
        assert!(clean_attributes(&raw).is_err());
    }

    #[test]
    fn levels_order_and_name() {
        assert!(Ial::Three > Ial::Two);
        assert_eq!(Ial::Two.name(), "ial2");
        assert_eq!(Ial::from_level(4), None);
    }
}
