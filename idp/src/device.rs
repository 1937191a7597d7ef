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

use kizuna_core::web::client_cert::Channel;

use crate::Idp;
use crate::authorize::request::Params;
use crate::client_auth;
use crate::clients::{Client, GrantType};
use crate::error::OAuthError;
use crate::mtls::Bound;
use crate::sessions::Session;
use crate::store::codes;
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
    channel: Option<axum::Extension<Channel>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = channel.as_ref().and_then(|c| c.leaf());
    match start(&idp, &headers, &body, certificate).await {
        Ok(answer) => no_store(answer),
        Err(e) => e.into_response(),
    }
}

async fn start(
    idp: &Idp,
    headers: &HeaderMap,
    body: &[u8],
    certificate: Option<&[u8]>,
) -> Result<DeviceAuthorization, OAuthError> {
    let params = form_params(headers, body)?;
    let client = client_auth::authenticate(idp, headers, &params, certificate)
        .await?
        .client;
    if !client.allows(GrantType::DeviceCode) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the device grant",
        ));
    }
    let scope = requested_scope(&params, &client.scopes)?.unwrap_or_else(|| vec!["openid".into()]);
    let device_code = secret::random_token();
    let user_code = new_user_code();
    let now = kizuna_core::time::now_unix();
    codes::insert_device_code(
        &idp.core.db,
        &codes::NewDeviceCode {
            device_code_hash: &secret::token_hash(&device_code),
            user_code: &user_code,
            client_id: &client.client_id,
            scope: &scope,
            poll_interval: idp.config.device_poll_interval_secs,
            created_at: now,
            expires_at: now + idp.config.device_code_ttl_secs,
        },
    )
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

/// The device code grant at the token endpoint (RFC 8628 §3.4–3.5).
pub async fn exchange(
    idp: &Idp,
    client: &Client,
    params: &Params,
    bound: Option<&Bound>,
) -> Result<TokenResponse, OAuthError> {
    let code = params
        .get("device_code")
        .map_err(OAuthError::invalid_request)?
        .ok_or_else(|| OAuthError::invalid_request("device_code is missing"))?;
    let hash = secret::token_hash(code);
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let row = codes::find_device_code(tx.conn(), &hash)
        .await?
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
            codes::record_poll(tx.conn(), &hash, now, interval).await?;
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
    if !codes::consume_device_code(tx.conn(), &hash).await? {
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
        bound: bound.cloned(),
        grant_id: Some(grant_id.clone()),
        sid: row.sid,
        auth_time: row.auth_time,
        acr: row.acr,
        amr: row.amr,
        scope: users::permitted_scopes(tx.conn(), &user.id, row.scope).await?,
        nonce: None,
        claims: None,
        exchange: None,
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
    tokens::issue_for_person(
        idp,
        tx,
        client,
        &user,
        &auth,
        GrantType::DeviceCode,
        client.allows(GrantType::RefreshToken),
    )
    .await
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
    let row =
        codes::pending_device_code(&idp.core.db, &code, kizuna_core::time::now_unix()).await?;
    Ok(row.map(|(client_id, scope)| PendingDevice {
        user_code: code,
        client_id,
        scope,
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
    let answered = codes::answer_device_code(
        tx.conn(),
        &pending.user_code,
        &codes::DeviceAnswer {
            approve,
            user_id: &session.user_id,
            sid: &session.sid,
            auth_time: session.auth_time,
            acr: session.acr.as_deref(),
            amr: &session.amr,
        },
        kizuna_core::time::now_unix(),
    )
    .await?;
    if !answered {
        return Ok(false);
    }
    if approve {
        crate::consent::grant(
            idp,
            tx.conn(),
            &session.user_id,
            &pending.client_id,
            &crate::consent::Agreement {
                scopes: &pending.scope,
                declined: &[],
                linked: &[],
                given_by: crate::consent::DEVICE_PAGE,
            },
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
