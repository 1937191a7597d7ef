//! Token exchange (RFC 8693) for consented data linkage: a city service holding a resident's
//! access token gets a token for another service (the data provider), only when the resident
//! agreed on the consent page that this service may obtain those scopes from that provider
//! for the stated purpose, while that consent is in force. The new token names the provider
//! as `aud`, the service as `act`, the consented scopes; it ends with the resident's grant
//! (withdrawal ends both) and never outlives the token it came from. The exchange is audited
//! and recorded in the resident's release history in one transaction.

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};

use super::requested_scope;
use crate::Idp;
use crate::authorize::request::Params;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::mtls::Bound;
use crate::releases::{self, How, Released};
use crate::tokens::{self, Authorization, Exchange, TokenResponse};

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

pub async fn exchange(
    idp: &Idp,
    client: &Client,
    params: &Params,
    bound: Option<&Bound>,
) -> Result<TokenResponse, OAuthError> {
    let get = |name: &str| params.get(name).map_err(OAuthError::invalid_request);
    let subject = get("subject_token")?
        .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    if get("subject_token_type")? != Some(ACCESS_TOKEN_TYPE) {
        return Err(OAuthError::invalid_request(format!(
            "subject_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    if get("requested_token_type")?.is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
        return Err(OAuthError::invalid_request(format!(
            "only {ACCESS_TOKEN_TYPE} can be requested"
        )));
    }
    if get("actor_token")?.is_some() {
        return Err(OAuthError::invalid_request(
            "actor_token is not accepted: the authenticated client is the actor",
        ));
    }
    let audience = get("audience")?
        .ok_or_else(|| OAuthError::invalid_target("audience (the service to call) is missing"))?
        .to_string();
    let claims = match tokens::check_access_token(idp, subject).await? {
        Ok(claims) => claims,
        Err(_) => {
            return Err(OAuthError::invalid_grant("the subject token is not active"));
        }
    };
    if claims.client_id != client.client_id || claims.sub == claims.client_id {
        return Err(OAuthError::invalid_grant(
            "the subject token must be a resident's token issued to this client",
        ));
    }
    if claims.act.is_some() {
        return Err(OAuthError::invalid_grant(
            "an exchanged token cannot be exchanged again",
        ));
    }
    let Some(linkage) =
        crate::consent::agreed_linkage(idp, &claims.sub, &client.client_id, &audience).await?
    else {
        return Err(OAuthError::invalid_grant(
            "the resident has not consented to this service obtaining their data from that service (or the consent has ended)",
        ));
    };
    let scope = requested_scope(params, &linkage.scopes)?.unwrap_or_else(|| linkage.scopes.clone());
    if scope.is_empty() {
        return Err(OAuthError::invalid_scope("no scope to exchange for"));
    }
    let auth = Authorization {
        grant_id: claims.gid.clone(),
        sid: claims.sid.clone(),
        auth_time: claims.auth_time,
        acr: claims.acr.clone(),
        amr: claims.amr.clone(),
        scope: scope.clone(),
        bound: bound.cloned(),
        exchange: Some(Exchange {
            audience: audience.clone(),
            actor: client.client_id.clone(),
            until: claims.exp,
        }),
        ..Authorization::default()
    };
    let (access_token, issued) = tokens::access_token(idp, client, &claims.sub, &auth).await?;
    let scope_text = scope.join(" ");
    let mut tx = idp.core.db.begin().await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::client(&client.client_id),
            "token.exchange",
            format!("user:{}", claims.sub),
        )
        .details(json!({
            "audience": audience, "scope": scope_text, "jti": issued.jti,
            "subject_jti": claims.jti, "linkage_version": linkage.version,
            "purpose": linkage.purpose,
        }))],
    )
    .await?;
    // In the resident's history: the provider is told who they are (`sub`) and the service
    // may obtain the consented scopes from it.
    let names = vec![format!("scope:{scope_text}")];
    releases::record(
        tx.conn(),
        &Released {
            user_id: &claims.sub,
            client_id: &audience,
            claims: &names,
            scope: &scope_text,
            how: How::TokenExchange,
            purpose: Some(&linkage.purpose),
        },
        entries.first().map(|e| e.id.as_str()),
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: issued.exp - issued.iat,
        refresh_token: None,
        id_token: None,
        scope: scope_text,
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
    })
}
