//! What an operator gives to add an upstream, and the checks of upstream settings made
//! before anything is fetched or stored.

use kizuna_core::custody::KeyAlgorithm;

use super::ClientAuth;
use crate::federation::ceiling::{self, AcrMap, TrustCeiling};
use crate::federation::claims::{self, ClaimMap};
use crate::federation::saml::read::IdpMetadata;
use crate::federation::{FederationError, clean_text};

/// What the operator gives to add an upstream.
#[derive(Debug, Clone)]
pub struct NewUpstream {
    pub alias: String,
    pub name: String,
    pub org_id: String,
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub client_secret: Option<String>,
    /// For `private_key_jwt`: the key type to generate (P-256 unless the upstream wants RSA).
    pub key_algorithm: KeyAlgorithm,
    pub scopes: Vec<String>,
    pub acr_values: Vec<String>,
    pub claim_map: Option<ClaimMap>,
    pub acr_map: AcrMap,
    pub ceiling: TrustCeiling,
    pub jit: bool,
    pub email_domains: Vec<String>,
    pub propagate_logout: bool,
    /// A SAML IdP (with `ClientAuth::Saml`): its metadata, and where it was read. Its
    /// entity id is the issuer; Kizuna's SP entity id is made from the alias.
    pub saml: Option<SamlIdp>,
}

/// A SAML IdP's metadata as an operator gave it.
#[derive(Debug, Clone)]
pub struct SamlIdp {
    pub metadata: IdpMetadata,
    pub metadata_url: Option<String>,
}

/// The scopes to ask for: `openid` first, then the others given, each once.
pub fn with_openid(scopes: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut all = vec!["openid".to_string()];
    for scope in scopes {
        if !all.contains(&scope) {
            all.push(scope);
        }
    }
    all
}

/// A claim mapping from `ATTRIBUTE=CLAIM` entries laid over `base`.
pub fn claim_map_from(entries: &[String], base: ClaimMap) -> Result<ClaimMap, FederationError> {
    let mut map = base;
    for entry in entries {
        let (attribute, claim) = claims::parse_mapping(entry).map_err(invalid)?;
        map.insert(attribute, claim);
    }
    Ok(map)
}

/// An acr mapping from `VALUE=AAL[:IAL]` entries.
pub fn acr_map_from(entries: &[String]) -> Result<AcrMap, FederationError> {
    entries
        .iter()
        .map(|e| ceiling::parse_acr_mapping(e).map_err(invalid))
        .collect()
}

/// A claim mapping as `ATTRIBUTE=CLAIM` entries (what [`claim_map_from`] reads).
pub fn claim_entries(map: &ClaimMap) -> Vec<String> {
    map.iter().map(|(a, c)| format!("{a}={c}")).collect()
}

/// An acr mapping as `VALUE=AAL:IAL` entries (what [`acr_map_from`] reads).
pub fn acr_entries(map: &AcrMap) -> Vec<String> {
    map.iter()
        .map(|(v, l)| format!("{v}={}:{}", l.aal, l.ial))
        .collect()
}

pub(super) fn invalid(text: impl Into<String>) -> FederationError {
    FederationError::Invalid(text.into())
}

