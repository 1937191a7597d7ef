//! The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6). A code works once; a
//! second use revokes every token the first one issued.

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::secret;

use crate::Idp;
use crate::authorize::request::Params;
use crate::clients::{Client, GrantType};
use crate::error::OAuthError;
use crate::mtls::Bound;
use crate::store::codes;
use crate::tokens::{self, Authorization, TokenResponse};
use crate::users;

/// S256: BASE64URL(SHA-256(code_verifier)) (RFC 7636 §4.2).
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret::sha256(verifier.as_bytes()))
}

fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn same_client(row: &codes::Code, client: &Client) -> Result<(), OAuthError> {
    if row.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    Ok(())
}

/// A used code presented again: revokes what its grant issued, audited; the error to answer.
async fn replayed(
    mut tx: kizuna_core::db::WriteTx,
    client: &Client,
    row: &codes::Code,
) -> Result<OAuthError, OAuthError> {
    let revoked =
        tokens::revoke_grant(tx.conn(), &row.grant_id, "authorization code replayed").await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::client(&client.client_id),
            "token.code_replay",
            format!("grant:{}", row.grant_id),
        )
        .outcome(Outcome::Denied)
        .details(json!({"user_id": row.user_id, "grant_revoked": revoked}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(OAuthError::invalid_grant(
        "the authorization code was already used; the tokens issued with it are revoked",
    ))
}

pub async fn exchange(
    idp: &Idp,
    client: &Client,
    params: &Params,
    bound: Option<&Bound>,
) -> Result<TokenResponse, OAuthError> {
    let get = |name| params.get(name).map_err(OAuthError::invalid_request);
    let code = get("code")?.ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let redirect_uri = get("redirect_uri")?;
    let verifier = get("code_verifier")?;
    let code_hash = secret::token_hash(code);
    let now = kizuna_core::time::now_unix();

    let mut tx = idp.core.db.begin().await?;
    let row = match codes::take_code(tx.conn(), &code_hash, now).await? {
        Some(row) => row,
        // Unknown, or used before: a replay ends the grant the code started.
        None => {
            let row = codes::find_code(tx.conn(), &code_hash)
                .await?
                .ok_or_else(|| OAuthError::invalid_grant("the authorization code is not valid"))?;
            same_client(&row, client)?;
            return Err(replayed(tx, client, &row).await?);
        }
    };
    // A refusal from here on rolls the transaction back, so the code stays unused.
    same_client(&row, client)?;
    if row.expires_at <= now {
        return Err(OAuthError::invalid_grant(
            "the authorization code has expired",
        ));
    }
    if redirect_uri != Some(row.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&row.code_challenge, verifier) {
        (Some(challenge), Some(v)) => {
            if !valid_verifier(v)
                || !secret::constant_time_eq(pkce_s256(v).as_bytes(), challenge.as_bytes())
            {
                return Err(OAuthError::invalid_grant(
                    "PKCE verification failed: code_verifier does not match",
                ));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    let user = users::find(tx.conn(), &row.user_id)
        .await?
        .filter(|u| u.status == "active")
        .ok_or_else(|| OAuthError::invalid_grant("the account is no longer active"))?;
    let auth = Authorization {
        bound: bound.cloned(),
        grant_id: Some(row.grant_id.clone()),
        sid: row.sid,
        auth_time: Some(row.auth_time),
        acr: row.acr,
        amr: row.amr,
        scope: row.scope,
        nonce: row.nonce,
        claims: row.claims,
        exchange: None,
    };
    tokens::create_grant(
        tx.conn(),
        idp,
        &row.grant_id,
        &client.client_id,
        &user.id,
        &auth,
    )
    .await?;
    tokens::issue_for_person(
        idp,
        tx,
        client,
        &user,
        &auth,
        GrantType::AuthorizationCode,
        client.allows(GrantType::RefreshToken),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
