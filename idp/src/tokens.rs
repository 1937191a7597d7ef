//! Minting tokens: JWT access tokens (RFC 9068), ID tokens (OpenID Connect Core §2), opaque
//! rotating refresh tokens; grants (the family every token of one authorization belongs to)
//! and their revocation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::{AnyConnection, OneRead, WriteTx};
use kizuna_core::pki::Serial;
use kizuna_core::{jose, secret};

use crate::Idp;
use crate::clients::{Client, ClientStatus, GrantType};
use crate::error::OAuthError;
use crate::federation::accounts::AMR_FED;
use crate::mtls::Bound;
use crate::releases::{self, How, Released};
use crate::store::{clients as store_clients, grants, users};
use crate::users::UserRecord;

/// The token endpoint's success response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
    /// What a token exchange issued (RFC 8693 §2.2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// How and when the person authenticated, and what the authorization covers.
#[derive(Debug, Clone, Default)]
pub struct Authorization {
    pub grant_id: Option<String>,
    pub sid: Option<String>,
    pub auth_time: Option<i64>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    /// The request's `claims` parameter (OpenID Connect Core §5.5), kept for
    /// `verified_claims` at the ID token and UserInfo.
    pub claims: Option<Value>,
    /// The client certificate the access token is bound to (RFC 8705 §3).
    pub bound: Option<Bound>,
    /// For a token exchange (RFC 8693): the service the token is for (its `aud`), and the
    /// client acting (its `act`); the token lives no longer than `until`.
    pub exchange: Option<Exchange>,
}

/// The audience, actor and end of an exchanged token.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub audience: String,
    pub actor: String,
    pub until: i64,
}

/// `act` of an exchanged token (RFC 8693 §4.1): the client acting for the person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Act {
    pub sub: String,
}

/// `cnf` of a certificate-bound access token (RFC 8705 §3.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// Claims of Kizuna's JWT access tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The grant this token was issued under; revoking the grant revokes the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// The certificate the token is bound to: only a request presenting it may use the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// That certificate's serial when this Kizuna issued it: its revocation, or a hold, ends
    /// the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kizuna_cert: Option<String>,
    /// The client acting for the person in an exchanged token (RFC 8693 §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
}

pub async fn access_token(
    idp: &Idp,
    client: &Client,
    sub: &str,
    auth: &Authorization,
) -> Result<(String, AccessClaims), OAuthError> {
    let now = kizuna_core::time::now_unix();
    let claims = AccessClaims {
        iss: idp.issuer().to_string(),
        sub: sub.to_string(),
        aud: auth
            .exchange
            .as_ref()
            .map_or_else(|| idp.issuer().to_string(), |e| e.audience.clone()),
        exp: [
            auth.bound.as_ref().and_then(|b| b.not_after),
            auth.exchange.as_ref().map(|e| e.until),
        ]
        .into_iter()
        .flatten()
        .fold(now + idp.config.access_token_ttl_secs, i64::min),
        iat: now,
        jti: secret::new_id(),
        client_id: client.client_id.clone(),
        scope: auth.scope.join(" "),
        auth_time: auth.auth_time,
        acr: auth.acr.clone(),
        amr: auth.amr.clone(),
        sid: auth.sid.clone(),
        gid: auth.grant_id.clone(),
        cnf: auth.bound.as_ref().map(|b| Confirmation {
            x5t_s256: b.thumbprint.clone(),
        }),
        kizuna_cert: auth
            .bound
            .as_ref()
            .and_then(|b| b.serial.as_ref())
            .map(|s| s.to_string()),
        act: auth.exchange.as_ref().map(|e| Act {
            sub: e.actor.clone(),
        }),
    };
    let (kid, key) = idp.keys.active(&client.id_token_alg).await.map_err(|e| {
        tracing::error!(error = %e, "no signing key");
        OAuthError::server_error()
    })?;
    let token = jose::sign(&key, &kid, Some("at+jwt"), &claims)?;
    Ok((token, claims))
}

