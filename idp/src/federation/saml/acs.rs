//! The assertion consumer service (SAML 2.0 Profiles §4.1.4.3–4.1.4.5): the IdP's Response
//! by HTTP-POST, taken only for a request this browser started (`RelayState` names it, the
//! binding cookie proves the browser, `InResponseTo` must be its id), verified (`verify`),
//! its assertion id used once across replicas, then mapped to an [`UpstreamIdentity`] as an
//! OpenID Connect answer is: claims through the claim map, `AuthnContextClassRef` through
//! the acr map, capped by the trust ceiling.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use kizuna_core::db::is_unique_violation;

use super::sp;
use super::verify::{self, Assertion, Expected, SamlError};
use crate::Idp;
use crate::federation::ceiling::{self, Mapped};
use crate::federation::client::{Continuation, Refused, UpstreamIdentity};
use crate::federation::pending::{self, Return};
use crate::federation::upstreams::{self, Upstream};
use crate::federation::{FederationError, claims, clean_text};
use crate::store::clients;

/// The form the IdP's page posts (SAML 2.0 Bindings §3.5).
#[derive(Debug, Default, Deserialize)]
pub struct PostParams {
    #[serde(rename = "SAMLResponse")]
    pub saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
}

/// The largest base64 Response read (an assertion with a few attributes is a few KiB).
const MAX_RESPONSE_CHARS: usize = 256 * 1024;

pub const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
pub const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
/// eduPersonPrincipalName: who a transient NameID belongs to.
const EPPN: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6";

fn refuse(text: &str) -> FederationError {
    FederationError::Assertion(text.to_string())
}

/// Finishes a SAML sign-in from the IdP's POST; every refusal is audited and leaves nothing
/// behind but the spent request.
pub async fn finish(
    idp: &Idp,
    headers: &HeaderMap,
    alias: &str,
    params: &PostParams,
) -> Result<(UpstreamIdentity, Continuation), Refused> {
    let mut known = (None, None);
    let result = finish_inner(idp, headers, alias, params, &mut known).await;
    pending::refused(idp, result, known).await
}

async fn finish_inner(
    idp: &Idp,
    headers: &HeaderMap,
    alias: &str,
    params: &PostParams,
    known: &mut (Option<Upstream>, Option<Continuation>),
) -> Result<(UpstreamIdentity, Continuation), FederationError> {
    let upstream = upstreams::find(idp, alias)
        .await?
        .filter(|u| u.alias == alias && u.saml.is_some())
        .ok_or_else(|| FederationError::UnknownUpstream(clean_text(alias, 40)))?;
    known.0 = Some(upstream.clone());
    let relay_state = params
        .relay_state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 100)
        .ok_or(FederationError::BadState)?;
    let pending = pending::take_pending(idp, headers, relay_state, Return::Post).await?;
    let continuation: Continuation =
        serde_json::from_str(&pending.continuation).map_err(|_| FederationError::BadState)?;
    known.1 = Some(continuation.clone());
    if pending.upstream_id != upstream.id {
        return Err(FederationError::BadState);
    }
    if !upstream.is_active() {
        return Err(FederationError::Disabled);
    }
    let Some(saml) = &upstream.saml else {
        return Err(FederationError::BadState);
    };
    let encoded: String = params
        .saml_response
        .as_deref()
        .filter(|r| !r.is_empty() && r.len() <= MAX_RESPONSE_CHARS)
        .ok_or_else(|| refuse("the answer has no SAMLResponse, or one too large"))?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let xml = STANDARD
        .decode(encoded)
        .map_err(|_| refuse("the SAMLResponse is not base64"))?;
    let decryption_key = upstream.secret_bytes(idp)?;
    let acs_url = sp::acs_url(idp, &upstream.alias);
    let expected = Expected {
        idp_entity_id: &upstream.issuer,
        sp_entity_id: &upstream.client_id,
        acs_url: &acs_url,
        request_id: &pending.nonce,
        now: kizuna_core::time::now_unix(),
        skew_secs: idp.config.upstream_clock_skew_secs,
    };
    let assertion = verify::verify_response(
        &xml,
        &saml.idp_certificates(),
        &expected,
        decryption_key.as_deref(),
    )
    .map_err(|e| match e {
        SamlError::Status { .. } => FederationError::Upstream(e.to_string()),
        e => FederationError::Saml(e),
    })?;
    clients::record_jti(
        &idp.core.db,
        &format!("saml:{}", upstream.id),
        &assertion.id,
        assertion.expires_at,
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            refuse("the assertion was already used")
        } else {
            FederationError::Storage(e)
        }
    })?;
    Ok((identity(&upstream, &assertion)?, continuation))
}

