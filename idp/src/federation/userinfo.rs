//! UserInfo at an upstream (OpenID Connect Core §5.3), and the check of what an upstream
//! signs besides its ID tokens (signed UserInfo answers, logout tokens).

use serde_json::{Map, Value};

use kizuna_core::jose;

use super::FederationError;
use super::discovery::chain;
use super::upstreams::Upstream;
use crate::Idp;

/// The signature algorithms accepted on what an upstream signs besides its ID tokens
/// (logout tokens, signed UserInfo answers): asymmetric only.
const UPSTREAM_JWS_ALGS: [&str; 10] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
];

/// Verifies a JWS `what` the upstream `issuer` signed with its JWK Set, read again once when
/// no key of the cached set matches (the upstream may have rotated); a bad signature is the
/// error `refused` makes of the reason.
pub(crate) async fn verify_upstream_jws(
    idp: &Idp,
    issuer: &str,
    jws: &jose::Jws,
    what: &str,
    refused: fn(String) -> FederationError,
) -> Result<(), FederationError> {
    for refresh in [false, true] {
        let md = idp.federation.metadata(issuer, refresh).await?;
        let jwks = serde_json::to_value(md.jwks()).unwrap_or(Value::Null);
        match jws.verify_with_set(&jwks, &UPSTREAM_JWS_ALGS) {
            Ok(()) => return Ok(()),
            Err(jose::JoseError::NoKey) if !refresh => continue,
            Err(e) => return Err(refused(format!("the {what}'s signature: {e}"))),
        }
    }
    Err(refused(format!(
        "no key of the upstream verifies the {what}"
    )))
}

/// UserInfo (OpenID Connect Core §5.3): a JSON object, or a JWT signed by the upstream
/// (§5.3.2: verified with its JWK Set; `iss` and `aud`, when present, must be the upstream
/// and Kizuna's client id). Its `sub` must be the ID token's.
pub(super) async fn userinfo(
    idp: &Idp,
    upstream: &Upstream,
    endpoint: &str,
    access_token: &str,
    subject: &str,
) -> Result<Map<String, Value>, FederationError> {
    let refuse = |text: &str| FederationError::UserInfo(text.into());
    let response = idp
        .federation
        .http()
        .get(endpoint)
        .bearer_auth(access_token)
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwt;q=0.9",
        )
        .send()
        .await
        .map_err(|e| FederationError::UserInfo(chain(&e)))?;
    if !response.status().is_success() {
        return Err(FederationError::UserInfo(format!(
            "HTTP {}",
            response.status()
        )));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_default();
    let signed = content_type.starts_with("application/jwt");
    if !signed && !content_type.starts_with("application/json") {
        return Err(refuse("the answer is neither JSON nor a signed JWT"));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| FederationError::UserInfo(chain(&e)))?;
    if bytes.len() > 64 * 1024 {
        return Err(refuse("the answer is too large"));
    }
    let info: Map<String, Value> = if signed {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| refuse("the signed answer is not text"))?
            .trim();
        if text.split('.').count() == 5 {
            return Err(refuse(
                "the answer is encrypted (JWE), which Kizuna does not accept; register Kizuna for signed-only UserInfo",
            ));
        }
        let jws = jose::Jws::parse(text).map_err(|e| FederationError::UserInfo(e.to_string()))?;
        verify_upstream_jws(
            idp,
            &upstream.issuer,
            &jws,
            "UserInfo answer",
            FederationError::UserInfo,
        )
        .await?;
        let claims: Map<String, Value> = jws
            .claims()
            .map_err(|_| refuse("the signed answer's claims are not a JSON object"))?;
        if claims
            .get("iss")
            .is_some_and(|iss| iss.as_str() != Some(upstream.issuer.as_str()))
        {
            return Err(refuse("its iss is not the upstream"));
        }
        let audience_ok = match claims.get("aud") {
            None => true,
            Some(Value::String(aud)) => *aud == upstream.client_id,
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|a| a.as_str() == Some(upstream.client_id.as_str())),
            Some(_) => false,
        };
        if !audience_ok {
            return Err(refuse("its aud is not Kizuna's client id"));
        }
        claims
    } else {
        serde_json::from_slice(&bytes).map_err(|_| refuse("the answer is not a JSON object"))?
    };
    if info.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(refuse("its sub is not the ID token's"));
    }
    Ok(info)
}