/// The end of every grant that issues tokens for a person (authorization code, refresh
/// token, device code): mints the access token, an ID token when `openid` was granted, and
/// a refresh token in `grant_id` when `refresh`; records `token.issue` (who, which claims)
/// and, when the ID token carries claims about the person, the release in their history, in
/// the caller's transaction, and commits it: nothing is issued unaudited or unrecorded.
pub async fn issue_for_person(
    idp: &Idp,
    mut tx: WriteTx,
    client: &Client,
    user: &UserRecord,
    auth: &Authorization,
    grant_type: GrantType,
    refresh: bool,
) -> Result<TokenResponse, OAuthError> {
    let grant_id = auth.grant_id.clone().unwrap_or_default();
    let refresh_token = if refresh {
        Some(new_refresh_token(tx.conn(), &grant_id).await?)
    } else {
        None
    };
    let (access_token, access) = access_token(idp, client, &user.id, auth).await?;
    let (id_token, released) = if auth.scope.iter().any(|s| s == "openid") {
        let (token, released) = id_token(idp, client, user, auth, Some(&access_token)).await?;
        (Some(token), released)
    } else {
        (None, Vec::new())
    };
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::client(&client.client_id),
            "token.issue",
            format!("user:{}", user.id),
        )
        .details(json!({
            "grant_type": grant_type.as_str(),
            "scope": access.scope,
            "claims": released,
            "jti": access.jti,
            "grant_id": grant_id,
            "id_token": id_token.is_some(),
            "refresh_token": refresh_token.is_some(),
            "cert_serial": access.kizuna_cert,
        }))],
    )
    .await?;
    if !released.is_empty() {
        releases::record(
            tx.conn(),
            &Released {
                user_id: &user.id,
                client_id: &client.client_id,
                claims: &released,
                scope: &access.scope,
                how: How::IdToken,
                purpose: None,
            },
            entries.first().map(|e| e.id.as_str()),
        )
        .await?;
    }
    tx.commit().await?;
    audit::publish(&entries);
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: access.exp - access.iat,
        refresh_token,
        id_token,
        scope: auth.scope.join(" "),
        issued_token_type: None,
    })
}

/// The scopes that release claims about the person, and the claims each releases (OpenID
/// Connect Core §5.4, as far as Kizuna holds them). [`user_claims`] releases no others.
const SCOPE_CLAIMS: [(&str, &[&str]); 2] = [
    ("profile", &["preferred_username", "name", "updated_at"]),
    ("email", &["email", "email_verified"]),
];

/// The scopes that release claims about the person.
pub const PERSON_SCOPES: [&str; 2] = [SCOPE_CLAIMS[0].0, SCOPE_CLAIMS[1].0];

/// The claims `scope` may release about the person (what a consent page lists).
pub fn claims_of(scope: &[String]) -> Vec<String> {
    SCOPE_CLAIMS
        .iter()
        .filter(|(s, _)| scope.iter().any(|x| x == s))
        .flat_map(|(_, claims)| claims.iter().map(|c| c.to_string()))
        .collect()
}

/// The claims a scope releases about the person (OpenID Connect Core §5.4), without those
/// the person declined to give the client.
pub fn user_claims(user: &UserRecord, scope: &[String], declined: &[String]) -> Map<String, Value> {
    let mut claims = scope_claims(user, scope);
    claims.retain(|name, _| !declined.contains(name));
    claims
}

fn scope_claims(user: &UserRecord, scope: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    let has = |s: &str| scope.iter().any(|x| x == s);
    if has("profile") {
        claims.insert("preferred_username".into(), json!(user.username));
        if let Some(name) = &user.name {
            claims.insert("name".into(), json!(name));
        }
        claims.insert("updated_at".into(), json!(user.updated_at));
    }
    if has("email")
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), json!(email));
        claims.insert("email_verified".into(), json!(user.email_verified));
    }
    claims
}

/// The left half of the token's SHA-256, as `at_hash` wants it (OIDC Core §3.1.3.6).
fn half_hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(&secret::sha256(value.as_bytes())[..16])
}

