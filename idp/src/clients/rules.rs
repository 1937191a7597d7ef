//! Registration rules for clients: redirect URIs (RFC 8252), scope tokens (RFC 6749 §3.3),
//! JWK Sets, and the defaults that fit each kind of client.

use kizuna_core::jose::PublicJwk;

use super::{AuthMethod, Client, ClientError, ClientStatus, GrantType, NewClient, STANDARD_SCOPES};

pub(super) fn invalid(message: impl Into<String>) -> ClientError {
    ClientError::Invalid(message.into())
}

/// A redirect URI: absolute, no fragment; `https`, `http` only on a loopback host (RFC 8252
/// §7.3), or a private-use scheme (`com.example.app:/cb`, RFC 8252 §7.1) for native apps.
pub fn check_redirect_uri(uri: &str, public: bool) -> Result<(), ClientError> {
    if uri.len() > 2048 {
        return Err(invalid("redirect URIs must be at most 2048 characters"));
    }
    if uri.contains('#') {
        return Err(invalid(format!(
            "redirect URI {uri:?} must not contain a fragment"
        )));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!(
            "redirect URI {uri:?} contains spaces or control characters"
        )));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(invalid(format!("redirect URI {uri:?} is not absolute")));
    };
    match scheme {
        "https" => {
            let host = rest
                .strip_prefix("//")
                .map(|r| r.split(['/', '?']).next().unwrap_or(""));
            if host.is_none_or(str::is_empty) {
                return Err(invalid(format!("redirect URI {uri:?} has no host")));
            }
            Ok(())
        }
        "http" => {
            let host = rest
                .strip_prefix("//")
                .map(|r| r.split(['/', '?']).next().unwrap_or(""))
                .unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            if matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
                Ok(())
            } else {
                Err(invalid(format!(
                    "redirect URI {uri:?} must use https (http only on a loopback address)"
                )))
            }
        }
        s if public
            && s.contains('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')) =>
        {
            Ok(())
        }
        _ => Err(invalid(format!(
            "redirect URI {uri:?} must use https (or http on loopback, or a private-use scheme such as com.example.app: for native apps)"
        ))),
    }
}

/// A scope token (RFC 6749 §3.3): printable ASCII without space, `"` or `\`.
pub fn check_scope_token(scope: &str) -> Result<(), ClientError> {
    let ok = !scope.is_empty()
        && scope.len() <= 128
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("{scope:?} is not a valid scope name")))
    }
}

fn check_jwks(jwks: &serde_json::Value) -> Result<(), ClientError> {
    let keys = jwks["keys"]
        .as_array()
        .ok_or_else(|| invalid("jwks must be a JWK Set: {\"keys\": [...]}"))?;
    if keys.is_empty() || keys.len() > 20 {
        return Err(invalid("jwks must hold between 1 and 20 keys"));
    }
    for key in keys {
        PublicJwk::parse(key).map_err(|e| invalid(format!("jwks: {e}")))?;
    }
    Ok(())
}

/// Which rule a client's redirect URIs follow.
#[derive(Clone, Copy)]
pub(super) enum Redirects<'a> {
    /// A relying party: https, http only on loopback, private-use schemes for native apps.
    ThirdParty,
    /// A client Kizuna itself runs: anywhere under its own public URL, which the operator
    /// chose (plain HTTP included, for a development install on a host name).
    UnderPublicUrl(&'a str),
}

impl Redirects<'_> {
    fn check(self, uri: &str, public: bool) -> Result<(), ClientError> {
        match self {
            Redirects::ThirdParty => check_redirect_uri(uri, public),
            Redirects::UnderPublicUrl(base) => {
                if uri.starts_with(&format!("{}/", base.trim_end_matches('/')))
                    && !uri.contains('#')
                    && uri.len() <= 2048
                {
                    Ok(())
                } else {
                    Err(invalid(format!(
                        "a first-party redirect URI must be under the public URL, not {uri:?}"
                    )))
                }
            }
        }
    }
}

