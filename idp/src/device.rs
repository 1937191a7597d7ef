//! The device authorization grant (RFC 8628) for kiosks and devices with a screen but no
//! keyboard: the device shows a user code, the person approves it on their phone at
//! `/device`, and the device polls the token endpoint.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::secret;

use crate::Idp;
use crate::authorize::request::Params;
use crate::client_auth;
use crate::clients::{Client, GrantType};
use crate::error::OAuthError;
use crate::sessions::Session;
use crate::token::{form_params, no_store, requested_scope};
use crate::tokens::{self, Authorization, TokenResponse};
use crate::users;

/// User codes use consonants only (no vowels: no words; no look-alikes), RFC 8628 §6.1.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

#[derive(Serialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: i64,
    interval: i64,
}

fn new_user_code() -> String {
    let bytes = secret::random_bytes::<8>();
    let chars: String = bytes
        .iter()
        .map(|b| USER_CODE_ALPHABET[(*b as usize) % USER_CODE_ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// Normalises what a person typed: upper case, without separators.
pub fn normalize_user_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == 8 && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then(|| format!("{}-{}", &code[..4], &code[4..]))
}

/// `POST /device_authorization` (RFC 8628 §3.1–3.2).
pub async fn authorization_endpoint(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match start(&idp, &headers, &body).await {
        Ok(answer) => no_store(answer),
        Err(e) => e.into_response(),
    }
}

async fn start(
    idp: &Idp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeviceAuthorization, OAuthError> {
    let params = form_params(headers, body)?;
    let client = client_auth::authenticate(idp, headers, &params).await?;
    if !client.allows(GrantType::DeviceCode) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the device grant",
        ));
    }
    let scope = requested_scope(&params, &client.scopes)?.unwrap_or_else(|| vec!["openid".into()]);
    let device_code = secret::random_token();
    let user_code = new_user_code();
    let now = kizuna_core::time::now_unix();
    sqlx::query(
        "INSERT INTO device_codes (device_code_hash, user_code, client_id, scope, poll_interval, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(secret::token_hash(&device_code))
    .bind(&user_code)
    .bind(&client.client_id)
    .bind(scope.join(" "))
    .bind(idp.config.device_poll_interval_secs)
    .bind(now)
    .bind(now + idp.config.device_code_ttl_secs)
    .execute(idp.core.db.pool())
    .await?;
    let verification_uri = idp.endpoint("/device");
    Ok(DeviceAuthorization {
        verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
        verification_uri,
        device_code,
        user_code,
        expires_in: idp.config.device_code_ttl_secs,
        interval: idp.config.device_poll_interval_secs,
    })
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    client_id: String,
    scope: String,
    status: String,
    poll_interval: i64,
    last_polled_at: Option<i64>,
    user_id: Option<String>,
    sid: Option<String>,
    auth_time: Option<i64>,
    acr: Option<String>,
    amr: String,
    expires_at: i64,
}

/// The device code grant at the token endpoint (RFC 8628 §3.4–3.5).
pub async fn exchange(
    idp: &Idp,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = params
        .get("device_code")
        .map_err(OAuthError::invalid_request)?
        .ok_or_else(|| OAuthError::invalid_request("device_code is missing"))?;
    let hash = secret::token_hash(code);
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let row: Option<DeviceRow> = sqlx::query_as(
        "SELECT client_id, scope, status, poll_interval, last_polled_at, user_id, sid, auth_time, acr, amr, expires_at \
         FROM device_codes WHERE device_code_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(tx.conn())
    .await?;
    let row = row
        .filter(|r| r.client_id == client.client_id)
        .ok_or_else(|| OAuthError::invalid_grant("the device code is not valid"))?;
    if row.expires_at <= now {
        return Err(OAuthError::expired_token(
            "the device code has expired; start again",
        ));
    }
    match row.status.as_str() {
        "pending" => {
            let too_fast = row
                .last_polled_at
                .is_some_and(|last| now - last < row.poll_interval);
            let interval = if too_fast {
                row.poll_interval + 5
            } else {
                row.poll_interval
            };
            sqlx::query("UPDATE device_codes SET last_polled_at = $1, poll_interval = $2 WHERE device_code_hash = $3")
                .bind(now)
                .bind(interval)
                .bind(&hash)
                .execute(tx.conn())
                .await?;
            tx.commit().await?;
            return Err(if too_fast {
                OAuthError::slow_down()
            } else {
                OAuthError::authorization_pending()
            });
        }
        "denied" => return Err(OAuthError::access_denied("the person declined")),
        "approved" => {}
        _ => {
            return Err(OAuthError::invalid_grant(
                "the device code was already used",
            ));
        }
    }
    let claimed = sqlx::query("UPDATE device_codes SET status = 'consumed' WHERE device_code_hash = $1 AND status = 'approved'")
        .bind(&hash)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if claimed != 1 {
        return Err(OAuthError::invalid_grant(
            "the device code was already used",
        ));
    }
    let user_id = row.user_id.unwrap_or_default();
    let user = users::find(tx.conn(), &user_id)
        .await?
        .filter(|u| u.status == "active")
        .ok_or_else(|| OAuthError::invalid_grant("the account is no longer active"))?;
    let grant_id = secret::new_id();
    let auth = Authorization {
        grant_id: Some(grant_id.clone()),
        sid: row.sid,
        auth_time: row.auth_time,
        acr: row.acr,
        amr: serde_json::from_str(&row.amr).unwrap_or_default(),
        scope: users::permitted_scopes(
            tx.conn(),
            &user.id,
            row.scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
        .await?,
        nonce: None,
        claims: None,
    };
    tokens::create_grant(
        tx.conn(),
        idp,
        &grant_id,
        &client.client_id,
        &user.id,
        &auth,
    )
    .await?;
    let refresh_token = if client.allows(GrantType::RefreshToken) {
        Some(tokens::new_refresh_token(tx.conn(), &grant_id).await?)
    } else {
        None
    };
    let (access_token, access) = tokens::access_token(idp, client, &user.id, &auth).await?;
    let (id_token, released) = if auth.scope.iter().any(|s| s == "openid") {
        let (t, r) = tokens::id_token(idp, client, &user, &auth, Some(&access_token)).await?;
        (Some(t), r)
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
            "grant_type": GrantType::DeviceCode.as_str(),
            "scope": access.scope,
            "claims": released,
            "jti": access.jti,
            "grant_id": grant_id,
        }))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: idp.config.access_token_ttl_secs,
        refresh_token,
        id_token,
        scope: auth.scope.join(" "),
    })
}

