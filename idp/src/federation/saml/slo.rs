//! Single Logout with a SAML upstream (SAML 2.0 Profiles §4.4), HTTP-Redirect binding both
//! ways. Kizuna → IdP: RP-initiated logout of a session the IdP started sends a signed
//! LogoutRequest, and the IdP's LogoutResponse comes back to `/federation/saml/<alias>/slo`
//! to continue to the city service. IdP → Kizuna: a LogoutRequest signed by the IdP's
//! metadata key ends the sessions it names (and, through Kizuna's back-channel logout, the
//! city services'), and is answered with a signed LogoutResponse.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::messages::{self, SUCCESS};
use super::{SamlSettings, read, signing_key, sp, verify};
use crate::Idp;
use crate::federation::upstreams::{self, Upstream};
use crate::federation::{FederationError, clean_text};
use crate::store::federation;

/// Logout requests issued longer ago than this (plus the skew) are refused; their ids are
/// remembered as long, so none is accepted twice.
const MAX_AGE_SECS: i64 = 600;

/// What a SAML session keeps for logout at the IdP (in the place an OIDC session keeps its
/// ID token): how the IdP named the person, and its session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogoutHint {
    pub name_id: String,
    pub format: Option<String>,
    pub session_index: Option<String>,
}

impl LogoutHint {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("strings serialize")
    }

    fn parse(text: &str) -> Option<LogoutHint> {
        serde_json::from_str(text).ok()
    }
}

fn refuse(text: impl Into<String>) -> FederationError {
    FederationError::Assertion(text.into())
}

/// The IdP's logout URL for a session it started (a signed LogoutRequest), with `state` as
/// the RelayState that brings the browser back to the city service; `None` when the IdP has
/// no logout service or the session kept no hint.
pub(crate) async fn logout_url(
    idp: &Idp,
    upstream: &Upstream,
    saml: &SamlSettings,
    hint: Option<&str>,
    state: &str,
) -> Result<Option<String>, FederationError> {
    let (Some(endpoint), Some(hint)) = (&saml.slo_url, hint.and_then(LogoutHint::parse)) else {
        return Ok(None);
    };
    let key = signing_key(idp, upstream).await?;
    let xml = messages::logout_request(
        &messages::new_id(),
        kizuna_core::time::now_unix(),
        endpoint,
        &upstream.client_id,
        &hint.name_id,
        hint.format.as_deref(),
        hint.session_index.as_deref(),
    );
    messages::redirect(&key, endpoint, "SAMLRequest", &xml, Some(state)).map(Some)
}

/// A message that came by the HTTP-Redirect binding, its values as received.
struct Redirected<'a> {
    parameter: &'a str,
    message: &'a str,
    relay_state: Option<&'a str>,
    sig_alg: Option<&'a str>,
    signature: Option<&'a str>,
}

impl<'a> Redirected<'a> {
    fn parse(raw_query: &'a str) -> Result<Redirected<'a>, FederationError> {
        let mut found = Redirected {
            parameter: "",
            message: "",
            relay_state: None,
            sig_alg: None,
            signature: None,
        };
        for pair in raw_query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "SAMLRequest" | "SAMLResponse" if found.parameter.is_empty() => {
                    (found.parameter, found.message) = (name, value);
                    continue;
                }
                "SAMLRequest" | "SAMLResponse" => {
                    return Err(refuse("the query carries more than one SAML message"));
                }
                "RelayState" => &mut found.relay_state,
                "SigAlg" => &mut found.sig_alg,
                "Signature" => &mut found.signature,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(refuse(format!("the query repeats {name}")));
            }
        }
        if found.parameter.is_empty() {
            return Err(refuse("the query carries no SAMLRequest or SAMLResponse"));
        }
        Ok(found)
    }

    fn decoded(value: &str) -> String {
        url::form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }

    /// The message, after its signature was checked against the IdP's metadata keys (SAML
    /// 2.0 Bindings §3.4.4.1: the signed octets are the query's own encoding).
    fn verified(&self, saml: &SamlSettings) -> Result<Vec<u8>, FederationError> {
        let (Some(sig_alg), Some(signature)) = (self.sig_alg, self.signature) else {
            return Err(refuse("the logout message is not signed"));
        };
        let mut octets = format!("{}={}", self.parameter, self.message);
        if let Some(relay) = self.relay_state {
            octets.push_str(&format!("&RelayState={relay}"));
        }
        octets.push_str(&format!("&SigAlg={sig_alg}"));
        use base64::Engine;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(Self::decoded(signature))
            .map_err(|_| refuse("the signature is not base64"))?;
        verify::verify_redirect_signature(
            octets.as_bytes(),
            &Self::decoded(sig_alg),
            &signature,
            &saml.idp_certificates(),
        )?;
        Ok(read::inflate(&Self::decoded(self.message))?)
    }
}

