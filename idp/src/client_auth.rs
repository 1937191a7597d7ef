//! Client authentication at the token, PAR, introspection, revocation and device endpoints
//! (RFC 6749 §2.3, OpenID Connect Core §9): `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt` (RFC 7523, with a `jti` replay check), mutual TLS (`tls_client_auth`,
//! `self_signed_tls_client_auth`, and certificates acting as clients of their own: RFC 8705,
//! see [`mtls`]), and `none` for public clients. A client must use the method it registered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::db::is_unique_violation;
use kizuna_core::jose::Jws;

use crate::Idp;
use crate::authorize::request::Params;
use crate::clients::{self, AuthMethod, Client};

use crate::error::OAuthError;
use crate::{mtls, store};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Algorithms accepted for client assertions (never `none` or shared-secret HMAC).
pub const ASSERTION_ALGS: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];
/// The longest lifetime a client assertion may claim; bounds the replay store.
const MAX_ASSERTION_LIFETIME: i64 = 600;
const CLOCK_SKEW: i64 = 60;

/// What the request presented.
enum Presented {
    Secret {
        client_id: String,
        secret: String,
        method: AuthMethod,
    },
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
    None {
        client_id: String,
    },
}

fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<Presented, OAuthError> {
    let dup = |e: String| OAuthError::invalid_request(e);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let form_secret = params.get("client_secret").map_err(dup)?;
    let assertion = params.get("client_assertion").map_err(dup)?;
    let form_id = params.get("client_id").map_err(dup)?.map(str::to_string);
    let methods = [basic.is_some(), form_secret.is_some(), assertion.is_some()]
        .iter()
        .filter(|m| **m)
        .count();
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    if let Some(basic) = basic {
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let client_id = form_decode(id);
        if form_id.as_ref().is_some_and(|f| *f != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Basic credentials",
            ));
        }
        return Ok(Presented::Secret {
            client_id,
            secret: form_decode(secret),
            method: AuthMethod::ClientSecretBasic,
        });
    }
    if let Some(secret) = form_secret {
        let client_id =
            form_id.ok_or_else(|| OAuthError::invalid_request("client_id is missing"))?;
        return Ok(Presented::Secret {
            client_id,
            secret: secret.to_string(),
            method: AuthMethod::ClientSecretPost,
        });
    }
    if let Some(assertion) = assertion {
        if params.get("client_assertion_type").map_err(dup)? != Some(ASSERTION_TYPE) {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        return Ok(Presented::Assertion {
            client_id: form_id,
            assertion: assertion.to_string(),
        });
    }
    match form_id {
        Some(client_id) => Ok(Presented::None { client_id }),
        None => Err(OAuthError::invalid_client(
            "client authentication is missing",
        )),
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

/// A client that authenticated, and the certificate its tokens are bound to (RFC 8705 §3)
/// when it presented one that counts.
pub struct Authenticated {
    pub client: Arc<Client>,
    pub bound: Option<mtls::Bound>,
}

/// Authenticates the client calling one of the provider's endpoints; `certificate` is the
/// client certificate (DER) of a mutual-TLS request.
pub async fn authenticate(
    idp: &Idp,
    headers: &HeaderMap,
    params: &Params,
    certificate: Option<&[u8]>,
) -> Result<Authenticated, OAuthError> {
    let result = authenticate_inner(idp, headers, params, certificate).await;
    if let Err((client_id, error)) = &result
        && error.code == "invalid_client"
    {
        let _ = idp
            .core
            .audit
            .record(
                AuditEvent::new(
                    Actor::client(client_id.clone()),
                    "client.authenticate",
                    format!("client:{client_id}"),
                )
                .outcome(Outcome::Failure)
                .details(json!({"reason": error.description})),
            )
            .await;
    }
    let authenticated = result.map_err(|(_, e)| e)?;
    idp.quotas
        .admit(idp, &authenticated.client.client_id)
        .await?;
    Ok(authenticated)
}

async fn authenticate_inner(
    idp: &Idp,
    headers: &HeaderMap,
    params: &Params,
    certificate: Option<&[u8]>,
) -> Result<Authenticated, (String, OAuthError)> {
    let presented = match (presented(headers, params), certificate) {
        // A certificate alone: a certificate acting as a client of its own.
        (Err(e), Some(der)) if e.code == "invalid_client" => {
            return mtls::certificate_client(idp, der, None)
                .await
                .map(|(client, bound)| Authenticated {
                    client: Arc::new(client),
                    bound: Some(bound),
                })
                .map_err(|m| (String::new(), OAuthError::invalid_client(m)));
        }
        (presented, _) => presented.map_err(|e| (String::new(), e))?,
    };
    let claimed = match &presented {
        Presented::Secret { client_id, .. } | Presented::None { client_id } => client_id.clone(),
        Presented::Assertion {
            client_id,
            assertion,
        } => match client_id {
            Some(id) => id.clone(),
            None => Jws::parse(assertion)
                .ok()
                .and_then(|j| j.claims::<AssertionClaims>().ok())
                .and_then(|c| c.sub)
                .unwrap_or_default(),
        },
    };
    let fail = |message: &str| (claimed.clone(), OAuthError::invalid_client(message));
    let registered = idp
        .clients
        .get(&idp.core.db, &claimed)
        .await
        .map_err(|e| (claimed.clone(), OAuthError::from(e)))?;
    let client = match (registered, &presented, certificate) {
        (Some(client), _, _) => client,
        (None, Presented::None { client_id }, Some(der))
            if mtls::names_a_certificate_client(client_id) =>
        {
            let (client, bound) = mtls::certificate_client(idp, der, Some(client_id))
                .await
                .map_err(|m| fail(&m))?;
            return Ok(Authenticated {
                client: Arc::new(client),
                bound: Some(bound),
            });
        }
        (None, _, _) => return Err(fail("unknown or disabled client")),
    };
    if !client.is_active() {
        return Err(fail("unknown or disabled client"));
    }
    match presented {
        Presented::Secret { secret, method, .. } => {
            if client.auth_method != method {
                return Err(fail(
                    "this client is not registered for that authentication method",
                ));
            }
            if !clients::secret_matches(&client, &secret) {
                return Err(fail("wrong client secret"));
            }
        }
        Presented::None { .. } if client.auth_method.uses_certificate() => {
            let der = certificate.ok_or_else(|| {
                fail("this client authenticates with its certificate: use the mutual-TLS endpoint")
            })?;
            let bound = mtls::verify_registered(idp, &client, der)
                .await
                .map_err(|m| fail(&m))?;
            return Ok(Authenticated {
                client,
                bound: Some(bound),
            });
        }
        Presented::None { .. } => {
            if !client.is_public() {
                return Err(fail("this client must authenticate"));
            }
        }
        Presented::Assertion { assertion, .. } => {
            if client.auth_method != AuthMethod::PrivateKeyJwt {
                return Err(fail("this client is not registered for private_key_jwt"));
            }
            verify_assertion(idp, &client, &assertion)
                .await
                .map_err(|message| fail(&message))?;
        }
    }
    // A client that asked for bound tokens gets them only with its certificate.
    let bound = match (
        client.tls_client_certificate_bound_access_tokens,
        certificate,
    ) {
        (true, Some(der)) => Some(
            mtls::verify_registered(idp, &client, der)
                .await
                .map_err(|m| fail(&m))?,
        ),
        (true, None) => {
            return Err(fail(
                "this client's tokens are bound to its certificate: use the mutual-TLS endpoint",
            ));
        }
        (false, _) => None,
    };
    Ok(Authenticated { client, bound })
}

async fn verify_assertion(idp: &Idp, client: &Client, assertion: &str) -> Result<(), String> {
    let jws = Jws::parse(assertion).map_err(|e| format!("client assertion: {e}"))?;
    if !ASSERTION_ALGS.contains(&jws.header.alg.as_str()) {
        return Err(format!(
            "client assertion algorithm {:?} is not accepted",
            jws.header.alg
        ));
    }
    let keys = match (&client.jwks, &client.jwks_uri) {
        (Some(jwks), _) => jwks.clone(),
        (None, Some(uri)) => {
            idp.remote_jwks
                .get(&idp.http, uri, jws.header.kid.as_deref())
                .await?
        }
        (None, None) => return Err("the client has no registered keys".into()),
    };
    jws.verify_with_set(&keys, &ASSERTION_ALGS)
        .map_err(|e| format!("client assertion: {e}"))?;
    let claims: AssertionClaims = jws
        .claims()
        .map_err(|_| "client assertion claims are malformed".to_string())?;
    let now = kizuna_core::time::now_unix();
    if claims.iss.as_deref() != Some(&client.client_id)
        || claims.sub.as_deref() != Some(&client.client_id)
    {
        return Err("client assertion iss and sub must be the client_id".into());
    }
    // The audience is the issuer as one string (RFC 7523bis, after the 2025 audience
    // injection advisory): a list, or an endpoint URL another party could also claim to be,
    // would let an assertion made for one server be replayed at another.
    if !matches!(&claims.aud, Some(serde_json::Value::String(a)) if a == idp.issuer()) {
        return Err(format!(
            "client assertion audience must be the issuer {:?} as a single string",
            idp.issuer()
        ));
    }
    let exp = claims.exp.ok_or("client assertion has no exp")?;
    if exp <= now - CLOCK_SKEW {
        return Err("client assertion has expired".into());
    }
    if exp > now + MAX_ASSERTION_LIFETIME {
        return Err(format!(
            "client assertion lifetime exceeds {MAX_ASSERTION_LIFETIME} seconds"
        ));
    }
    if claims.iat.is_some_and(|iat| iat > now + CLOCK_SKEW)
        || claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW)
    {
        return Err("client assertion is not valid yet".into());
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("client assertion has no jti")?;
    let stored =
        store::clients::record_jti(&idp.core.db, &client.client_id, &jti, exp + CLOCK_SKEW).await;
    match stored {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            Err("client assertion was already used (jti replay)".into())
        }
        Err(e) => {
            tracing::error!(error = %e, "storing client assertion jti");
            Err("client assertion could not be checked".into())
        }
    }
}

/// Clients' JWK Sets fetched from their `jwks_uri`, cached for five minutes and fetched
/// again (at most every 30 s) when a token names a key the cache does not have.
#[derive(Clone, Default)]
pub struct RemoteJwks {
    cache: Arc<Mutex<HashMap<String, (serde_json::Value, Instant)>>>,
}

const JWKS_TTL: Duration = Duration::from_secs(300);
const JWKS_REFETCH: Duration = Duration::from_secs(30);
const JWKS_MAX_BYTES: usize = 64 * 1024;

impl RemoteJwks {
    pub async fn get(
        &self,
        http: &reqwest::Client,
        uri: &str,
        kid: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(uri).cloned());
        if let Some((set, at)) = &cached {
            let has_kid = kid.is_none_or(|kid| {
                set["keys"]
                    .as_array()
                    .is_some_and(|keys| keys.iter().any(|k| k["kid"].as_str() == Some(kid)))
            });
            if at.elapsed() < JWKS_TTL && (has_kid || at.elapsed() < JWKS_REFETCH) {
                return Ok(set.clone());
            }
        }
        let fetched = fetch(http, uri).await;
        match (fetched, cached) {
            (Ok(set), _) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.insert(uri.to_string(), (set.clone(), Instant::now()));
                }
                Ok(set)
            }
            (Err(e), Some((set, _))) => {
                tracing::warn!(uri, error = %e, "client jwks_uri unreachable; using the cached keys");
                Ok(set)
            }
            (Err(e), None) => Err(format!("the client's jwks_uri could not be fetched: {e}")),
        }
    }
}

async fn fetch(http: &reqwest::Client, uri: &str) -> Result<serde_json::Value, String> {
    let response = http
        .get(uri)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if body.len() > JWKS_MAX_BYTES {
        return Err("the JWK Set is too large".into());
    }
    let set: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "not a JSON JWK Set".to_string())?;
    if !set["keys"].is_array() {
        return Err("not a JWK Set".into());
    }
    Ok(set)
}