/// A pending device request a person is looking at.
pub struct PendingDevice {
    pub user_code: String,
    pub client_id: String,
    pub scope: Vec<String>,
}

/// Finds a pending, unexpired request by the code the person typed.
pub async fn find_pending(
    idp: &Idp,
    user_code: &str,
) -> Result<Option<PendingDevice>, sqlx::Error> {
    let Some(code) = normalize_user_code(user_code) else {
        return Ok(None);
    };
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT client_id, scope FROM device_codes WHERE user_code = $1 AND status = 'pending' AND expires_at > $2",
    )
    .bind(&code)
    .bind(kizuna_core::time::now_unix())
    .fetch_optional(idp.core.db.pool())
    .await?;
    Ok(row.map(|(client_id, scope)| PendingDevice {
        user_code: code,
        client_id,
        scope: scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    }))
}

/// Records the person's answer. Returns false when the code is no longer pending.
pub async fn decide(
    idp: &Idp,
    session: &Session,
    pending: &PendingDevice,
    approve: bool,
) -> Result<bool, sqlx::Error> {
    let mut tx = idp.core.db.begin().await?;
    let changed = sqlx::query(
        "UPDATE device_codes SET status = $1, user_id = $2, sid = $3, auth_time = $4, acr = $5, amr = $6 \
         WHERE user_code = $7 AND status = 'pending' AND expires_at > $8",
    )
    .bind(if approve { "approved" } else { "denied" })
    .bind(&session.user_id)
    .bind(&session.sid)
    .bind(session.auth_time)
    .bind(&session.acr)
    .bind(serde_json::to_string(&session.amr).unwrap_or_else(|_| "[]".into()))
    .bind(&pending.user_code)
    .bind(kizuna_core::time::now_unix())
    .execute(tx.conn())
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    if approve {
        crate::consent::grant(
            tx.conn(),
            &session.user_id,
            &pending.client_id,
            &pending.scope,
        )
        .await?;
        crate::sessions::add_client(tx.conn(), &session.sid, &pending.client_id).await?;
    }
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(&session.user_id),
            if approve {
                "device.approve"
            } else {
                "device.deny"
            },
            format!("client:{}", pending.client_id),
        )
        .details(json!({"scope": pending.scope}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_typable_and_normalised() {
        let code = new_user_code();
        assert_eq!(code.len(), 9);
        assert_eq!(
            normalize_user_code(&code.to_lowercase().replace('-', " ")),
            Some(code)
        );
        assert_eq!(normalize_user_code("bcdf-ghjk"), Some("BCDF-GHJK".into()));
        assert_eq!(
            normalize_user_code("AEIO-UAEI"),
            None,
            "vowels are not in the alphabet"
        );
        assert_eq!(normalize_user_code("BCDF"), None);
    }
}
