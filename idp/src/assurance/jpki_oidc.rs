//! The `jpki-oidc` proofing provider: an upstream OpenID provider that checks the My Number
//! card (the Digital Agency's authentication service: code flow, PKCE S256,
//! `private_key_jwt`, `acr_values`, the four basic attributes as claims), reached through
//! the federation's upstream client. Which upstreams are the JPKI OP is configuration
//! (`assurance.jpki_oidc.upstreams`); their answer is IAL3, capped by the upstream's trust
//! ceiling, with the attributes the OP verified.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use kizuna_core::web::Lang;

use super::{
    AssuranceError, Attributes, Evidence, EvidenceType, Ial, Proofing, ProofingProvider, Verifier,
};
use crate::Idp;
use crate::federation::{Continuation, UpstreamIdentity, client, upstreams};
use crate::pages::{check_csrf, internal_error, message, page_lang, see_other};
use crate::sessions;

/// One upstream configured as the JPKI OP.
pub struct JpkiOidc {
    alias: String,
}

impl JpkiOidc {
    pub fn new(alias: &str) -> JpkiOidc {
        JpkiOidc {
            alias: alias.to_string(),
        }
    }

    fn id_for(alias: &str) -> String {
        format!("jpki-oidc:{alias}")
    }
}

impl ProofingProvider for JpkiOidc {
    fn id(&self) -> String {
        JpkiOidc::id_for(&self.alias)
    }
    fn label(&self, lang: Lang) -> String {
        lang.pick(
            "マイナンバーカード（デジタル認証アプリ）",
            "My Number card (Digital Authentication App)",
        )
        .into()
    }
    /// The most it can grant; the upstream's trust ceiling caps each result.
    fn ceiling(&self) -> Ial {
        Ial::Three
    }
    fn start_path(&self) -> Option<String> {
        Some(format!("/assurance/jpki-oidc/{}/start", self.alias))
    }
}

