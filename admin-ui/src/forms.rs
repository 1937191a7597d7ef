//! The requests the console's pages and the admin API share (queries, and the JSON bodies
//! a page builds from its form fields), each turned once into what [`crate::ops`] takes.

use serde::Deserialize;

use kizuna_ca::devices::NewDevice;
use kizuna_ca::enroll::tokens::TokenSpec;
use kizuna_ca::revoke::Reason;
use kizuna_core::orgs::{NewOrganization, OrgKind};
use kizuna_idp::clients::{AuthMethod, GrantType, NewClient, TlsMatch, TlsMatchKind};
use kizuna_idp::federation::ceiling::{AcrMap, TrustCeiling};
use kizuna_idp::federation::claims::{ClaimMap, default_map};
use kizuna_idp::federation::upstreams::{
    self as upstream_settings, acr_entries, acr_map_from, claim_entries, claim_map_from,
};
use kizuna_idp::federation::{ClientAuth, NewUpstream, UpstreamEdit};
use kizuna_idp::users::Role;

use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::ops;
use crate::store::{AuditSearch, CertSearch, DeviceSearch};

// Devices, certificates and enrollment tokens.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    pub q: Option<String>,
    pub org: Option<String>,
    pub status: Option<String>,
}

impl DeviceQuery {
    pub fn search(self) -> Result<DeviceSearch, ConsoleError> {
        Ok(DeviceSearch {
            text: ops::search_text(self.q)?,
            org_id: ops::search_text(self.org)?,
            status: ops::search_text(self.status)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    pub id: Option<String>,
    pub org_id: String,
    pub model: String,
    pub hardware_serial: Option<String>,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub installer: String,
}

impl From<DeviceRequest> for NewDevice {
    fn from(r: DeviceRequest) -> NewDevice {
        NewDevice {
            id: r.id.filter(|s| !s.trim().is_empty()),
            org_id: r.org_id,
            model: r.model,
            hardware_serial: r.hardware_serial.filter(|s| !s.trim().is_empty()),
            location: r.location,
            coordinates: None,
            installer: r.installer,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CertQuery {
    pub q: Option<String>,
    pub org: Option<String>,
    pub device: Option<String>,
    pub status: Option<String>,
}

impl CertQuery {
    pub fn search(self) -> Result<CertSearch, ConsoleError> {
        Ok(CertSearch {
            text: ops::search_text(self.q)?,
            org_id: ops::search_text(self.org)?,
            device_id: ops::search_text(self.device)?,
            status: ops::search_text(self.status)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub org_id: String,
    #[serde(default = "device_profile")]
    pub profile: String,
    pub device_id: Option<String>,
    #[serde(default = "any_subject")]
    pub subject_pattern: String,
    #[serde(default = "day")]
    pub ttl_secs: i64,
}

fn device_profile() -> String {
    "device".into()
}

fn any_subject() -> String {
    "*".into()
}

fn day() -> i64 {
    86_400
}

impl From<TokenRequest> for TokenSpec {
    fn from(r: TokenRequest) -> TokenSpec {
        TokenSpec {
            org_id: r.org_id,
            profile: r.profile,
            device_id: r.device_id.filter(|s| !s.trim().is_empty()),
            model: None,
            subject_pattern: r.subject_pattern,
            ttl_secs: r.ttl_secs,
            count: 1,
        }
    }
}

/// A revocation reason by its RFC 5280 name.
pub fn reason(name: &str) -> Result<Reason, ConsoleError> {
    name.parse()
        .map_err(|e: String| ConsoleError::Invalid(Msg::UnknownReason.with_detail(e)))
}

// The audit log.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// `jsonl` or `csv` for an export (all matching entries, oldest first).
    pub format: Option<String>,
}

impl AuditQuery {
    pub fn search(&self, limit: i64) -> AuditSearch {
        let f = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        AuditSearch {
            actor: f(&self.actor),
            action: f(&self.action),
            target: f(&self.target),
            since: f(&self.since),
            until: f(&self.until),
            limit,
        }
    }
}

// Clients.

/// Client registration metadata, in RFC 7591 names.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    pub client_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    #[serde(default)]
    pub require_consent: Option<bool>,
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// The lowest authentication assurance level (1-3) sign-ins for this client must reach.
    #[serde(default)]
    pub min_aal: u8,
    /// RFC 8705 §2.1.2: for `tls_client_auth`, exactly one of these names the certificate.
    #[serde(default)]
    pub tls_client_auth_subject_dn: Option<String>,
    #[serde(default)]
    pub tls_client_auth_san_dns: Option<String>,
    #[serde(default)]
    pub tls_client_auth_san_uri: Option<String>,
    #[serde(default)]
    pub tls_client_auth_san_ip: Option<String>,
    #[serde(default)]
    pub tls_client_auth_san_email: Option<String>,
    /// RFC 8705 §3.4: access tokens bound to the client's certificate.
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
}

impl ClientRequest {
    /// The one subject DN or SAN a `tls_client_auth` registration names.
    fn tls_match(&self) -> Result<Option<TlsMatch>, ConsoleError> {
        let given: Vec<TlsMatch> = [
            (TlsMatchKind::SubjectDn, &self.tls_client_auth_subject_dn),
            (TlsMatchKind::SanDns, &self.tls_client_auth_san_dns),
            (TlsMatchKind::SanUri, &self.tls_client_auth_san_uri),
            (TlsMatchKind::SanIp, &self.tls_client_auth_san_ip),
            (TlsMatchKind::SanEmail, &self.tls_client_auth_san_email),
        ]
        .into_iter()
        .filter_map(|(kind, value)| value.clone().map(|value| TlsMatch { kind, value }))
        .collect();
        match given.len() {
            0 | 1 => Ok(given.into_iter().next()),
            _ => Err(ConsoleError::Invalid(Msg::OneTlsClientAuthName.into())),
        }
    }

    pub fn into_new(self) -> Result<NewClient, ConsoleError> {
        let grant_types = self
            .grant_types
            .iter()
            .map(|g| g.parse::<GrantType>())
            .collect::<Result<Vec<_>, _>>()?;
        let auth_method = self
            .token_endpoint_auth_method
            .as_deref()
            .map(str::parse::<AuthMethod>)
            .transpose()?;
        let tls_client_auth = self.tls_match()?;
        Ok(NewClient {
            tls_client_auth,
            certificate_bound: self.tls_client_certificate_bound_access_tokens,
            name: self.client_name,
            description: self.description,
            org_id: self.org_id.filter(|o| !o.trim().is_empty()),
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            public: auth_method == Some(AuthMethod::None),
            grant_types,
            auth_method,
            scopes: self
                .scope
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            id_token_alg: self.id_token_signed_response_alg,
            require_par: self.require_pushed_authorization_requests,
            require_consent: self.require_consent,
            backchannel_logout_uri: self.backchannel_logout_uri,
            min_aal: self.min_aal,
        })
    }
}

/// A role by its name (`org-admin`, …).
pub fn role(name: &str) -> Result<Role, ConsoleError> {
    name.parse()
        .map_err(|e: String| ConsoleError::Invalid(Msg::UnknownRole.with_detail(e)))
}

// Upstream identity providers.

fn one() -> u8 {
    1
}

/// The default of a flag that is on unless turned off (here and in the API's role change).
pub fn yes() -> bool {
    true
}

/// A trust ceiling from the API, checked (levels 1 to 3).
fn ceiling(c: TrustCeiling) -> Result<TrustCeiling, ConsoleError> {
    TrustCeiling::new(c.max_ial, c.max_aal)
        .map_err(|e| ConsoleError::Invalid(Msg::CeilingInvalid.with_detail(e)))
}

/// A claim mapping from the API (`{attribute: claim}`), checked as the CLI checks it.
fn claim_map(map: &ClaimMap) -> Result<ClaimMap, ConsoleError> {
    Ok(claim_map_from(&claim_entries(map), ClaimMap::new())?)
}

/// An acr mapping from the API (`{value: {aal, ial}}`), checked as the CLI checks it.
fn acr_map(map: &AcrMap) -> Result<AcrMap, ConsoleError> {
    Ok(acr_map_from(&acr_entries(map))?)
}

/// An upstream OpenID provider to add; the names are those `GET` answers with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRequest {
    pub alias: String,
    pub name: String,
    /// The organization that runs the provider (id or name).
    pub org_id: String,
    /// The OpenID issuer and Kizuna's client id there (not for a SAML IdP).
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    /// A SAML 2.0 IdP instead, read from its metadata at this URL.
    #[serde(default)]
    pub saml_metadata_url: Option<String>,
    /// `client_secret_basic` (the default; needs `client_secret`) or `private_key_jwt`
    /// (Kizuna generates the key; its public JWK Set is in the answer).
    #[serde(default)]
    pub client_auth: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The private_key_jwt key type: `p256` (default) or `rsa2048`.
    #[serde(default)]
    pub key_algorithm: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// Which upstream claim fills each account attribute; the standard claims by default.
    #[serde(default)]
    pub claim_map: Option<ClaimMap>,
    #[serde(default)]
    pub acr_map: AcrMap,
    #[serde(default)]
    pub ceiling: Option<TrustCeiling>,
    #[serde(default = "yes")]
    pub jit: bool,
    #[serde(default)]
    pub email_domains: Vec<String>,
    #[serde(default = "yes")]
    pub propagate_logout: bool,
}

impl UpstreamRequest {
    pub fn into_new(self) -> Result<NewUpstream, ConsoleError> {
        let saml = self.saml_metadata_url.is_some();
        let client_auth = if saml {
            ClientAuth::Saml
        } else {
            ClientAuth::parse(self.client_auth.as_deref().unwrap_or("client_secret_basic"))?
        };
        let key_algorithm = self
            .key_algorithm
            .as_deref()
            .unwrap_or("p256")
            .parse()
            .map_err(|e: kizuna_core::custody::CustodyError| {
                ConsoleError::Invalid(Msg::UnknownKeyType.with_detail(e.to_string()))
            })?;
        Ok(NewUpstream {
            alias: self.alias,
            name: self.name,
            org_id: self.org_id,
            issuer: self.issuer,
            client_id: self.client_id,
            client_auth,
            client_secret: self.client_secret.filter(|s| !s.is_empty()),
            key_algorithm,
            scopes: if saml {
                Vec::new()
            } else {
                upstream_settings::with_openid(self.scopes)
            },
            acr_values: self.acr_values,
            claim_map: match (self.claim_map, saml) {
                (Some(map), false) => Some(claim_map_from(&claim_entries(&map), default_map())?),
                (Some(map), true) => Some(claim_map_from(
                    &claim_entries(&map),
                    kizuna_idp::federation::saml::default_claim_map(),
                )?),
                (None, true) => Some(kizuna_idp::federation::saml::default_claim_map()),
                (None, false) => None,
            },
            acr_map: acr_map(&self.acr_map)?,
            ceiling: ceiling(self.ceiling.unwrap_or(TrustCeiling {
                max_ial: one(),
                max_aal: one(),
            }))?,
            jit: self.jit,
            email_domains: self
                .email_domains
                .iter()
                .map(|d| d.trim().to_lowercase())
                .collect(),
            propagate_logout: self.propagate_logout,
            saml: None,
        })
    }
}

/// An edit of an upstream: what is given replaces what is there; `version` is the one the
/// edit was made on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamPatch {
    pub version: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub acr_values: Option<Vec<String>>,
    #[serde(default)]
    pub claim_map: Option<ClaimMap>,
    #[serde(default)]
    pub acr_map: Option<AcrMap>,
    #[serde(default)]
    pub ceiling: Option<TrustCeiling>,
    #[serde(default)]
    pub jit: Option<bool>,
    #[serde(default)]
    pub email_domains: Option<Vec<String>>,
    #[serde(default)]
    pub propagate_logout: Option<bool>,
}

impl UpstreamPatch {
    pub fn into_edit(self) -> Result<UpstreamEdit, ConsoleError> {
        Ok(UpstreamEdit {
            expected_version: self.version,
            name: self.name,
            client_secret: self.client_secret,
            scopes: self.scopes.map(upstream_settings::with_openid),
            acr_values: self.acr_values,
            claim_map: self.claim_map.as_ref().map(claim_map).transpose()?,
            acr_map: self.acr_map.as_ref().map(acr_map).transpose()?,
            ceiling: self.ceiling.map(ceiling).transpose()?,
            jit: self.jit,
            email_domains: self
                .email_domains
                .map(|d| d.iter().map(|d| d.trim().to_lowercase()).collect()),
            propagate_logout: self.propagate_logout,
        })
    }
}

// Organizations.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgRequest {
    pub name: String,
    #[serde(default)]
    pub name_ja: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// For an edit: the `version` it was made on.
    #[serde(default)]
    pub version: Option<i64>,
}

impl OrgRequest {
    pub fn organization(&self) -> Result<NewOrganization, ConsoleError> {
        let kind: OrgKind = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => k
                .parse()
                .map_err(|e: kizuna_core::orgs::OrgError| ConsoleError::from(e))?,
            None => OrgKind::Other,
        };
        Ok(NewOrganization {
            name: self.name.clone(),
            name_ja: self.name_ja.clone().filter(|n| !n.trim().is_empty()),
            kind,
        })
    }
}

/// A rule letting an organization's certificates of a profile (and, for devices, a model) act
/// as OAuth clients of their own (RFC 8705); no scopes removes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientScopesRequest {
    #[serde(default = "device_profile")]
    pub profile: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}