/// Applies defaults and checks every rule; returns the client to store (without id/secret).
pub(super) fn plan(new: NewClient) -> Result<Client, ClientError> {
    plan_with(new, Redirects::ThirdParty)
}

pub(super) fn plan_with(new: NewClient, redirects: Redirects) -> Result<Client, ClientError> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid("the client name must be 1 to 200 characters"));
    }
    let auth_method = match (new.public, new.auth_method) {
        (true, None | Some(AuthMethod::None)) => AuthMethod::None,
        (true, Some(other)) => {
            return Err(invalid(format!(
                "a public client authenticates with none, not {}",
                other.as_str()
            )));
        }
        (false, Some(AuthMethod::None)) => {
            return Err(invalid("auth method none is for public clients (--public)"));
        }
        (false, Some(method)) => method,
        (false, None) if new.jwks.is_some() || new.jwks_uri.is_some() => AuthMethod::PrivateKeyJwt,
        (false, None) => AuthMethod::ClientSecretBasic,
    };
    let mut grant_types = new.grant_types.clone();
    if grant_types.is_empty() {
        grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    }
    grant_types.dedup();
    if auth_method == AuthMethod::None && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(invalid("client_credentials needs a confidential client"));
    }
    let needs_redirect = grant_types.contains(&GrantType::AuthorizationCode);
    if needs_redirect && new.redirect_uris.is_empty() {
        return Err(invalid(
            "authorization_code needs at least one redirect URI",
        ));
    }
    if new.redirect_uris.len() > 20 || new.post_logout_redirect_uris.len() > 20 {
        return Err(invalid("at most 20 redirect URIs"));
    }
    for uri in new
        .redirect_uris
        .iter()
        .chain(&new.post_logout_redirect_uris)
    {
        redirects.check(uri, new.public)?;
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        check_redirect_uri(uri, false)?;
    }
    match (auth_method, &new.tls_client_auth) {
        (AuthMethod::TlsClientAuth, None) => {
            return Err(invalid(
                "tls_client_auth needs the subject DN or one SAN its certificate names (RFC 8705 §2.1.2)",
            ));
        }
        (AuthMethod::TlsClientAuth, Some(m))
            if m.value.trim().is_empty() || m.value.len() > 1024 =>
        {
            return Err(invalid(
                "the tls_client_auth name must be 1 to 1024 characters",
            ));
        }
        (AuthMethod::TlsClientAuth, _) => {}
        (_, Some(_)) => {
            return Err(invalid(
                "a subject DN or SAN to match is for the tls_client_auth method only",
            ));
        }
        _ => {}
    }
    match (auth_method, &new.jwks, &new.jwks_uri) {
        (AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth, None, None) => {
            return Err(invalid(format!(
                "{} needs the client's keys: --jwks-uri (or a JWK Set)",
                auth_method.as_str()
            )));
        }
        (_, Some(_), Some(_)) => return Err(invalid("give jwks or jwks_uri, not both")),
        (_, Some(jwks), None) => check_jwks(jwks)?,
        (_, None, Some(uri)) => check_redirect_uri(uri, false).map_err(|_| {
            invalid(format!(
                "jwks_uri {uri:?} must be an https URL (http only on loopback)"
            ))
        })?,
        _ => {}
    }
    let scopes = if new.scopes.is_empty() {
        STANDARD_SCOPES.iter().map(|s| s.to_string()).collect()
    } else {
        for scope in &new.scopes {
            check_scope_token(scope)?;
        }
        let mut scopes = new.scopes.clone();
        scopes.sort();
        scopes.dedup();
        scopes
    };
    let id_token_alg = new.id_token_alg.unwrap_or_else(|| "ES256".into());
    if !matches!(id_token_alg.as_str(), "ES256" | "RS256") {
        return Err(invalid("id_token_alg must be ES256 or RS256"));
    }
    let description = new
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1000)
    {
        return Err(invalid("the description must be at most 1000 characters"));
    }
    if new.min_aal > 3 {
        return Err(invalid("min_aal must be 0 (none), 1, 2 or 3"));
    }
    Ok(Client {
        min_aal: new.min_aal,
        client_id: String::new(),
        name,
        description,
        org_id: new.org_id,
        auth_method,
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        grant_types,
        scopes,
        jwks: new.jwks,
        jwks_uri: new.jwks_uri,
        tls_client_auth: new.tls_client_auth,
        tls_client_certificate_bound_access_tokens: new.certificate_bound
            || auth_method.uses_certificate(),
        id_token_alg,
        require_par: new.require_par,
        require_consent: new.require_consent.unwrap_or(true),
        backchannel_logout_uri: new.backchannel_logout_uri,
        status: ClientStatus::Active,
        version: 0,
        created_at: kizuna_core::time::now_unix(),
        secret_hash: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn web(name: &str) -> NewClient {
        NewClient {
            name: name.into(),
            redirect_uris: vec!["https://rp.city.example/cb".into()],
            ..NewClient::default()
        }
    }

    #[test]
    fn a_first_party_redirect_must_lie_under_the_public_url() {
        let console = |uri: &str| {
            plan_with(
                NewClient {
                    public: true,
                    redirect_uris: vec![uri.into()],
                    ..web("Console")
                },
                Redirects::UnderPublicUrl("http://kizuna.city.internal:8080/"),
            )
        };
        assert!(console("http://kizuna.city.internal:8080/admin/callback").is_ok());
        for bad in [
            "http://kizuna.city.internal:8080.evil.example/admin/callback",
            "http://kizuna.city.internal:8080/admin/callback#x",
            "https://rp.city.example/cb",
        ] {
            assert!(console(bad).is_err(), "{bad}");
        }
        assert!(
            plan(NewClient {
                redirect_uris: vec!["http://kizuna.city.internal:8080/admin/callback".into()],
                ..web("Third party")
            })
            .is_err(),
            "plain http on a host name is only for Kizuna's own clients"
        );
    }

    #[test]
    fn defaults_fit_the_client_kind() {
        let c = plan(web("Library")).unwrap();
        assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(
            c.grant_types,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert!(c.scopes.contains(&"openid".to_string()));
        let public = plan(NewClient {
            public: true,
            ..web("App")
        })
        .unwrap();
        assert_eq!(public.auth_method, AuthMethod::None);
        let jwt = plan(NewClient {
            jwks_uri: Some("https://rp.example/jwks".into()),
            ..web("Gov")
        })
        .unwrap();
        assert_eq!(jwt.auth_method, AuthMethod::PrivateKeyJwt);
    }

    #[test]
    fn redirect_uris_follow_rfc_8252() {
        for ok in [
            "https://rp.example/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            check_redirect_uri(ok, false).unwrap();
        }
        check_redirect_uri("jp.city.app:/oauth", true).unwrap();
        for bad in [
            "http://rp.example/cb",
            "https://rp.example/cb#frag",
            "/relative",
            "https:///nohost",
            "jp.city.app:/oauth",
            "javascript:alert(1)",
            "https://rp.example/a b",
        ] {
            assert!(check_redirect_uri(bad, false).is_err(), "{bad}");
        }
        assert!(check_redirect_uri("javascript:alert(1)", true).is_err());
        assert!(check_redirect_uri("http://localhost.evil.example/cb", false).is_err());
    }

    #[test]
    fn inconsistent_registrations_are_refused() {
        assert!(
            plan(NewClient {
                redirect_uris: vec![],
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                public: true,
                grant_types: vec![GrantType::ClientCredentials],
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                auth_method: Some(AuthMethod::PrivateKeyJwt),
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                public: true,
                auth_method: Some(AuthMethod::ClientSecretBasic),
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                id_token_alg: Some("HS256".into()),
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                scopes: vec!["bad scope".into()],
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                jwks: Some(json!({"keys": [{"kty": "oct", "k": "AA"}]})),
                ..web("x")
            })
            .is_err()
        );
        let service = NewClient {
            name: "Sensor hub".into(),
            grant_types: vec![GrantType::ClientCredentials],
            ..NewClient::default()
        };
        assert!(
            plan(service).is_ok(),
            "client_credentials needs no redirect URI"
        );
    }
}
