//! Token introspection (RFC 7662) for resource servers, which authenticate as clients.
//! Inactive, unknown and malformed tokens all answer `{"active": false}`. An active answer
//! about a person's token tells the resource server who the person is (`sub`): that is a
//! release, recorded in the person's history (once per resource server and token) before
//! the answer leaves.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use kizuna_core::secret;

use kizuna_core::web::client_cert::Channel;

use crate::Idp;
use crate::client_auth;
use crate::error::OAuthError;
use crate::releases::{self, How, Released};
use crate::store::{clients, grants, users};
use crate::token::{form_params, no_store};
use crate::tokens;

pub async fn endpoint(
    State(idp): State<Idp>,
    channel: Option<Extension<Channel>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = channel.as_ref().and_then(|c| c.leaf());
    match answer(&idp, &headers, &body, certificate).await {
        Ok(v) => no_store(v),
        Err(e) => e.into_response(),
    }
}

async fn answer(
    idp: &Idp,
    headers: &HeaderMap,
    body: &[u8],
    certificate: Option<&[u8]>,
) -> Result<Value, OAuthError> {
    let params = form_params(headers, body)?;
    let caller = client_auth::authenticate(idp, headers, &params, certificate)
        .await?
        .client;
    if crate::mtls::is_certificate_client(&caller) {
        return Err(OAuthError::invalid_client(
            "a certificate acting as a client of its own may not introspect tokens: register a client for the resource server",
        ));
    }
    if caller.is_public() {
        return Err(OAuthError::invalid_client(
            "public clients may not introspect tokens",
        ));
    }
    let token = params
        .get("token")
        .map_err(OAuthError::invalid_request)?
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    if token.contains('.') {
        return Ok(match tokens::check_access_token(idp, token).await? {
            Ok(c) => {
                // A client's own token (client credentials) names no person.
                if c.sub != c.client_id {
                    released(idp, &caller.client_id, &c.sub, &c.scope, &c.jti).await?;
                }
                let mut v = json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": c.scope,
                    "client_id": c.client_id,
                    "sub": c.sub,
                    "aud": c.aud,
                    "iss": c.iss,
                    "exp": c.exp,
                    "iat": c.iat,
                    "jti": c.jti,
                });
                if let Some(t) = c.auth_time {
                    v["auth_time"] = json!(t);
                }
                if let Some(acr) = c.acr {
                    v["acr"] = json!(acr);
                }
                // RFC 8705 §3.2: the resource server compares it with the certificate the
                // token came with.
                if let Some(cnf) = c.cnf {
                    v["cnf"] = json!(cnf);
                }
                // RFC 8693 §4.1: the service acting for the person (an exchanged token).
                if let Some(act) = c.act {
                    v["act"] = json!(act);
                }
                v
            }
            Err(_) => json!({"active": false}),
        });
    }
    let token_hash = secret::token_hash(token);
    let mut conn = idp.core.db.conn().await?;
    let mut row =
        grants::live_refresh_token(&mut conn, &token_hash, kizuna_core::time::now_unix()).await?;
    if let Some(live) = &row
        && !(clients::status(&mut conn, &live.client_id)
            .await?
            .as_deref()
            == Some("active")
            && users::is_active(&mut conn, &live.user_id).await?)
    {
        row = None;
    }
    drop(conn);
    if let Some(live) = &row {
        released(
            idp,
            &caller.client_id,
            &live.user_id,
            &live.scope,
            &token_hash,
        )
        .await?;
    }
    Ok(match row {
        Some(live) => json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": live.scope,
            "client_id": live.client_id,
            "sub": live.user_id,
            "iss": idp.issuer(),
            "iat": live.created_at,
            "exp": live.expires_at,
        }),
        None => json!({"active": false}),
    })
}

/// Records that the resource server `caller` learned `user_id` from the token `token_ref`.
async fn released(
    idp: &Idp,
    caller: &str,
    user_id: &str,
    scope: &str,
    token_ref: &str,
) -> Result<(), OAuthError> {
    releases::record_introspection(
        idp,
        &Released {
            user_id,
            client_id: caller,
            claims: &[],
            scope,
            how: How::Introspection,
            purpose: None,
        },
        token_ref,
    )
    .await?;
    Ok(())
}