/// A text claim, or the `formatted` member of an object claim (the address).
fn text(claims: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("formatted")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

/// The verified attributes in the OP's answer: the mapped name, birthdate and address
/// (the upstream's claim mapping applies), and the standard `gender` claim.
fn attributes(identity: &UpstreamIdentity) -> Result<Attributes, AssuranceError> {
    let mut raw = std::collections::BTreeMap::new();
    let m = &identity.mapped;
    if let Some(name) = m.name.clone().or_else(|| text(&identity.claims, "name")) {
        if let Some((family, given)) = name.split_once('\u{3000}').or_else(|| name.split_once(' '))
        {
            raw.insert("family_name".to_string(), family.to_string());
            raw.insert("given_name".to_string(), given.to_string());
        }
        raw.insert("name".to_string(), name.replace('\u{3000}', " "));
    }
    for (attribute, value) in [
        ("birthdate", m.birthdate.clone()),
        (
            "address",
            m.address
                .clone()
                .or_else(|| text(&identity.claims, "address")),
        ),
        ("gender", text(&identity.claims, "gender")),
    ] {
        if let Some(v) = value {
            raw.insert(attribute.to_string(), v);
        }
    }
    let attributes = super::clean_attributes(&raw)?;
    if !["name", "birthdate", "address"]
        .iter()
        .all(|a| attributes.contains_key(*a))
    {
        return Err(AssuranceError::Refused(
            "the My Number card service did not return the basic attributes (name, birthdate, address)".into(),
        ));
    }
    Ok(attributes)
}

/// Records the proofing an upstream JPKI answer gives the signed-in person who started it.
pub async fn record(
    idp: &Idp,
    headers: &HeaderMap,
    identity: &UpstreamIdentity,
    user_id: &str,
) -> Result<(), Response> {
    let refuse = |text: (&str, &str)| {
        message(
            StatusCode::FORBIDDEN,
            page_lang(None),
            ("本人確認できませんでした", "Identity verification failed"),
            text,
        )
    };
    let provider = JpkiOidc::id_for(&identity.upstream_alias);
    if idp.assurance.provider(&provider).is_none() {
        return Err(refuse((
            "この連携先は本人確認に使えません。",
            "This organization cannot verify identities.",
        )));
    }
    match sessions::current(idp, headers).await {
        Ok(Some(s)) if s.user_id == user_id => {}
        Ok(_) => {
            return Err(refuse((
                "本人確認を始めたアカウントでサインインしていません。やり直してください。",
                "You are no longer signed in to the account that started the verification. Start again.",
            )));
        }
        Err(_) => return Err(internal_error()),
    }
    let upstream = match upstreams::find(idp, &identity.upstream_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(internal_error()),
        Err(_) => return Err(internal_error()),
    };
    let attributes = match attributes(identity) {
        Ok(a) => a,
        Err(e) => {
            super::audit_refusal(idp, user_id, &provider, &e.to_string()).await;
            return Err(refuse((
                "マイナンバーカードの基本4情報を受け取れませんでした。",
                "The basic attributes from the My Number card were not received.",
            )));
        }
    };
    let now = kizuna_core::time::now_unix();
    let proofing = Proofing {
        provider: provider.clone(),
        claimed: Ial::Three,
        ceiling: Ial::from_level(upstream.ceiling.max_ial as i64).unwrap_or(Ial::One),
        evidence: Evidence {
            kind: EvidenceType::ElectronicSignature,
            method: Some("jp_jpki".into()),
            issuer: Some(upstream.name.clone()),
            document: None,
            number: Some(identity.subject.clone()),
            time: now,
        },
        attributes,
        expires_at: now + idp.assurance.config.jpki_oidc.valid_days * 86_400,
        verifier: Verifier::System(provider.clone()),
        binding: Some(format!(
            "jpki-oidc:{}:{}",
            identity.issuer, identity.subject
        )),
    };
    match super::record(idp, user_id, proofing).await {
        Ok(_) => Ok(()),
        Err(AssuranceError::AlreadyBound) => Err(refuse((
            "このマイナンバーカードは別のアカウントで本人確認済みです。",
            "This My Number card already verified another account.",
        ))),
        Err(e) if e.is_internal() => Err(internal_error()),
        Err(_) => Err(refuse((
            "本人確認の結果を記録できませんでした。",
            "The verification result could not be recorded.",
        ))),
    }
}

#[derive(Deserialize)]
pub struct StartForm {
    csrf_token: Option<String>,
    req: Option<String>,
}

/// `POST /assurance/jpki-oidc/{alias}/start`: sends the signed-in person to the JPKI OP.
pub async fn start(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(alias): Path<String>,
    Form(form): Form<StartForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let session = match sessions::current(&idp, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return see_other("/login?next=/account/identity", None),
        Err(_) => return internal_error(),
    };
    if idp.assurance.provider(&JpkiOidc::id_for(&alias)).is_none() {
        return see_other("/account/identity", None);
    }
    let upstream = match upstreams::find(&idp, &alias).await {
        Ok(Some(u)) => u,
        Ok(None) => return see_other("/account/identity", None),
        Err(_) => return internal_error(),
    };
    let continuation = Continuation::Proofing {
        user_id: session.user_id,
        req: form.req.filter(|r| !r.is_empty()),
    };
    match client::start(&idp, &upstream, &continuation, None, &headers).await {
        Ok(started) => see_other(&started.location, started.cookie),
        Err(e) if e.is_internal() => internal_error(),
        Err(_) => message(
            StatusCode::BAD_GATEWAY,
            page_lang(None),
            (
                "本人確認サービスに接続できません",
                "The identity verification service is not available",
            ),
            (
                "マイナンバーカードの認証サービスに接続できませんでした。しばらくしてからやり直してください。",
                "The My Number card service cannot be reached. Try again later.",
            ),
        ),
    }
}
