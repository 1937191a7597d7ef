//! Logout across the broker: an upstream's back-channel logout token (OpenID Connect
//! Back-Channel Logout 1.0 §2.4–2.6) ends the Kizuna sessions that upstream's sign-in
//! started (and, through Kizuna's own back-channel logout, the city services'), and
//! RP-initiated logout at Kizuna continues to the upstream's end-session endpoint (OpenID
//! Connect RP-Initiated Logout 1.0) when it has one and the upstream is set to propagate.

use serde_json::{Value, json};

use kizuna_core::jose::Jws;
use kizuna_core::secret;

use super::{FederationError, upstreams};
use crate::Idp;
use crate::authorize::flow::with_query;
use crate::sessions::{self, Session};
use crate::store::{self, federation};

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Logout tokens issued longer ago than this (plus the skew) are refused.
const MAX_AGE_SECS: i64 = 600;
const RETURN_TTL_SECS: i64 = 600;

fn refuse(text: impl Into<String>) -> FederationError {
    FederationError::IdToken(text.into())
}

/// Checks a logout token from the upstream `alias` and ends the sessions it names; returns
/// how many ended. Audited either way.
pub async fn backchannel(idp: &Idp, alias: &str, token: &str) -> Result<usize, FederationError> {
    let upstream = upstreams::find(idp, alias)
        .await?
        .filter(|u| u.alias == alias)
        .ok_or_else(|| FederationError::UnknownUpstream(alias.to_string()))?;
    let result = end_named_sessions(idp, &upstream, token).await;
    super::audit_logout(
        idp,
        &upstream,
        "federation.backchannel_logout",
        &result,
        |(sub, sid, ended)| json!({"subject": sub, "upstream_sid": sid, "sessions_ended": ended}),
    )
    .await;
    result.map(|(_, _, ended)| ended)
}

async fn end_named_sessions(
    idp: &Idp,
    upstream: &upstreams::Upstream,
    token: &str,
) -> Result<(Option<String>, Option<String>, usize), FederationError> {
    if !upstream.is_active() {
        return Err(FederationError::Disabled);
    }
    let jws = Jws::parse(token).map_err(|e| refuse(format!("the logout token: {e}")))?;
    super::userinfo::verify_upstream_jws(
        idp,
        &upstream.issuer,
        &jws,
        "logout token",
        FederationError::IdToken,
    )
    .await?;
    let claims: Value = jws
        .claims()
        .map_err(|_| refuse("the logout token's claims are not JSON"))?;
    if claims["iss"].as_str() != Some(upstream.issuer.as_str()) {
        return Err(refuse("the logout token's iss is not the upstream"));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => *a == upstream.client_id,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(&upstream.client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(refuse("the logout token is not for Kizuna's client"));
    }
    let now = kizuna_core::time::now_unix();
    let skew = idp.config.upstream_clock_skew_secs;
    let iat = claims["iat"]
        .as_i64()
        .ok_or_else(|| refuse("the logout token has no iat"))?;
    if iat > now + skew || iat < now - MAX_AGE_SECS - skew {
        return Err(refuse("the logout token's iat is out of range"));
    }
    if claims["exp"].as_i64().is_some_and(|exp| exp <= now - skew) {
        return Err(refuse("the logout token has expired"));
    }
    if claims["events"].get(LOGOUT_EVENT).is_none() {
        return Err(refuse("the logout token has no back-channel logout event"));
    }
    if claims.get("nonce").is_some() {
        return Err(refuse("a logout token must not carry a nonce"));
    }
    let sub = claims["sub"].as_str().map(str::to_string);
    let sid = claims["sid"].as_str().map(str::to_string);
    if sub.is_none() && sid.is_none() {
        return Err(refuse("the logout token names neither sub nor sid"));
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty() && j.len() <= 255)
        .ok_or_else(|| refuse("the logout token has no jti"))?;
    super::use_once(
        idp,
        &format!("upstream:{}", upstream.id),
        jti,
        now + MAX_AGE_SECS + 2 * skew,
        refuse("the logout token was already used"),
    )
    .await?;
    let db = &idp.core.db;
    let federated =
        federation::session_ids(db, &upstream.id, sub.as_deref(), sid.as_deref()).await?;
    let ended = end_federated(idp, &federated).await?;
    Ok((sub, sid, ended))
}

/// Ends the live Kizuna sessions among `federated` (session ids an upstream's sign-in
/// started), each with Kizuna's own logout; returns how many ended.
pub(super) async fn end_federated(
    idp: &Idp,
    federated: &[String],
) -> Result<usize, FederationError> {
    let named = store::sessions::unended_owners(&idp.core.db, federated).await?;
    let mut ended = 0;
    for (sid, user_id) in named {
        if let Some(session) = sessions::find_live(idp, &user_id, &sid).await? {
            crate::logout::end_session(idp, &session).await?;
            ended += 1;
        }
    }
    Ok(ended)
}

/// For RP-initiated logout of a federated session: the upstream's end-session URL to send
/// the browser to (with the upstream ID token as hint), remembering `return_to` (the city
/// service's page, with its `state`) for when the upstream sends the browser back.
pub async fn upstream_logout(
    idp: &Idp,
    session: &Session,
    return_to: Option<String>,
) -> Result<Option<String>, FederationError> {
    let Some((upstream_id, id_token)) =
        federation::session_upstream(&idp.core.db, &session.sid).await?
    else {
        return Ok(None);
    };
    let Some(upstream) = upstreams::find(idp, &upstream_id).await? else {
        return Ok(None);
    };
    if !upstream.is_active() || !upstream.propagate_logout {
        return Ok(None);
    }
    if let Some(saml) = &upstream.saml {
        if saml.slo_url.is_none() {
            return Ok(None);
        }
        let state = remember_return(idp, return_to.as_deref()).await?;
        return super::saml::slo::logout_url(idp, &upstream, saml, id_token.as_deref(), &state)
            .await;
    }
    let endpoint = match idp.federation.metadata(&upstream.issuer, false).await {
        Ok(md) => md.additional_metadata().end_session_endpoint.clone(),
        Err(e) => {
            tracing::warn!(error = %e, upstream = %upstream.alias, "no logout at the upstream");
            None
        }
    };
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    let state = remember_return(idp, return_to.as_deref()).await?;
    let back = idp.endpoint("/federation/logout/done");
    let mut params = vec![
        ("client_id", upstream.client_id.as_str()),
        ("post_logout_redirect_uri", back.as_str()),
        ("state", state.as_str()),
    ];
    if let Some(hint) = id_token.as_deref().filter(|t| !t.is_empty()) {
        params.push(("id_token_hint", hint));
    }
    Ok(Some(with_query(&endpoint, &params)))
}

/// Remembers where to go once the upstream sends the browser back; returns the state that
/// names it.
async fn remember_return(idp: &Idp, return_to: Option<&str>) -> Result<String, FederationError> {
    let state = secret::random_token();
    let now = kizuna_core::time::now_unix();
    federation::insert_logout(
        &idp.core.db,
        &secret::token_hash(&state),
        return_to,
        now,
        now + RETURN_TTL_SECS,
    )
    .await?;
    Ok(state)
}

/// Where to go once the upstream sent the browser back after logout: `Some(return_to)` for
/// a known `state` (used once), `None` for an unknown one.
pub async fn returned(idp: &Idp, state: &str) -> Result<Option<Option<String>>, FederationError> {
    Ok(federation::take_logout(
        &idp.core.db,
        &secret::token_hash(state),
        kizuna_core::time::now_unix(),
    )
    .await?)
}
