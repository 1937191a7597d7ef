//! The check a city API makes before it serves a request with a Kizuna access token
//! (RFC 6750, RFC 9068), including the binding of certificate-bound tokens to the client
//! certificate the request came with (RFC 8705 §3): a token bound to a certificate is
//! refused unless that very certificate is presented.
//!
//! Two ways to verify, as the service chooses:
//! - [`Verification::Introspection`] asks Kizuna (RFC 7662) on every request (answers are
//!   kept for at most [`Verifier::cache_for`], one second by default): a revoked token, a
//!   held or revoked certificate, a disabled client or account are refused at once.
//! - [`Verification::Jwt`] checks the token's signature with Kizuna's JWK Set, locally: no
//!   round trip, but a revocation counts only when the token expires.
//!
//! With axum, [`Authorized`] is an extractor: the service puts the connection's client
//! certificate into the request's extensions as a [`ClientCertificate`] (from its TLS
//! layer), or reads it from a trusted proxy's header with [`ClientCertificate::from_pem_header`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::Value;

/// How tokens are verified.
#[derive(Debug, Clone)]
pub enum Verification {
    /// RFC 7662 introspection at `endpoint`, as the confidential client `client_id`.
    Introspection {
        endpoint: String,
        client_id: String,
        client_secret: String,
    },
    /// Local signature checks against the JWK Set at `jwks_uri`, for tokens of `issuer`.
    Jwt { issuer: String, jwks_uri: String },
}

/// The client certificate (DER) a request arrived with.
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub Vec<u8>);

impl ClientCertificate {
    /// From a URL-encoded PEM header a trusted proxy sets (nginx `$ssl_client_escaped_cert`,
    /// Envoy's `X-Forwarded-Client-Cert` `Cert="…"`). Only trust it from the proxy.
    pub fn from_pem_header(value: &str) -> Option<ClientCertificate> {
        let encoded = value
            .split("Cert=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or(value);
        let pem = percent_decode(encoded)?;
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        STANDARD.decode(body).ok().map(ClientCertificate)
    }

    /// The `x5t#S256` thumbprint (RFC 8705 §3.1).
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &self.0))
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Why a request is refused (RFC 6750 §3.1 codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a bearer access token is required")]
    Missing,
    #[error("the access token is not valid: {0}")]
    Invalid(String),
    #[error("the access token is bound to a certificate this request did not present")]
    WrongCertificate,
    #[error("the access token lacks the scope {0}")]
    InsufficientScope(String),
    #[error("the token could not be checked: {0}")]
    Unavailable(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Refusal::Missing => (StatusCode::UNAUTHORIZED, None),
            Refusal::Invalid(_) | Refusal::WrongCertificate => {
                (StatusCode::UNAUTHORIZED, Some("invalid_token"))
            }
            Refusal::InsufficientScope(_) => (StatusCode::FORBIDDEN, Some("insufficient_scope")),
            Refusal::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
        };
        let challenge = match code {
            Some(code) => format!("Bearer error=\"{code}\""),
            None => "Bearer".into(),
        };
        let mut response = (status, self.to_string()).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub sub: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The certificate thumbprint it is bound to, if any.
    pub bound_to: Option<String>,
}

impl Token {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    fn from_claims(claims: &Value) -> Result<Token, Refusal> {
        let text = |name: &str| claims[name].as_str().map(str::to_string);
        Ok(Token {
            sub: text("sub").ok_or_else(|| Refusal::Invalid("no sub".into()))?,
            client_id: text("client_id").unwrap_or_default(),
            scopes: text("scope")
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            bound_to: claims["cnf"]["x5t#S256"].as_str().map(str::to_string),
        })
    }
}

/// Verifies tokens for one service. Cheap to clone.
#[derive(Clone)]
pub struct Verifier(Arc<State>);

/// An introspection answer and when it came.
type Answer = (Instant, Result<Value, Refusal>);

struct State {
    verification: Verification,
    http: reqwest::Client,
    cache_for: Duration,
    answers: Mutex<HashMap<String, Answer>>,
    keys: Mutex<Option<(Instant, Value)>>,
}

impl Verifier {
    pub fn new(verification: Verification, http: reqwest::Client) -> Verifier {
        Verifier::cache_for(verification, http, Duration::from_secs(1))
    }

    /// Keeps introspection answers (and the JWK Set) for `cache_for` at most.
    pub fn cache_for(
        verification: Verification,
        http: reqwest::Client,
        cache_for: Duration,
    ) -> Verifier {
        Verifier(Arc::new(State {
            verification,
            http,
            cache_for,
            answers: Mutex::new(HashMap::new()),
            keys: Mutex::new(None),
        }))
    }

    /// Verifies `token` as presented with `certificate`: active (or validly signed and
    /// unexpired), and when bound to a certificate, presented with that certificate.
    pub async fn check(
        &self,
        token: &str,
        certificate: Option<&ClientCertificate>,
    ) -> Result<Token, Refusal> {
        let claims = match &self.0.verification {
            Verification::Introspection { .. } => self.introspect(token).await?,
            Verification::Jwt { issuer, jwks_uri } => {
                self.verify_jwt(token, issuer, jwks_uri).await?
            }
        };
        let token = Token::from_claims(&claims)?;
        if let Some(bound) = &token.bound_to
            && certificate.map(ClientCertificate::thumbprint).as_ref() != Some(bound)
        {
            return Err(Refusal::WrongCertificate);
        }
        Ok(token)
    }