/// The usual names of the attributes academic and government IdPs send (eduPerson, inetOrgPerson,
/// by their `urn:oid` Names): IdPs spell `FriendlyName`s as they like (pysaml2 lower-cases
/// them), so a mapping can name these whatever the IdP wrote.
const KNOWN: [(&str, &str); 12] = [
    ("urn:oid:0.9.2342.19200300.100.1.1", "uid"),
    ("urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    ("urn:oid:2.16.840.1.113730.3.1.241", "displayName"),
    ("urn:oid:2.5.4.3", "cn"),
    ("urn:oid:2.5.4.4", "sn"),
    ("urn:oid:2.5.4.42", "givenName"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "eduPersonAffiliation"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "eduPersonPrincipalName"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.7", "eduPersonEntitlement"),
    (
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
        "eduPersonScopedAffiliation",
    ),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.10", "eduPersonTargetedID"),
    ("urn:oid:1.3.6.1.4.1.25178.1.2.9", "schacHomeOrganization"),
];

/// The assertion's attributes as claims: each under its `Name`, its `FriendlyName` and, for
/// a known `urn:oid` Name, its usual name (one value as a string, several as a list); an
/// email-format NameID stands in for a missing `mail`.
fn claims_of(assertion: &Assertion) -> Map<String, Value> {
    let mut claims = Map::new();
    for attribute in &assertion.attributes {
        let value = match attribute.values.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        let usual = KNOWN
            .iter()
            .find(|(oid, _)| *oid == attribute.name)
            .map(|(_, name)| name.to_string());
        let names = std::iter::once(&attribute.name)
            .chain(&attribute.friendly_name)
            .chain(&usual);
        for key in names {
            claims.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    if assertion.name_id_format.as_deref() == Some(EMAIL) {
        claims
            .entry("mail".to_string())
            .or_insert_with(|| json!(assertion.name_id));
    }
    // The IdP vouches for addresses only in its own email domains (checked after mapping).
    claims.insert("email_verified".into(), json!(true));
    claims
}

/// The person a verified assertion describes. The link key is the NameID, except that a
/// transient NameID changes at every sign-in: then the eduPersonPrincipalName is the key,
/// and without one the sign-in is refused rather than making a new account each time.
fn identity(
    upstream: &Upstream,
    assertion: &Assertion,
) -> Result<UpstreamIdentity, FederationError> {
    let claims = claims_of(assertion);
    let subject = if assertion.name_id_format.as_deref() == Some(TRANSIENT) {
        claims
            .get(EPPN)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                refuse("a transient NameID without an eduPersonPrincipalName names no one Kizuna can recognize again")
            })?
    } else {
        assertion.name_id.clone()
    };
    if subject.is_empty() || subject.chars().count() > 255 || clean_text(&subject, 255) != subject {
        return Err(refuse("the subject must be 1 to 255 printable characters"));
    }
    let upstream_acr = assertion.authn_context_class_ref.clone();
    let Mapped { ial, aal, capped } = ceiling::map(
        upstream_acr.as_deref(),
        &[],
        &upstream.acr_map,
        upstream.ceiling,
    );
    let mut mapped = claims::apply(&upstream.claim_map, &claims);
    mapped.believe_verification_within(&upstream.email_domains);
    Ok(UpstreamIdentity {
        upstream_id: upstream.id.clone(),
        upstream_alias: upstream.alias.clone(),
        issuer: upstream.issuer.clone(),
        subject,
        mapped,
        claims,
        upstream_acr,
        upstream_amr: Vec::new(),
        ial,
        aal: aal.level(),
        capped,
        upstream_sid: assertion
            .session_index
            .as_deref()
            .map(|s| clean_text(s, 255)),
        id_token: super::slo::LogoutHint {
            name_id: assertion.name_id.clone(),
            format: assertion.name_id_format.clone(),
            session_index: assertion.session_index.clone(),
        }
        .to_text(),
    })
}
