//! Mutual-TLS client authentication and certificate-bound tokens (RFC 8705): a registered
//! client's certificate checked against its registration (`tls_client_auth`: a certificate
//! this Kizuna issued, live, naming the registered subject DN or SAN;
//! `self_signed_tls_client_auth`: a key in the client's JWK Set), and certificates that act
//! as clients of their own — a device or an ACME-enrolled service whose organization lets
//! its certificates of that profile (and model) get scopes, with no separate registration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use kizuna_core::jose::PublicJwk;
use kizuna_core::pki::{Credential, Serial};
use kizuna_core::time::Stamp;

use crate::Idp;
use crate::clients::{AuthMethod, Client, ClientStatus, GrantType};

/// The certificate a client authenticated with, as its tokens are bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// `x5t#S256`: the base64url SHA-256 of the certificate (RFC 8705 §3.1).
    pub thumbprint: String,
    /// The serial, when this Kizuna issued the certificate: its revocation ends the tokens.
    pub serial: Option<Serial>,
    /// When that certificate expires: the tokens never outlive it.
    pub not_after: Option<i64>,
}

impl Bound {
    /// Tokens bound to certificate `der`, and to its record when this Kizuna issued it.
    fn to(der: &[u8], issued: Option<&Credential>) -> Bound {
        Bound {
            thumbprint: thumbprint(der),
            serial: issued.map(|c| c.serial.clone()),
            not_after: issued.map(|c| c.not_after),
        }
    }
}

/// The `x5t#S256` thumbprint of a DER certificate.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(kizuna_core::secret::sha256(der))
}

/// How long a replica keeps what a presented certificate is (its names, organization,
/// device, the scopes its organization grants) before reading it again. Its status is read
/// on every use, so a revocation or hold refuses the next request at once.
const CREDENTIAL_TTL: Duration = Duration::from_secs(2);

type CachedCredential = (Option<Credential>, Stamp);

/// Certificates recently presented as client credentials, by the SHA-256 of their DER.
#[derive(Clone, Default)]
pub struct CredentialCache {
    entries: Arc<Mutex<HashMap<[u8; 32], CachedCredential>>>,
}

impl CredentialCache {
    fn fresh(&self, key: &[u8; 32]) -> Option<Option<Credential>> {
        let entries = self.entries.lock().ok()?;
        let (credential, at) = entries.get(key)?;
        (at.age() < CREDENTIAL_TTL).then(|| credential.clone())
    }

    fn remember(&self, key: [u8; 32], credential: Option<Credential>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.retain(|_, (_, at)| at.age() < CREDENTIAL_TTL);
            }
            entries.insert(key, (credential, Stamp::now()));
        }
    }
}

/// The certificate's record when this Kizuna issued it, with its status as it is now.
async fn issued_here(idp: &Idp, der: &[u8]) -> Result<Option<Credential>, String> {
    let failed = |e: sqlx::Error| {
        tracing::error!(error = %e, "reading a client certificate");
        "the certificate could not be checked".to_string()
    };
    let key = kizuna_core::secret::sha256(der);
    let Some(cached) = idp.credentials.fresh(&key) else {
        let credential = idp.certificates.credential(der).await.map_err(failed)?;
        idp.credentials.remember(key, credential.clone());
        return Ok(credential);
    };
    let Some(mut credential) = cached else {
        return Ok(None);
    };
    match idp
        .certificates
        .binding(&credential.serial)
        .await
        .map_err(failed)?
    {
        Some(now) => {
            credential.status = now.status;
            credential.status_changed_at = now.status_changed_at;
            Ok(Some(credential))
        }
        None => Ok(None),
    }
}

/// A certificate this Kizuna issued and that may authenticate now.
async fn live_credential(idp: &Idp, der: &[u8]) -> Result<Credential, String> {
    let credential = issued_here(idp, der)
        .await?
        .ok_or("the certificate was not issued by this Kizuna")?;
    check_live(credential)
}

/// The credential, if it may authenticate now: valid, within its validity, and its device
/// (if any) active.
fn check_live(credential: Credential) -> Result<Credential, String> {
    if !credential.is_live(kizuna_core::time::now_unix()) {
        return Err(format!(
            "the certificate is {} or outside its validity",
            credential.status
        ));
    }
    if credential
        .device
        .as_ref()
        .is_some_and(|(_, active)| !active)
    {
        return Err("the certificate's device is not active".into());
    }
    Ok(credential)
}

