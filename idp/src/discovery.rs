//! OpenID Provider metadata (OpenID Connect Discovery 1.0 §3, RFC 8414) and the JWK Set,
//! listing exactly what this provider supports.

use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use kizuna_core::web::client_cert::Channel;

use crate::Idp;
use crate::client_auth::ASSERTION_ALGS;
use crate::clients::{AuthMethod, GrantType, STANDARD_SCOPES};
use crate::error::OAuthError;
use crate::keys::SIGNING_ALGS;

pub async fn configuration(
    State(idp): State<Idp>,
    channel: Option<Extension<Channel>>,
) -> Response {
    let e = |path: &str| idp.endpoint(path);
    let mut acr_values: Vec<String> = crate::mfa::policy::ACR_VALUES
        .iter()
        .map(|v| v.to_string())
        .collect();
    acr_values.extend(crate::assurance::flow::acr_values());
    let mut body = json!({
        "issuer": idp.issuer(),
        "authorization_endpoint": e("/authorize"),
        "token_endpoint": e("/token"),
        "userinfo_endpoint": e("/userinfo"),
        "jwks_uri": e("/jwks"),
        "pushed_authorization_request_endpoint": e("/par"),
        "require_pushed_authorization_requests": false,
        "introspection_endpoint": e("/introspect"),
        "revocation_endpoint": e("/revoke"),
        "end_session_endpoint": e("/logout"),
        "device_authorization_endpoint": e("/device_authorization"),
        "scopes_supported": STANDARD_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": SIGNING_ALGS,
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": AuthMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"],
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": AuthMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
                             "name", "preferred_username", "updated_at", "email", "email_verified", "verified_claims"],
        "claims_parameter_supported": true,
        "acr_values_supported": acr_values,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": ["ja", "en"],
        "claims_locales_supported": ["ja", "en"],
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "tls_client_certificate_bound_access_tokens": true,
    });
    // RFC 8705 §5: where the endpoints are served with client certificates, when the TLS
    // listener is configured.
    if let Some(tls) = channel.as_ref().and_then(|c| c.tls_base_url.clone()) {
        let at = |path: &str| format!("{}{path}", tls.trim_end_matches('/'));
        body["mtls_endpoint_aliases"] = json!({
            "token_endpoint": at("/token"),
            "introspection_endpoint": at("/introspect"),
            "revocation_endpoint": at("/revoke"),
            "pushed_authorization_request_endpoint": at("/par"),
            "device_authorization_endpoint": at("/device_authorization"),
        });
    }
    if let (Some(body), Value::Object(ida)) = (
        body.as_object_mut(),
        crate::assurance::claims::discovery(&idp),
    ) {
        body.extend(ida);
    }
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response()
}

pub async fn jwks(State(idp): State<Idp>) -> Response {
    match idp.keys.jwks().await {
        Ok(set) => (
            [
                (header::CACHE_CONTROL, "public, max-age=300"),
                (header::CONTENT_TYPE, "application/jwk-set+json"),
            ],
            Json(set),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "building the JWK Set");
            OAuthError::server_error().into_response()
        }
    }
}
