//! The upstream side of brokering: OpenID Connect Discovery 1.0 (cached), the authorization
//! code flow with PKCE S256, `nonce` and `state` bound to the browser (OpenID Connect Core
//! §3.1.2, RFC 7636), client authentication by `client_secret_basic` or `private_key_jwt`
//! (Core §9, RFC 7523), and the callback checked through the `openidconnect` crate: state,
//! RFC 9207 `iss`, signature with the upstream's JWKS (refreshed once for an unknown key),
//! `iss`, `aud`, `exp`/`iat` with bounded skew, `nonce`, `at_hash`/`c_hash`; then UserInfo,
//! claim mapping and the trust ceiling. [`start`] and [`finish`] are the reusable API: any
//! feature that needs a person to authenticate at an upstream (sign-in, identity proofing)
//! starts with a [`Continuation`] and gets it back with the [`UpstreamIdentity`].

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreTokenResponse,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, AuthorizationCodeHash, ClaimsVerificationError,
    ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use kizuna_core::{jose, secret};

use super::ceiling::{self, Mapped};
use super::claims::{self, MappedClaims};
use super::discovery::{Metadata, chain};
use super::pending::{Pending, Return, pend, refused, take_pending};
use super::upstreams::{self, ClientAuth, Upstream};
use super::userinfo::userinfo;
use super::{FederationError, clean_text};
use crate::Idp;
use crate::mfa::policy::Aal;

type UpstreamClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// ID tokens issued longer ago than this (plus the skew) are refused.
const MAX_ID_TOKEN_AGE_SECS: i64 = 600;

/// The signature algorithms accepted on an upstream's ID tokens: asymmetric only (never
/// `none`, never HMAC with the client secret).
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// What to do once the person is back from the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Continuation {
    /// Sign in, for the authorization request `req` or to return to the local page `next`.
    SignIn {
        req: Option<String>,
        next: Option<String>,
    },
    /// Identity proofing of the signed-in account `user_id` (`jpki-oidc`), then back to the
    /// authorization request `req` when there is one.
    Proofing {
        user_id: String,
        req: Option<String>,
    },
}

/// A started upstream authorization: where to send the browser, and the cookie that binds
/// the answer to this browser (set when the browser had none).
pub struct Started {
    pub location: String,
    pub cookie: Option<HeaderValue>,
}

/// The person as a validated upstream answer describes them: the callback result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamIdentity {
    pub upstream_id: String,
    pub upstream_alias: String,
    pub issuer: String,
    /// The upstream's `sub`.
    pub subject: String,
    /// The ID token's and UserInfo's claims, merged (the ID token wins).
    pub claims: Map<String, Value>,
    /// The account attributes after claim mapping.
    pub mapped: MappedClaims,
    /// What the upstream said about the authentication, before the ceiling.
    pub upstream_acr: Option<String>,
    pub upstream_amr: Vec<String>,
    /// The levels after the trust ceiling.
    pub ial: u8,
    pub aal: u8,
    pub capped: bool,
    /// The upstream session (`sid`), for its back-channel logout.
    pub upstream_sid: Option<String>,
    /// The ID token, kept as the `id_token_hint` for logout at the upstream.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub id_token: String,
}

impl UpstreamIdentity {
    /// The authentication level after the ceiling.
    pub fn aal(&self) -> Aal {
        Aal::from_level(self.aal as i64).unwrap_or(Aal::One)
    }
}

/// Kizuna's redirect URI at every upstream.
pub fn callback_url(idp: &Idp) -> String {
    idp.endpoint("/federation/callback")
}

fn client(
    idp: &Idp,
    md: &Metadata,
    upstream: &Upstream,
) -> Result<UpstreamClient, FederationError> {
    let secret = upstream.secret(idp)?.map(ClientSecret::new);
    let redirect = RedirectUrl::new(callback_url(idp))
        .map_err(|_| FederationError::Invalid("the public URL is not a URL".into()))?;
    let client = CoreClient::from_provider_metadata(
        md.clone(),
        ClientId::new(upstream.client_id.clone()),
        secret,
    )
    .set_redirect_uri(redirect);
    Ok(match upstream.client_auth {
        ClientAuth::ClientSecretBasic | ClientAuth::Saml => {
            client.set_auth_type(AuthType::BasicAuth)
        }
        ClientAuth::PrivateKeyJwt => client.set_auth_type(AuthType::RequestBody),
    })
}

