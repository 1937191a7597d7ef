//! Parsing the authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1,
//! RFC 7636, RFC 9126) into a typed, validated [`AuthorizationRequest`]. Until the client and
//! its redirect URI are established, errors are shown to the person; after, they go back to
//! the client.

use serde::{Deserialize, Serialize};

use crate::Idp;
use crate::clients::{Client, GrantType};
use crate::error::OAuthError;

/// The longest value accepted for any one parameter.
pub const MAX_PARAM_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    pub acr_values: Vec<String>,
    /// The `claims` parameter (OpenID Connect Core §5.5); Kizuna acts on its `acr` member.
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
}

impl AuthorizationRequest {
    /// The assurance the request asks for (`acr_values` and an `acr` claim request).
    pub fn acr_request(&self) -> crate::mfa::policy::AcrRequest {
        crate::mfa::policy::AcrRequest::parse(&self.acr_values, self.claims.as_ref())
    }

    pub fn has_prompt(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }
}

/// Why a request was refused, and where the answer goes.
#[derive(Debug)]
pub enum Rejection {
    /// Shown to the person: the client or redirect URI cannot be trusted with a redirect.
    Page(String),
    /// Sent back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// Raw parameters, as sent (query string or form body).
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The single value of `name`; a repeated parameter is an error (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("the {name} parameter is repeated"));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }
}

fn bad(message: impl Into<String>) -> OAuthError {
    OAuthError::invalid_request(message)
}

fn valid_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Finds the client and its redirect URI; nothing after this point is shown as a page.
pub async fn client_and_redirect(
    idp: &Idp,
    params: &Params,
) -> Result<(Client, String), Rejection> {
    let page = Rejection::Page;
    let client_id = params.get("client_id").map_err(page)?.ok_or_else(|| {
        Rejection::Page(
            "The request does not say which service it is for (client_id is missing).".into(),
        )
    })?;
    let client = idp
        .clients
        .fresh(&idp.core.db, client_id)
        .await
        .map_err(|_| {
            Rejection::Page("The service could not be looked up; try again later.".into())
        })?
        .map(std::sync::Arc::unwrap_or_clone)
        .filter(Client::is_active)
        .ok_or_else(|| {
            Rejection::Page(
                "The service that sent you here is not registered with this city's sign-in.".into(),
            )
        })?;
    let redirect_uri = params
        .get("redirect_uri")
        .map_err(Rejection::Page)?
        .ok_or_else(|| {
            Rejection::Page(
                "The request does not say where to return (redirect_uri is missing).".into(),
            )
        })?;
    if redirect_uri.len() > MAX_PARAM_LEN || !client.redirect_uris.iter().any(|r| r == redirect_uri)
    {
        return Err(Rejection::Page(
            "The return address in the request is not registered for this service, so you are not being sent there.".into(),
        ));
    }
    Ok((client, redirect_uri.to_string()))
}

