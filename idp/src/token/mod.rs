//! The token endpoint (RFC 6749 §3.2): client authentication, then the grant.

pub mod authorization_code;
mod client_credentials;
mod refresh_token;
mod token_exchange;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Json, Response};

use kizuna_core::web::client_cert::Channel;

use crate::Idp;
use crate::authorize::request::Params;
use crate::clients::GrantType;
use crate::error::OAuthError;
use crate::tokens::TokenResponse;
use crate::{client_auth, device};

/// Parses an `application/x-www-form-urlencoded` body, as every OAuth endpoint takes.
pub fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(Params(
        url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    ))
}

/// A successful JSON answer that must not be cached (RFC 6749 §5.1).
pub fn no_store(body: impl serde::Serialize) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response()
}

pub async fn endpoint(
    State(idp): State<Idp>,
    channel: Option<Extension<Channel>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = channel.as_ref().and_then(|c| c.leaf());
    match handle(&idp, &headers, &body, certificate).await {
        Ok(tokens) => no_store(tokens),
        Err(e) => e.into_response(),
    }
}

async fn handle(
    idp: &Idp,
    headers: &HeaderMap,
    body: &[u8],
    certificate: Option<&[u8]>,
) -> Result<TokenResponse, OAuthError> {
    let params = form_params(headers, body)?;
    let client_auth::Authenticated { client, bound } =
        client_auth::authenticate(idp, headers, &params, certificate).await?;
    let bound = bound.as_ref();
    let grant_type = params
        .get("grant_type")
        .map_err(OAuthError::invalid_request)?
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    let grant: GrantType = grant_type.parse().map_err(|_| {
        OAuthError::unsupported_grant_type(format!("grant_type {grant_type:?} is not supported"))
    })?;
    if grant_type != grant.as_str() {
        return Err(OAuthError::unsupported_grant_type(format!(
            "use grant_type={grant}"
        )));
    }
    if !client.allows(grant) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not registered for the {grant} grant"
        )));
    }
    match grant {
        GrantType::AuthorizationCode => {
            authorization_code::exchange(idp, &client, &params, bound).await
        }
        GrantType::RefreshToken => refresh_token::refresh(idp, &client, &params, bound).await,
        GrantType::ClientCredentials => {
            client_credentials::issue(idp, &client, &params, bound).await
        }
        GrantType::DeviceCode => device::exchange(idp, &client, &params, bound).await,
        GrantType::TokenExchange => token_exchange::exchange(idp, &client, &params, bound).await,
    }
}

/// The scopes requested in a `scope` parameter, each of which must be in `allowed`.
pub fn requested_scope(
    params: &Params,
    allowed: &[String],
) -> Result<Option<Vec<String>>, OAuthError> {
    let Some(scope) = params.get("scope").map_err(OAuthError::invalid_request)? else {
        return Ok(None);
    };
    let scopes: Vec<String> = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = scopes.iter().find(|s| !allowed.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "scope {bad:?} is not allowed here"
        )));
    }
    Ok(Some(scopes))
}