/// Sends the browser to the upstream: stores state, nonce and PKCE verifier (single use,
/// bound to this browser's cookie) with the continuation. `login_hint` passes on an address
/// from home-realm discovery.
pub async fn start(
    idp: &Idp,
    upstream: &Upstream,
    continuation: &Continuation,
    login_hint: Option<&str>,
    headers: &HeaderMap,
) -> Result<Started, FederationError> {
    if !upstream.is_active() {
        return Err(FederationError::Disabled);
    }
    if let Some(saml) = &upstream.saml {
        return super::saml::start(idp, upstream, saml, continuation, headers).await;
    }
    let md = idp.federation.metadata(&upstream.issuer, false).await?;
    let client = client(idp, &md, upstream)?;
    let state = secret::random_token();
    let nonce = secret::random_token();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            {
                let state = state.clone();
                move || CsrfToken::new(state)
            },
            {
                let nonce = nonce.clone();
                move || Nonce::new(nonce)
            },
        )
        .set_pkce_challenge(challenge);
    for scope in upstream.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    if !upstream.acr_values.is_empty() {
        request = request.add_extra_param("acr_values", upstream.acr_values.join(" "));
    }
    if let Some(hint) = login_hint {
        request = request.add_extra_param("login_hint", hint.to_string());
    }
    let (url, _, _) = request.url();
    let cookie = pend(
        idp,
        Pending {
            state: &state,
            upstream_id: &upstream.id,
            nonce: &nonce,
            pkce_verifier: verifier.secret(),
            continuation,
        },
        headers,
        Return::Redirect,
    )
    .await?;
    Ok(Started {
        location: url.to_string(),
        cookie,
    })
}

/// The query of the upstream's redirect to Kizuna (RFC 6749 §4.1.2, §4.1.2.1, RFC 9207).
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

/// A callback that did not produce an identity: why, and what was known by then.
#[derive(Debug)]
pub struct Refused {
    pub error: FederationError,
    pub upstream: Option<Upstream>,
    pub continuation: Option<Continuation>,
}

/// Finishes an upstream authorization: consumes the pending state (once, from this browser
/// only), exchanges the code, validates the ID token, reads UserInfo, maps claims and
/// levels. Every refusal is audited.
pub async fn finish(
    idp: &Idp,
    headers: &HeaderMap,
    params: &CallbackParams,
) -> Result<(UpstreamIdentity, Continuation), Refused> {
    let mut known = (None, None);
    let result = finish_inner(idp, headers, params, &mut known).await;
    refused(idp, result, known).await
}

async fn finish_inner(
    idp: &Idp,
    headers: &HeaderMap,
    params: &CallbackParams,
    known: &mut (Option<Upstream>, Option<Continuation>),
) -> Result<(UpstreamIdentity, Continuation), FederationError> {
    let state = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 100)
        .ok_or(FederationError::BadState)?;
    let pending = take_pending(idp, headers, state, Return::Redirect).await?;
    let continuation: Continuation =
        serde_json::from_str(&pending.continuation).map_err(|_| FederationError::BadState)?;
    known.1 = Some(continuation.clone());
    let upstream = upstreams::find(idp, &pending.upstream_id)
        .await?
        .ok_or(FederationError::BadState)?;
    known.0 = Some(upstream.clone());
    if !upstream.is_active() {
        return Err(FederationError::Disabled);
    }
    // RFC 9207: a response naming another issuer is a mix-up; one without `iss` from an
    // upstream that advertises it may be one too, and is refused alike.
    let md = idp.federation.metadata(&upstream.issuer, false).await?;
    match &params.iss {
        Some(iss) if *iss != upstream.issuer => {
            return Err(FederationError::IssuerMixUp(format!(
                "it names another issuer ({})",
                clean_text(iss, 100)
            )));
        }
        None if md
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true) =>
        {
            return Err(FederationError::IssuerMixUp(
                "it has no iss, which the upstream says it always sends".into(),
            ));
        }
        _ => {}
    }
    if let Some(error) = &params.error {
        let description = params
            .error_description
            .as_deref()
            .map(|d| format!(": {}", clean_text(d, 200)))
            .unwrap_or_default();
        return Err(FederationError::Upstream(format!(
            "{}{description}",
            clean_text(error, 60)
        )));
    }
    let code = params
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or_else(|| FederationError::Upstream("the response has no code".into()))?;
    let tokens = exchange(idp, &md, &upstream, code, &pending.pkce_verifier).await?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| FederationError::IdToken("the token response has no ID token".into()))?;
    let nonce = Nonce::new(pending.nonce);
    let md = match verify(idp, &md, &upstream, id_token, &tokens, code, &nonce) {
        Err(FederationError::IdToken(reason)) if reason.contains("No matching key") => {
            // The upstream may have rotated its keys since the document was read.
            let fresh = idp.federation.metadata(&upstream.issuer, true).await?;
            verify(idp, &fresh, &upstream, id_token, &tokens, code, &nonce)?;
            fresh
        }
        other => {
            other?;
            md
        }
    };
    let token_text = id_token.to_string();
    let mut merged = payload(&token_text)?;
    let subject = merged
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| FederationError::IdToken("no sub".into()))?;
    if subject.is_empty() || subject.len() > 255 {
        return Err(FederationError::IdToken(
            "sub must be 1 to 255 characters".into(),
        ));
    }
    if let Some(endpoint) = md.userinfo_endpoint() {
        let info = userinfo(
            idp,
            &upstream,
            endpoint.as_str(),
            tokens.access_token().secret(),
            &subject,
        )
        .await?;
        for (k, v) in info {
            merged.entry(k).or_insert(v);
        }
    }
    let upstream_acr = merged
        .get("acr")
        .and_then(Value::as_str)
        .map(str::to_string);
    let upstream_amr: Vec<String> = merged
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let Mapped { ial, aal, capped } = ceiling::map(
        upstream_acr.as_deref(),
        &upstream_amr,
        &upstream.acr_map,
        upstream.ceiling,
    );
    let identity = UpstreamIdentity {
        upstream_id: upstream.id.clone(),
        upstream_alias: upstream.alias.clone(),
        issuer: upstream.issuer.clone(),
        subject,
        mapped: {
            let mut mapped = claims::apply(&upstream.claim_map, &merged);
            mapped.believe_verification_within(&upstream.email_domains);
            mapped
        },
        upstream_sid: merged
            .get("sid")
            .and_then(Value::as_str)
            .map(|s| clean_text(s, 255)),
        claims: merged,
        upstream_acr,
        upstream_amr,
        ial,
        aal: aal.level(),
        capped,
        id_token: token_text,
    };
    Ok((identity, continuation))
}