/// Checks a registered client's certificate against its registration.
pub async fn verify_registered(idp: &Idp, client: &Client, der: &[u8]) -> Result<Bound, String> {
    match client.auth_method {
        AuthMethod::TlsClientAuth => {
            let wanted = client
                .tls_client_auth
                .as_ref()
                .ok_or("the client has no certificate name registered")?;
            let credential = live_credential(idp, der).await?;
            let names = match wanted.kind.san_kind() {
                None => credential.subject == wanted.value,
                Some(kind) => credential
                    .sans
                    .iter()
                    .any(|(k, v)| k == kind && v.eq_ignore_ascii_case(&wanted.value)),
            };
            if !names {
                return Err("the certificate does not name the registered subject".into());
            }
            Ok(Bound::to(der, Some(&credential)))
        }
        AuthMethod::SelfSignedTlsClientAuth => {
            let spki = Certificate::from_der(der)
                .ok()
                .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
                .ok_or("the certificate cannot be read")?;
            let keys = match (&client.jwks, &client.jwks_uri) {
                (Some(jwks), _) => jwks.clone(),
                (None, Some(uri)) => idp.remote_jwks.get(&idp.http, uri, None).await?,
                (None, None) => return Err("the client has no registered keys".into()),
            };
            let registered = keys["keys"].as_array().is_some_and(|keys| {
                keys.iter().any(|k| {
                    PublicJwk::parse(k)
                        .ok()
                        .map(|j| j.public_key().spki_der())
                        .is_some_and(|registered| registered == spki)
                })
            });
            if !registered {
                return Err("the certificate's key is not in the client's JWK Set".into());
            }
            Ok(Bound::to(der, None))
        }
        // A secret or key proved the client; the certificate only binds its tokens. One this
        // Kizuna issued must be live, and binds them by serial too, so its revocation ends
        // them; any other binds by thumbprint alone.
        _ => match issued_here(idp, der).await? {
            Some(credential) => Ok(Bound::to(der, Some(&check_live(credential)?))),
            None => Ok(Bound::to(der, None)),
        },
    }
}

/// A certificate acting as a client of its own: its client id is its device URI, else its
/// first DNS name; `claimed` (the request's `client_id`), when given, must be one of those.
pub async fn certificate_client(
    idp: &Idp,
    der: &[u8],
    claimed: Option<&str>,
) -> Result<(Client, Bound), String> {
    let credential = live_credential(idp, der).await?;
    let scopes = credential.client_scopes.clone().ok_or(
        "this certificate may not act as a client: its organization grants its profile no scopes",
    )?;
    let identities: Vec<&str> = credential
        .sans
        .iter()
        .filter(|(kind, value)| {
            (kind == "uri"
                && (value.starts_with("spiffe://") || value.starts_with("urn:kizuna:device:")))
                || kind == "dns"
        })
        .map(|(_, value)| value.as_str())
        .collect();
    let client_id = match claimed {
        Some(id) if identities.contains(&id) => id.to_string(),
        Some(_) => return Err("the client_id is not a name of the certificate".into()),
        None => identities
            .first()
            .ok_or("the certificate names no device or DNS name to act as")?
            .to_string(),
    };
    let name = credential
        .device
        .as_ref()
        .map_or_else(|| client_id.clone(), |(id, _)| id.clone());
    let client = Client {
        client_id,
        name,
        description: None,
        org_id: credential.org_id.clone(),
        auth_method: AuthMethod::TlsClientAuth,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        grant_types: vec![GrantType::ClientCredentials],
        scopes,
        jwks: None,
        jwks_uri: None,
        tls_client_auth: None,
        tls_client_certificate_bound_access_tokens: true,
        id_token_alg: "ES256".into(),
        require_par: false,
        require_consent: false,
        min_aal: 0,
        backchannel_logout_uri: None,
        status: ClientStatus::Active,
        created_at: credential.not_before,
        version: 0,
        secret_hash: None,
    };
    let bound = Bound::to(der, Some(&credential));
    Ok((client, bound))
}

/// A certificate acting as a client of its own (no registration): it may get tokens for
/// itself, and nothing else a registered client may do (introspection).
pub fn is_certificate_client(client: &Client) -> bool {
    client.auth_method == AuthMethod::TlsClientAuth && client.tls_client_auth.is_none()
}

/// A certificate client's kind of identity, for telling its tokens from a registered
/// client's: a device URI or a DNS name, never a registered client id (which is a UUID).
pub fn names_a_certificate_client(client_id: &str) -> bool {
    client_id.starts_with("spiffe://")
        || client_id.starts_with("urn:kizuna:device:")
        || client_id.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_is_the_base64url_sha256_of_the_der() {
        // SHA-256("abc") = ba7816bf…ad, base64url without padding.
        assert_eq!(
            thumbprint(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn registered_client_ids_are_not_certificate_names() {
        assert!(names_a_certificate_client(
            "spiffe://city.example/org/o/device/d"
        ));
        assert!(names_a_certificate_client("urn:kizuna:device:o:d"));
        assert!(names_a_certificate_client("api.water.city.example"));
        assert!(!names_a_certificate_client(
            "01a24d08-ef88-7495-9e0c-10ee451d9176"
        ));
    }
}
