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

use super::sp;
use super::verify::{self, Assertion, Expected, SamlError};
use crate::Idp;
use crate::federation::ceiling::{self, Mapped};
use crate::federation::client::{Continuation, Refused, UpstreamIdentity};
use crate::federation::pending::{self, Return};
use crate::federation::upstreams::{self, Upstream};
use crate::federation::{FederationError, claims, clean_text};

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
    crate::federation::use_once(
        idp,
        &format!("saml:{}", upstream.id),
        &assertion.id,
        assertion.expires_at,
        refuse("the assertion was already used"),
    )
    .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::ceiling::{Levels, TrustCeiling};
    use crate::federation::saml::verify::Attribute;
    use crate::federation::upstreams::{ClientAuth, Upstream};

    fn upstream() -> Upstream {
        Upstream {
            id: "u1".into(),
            alias: "uni".into(),
            name: "City University".into(),
            org_id: "org".into(),
            issuer: "https://idp.uni.example.jp/metadata".into(),
            client_id: "https://kizuna.example/federation/saml/uni/metadata".into(),
            client_auth: ClientAuth::Saml,
            client_secret: None,
            key_id: None,
            saml: None,
            scopes: Vec::new(),
            acr_values: Vec::new(),
            claim_map: super::super::default_claim_map(),
            acr_map: [(MFA.to_string(), Levels { aal: 3, ial: 1 })].into(),
            ceiling: TrustCeiling::new(1, 2).unwrap(),
            jit: true,
            email_domains: vec!["uni.example.jp".into()],
            propagate_logout: true,
            status: "active".into(),
            created_at: 0,
            version: 0,
        }
    }

    const MFA: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract";

    fn assertion(name_id: &str, format: &str, attributes: Vec<Attribute>) -> Assertion {
        Assertion {
            id: "_a".into(),
            issuer: "https://idp.uni.example.jp/metadata".into(),
            name_id: name_id.into(),
            name_id_format: Some(format.into()),
            session_index: Some("s-1".into()),
            authn_context_class_ref: Some(MFA.into()),
            attributes,
            expires_at: 0,
            encrypted: false,
        }
    }

    fn attribute(name: &str, friendly: Option<&str>, values: &[&str]) -> Attribute {
        Attribute {
            name: name.into(),
            friendly_name: friendly.map(str::to_string),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn an_email_nameid_stands_in_for_mail_and_is_believed_only_in_the_upstreams_domains() {
        let own = identity(&upstream(), &assertion("ken@uni.example.jp", EMAIL, vec![])).unwrap();
        assert_eq!(own.subject, "ken@uni.example.jp");
        assert_eq!(own.mapped.email.as_deref(), Some("ken@uni.example.jp"));
        assert!(own.mapped.email_verified);
        let other = identity(
            &upstream(),
            &assertion("mayor@city.example.jp", EMAIL, vec![]),
        )
        .unwrap();
        assert_eq!(other.mapped.email.as_deref(), Some("mayor@city.example.jp"));
        assert!(!other.mapped.email_verified, "not the upstream's domain");
    }

    #[test]
    fn attributes_are_found_by_name_friendly_name_or_usual_name_whatever_the_idps_spelling() {
        let attributes = vec![
            attribute(
                "urn:oid:2.16.840.1.113730.3.1.241",
                Some("displayname"),
                &["Ken Mori"],
            ),
            attribute(
                "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
                None,
                &["staff", "member"],
            ),
        ];
        let mut u = upstream();
        u.claim_map
            .insert("groups".into(), "eduPersonAffiliation".into());
        let id = identity(&u, &assertion("p-1", PERSISTENT, attributes)).unwrap();
        assert_eq!(id.mapped.name.as_deref(), Some("Ken Mori"));
        assert_eq!(id.mapped.groups, vec!["staff", "member"]);
        assert_eq!(id.claims["displayname"], "Ken Mori");
        assert_eq!(id.claims["urn:oid:2.16.840.1.113730.3.1.241"], "Ken Mori");
    }

    #[test]
    fn the_authentication_context_is_mapped_and_capped_by_the_ceiling() {
        let id = identity(&upstream(), &assertion("p-1", PERSISTENT, vec![])).unwrap();
        assert_eq!(
            (id.aal, id.capped),
            (2, true),
            "aal3 asked, the ceiling is 2"
        );
        assert_eq!(id.upstream_acr.as_deref(), Some(MFA));
        let hint: super::super::slo::LogoutHint = serde_json::from_str(&id.id_token).unwrap();
        assert_eq!(
            (hint.name_id.as_str(), hint.session_index.as_deref()),
            ("p-1", Some("s-1"))
        );
    }

    #[test]
    fn a_transient_nameid_is_keyed_by_the_eppn_or_refused() {
        let eppn = attribute(
            EPPN,
            Some("eduPersonPrincipalName"),
            &["ken@uni.example.jp"],
        );
        let id = identity(&upstream(), &assertion("t-1", TRANSIENT, vec![eppn])).unwrap();
        assert_eq!(id.subject, "ken@uni.example.jp");
        assert!(identity(&upstream(), &assertion("t-2", TRANSIENT, vec![])).is_err());
        let control = assertion("bad\u{7}id", PERSISTENT, vec![]);
        assert!(
            identity(&upstream(), &control).is_err(),
            "control characters refused"
        );
    }
}