pub async fn id_token(
    idp: &Idp,
    client: &Client,
    user: &UserRecord,
    auth: &Authorization,
    access_token: Option<&str>,
) -> Result<(String, Vec<String>), OAuthError> {
    let now = kizuna_core::time::now_unix();
    let declined = crate::consent::declined(idp, &user.id, &client.client_id).await?;
    let mut claims = user_claims(user, &auth.scope, &declined);
    let mut released: Vec<String> = claims.keys().cloned().collect();
    if let Some((verified, names)) = crate::assurance::claims::release(
        idp,
        &client.client_id,
        &user.id,
        auth.claims.as_ref(),
        "id_token",
    )
    .await?
    {
        claims.insert("verified_claims".into(), verified);
        released.extend(names);
    }
    claims.insert("iss".into(), json!(idp.issuer()));
    claims.insert("sub".into(), json!(user.id));
    claims.insert("aud".into(), json!(client.client_id));
    claims.insert("azp".into(), json!(client.client_id));
    claims.insert("exp".into(), json!(now + idp.config.id_token_ttl_secs));
    claims.insert("iat".into(), json!(now));
    if let Some(t) = auth.auth_time {
        claims.insert("auth_time".into(), json!(t));
    }
    if let Some(nonce) = &auth.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    if let Some(acr) = &auth.acr {
        claims.insert("acr".into(), json!(acr));
    }
    if !auth.amr.is_empty() {
        claims.insert("amr".into(), json!(auth.amr));
    }
    if let Some(sid) = &auth.sid {
        claims.insert("sid".into(), json!(sid));
        if auth.amr.iter().any(|a| a == AMR_FED)
            && let Some(issuer) = crate::federation::accounts::session_upstream(idp, sid).await?
        {
            claims.insert("idp".into(), json!(issuer));
        }
    }
    if let Some(at) = access_token {
        claims.insert("at_hash".into(), json!(half_hash(at)));
    }
    let (kid, key) = idp.keys.active(&client.id_token_alg).await.map_err(|e| {
        tracing::error!(error = %e, "no signing key");
        OAuthError::server_error()
    })?;
    Ok((
        jose::sign(&key, &kid, Some("JWT"), &Value::Object(claims))?,
        released,
    ))
}

/// Records a grant: the authorization every refresh token and access token of one sign-in
/// belongs to.
pub async fn create_grant(
    conn: &mut AnyConnection,
    idp: &Idp,
    grant_id: &str,
    client_id: &str,
    user_id: &str,
    auth: &Authorization,
) -> Result<(), sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    grants::insert(
        conn,
        &grants::NewGrant {
            id: grant_id,
            client_id,
            user_id,
            sid: auth.sid.as_deref(),
            scope: &auth.scope,
            auth_time: auth.auth_time,
            acr: auth.acr.as_deref(),
            amr: &auth.amr,
            created_at: now,
            expires_at: now + idp.config.refresh_token_ttl_secs,
            claims: auth.claims.as_ref(),
        },
    )
    .await
}

/// A new refresh token in the grant; returns the token (stored only as its hash). It expires
/// with the grant: rotation never extends a sign-in's lifetime.
pub async fn new_refresh_token(
    conn: &mut AnyConnection,
    grant_id: &str,
) -> Result<String, sqlx::Error> {
    let token = secret::random_token();
    grants::insert_refresh_token(
        conn,
        &secret::token_hash(&token),
        grant_id,
        kizuna_core::time::now_unix(),
    )
    .await?;
    Ok(token)
}

/// Revokes a grant: its refresh tokens stop working and its access tokens become inactive.
pub async fn revoke_grant(
    conn: &mut AnyConnection,
    grant_id: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    grants::revoke(conn, grant_id, reason, kizuna_core::time::now_unix()).await
}

/// Why an access token is not (or no longer) valid.
#[derive(Debug)]
pub enum Inactive {
    Invalid,
    Expired,
    Revoked,
}