    async fn introspect(&self, token: &str) -> Result<Value, Refusal> {
        if let Some((at, answer)) = self
            .0
            .answers
            .lock()
            .ok()
            .and_then(|a| a.get(token).cloned())
            && at.elapsed() < self.0.cache_for
        {
            return answer;
        }
        let Verification::Introspection {
            endpoint,
            client_id,
            client_secret,
        } = &self.0.verification
        else {
            return Err(Refusal::Unavailable("not set up for introspection".into()));
        };
        let answer: Value = self
            .0
            .http
            .post(endpoint)
            .basic_auth(client_id, Some(client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Refusal::Unavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let result = if answer["active"] == true {
            Ok(answer)
        } else {
            Err(Refusal::Invalid("inactive".into()))
        };
        if let Ok(mut answers) = self.0.answers.lock() {
            if answers.len() > 10_000 {
                answers.clear();
            }
            answers.insert(token.to_string(), (Instant::now(), result.clone()));
        }
        result
    }

    async fn jwks(&self, jwks_uri: &str) -> Result<Value, Refusal> {
        if let Some((at, keys)) = self.0.keys.lock().ok().and_then(|k| k.clone())
            && at.elapsed() < self.0.cache_for.max(Duration::from_secs(60))
        {
            return Ok(keys);
        }
        let keys: Value = self
            .0
            .http
            .get(jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Refusal::Unavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        if let Ok(mut slot) = self.0.keys.lock() {
            *slot = Some((Instant::now(), keys.clone()));
        }
        Ok(keys)
    }

    async fn verify_jwt(
        &self,
        token: &str,
        issuer: &str,
        jwks_uri: &str,
    ) -> Result<Value, Refusal> {
        let invalid = |m: &str| Refusal::Invalid(m.to_string());
        let mut parts = token.split('.');
        let (Some(head), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a compact JWS"));
        };
        let decode = |p: &str| {
            URL_SAFE_NO_PAD
                .decode(p)
                .map_err(|_| invalid("not base64url"))
        };
        let header: Header =
            serde_json::from_slice(&decode(head)?).map_err(|_| invalid("bad header"))?;
        if header.typ.as_deref() != Some("at+jwt") {
            return Err(invalid("not an access token (typ at+jwt)"));
        }
        let keys = self.jwks(jwks_uri).await?;
        let key = keys["keys"]
            .as_array()
            .and_then(|keys| {
                keys.iter()
                    .find(|k| k["kid"].as_str() == Some(header.kid.as_str()))
            })
            .ok_or_else(|| invalid("signed with an unknown key"))?;
        verify_signature(
            &header.alg,
            key,
            format!("{head}.{body}").as_bytes(),
            &decode(sig)?,
        )
        .map_err(|()| invalid("bad signature"))?;
        let claims: Value =
            serde_json::from_slice(&decode(body)?).map_err(|_| invalid("bad claims"))?;
        if claims["iss"].as_str() != Some(issuer) {
            return Err(invalid("another issuer"));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
            return Err(invalid("expired"));
        }
        Ok(claims)
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
    typ: Option<String>,
}

/// Checks a JWS signature with a public JWK (ES256, ES384, RS256, EdDSA).
fn verify_signature(alg: &str, jwk: &Value, message: &[u8], signature: &[u8]) -> Result<(), ()> {
    use ring::signature;
    let part = |name: &str| {
        jwk[name]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or(())
    };
    match alg {
        "ES256" | "ES384" => {
            let mut point = vec![0x04];
            point.extend(part("x")?);
            point.extend(part("y")?);
            let algorithm = if alg == "ES256" {
                &signature::ECDSA_P256_SHA256_FIXED
            } else {
                &signature::ECDSA_P384_SHA384_FIXED
            };
            signature::UnparsedPublicKey::new(algorithm, point)
                .verify(message, signature)
                .map_err(|_| ())
        }
        "RS256" => signature::RsaPublicKeyComponents {
            n: part("n")?,
            e: part("e")?,
        }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
        .map_err(|_| ()),
        "EdDSA" => signature::UnparsedPublicKey::new(&signature::ED25519, part("x")?)
            .verify(message, signature)
            .map_err(|_| ()),
        _ => Err(()),
    }
}

/// A request the service's [`Verifier`] accepted: the token's claims. The verifier must be
/// in the request's extensions (an axum `Extension` layer), and the client certificate too
/// when the connection had one.
#[derive(Debug, Clone)]
pub struct Authorized(pub Token);

impl<S: Send + Sync> FromRequestParts<S> for Authorized {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Refusal> {
        let verifier = parts
            .extensions
            .get::<Verifier>()
            .cloned()
            .ok_or_else(|| Refusal::Unavailable("no verifier configured".into()))?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_string())
            .ok_or(Refusal::Missing)?;
        let certificate = parts.extensions.get::<ClientCertificate>();
        verifier.check(&token, certificate).await.map(Authorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxys_escaped_pem_header_gives_the_certificate() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x07];
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(&der)
        );
        let escaped: String = pem
            .bytes()
            .map(|b| match b {
                b'-' | b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        assert_eq!(ClientCertificate::from_pem_header(&escaped).unwrap().0, der);
        let envoy = format!("By=spiffe://a;Hash=x;Cert=\"{escaped}\";Subject=\"CN=x\"");
        assert_eq!(ClientCertificate::from_pem_header(&envoy).unwrap().0, der);
        assert!(ClientCertificate::from_pem_header("%zz").is_none());
    }

    #[test]
    fn a_bound_token_needs_its_certificate() {
        let claims = serde_json::json!({"sub": "d", "client_id": "d", "scope": "a b",
            "cnf": {"x5t#S256": ClientCertificate(vec![1, 2, 3]).thumbprint()}});
        let token = Token::from_claims(&claims).unwrap();
        assert!(token.has_scope("b"));
        assert_eq!(
            token.bound_to.as_deref(),
            Some(ClientCertificate(vec![1, 2, 3]).thumbprint().as_str())
        );
    }
}
