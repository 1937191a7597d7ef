//! The `counter` proofing provider: a registrar at city hall checks a resident's identity
//! document in person (IDA evidence `document`, method `pipp`) and records it under their own
//! account. The admin API and the console's user page call [`record_check`].

use serde::Deserialize;

use kizuna_core::web::Lang;

use super::config::CounterConfig;
use super::{
    AssuranceError, Attributes, Evidence, EvidenceType, Ial, Proofing, ProofingProvider, Record,
    Verifier,
};
use crate::Idp;
use crate::users;

pub const ID: &str = "counter";

/// Document types a registrar may record (IDA `document_details.type` values).
pub const DOCUMENT_TYPES: [&str; 5] = [
    "idcard",
    "passport",
    "driving_permit",
    "residence_permit",
    "jp_health_insurance_card",
];

pub struct Counter {
    ceiling: Ial,
    valid_days: i64,
}

impl Counter {
    pub fn new(config: &CounterConfig) -> Counter {
        Counter {
            ceiling: Ial::from_level(config.ceiling as i64).unwrap_or(Ial::Three),
            valid_days: config.valid_days,
        }
    }
}

impl ProofingProvider for Counter {
    fn id(&self) -> String {
        ID.into()
    }
    fn label(&self, lang: Lang) -> String {
        lang.pick(
            "市役所の窓口で本人確認書類を提示する",
            "Show an identity document at a city hall counter",
        )
        .into()
    }
    fn ceiling(&self) -> Ial {
        self.ceiling
    }
    fn start_path(&self) -> Option<String> {
        None
    }
}

/// What the registrar saw.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterCheck {
    /// The document type (see [`DOCUMENT_TYPES`]).
    pub document_type: String,
    /// The document's number; stored only as a keyed hash.
    pub document_number: String,
    #[serde(default)]
    pub issuer: Option<String>,
    /// The level the registrar's check supports (2, or 3 for a photo ID checked against the
    /// person in front of them).
    pub level: u8,
    /// The attributes the registrar verified against the document.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Records an in-person check of `resident` (login or id) by `registrar_id`. A registrar
/// cannot proof their own account.
pub async fn record_check(
    idp: &Idp,
    registrar_id: &str,
    resident: &str,
    check: CounterCheck,
) -> Result<Record, AssuranceError> {
    let counter = Counter::new(&idp.assurance.config.counter);
    if !DOCUMENT_TYPES.contains(&check.document_type.as_str()) {
        return Err(AssuranceError::Refused(format!(
            "document_type must be one of {}",
            DOCUMENT_TYPES.join(", ")
        )));
    }
    let number = check.document_number.trim();
    if number.is_empty() || number.len() > 64 || number.chars().any(char::is_control) {
        return Err(AssuranceError::Refused(
            "document_number must be 1 to 64 characters".into(),
        ));
    }
    if check
        .issuer
        .as_ref()
        .is_some_and(|i| i.chars().count() > 200)
    {
        return Err(AssuranceError::Refused(
            "issuer must be at most 200 characters".into(),
        ));
    }
    let claimed = Ial::from_level(check.level as i64)
        .filter(|l| *l >= Ial::Two)
        .ok_or_else(|| AssuranceError::Refused("level must be 2 or 3".into()))?;
    let attributes: Attributes = super::clean_attributes(&check.attributes)?;
    let mut conn = idp.core.db.conn().await?;
    let user = users::find_by_login(&mut conn, resident)
        .await?
        .ok_or_else(|| AssuranceError::NoAccount(resident.to_string()))?;
    drop(conn);
    if user.id == registrar_id {
        return Err(AssuranceError::Refused(
            "a registrar cannot record a check of their own identity".into(),
        ));
    }
    let now = kizuna_core::time::now_unix();
    let proofing = Proofing {
        provider: ID.into(),
        claimed,
        ceiling: counter.ceiling,
        evidence: Evidence {
            kind: EvidenceType::Document,
            method: Some("pipp".into()),
            issuer: check.issuer.clone(),
            document: Some(check.document_type.clone()),
            number: Some(format!("{}:{number}", check.document_type)),
            time: now,
        },
        attributes,
        expires_at: now + counter.valid_days * 86_400,
        verifier: Verifier::Person(registrar_id.to_string()),
        binding: None,
    };
    super::record(idp, &user.id, proofing).await
}
