//! Token introspection (RFC 7662) for resource servers, which authenticate as clients.
//! Inactive, unknown and malformed tokens all answer `{"active": false}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use kizuna_core::secret;

use crate::Idp;
use crate::client_auth;
use crate::error::OAuthError;
use crate::token::{form_params, no_store};
use crate::tokens;

pub async fn endpoint(State(idp): State<Idp>, headers: HeaderMap, body: Bytes) -> Response {
    match answer(&idp, &headers, &body).await {
        Ok(v) => no_store(v),
        Err(e) => e.into_response(),
    }
}

async fn answer(idp: &Idp, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let params = form_params(headers, body)?;
    let caller = client_auth::authenticate(idp, headers, &params).await?;
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
                v
            }
            Err(_) => json!({"active": false}),
        });
    }
    let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT g.client_id, g.user_id, g.scope, r.created_at, r.expires_at FROM refresh_tokens r \
         JOIN grants g ON g.id = r.grant_id \
         JOIN clients c ON c.id = g.client_id AND c.status = 'active' \
         JOIN users u ON u.id = g.user_id AND u.status = 'active' \
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND g.revoked_at IS NULL \
         AND r.expires_at > $2 AND g.expires_at > $2",
    )
    .bind(secret::token_hash(token))
    .bind(kizuna_core::time::now_unix())
    .fetch_optional(idp.core.db.pool())
    .await?;
    Ok(match row {
        Some((client_id, sub, scope, iat, exp)) => json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": scope,
            "client_id": client_id,
            "sub": sub,
            "iss": idp.issuer(),
            "iat": iat,
            "exp": exp,
        }),
        None => json!({"active": false}),
    })
}