/// A signed client assertion for the upstream's token endpoint (RFC 7523 §3).
async fn client_assertion(
    idp: &Idp,
    upstream: &Upstream,
    audience: &str,
) -> Result<String, FederationError> {
    let key_id = upstream.key_id.as_deref().ok_or_else(|| {
        FederationError::Invalid("the upstream has no client-assertion key".into())
    })?;
    let key = idp.core.custody.get(key_id).await?;
    let now = kizuna_core::time::now_unix();
    let claims = json!({
        "iss": upstream.client_id,
        "sub": upstream.client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": secret::new_id(),
    });
    Ok(jose::sign(
        &key,
        &key.public_key().thumbprint(),
        None,
        &claims,
    )?)
}

async fn exchange(
    idp: &Idp,
    md: &Metadata,
    upstream: &Upstream,
    code: &str,
    verifier: &str,
) -> Result<CoreTokenResponse, FederationError> {
    let client = client(idp, md, upstream)?;
    let mut request = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|_| FederationError::Discovery("the upstream has no token endpoint".into()))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()));
    if upstream.client_auth == ClientAuth::PrivateKeyJwt {
        // The upstream's issuer, one string: what RFC 7523bis asks of clients since the 2025
        // audience injection advisory, and what Kizuna itself demands of its clients.
        let audience = md.issuer().as_str().to_string();
        request = request
            .add_extra_param(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .add_extra_param(
                "client_assertion",
                client_assertion(idp, upstream, &audience).await?,
            );
    }
    request
        .request_async(idp.federation.http())
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => FederationError::Token(clean_text(
                &format!(
                    "{}{}",
                    r.error().as_ref(),
                    r.error_description()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
                300,
            )),
            other => FederationError::Token(chain(&other)),
        })
}

fn verify(
    idp: &Idp,
    md: &Metadata,
    upstream: &Upstream,
    id_token: &CoreIdToken,
    tokens: &CoreTokenResponse,
    code: &str,
    nonce: &Nonce,
) -> Result<(), FederationError> {
    let refuse =
        |e: &dyn std::fmt::Display| FederationError::IdToken(clean_text(&e.to_string(), 300));
    let client = client(idp, md, upstream)?;
    let skew = idp.federation.skew_secs;
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(ALLOWED_ALGS)
        .set_time_fn(move || chrono::Utc::now() - chrono::Duration::seconds(skew))
        .set_issue_time_verifier_fn(move |iat| {
            let now = chrono::Utc::now();
            if iat > now + chrono::Duration::seconds(skew) {
                Err("issued in the future".into())
            } else if iat < now - chrono::Duration::seconds(MAX_ID_TOKEN_AGE_SECS + skew) {
                Err("issued too long ago".into())
            } else {
                Ok(())
            }
        });
    let claims = id_token.claims(&verifier, nonce).map_err(|e| match e {
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => FederationError::IdToken("No matching key in the upstream's JWK Set".into()),
        other => refuse(&other),
    })?;
    let alg = id_token.signing_alg().map_err(|e| refuse(&e))?;
    let key = id_token.signing_key(&verifier).map_err(|e| refuse(&e))?;
    if let Some(expected) = claims.access_token_hash() {
        let actual =
            AccessTokenHash::from_token(tokens.access_token(), alg, key).map_err(|e| refuse(&e))?;
        if actual != *expected {
            return Err(FederationError::IdToken(
                "at_hash does not match the access token".into(),
            ));
        }
    }
    if let Some(expected) = claims.code_hash() {
        let actual =
            AuthorizationCodeHash::from_code(&AuthorizationCode::new(code.to_string()), alg, key)
                .map_err(|e| refuse(&e))?;
        if actual != *expected {
            return Err(FederationError::IdToken(
                "c_hash does not match the code".into(),
            ));
        }
    }
    Ok(())
}

/// The claims of a JWS whose signature was already checked.
fn payload(token: &str) -> Result<Map<String, Value>, FederationError> {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| FederationError::IdToken("the ID token's claims are not JSON".into()))
}