/// Checks one of Kizuna's access tokens: signature, issuer, expiry, revocation (of the token
/// itself or of its grant), and that its client and account are still active.
pub async fn check_access_token(
    idp: &Idp,
    token: &str,
) -> Result<Result<AccessClaims, Inactive>, sqlx::Error> {
    let jws = match idp.keys.verify_own(token).await {
        Ok(jws) if jws.header.typ.as_deref() == Some("at+jwt") => jws,
        // The key could not be read: not the token's fault (a 503, not "invalid").
        Err(crate::keys::VerifyError::Storage(e)) => return Err(e),
        _ => return Ok(Err(Inactive::Invalid)),
    };
    let Ok(claims) = jws.claims::<AccessClaims>() else {
        return Ok(Err(Inactive::Invalid));
    };
    if claims.iss != idp.issuer() {
        return Ok(Err(Inactive::Invalid));
    }
    if claims.exp <= kizuna_core::time::now_unix() {
        return Ok(Err(Inactive::Expired));
    }
    // Bound to a certificate that was revoked or held since, revoked itself or through its
    // grant, or issued to a client or an account that has since been disabled or deleted:
    // inactive at once, on every replica.
    if !certificate_admits(idp, &claims).await? {
        return Ok(Err(Inactive::Revoked));
    }
    // The checks go to the database as one statement: one round trip.
    let mut read = OneRead::new();
    let grant_id = claims.gid.as_deref().unwrap_or("");
    let revocations = grants::access_token_revocations(&mut read, &claims.jti, grant_id);
    let client = store_clients::status_of(&mut read, &claims.client_id);
    let person =
        (claims.sub != claims.client_id).then(|| users::active_count(&mut read, &claims.sub));
    let values = read.fetch(&mut *idp.core.db.conn().await?).await?;
    let revoked = values.get(revocations)? > 0
        || !client_may_act(values.get(client)?, &claims)
        || match person {
            Some(active) => values.get(active)? == 0,
            None => false,
        };
    Ok(if revoked {
        Err(Inactive::Revoked)
    } else {
        Ok(claims)
    })
}

/// A token bound to a certificate this Kizuna issued counts only while that certificate is
/// valid and was issued after its last status change (a hold ends it; a release does not
/// bring it back). A token bound to none passes.
async fn certificate_admits(idp: &Idp, claims: &AccessClaims) -> Result<bool, sqlx::Error> {
    let Some(serial) = &claims.kizuna_cert else {
        return Ok(true);
    };
    let Ok(serial) = serial.parse::<Serial>() else {
        return Ok(false);
    };
    Ok(idp
        .certificates
        .binding(&serial)
        .await?
        .is_some_and(|b| b.admits(claims.iat)))
}

/// Whether the token's client may still act: a registered client must be active; a
/// certificate acting as a client of its own has no registration, so its token counts only
/// bound to it.
fn client_may_act(status: Option<String>, claims: &AccessClaims) -> bool {
    match status {
        Some(status) => status == ClientStatus::Active.as_str(),
        None => {
            claims.kizuna_cert.is_some()
                && crate::mtls::names_a_certificate_client(&claims.client_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_release_only_the_claims_a_consent_page_lists_and_never_declined_ones() {
        let user = UserRecord {
            id: "u1".into(),
            username: "hanako".into(),
            email: Some("hanako@city.example".into()),
            email_verified_int: 1,
            name: Some("Hanako".into()),
            status: "active".into(),
            org_id: None,
            password_hash: None,
            failed_logins: 0,
            locked_until: 0,
            last_login_at: None,
            created_at: 1,
            updated_at: 2,
            email_verified: true,
        };
        let every: Vec<String> = PERSON_SCOPES.map(String::from).to_vec();
        let listed = claims_of(&every);
        let released = user_claims(&user, &every, &[]);
        assert!(
            released.keys().all(|k| listed.contains(k)),
            "{released:?} vs {listed:?}"
        );
        assert_eq!(released.len(), listed.len());
        let without_email = user_claims(&user, &every, &["email".into()]);
        assert!(!without_email.contains_key("email"));
        assert!(without_email.contains_key("name"));
        assert_eq!(claims_of(&["openid".into()]), Vec::<String>::new());
    }

    #[test]
    fn at_hash_matches_the_oidc_core_example() {
        // OpenID Connect Core, Appendix A.3 (access token jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y).
        assert_eq!(
            half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
