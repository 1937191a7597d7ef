//! The UserInfo endpoint (OpenID Connect Core §5.3): claims about the person, as far as the
//! access token's scopes allow. Every answer is an audit event naming the claims released
//! and a record in the person's release history, committed together.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use kizuna_core::audit::{self, Actor, AuditEvent};

use crate::Idp;
use crate::error::OAuthError;
use crate::releases::{self, How, Released};
use crate::store::grants;
use crate::token::no_store;
use crate::tokens::{self, Inactive};
use crate::users;

/// The bearer token from the Authorization header (RFC 6750 §2.1) or a form body (§2.2).
pub fn bearer_token(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(|t| t.trim().to_string());
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        return url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
    }
    None
}

pub async fn endpoint(State(idp): State<Idp>, headers: HeaderMap, body: Bytes) -> Response {
    match answer(&idp, &headers, &body).await {
        Ok(claims) => no_store(claims),
        Err(e) => e.into_response(),
    }
}

async fn answer(idp: &Idp, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let token =
        bearer_token(headers, body).ok_or_else(|| OAuthError::invalid_token("no access token"))?;
    let claims = match tokens::check_access_token(idp, &token).await? {
        Ok(claims) => claims,
        Err(Inactive::Expired) => {
            return Err(OAuthError::invalid_token("the access token has expired"));
        }
        Err(Inactive::Revoked) => {
            return Err(OAuthError::invalid_token(
                "the access token has been revoked",
            ));
        }
        Err(Inactive::Invalid) => {
            return Err(OAuthError::invalid_token("the access token is not valid"));
        }
    };
    idp.quotas.admit(idp, &claims.client_id).await?;
    let scope: Vec<String> = claims.scope.split(' ').map(str::to_string).collect();
    if !scope.iter().any(|s| s == "openid") {
        return Err(OAuthError::insufficient_scope(
            "the access token lacks the openid scope",
        ));
    }
    let mut conn = idp.core.db.conn().await?;
    let user = users::find(&mut conn, &claims.sub)
        .await?
        .filter(|u| u.status == "active")
        .ok_or_else(|| OAuthError::invalid_token("the account is no longer active"))?;
    let claims_request: Option<Value> = match &claims.gid {
        Some(gid) => grants::claims(&mut conn, gid).await?,
        None => None,
    };
    drop(conn);
    let declined = crate::consent::declined(idp, &user.id, &claims.client_id).await?;
    let mut released = tokens::user_claims(&user, &scope, &declined);
    let mut names: Vec<String> = released.keys().cloned().collect();
    if let Some((verified, verified_names)) = crate::assurance::claims::release(
        idp,
        &claims.client_id,
        &user.id,
        claims_request.as_ref(),
        "userinfo",
    )
    .await?
    {
        released.insert("verified_claims".into(), verified);
        names.extend(verified_names);
    }
    released.insert("sub".into(), json!(user.id));
    // The audit entry and the history's record commit together, or the answer is an error.
    let mut tx = idp.core.db.begin().await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::client(&claims.client_id),
            "userinfo.release",
            format!("user:{}", user.id),
        )
        .details(json!({"claims": names, "scope": claims.scope, "jti": claims.jti}))],
    )
    .await?;
    releases::record(
        tx.conn(),
        &Released {
            user_id: &user.id,
            client_id: &claims.client_id,
            claims: &names,
            scope: &claims.scope,
            how: How::Userinfo,
            purpose: None,
        },
        entries.first().map(|e| e.id.as_str()),
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(Value::Object(released))
}