/// Parses and validates everything after the client and redirect URI.
pub fn parse_rest(
    client: &Client,
    redirect_uri: String,
    params: &Params,
) -> Result<AuthorizationRequest, Rejection> {
    let state = params
        .get("state")
        .ok()
        .flatten()
        .filter(|s| s.len() <= MAX_PARAM_LEN)
        .map(str::to_string);
    let redirect = |error: OAuthError| Rejection::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
    };
    let get = |name: &str| -> Result<Option<&str>, Rejection> {
        match params.get(name) {
            Ok(Some(v)) if v.len() > MAX_PARAM_LEN => {
                Err(redirect(bad(format!("the {name} parameter is too long"))))
            }
            Ok(v) => Ok(v),
            Err(e) => Err(redirect(bad(e))),
        }
    };
    if params.0.len() > 64 {
        return Err(redirect(bad("too many parameters")));
    }
    get("state")?;
    match get("response_type")? {
        None => return Err(redirect(bad("response_type is missing"))),
        Some("code") => {}
        Some(other) => {
            return Err(redirect(OAuthError::unsupported_response_type(format!(
                "response_type {other:?} is not supported: only the authorization code flow (code) is"
            ))));
        }
    }
    if let Some(mode) = get("response_mode")?
        && mode != "query"
    {
        return Err(redirect(bad(format!(
            "response_mode {mode:?} is not supported: use query"
        ))));
    }
    if get("request")?.is_some() {
        return Err(redirect(OAuthError {
            code: "request_not_supported",
            ..bad("request objects are not supported; use pushed authorization requests")
        }));
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(redirect(OAuthError::unauthorized_client(
            "this client is not registered for the authorization code flow",
        )));
    }
    let scope: Vec<String> = get("scope")?
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(unknown) = scope.iter().find(|s| !client.scopes.contains(s)) {
        return Err(redirect(OAuthError::invalid_scope(format!(
            "scope {unknown:?} is not allowed for this client"
        ))));
    }
    let code_challenge = get("code_challenge")?;
    match (get("code_challenge_method")?, code_challenge) {
        (Some("S256"), Some(challenge)) if valid_pkce_value(challenge) => {}
        (Some("S256"), Some(_)) => {
            return Err(redirect(bad(
                "code_challenge is malformed (43-128 characters of A-Z a-z 0-9 - . _ ~)",
            )));
        }
        (Some("plain") | None, Some(_)) => {
            return Err(redirect(bad(
                "the plain PKCE method is not allowed: use code_challenge_method=S256",
            )));
        }
        (Some("S256"), None) => {
            return Err(redirect(bad(
                "code_challenge_method without code_challenge",
            )));
        }
        (Some(other), _) => {
            return Err(redirect(bad(format!(
                "code_challenge_method {other:?} is not supported: use S256"
            ))));
        }
        (None, None) if client.is_public() => {
            return Err(redirect(bad(
                "PKCE is required for public clients: send code_challenge with S256",
            )));
        }
        (None, None) => {}
    }
    let prompt: Vec<String> = get("prompt")?
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(unknown) = prompt
        .iter()
        .find(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account"))
    {
        return Err(redirect(bad(format!(
            "prompt value {unknown:?} is not supported"
        ))));
    }
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        return Err(redirect(bad(
            "prompt=none cannot be combined with other values",
        )));
    }
    let max_age =
        match get("max_age")? {
            None => None,
            Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                redirect(bad("max_age must be a non-negative number of seconds"))
            })?),
        };
    let acr_values = get("acr_values")?
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let claims = match get("claims")? {
        None => None,
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v @ serde_json::Value::Object(_)) => Some(v),
            _ => {
                return Err(redirect(bad(
                    "claims must be a JSON object (OpenID Connect Core 5.5)",
                )));
            }
        },
    };
    Ok(AuthorizationRequest {
        claims,
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope,
        state: state.clone(),
        nonce: get("nonce")?.map(str::to_string),
        code_challenge: code_challenge.map(str::to_string),
        prompt,
        max_age,
        login_hint: get("login_hint")?.map(str::to_string),
        ui_locales: get("ui_locales")?.map(str::to_string),
        acr_values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::AuthMethod;

    fn client(public: bool) -> Client {
        Client {
            client_id: "c1".into(),
            name: "Library".into(),
            description: None,
            org_id: None,
            auth_method: if public {
                AuthMethod::None
            } else {
                AuthMethod::ClientSecretBasic
            },
            redirect_uris: vec!["https://rp.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["openid".into(), "profile".into()],
            jwks: None,
            jwks_uri: None,
            tls_client_auth: None,
            tls_client_certificate_bound_access_tokens: false,
            id_token_alg: "ES256".into(),
            require_par: false,
            require_consent: true,
            min_aal: 0,
            backchannel_logout_uri: None,
            status: crate::clients::ClientStatus::Active,
            created_at: 0,
            version: 0,
            secret_hash: None,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn error_code(result: Result<AuthorizationRequest, Rejection>) -> &'static str {
        match result {
            Err(Rejection::Redirect { error, .. }) => error.code,
            other => panic!("expected a redirect error, got {other:?}"),
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn a_complete_request_parses() {
        let req = parse_rest(
            &client(true),
            "https://rp.example/cb".into(),
            &params(&[
                ("response_type", "code"),
                ("scope", "openid profile"),
                ("state", "s1"),
                ("nonce", "n1"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("prompt", "login consent"),
                ("max_age", "300"),
                ("acr_values", "urn:a urn:b"),
            ]),
        )
        .unwrap();
        assert_eq!(req.scope, vec!["openid", "profile"]);
        assert_eq!(req.max_age, Some(300));
        assert!(req.has_prompt("consent"));
        assert_eq!(req.acr_values.len(), 2);
    }

    #[test]
    fn the_claims_parameter_must_be_a_json_object() {
        let c = client(false);
        let uri = || "https://rp.example/cb".to_string();
        let req = parse_rest(
            &c,
            uri(),
            &params(&[
                ("response_type", "code"),
                (
                    "claims",
                    r#"{"id_token":{"acr":{"essential":true,"value":"urn:kizuna:aal:2"}}}"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            req.acr_request().minimum(),
            Some(crate::mfa::policy::Aal::Two)
        );
        for bad in ["not json", "[1,2]", "\"acr\""] {
            assert_eq!(
                error_code(parse_rest(
                    &c,
                    uri(),
                    &params(&[("response_type", "code"), ("claims", bad)])
                )),
                "invalid_request",
                "{bad}"
            );
        }
    }

    #[test]
    fn pkce_rules() {
        let base = [("response_type", "code"), ("scope", "openid")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut p: Vec<(&str, &str)> = base.to_vec();
            p.extend_from_slice(extra);
            parse_rest(&client(true), "https://rp.example/cb".into(), &params(&p))
        };
        assert_eq!(
            error_code(with(&[])),
            "invalid_request",
            "public clients need PKCE"
        );
        assert_eq!(
            error_code(with(&[
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain")
            ])),
            "invalid_request"
        );
        assert_eq!(
            error_code(with(&[("code_challenge", CHALLENGE)])),
            "invalid_request",
            "default method is plain"
        );
        assert_eq!(
            error_code(with(&[
                ("code_challenge", "short"),
                ("code_challenge_method", "S256")
            ])),
            "invalid_request"
        );
        assert!(
            parse_rest(
                &client(false),
                "https://rp.example/cb".into(),
                &params(&base)
            )
            .is_ok(),
            "optional for confidential clients"
        );
    }

    #[test]
    fn bad_requests_get_the_rfc_error() {
        let c = client(false);
        let uri = || "https://rp.example/cb".to_string();
        assert_eq!(
            error_code(parse_rest(
                &c,
                uri(),
                &params(&[("response_type", "token")])
            )),
            "unsupported_response_type"
        );
        assert_eq!(
            error_code(parse_rest(
                &c,
                uri(),
                &params(&[("response_type", "code id_token")])
            )),
            "unsupported_response_type"
        );
        assert_eq!(
            error_code(parse_rest(&c, uri(), &params(&[]))),
            "invalid_request"
        );
        assert_eq!(
            error_code(parse_rest(
                &c,
                uri(),
                &params(&[("response_type", "code"), ("scope", "openid admin")])
            )),
            "invalid_scope"
        );
        assert_eq!(
            error_code(parse_rest(
                &c,
                uri(),
                &params(&[("response_type", "code"), ("prompt", "none login")])
            )),
            "invalid_request"
        );
        assert_eq!(
            error_code(parse_rest(
                &c,
                uri(),
                &params(&[("response_type", "code"), ("max_age", "-1")])
            )),
            "invalid_request"
        );
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        assert_eq!(
            error_code(parse_rest(
                &c,
                uri(),
                &params(&[("response_type", "code"), ("nonce", &long)])
            )),
            "invalid_request"
        );
        assert_eq!(
            error_code(parse_rest(
                &c,
                uri(),
                &params(&[("response_type", "code"), ("response_type", "code")])
            )),
            "invalid_request"
        );
        match parse_rest(
            &c,
            uri(),
            &params(&[("response_type", "token"), ("state", "abc")]),
        ) {
            Err(Rejection::Redirect { state, .. }) => {
                assert_eq!(state.as_deref(), Some("abc"), "state is echoed")
            }
            other => panic!("{other:?}"),
        }
    }
}
