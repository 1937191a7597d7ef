//! The refresh token grant (RFC 6749 §6) with rotation: every use returns a new refresh
//! token; presenting a used one again revokes the whole grant (RFC 9700 §4.14.2).

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::secret;

use super::requested_scope;
use crate::Idp;
use crate::authorize::request::Params;
use crate::clients::{Client, GrantType};
use crate::error::OAuthError;
use crate::mtls::Bound;
use crate::store::grants;
use crate::tokens::{self, Authorization, TokenResponse};
use crate::users;

/// Rotates a refresh token: a new one, a new access token and (with `openid`) ID token.
pub async fn refresh(
    idp: &Idp,
    client: &Client,
    params: &Params,
    bound: Option<&Bound>,
) -> Result<TokenResponse, OAuthError> {
    let token = params
        .get("refresh_token")
        .map_err(OAuthError::invalid_request)?
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let token_hash = secret::token_hash(token);
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let row = grants::refresh_grant(tx.conn(), &token_hash).await?;
    let row = row.ok_or_else(|| OAuthError::invalid_grant("the refresh token is not valid"))?;
    if row.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if row.revoked_at.is_some() {
        return Err(OAuthError::invalid_grant(
            "the refresh token has been revoked",
        ));
    }
    let first_use = grants::use_refresh_token(tx.conn(), &token_hash, now).await?;
    if row.used_at.is_some() || !first_use {
        tokens::revoke_grant(tx.conn(), &row.grant_id, "refresh token reused").await?;
        let entries = audit::append_in(
            tx.conn(),
            &[AuditEvent::new(
                Actor::client(&client.client_id),
                "token.refresh_reuse",
                format!("grant:{}", row.grant_id),
            )
            .outcome(Outcome::Denied)
            .details(json!({"user_id": row.user_id, "family_revoked": true}))],
        )
        .await?;
        tx.commit().await?;
        audit::publish(&entries);
        return Err(OAuthError::invalid_grant(
            "the refresh token was already used; every token of this sign-in is revoked",
        ));
    }
    if row.expires_at <= now {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    // The person's consent bounds the grant: once it expires (or the client's purpose
    // changed) the client must ask again at a sign-in.
    if client.require_consent
        && !crate::consent::in_force(idp, tx.conn(), &row.user_id, &client.client_id).await?
    {
        return Err(OAuthError::invalid_grant(
            "the person's consent to this service has expired or no longer covers its purpose",
        ));
    }
    let granted = row.scope;
    let scope = requested_scope(params, &granted)?.unwrap_or_else(|| granted.clone());
    let user = users::find(tx.conn(), &row.user_id)
        .await?
        .filter(|u| u.status == "active")
        .ok_or_else(|| OAuthError::invalid_grant("the account is no longer active"))?;
    // A role withdrawn since the sign-in takes its management scopes with it.
    let scope = users::permitted_scopes(tx.conn(), &user.id, scope).await?;
    let auth = Authorization {
        bound: bound.cloned(),
        grant_id: Some(row.grant_id.clone()),
        sid: row.sid,
        auth_time: row.auth_time,
        acr: row.acr,
        amr: row.amr,
        scope,
        nonce: None,
        claims: row.claims,
        exchange: None,
    };
    tokens::issue_for_person(idp, tx, client, &user, &auth, GrantType::RefreshToken, true).await
}
