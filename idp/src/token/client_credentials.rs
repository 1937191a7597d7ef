//! The client credentials grant (RFC 6749 §4.4), for services and devices acting for
//! themselves. The token's subject is the client.

use serde_json::json;

use kizuna_core::audit::{Actor, AuditEvent};

use super::requested_scope;
use crate::Idp;
use crate::authorize::request::Params;
use crate::clients::{Client, STANDARD_SCOPES};
use crate::error::OAuthError;
use crate::mtls::Bound;
use crate::tokens::{self, Authorization, TokenResponse};

pub async fn issue(
    idp: &Idp,
    client: &Client,
    params: &Params,
    bound: Option<&Bound>,
) -> Result<TokenResponse, OAuthError> {
    // Person-related scopes mean nothing without a person.
    let allowed: Vec<String> = client
        .scopes
        .iter()
        .filter(|s| !STANDARD_SCOPES.contains(&s.as_str()))
        .cloned()
        .collect();
    let scope = requested_scope(params, &allowed)?.unwrap_or(allowed);
    let auth = Authorization {
        bound: bound.cloned(),
        scope,
        ..Authorization::default()
    };
    let (access_token, claims) =
        tokens::access_token(idp, client, &client.client_id, &auth).await?;
    // A token bound to a certificate is about that certificate: its revocation counts the
    // tokens it ends by this target.
    let target = match &claims.kizuna_cert {
        Some(serial) => format!("cert:{serial}"),
        None => format!("client:{}", client.client_id),
    };
    idp.core
        .audit
        .record(
            AuditEvent::new(Actor::client(&client.client_id), "token.issue", target)
                .details(json!({
                    "grant_type": "client_credentials", "scope": claims.scope, "jti": claims.jti,
                    "cert_serial": claims.kizuna_cert, "x5t#S256": claims.cnf.as_ref().map(|c| &c.x5t_s256),
                })),
        )
        .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: claims.exp - claims.iat,
        refresh_token: None,
        id_token: None,
        scope: claims.scope,
        issued_token_type: None,
    })
}
