//! Token revocation (RFC 7009). Revoking a refresh token revokes its grant (every token of
//! that sign-in); revoking an access token blocks it until it would have expired. Unknown
//! tokens are answered with success, as the RFC asks.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::secret;

use kizuna_core::web::client_cert::Channel;

use crate::Idp;
use crate::client_auth;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::store::grants;
use crate::token::form_params;
use crate::tokens::{self, AccessClaims};

pub async fn endpoint(
    State(idp): State<Idp>,
    channel: Option<Extension<Channel>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = channel.as_ref().and_then(|c| c.leaf());
    match revoke(&idp, &headers, &body, certificate).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn revoke(
    idp: &Idp,
    headers: &HeaderMap,
    body: &[u8],
    certificate: Option<&[u8]>,
) -> Result<(), OAuthError> {
    let params = form_params(headers, body)?;
    let client = client_auth::authenticate(idp, headers, &params, certificate)
        .await?
        .client;
    let token = params
        .get("token")
        .map_err(OAuthError::invalid_request)?
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    if token.contains('.') {
        let Ok(jws) = idp.keys.verify_own(token).await else {
            return Ok(());
        };
        let Ok(claims) = jws.claims::<AccessClaims>() else {
            return Ok(());
        };
        return revoke_access_token(idp, &client, &claims).await;
    }
    let mut tx = idp.core.db.begin().await?;
    let grant = grants::refresh_token_owner(tx.conn(), &secret::token_hash(token)).await?;
    let Some((grant_id, owner)) = grant else {
        return Ok(());
    };
    if owner != client.client_id {
        return Err(OAuthError::unauthorized_client(
            "the token was issued to another client",
        ));
    }
    if tokens::revoke_grant(tx.conn(), &grant_id, "revoked by the client").await? {
        let entries = audit::append_in(
            tx.conn(),
            &[AuditEvent::new(
                Actor::client(&client.client_id),
                "token.revoke",
                format!("grant:{grant_id}"),
            )
            .details(json!({"token_type": "refresh_token"}))],
        )
        .await?;
        tx.commit().await?;
        audit::publish(&entries);
    }
    Ok(())
}

async fn revoke_access_token(
    idp: &Idp,
    client: &Client,
    claims: &AccessClaims,
) -> Result<(), OAuthError> {
    if claims.client_id != client.client_id {
        return Err(OAuthError::unauthorized_client(
            "the token was issued to another client",
        ));
    }
    if claims.exp <= kizuna_core::time::now_unix() {
        return Ok(());
    }
    let mut tx = idp.core.db.begin().await?;
    if grants::revoke_access_token(tx.conn(), &claims.jti, claims.exp).await? {
        let entries = audit::append_in(
            tx.conn(),
            &[AuditEvent::new(
                Actor::client(&client.client_id),
                "token.revoke",
                format!("jti:{}", claims.jti),
            )
            .details(json!({"token_type": "access_token", "sub": claims.sub}))],
        )
        .await?;
        tx.commit().await?;
        audit::publish(&entries);
    }
    Ok(())
}