/// An issuer URL Kizuna may talk to: HTTPS, or plain HTTP on a loopback address (tests and
/// development), without query or fragment (OpenID Connect Discovery §2).
pub fn check_issuer(issuer: &str) -> Result<String, FederationError> {
    let url = url::Url::parse(issuer).map_err(|_| invalid("the issuer is not a URL"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(invalid("the issuer must be an https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the issuer must not have a query or fragment"));
    }
    Ok(issuer.to_string())
}

pub(super) fn check(new: &NewUpstream) -> Result<(), FederationError> {
    let alias_ok = (2..=32).contains(&new.alias.len())
        && new
            .alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !new.alias.starts_with('-');
    if !alias_ok {
        return Err(invalid(
            "the alias must be 2 to 32 lower-case letters, digits and '-'",
        ));
    }
    check_name(&new.name)?;
    if let Some(saml) = &new.saml {
        return check_saml(new, &saml.metadata);
    }
    check_issuer(&new.issuer)?;
    if new.client_id.is_empty() || new.client_id.len() > 255 {
        return Err(invalid("the client id must be 1 to 255 characters"));
    }
    match (new.client_auth, &new.client_secret) {
        (ClientAuth::ClientSecretBasic, None) => {
            return Err(invalid("client_secret_basic needs the client secret"));
        }
        (ClientAuth::Saml, _) => return Err(invalid("a SAML upstream needs its metadata")),
        (ClientAuth::PrivateKeyJwt, Some(_)) => {
            return Err(invalid("private_key_jwt uses a key, not a secret"));
        }
        _ => {}
    }
    check_requests(&new.scopes, &new.acr_values)?;
    check_domains(&new.email_domains)
}

/// A SAML upstream: an entity id and endpoints Kizuna may use, at least one certificate,
/// and no OpenID settings.
fn check_saml(new: &NewUpstream, md: &IdpMetadata) -> Result<(), FederationError> {
    if new.client_auth != ClientAuth::Saml || new.client_secret.is_some() {
        return Err(invalid(
            "a SAML upstream has no client secret or client authentication",
        ));
    }
    if md.entity_id.is_empty()
        || md.entity_id.len() > 1024
        || clean_text(&md.entity_id, 1024) != md.entity_id
    {
        return Err(invalid(
            "the IdP's entity id must be 1 to 1024 printable characters",
        ));
    }
    for url in std::iter::once(&md.sso_redirect_url).chain(&md.slo_redirect_url) {
        check_issuer(url)
            .map_err(|_| invalid("the IdP's sign-in and logout services must be https:// URLs"))?;
    }
    if md.signing_certs.is_empty() {
        return Err(invalid("the IdP's metadata has no signing certificate"));
    }
    let token_ok =
        |t: &String| !t.is_empty() && t.len() <= 200 && t.bytes().all(|b| b.is_ascii_graphic());
    if !new.acr_values.iter().all(token_ok) {
        return Err(invalid(
            "authentication context classes are single printable words",
        ));
    }
    check_domains(&new.email_domains)
}

pub(super) fn check_name(name: &str) -> Result<(), FederationError> {
    if name.trim().is_empty() || name.chars().count() > 100 || clean_text(name, 100) != name {
        return Err(invalid("the name must be 1 to 100 characters"));
    }
    Ok(())
}

/// The scopes and `acr_values` sent upstream: single printable words, `openid` among them.
pub(super) fn check_requests(
    scopes: &[String],
    acr_values: &[String],
) -> Result<(), FederationError> {
    if !scopes.iter().any(|s| s == "openid") {
        return Err(invalid("the scopes must include openid"));
    }
    let token_ok =
        |t: &String| !t.is_empty() && t.len() <= 200 && t.bytes().all(|b| b.is_ascii_graphic());
    if !scopes.iter().all(token_ok) || !acr_values.iter().all(token_ok) {
        return Err(invalid("scopes and acr values are single printable words"));
    }
    Ok(())
}

pub(super) fn check_domains(domains: &[String]) -> Result<(), FederationError> {
    for domain in domains {
        if !domain.contains('.')
            || domain.starts_with('.')
            || !domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(invalid(format!(
                "{domain:?} is not an email domain (lower case)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(alias: &str, issuer: &str) -> NewUpstream {
        NewUpstream {
            alias: alias.into(),
            name: "City Hospital".into(),
            org_id: "org".into(),
            issuer: issuer.into(),
            client_id: "kizuna".into(),
            client_auth: ClientAuth::ClientSecretBasic,
            client_secret: Some("secret".into()),
            key_algorithm: KeyAlgorithm::P256,
            scopes: vec!["openid".into()],
            acr_values: Vec::new(),
            claim_map: None,
            acr_map: AcrMap::new(),
            ceiling: TrustCeiling::new(1, 1).unwrap(),
            jit: true,
            email_domains: vec!["hospital.example.jp".into()],
            propagate_logout: true,
            saml: None,
        }
    }

    #[test]
    fn issuers_are_https_except_on_loopback() {
        assert!(check_issuer("https://login.hospital.example.jp").is_ok());
        assert!(check_issuer("http://127.0.0.1:4000").is_ok());
        assert!(check_issuer("http://localhost:4000").is_ok());
        assert!(check_issuer("http://login.hospital.example.jp").is_err());
        assert!(check_issuer("https://op.example/?tenant=1").is_err());
        assert!(check_issuer("not a url").is_err());
    }

    #[test]
    fn settings_are_checked_before_anything_is_fetched() {
        assert!(check(&new("hospital", "https://op.example")).is_ok());
        assert!(check(&new("Hospital", "https://op.example")).is_err());
        assert!(check(&new("-x", "https://op.example")).is_err());
        let mut no_openid = new("hospital", "https://op.example");
        no_openid.scopes = vec!["email".into()];
        assert!(check(&no_openid).is_err());
        let mut both = new("hospital", "https://op.example");
        both.client_auth = ClientAuth::PrivateKeyJwt;
        assert!(check(&both).is_err(), "a key, not a secret");
        let mut domain = new("hospital", "https://op.example");
        domain.email_domains = vec!["Hospital.example".into()];
        assert!(check(&domain).is_err());
    }
}