/// What the SLO endpoint does next.
pub enum Next {
    /// The IdP finished a logout Kizuna started: on to the city service's page (`None`:
    /// the signed-out message).
    Returned(Option<String>),
    /// The IdP asked Kizuna to log the person out: answer it at this URL.
    Answer(String),
    /// The IdP asked, and has no logout service to answer at.
    Done,
}

/// `GET /federation/saml/<alias>/slo`: a LogoutResponse to Kizuna's request, or the IdP's
/// own LogoutRequest. Both must be signed by the IdP's metadata key; the request is audited
/// (`federation.saml_logout`) either way.
pub async fn redirect_binding(
    idp: &Idp,
    alias: &str,
    raw_query: &str,
) -> Result<Next, FederationError> {
    let upstream = upstreams::find(idp, alias)
        .await?
        .filter(|u| u.alias == alias && u.saml.is_some())
        .ok_or_else(|| FederationError::UnknownUpstream(clean_text(alias, 40)))?;
    let saml = upstream.saml.clone().expect("filtered on SAML upstreams");
    let message = Redirected::parse(raw_query)?;
    if message.parameter == "SAMLResponse" {
        return logout_returned(idp, &upstream, &saml, &message).await;
    }
    let result = logout_requested(idp, &upstream, &saml, &message).await;
    crate::federation::audit_logout(
        idp,
        &upstream,
        "federation.saml_logout",
        &result,
        |(request, ended, _)| {
            json!({"name_id": request.name_id, "session_indexes": request.session_indexes, "sessions_ended": ended})
        },
    )
    .await;
    result.map(|(_, _, next)| next)
}

async fn logout_returned(
    idp: &Idp,
    upstream: &Upstream,
    saml: &SamlSettings,
    message: &Redirected<'_>,
) -> Result<Next, FederationError> {
    let xml = message.verified(saml)?;
    let response = read::logout_response(&xml)?;
    if response.issuer != upstream.issuer {
        return Err(refuse("the logout response is not the upstream's"));
    }
    if response
        .destination
        .as_deref()
        .is_some_and(|d| d != sp::slo_url(idp, &upstream.alias))
    {
        return Err(refuse("the logout response is for another destination"));
    }
    if !response.success {
        tracing::warn!(upstream = %upstream.alias, "the upstream did not confirm the logout");
    }
    let state = message
        .relay_state
        .map(Redirected::decoded)
        .unwrap_or_default();
    let back = crate::federation::logout::returned(idp, &state).await?;
    Ok(Next::Returned(back.flatten()))
}

async fn logout_requested(
    idp: &Idp,
    upstream: &Upstream,
    saml: &SamlSettings,
    message: &Redirected<'_>,
) -> Result<(read::LogoutRequest, usize, Next), FederationError> {
    if !upstream.is_active() {
        return Err(FederationError::Disabled);
    }
    let xml = message.verified(saml)?;
    let request = read::logout_request(&xml)?;
    if request.issuer != upstream.issuer {
        return Err(refuse("the logout request is not the upstream's"));
    }
    let slo = sp::slo_url(idp, &upstream.alias);
    if request.destination.as_deref().is_some_and(|d| d != slo) {
        return Err(refuse("the logout request is for another destination"));
    }
    let now = kizuna_core::time::now_unix();
    let skew = idp.config.upstream_clock_skew_secs;
    if request.not_on_or_after.is_some_and(|t| t <= now - skew) {
        return Err(refuse("the logout request has expired"));
    }
    if request.issue_instant < now - MAX_AGE_SECS - skew || request.issue_instant > now + skew {
        return Err(refuse(
            "the logout request was issued too long ago or in the future",
        ));
    }
    crate::federation::use_once(
        idp,
        &format!("saml-logout:{}", upstream.id),
        &request.id,
        now + MAX_AGE_SECS + 2 * skew,
        refuse("the logout request was already used"),
    )
    .await?;
    let db = &idp.core.db;
    let mut named = Vec::new();
    if request.session_indexes.is_empty() {
        named = federation::session_ids(db, &upstream.id, Some(&request.name_id), None).await?;
    }
    for index in &request.session_indexes {
        named.extend(federation::session_ids(db, &upstream.id, None, Some(index)).await?);
    }
    let ended = crate::federation::logout::end_federated(idp, &named).await?;
    let next = match &saml.slo_url {
        Some(endpoint) => {
            let key = signing_key(idp, upstream).await?;
            let xml = messages::logout_response(
                &messages::new_id(),
                now,
                endpoint,
                &upstream.client_id,
                &request.id,
                SUCCESS,
            );
            let relay = message.relay_state.map(Redirected::decoded);
            Next::Answer(messages::redirect(
                &key,
                endpoint,
                "SAMLResponse",
                &xml,
                relay.as_deref(),
            )?)
        }
        None => Next::Done,
    };
    Ok((request, ended, next))
}
