//! Kizuna as a SAML service provider at one upstream: its entity id and endpoints, its two
//! keys with their certificates, and the SP metadata the upstream registers (SAML 2.0
//! Metadata §2.4.4). The signing key is a custody key (software or PKCS#11) that signs
//! requests; the encryption key is an RSA key that decrypts assertions, which custody keys
//! never do, so it is kept sealed under the KEK like a client secret (and re-sealed by
//! `kizuna kek rotate` with them).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use kizuna_core::custody::{CustodySigner, KeyAlgorithm, rsa_pkcs8};
use kizuna_core::db::AnyConnection;

use super::messages::escape;
use crate::Idp;
use crate::federation::FederationError;
use crate::federation::upstreams::{SamlIdp, Upstream};

/// What Kizuna holds about a SAML upstream beyond the fields every upstream has (its
/// entity id is the upstream's `issuer`, Kizuna's entity id there its `client_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSettings {
    /// The IdP's single sign-on service (HTTP-Redirect binding).
    pub sso_url: String,
    /// The IdP's single logout service (HTTP-Redirect binding), when it has one.
    pub slo_url: Option<String>,
    /// The IdP's signing certificates (base64 DER), from the metadata an administrator
    /// approved: the only keys its responses and logout messages are checked with.
    pub idp_certs: Vec<String>,
    /// Where the metadata was read, when it came from a URL.
    pub metadata_url: Option<String>,
    /// Kizuna's certificates at this upstream (base64 DER).
    pub sp_signing_cert: String,
    pub sp_encryption_cert: String,
}

impl SamlSettings {
    /// The settings of a new upstream from the IdP's metadata and the keys made for it.
    pub(crate) fn new(given: SamlIdp, keys: &SpKeys) -> SamlSettings {
        SamlSettings {
            sso_url: given.metadata.sso_redirect_url,
            slo_url: given.metadata.slo_redirect_url,
            idp_certs: given
                .metadata
                .signing_certs
                .iter()
                .map(|c| STANDARD.encode(c))
                .collect(),
            metadata_url: given.metadata_url,
            sp_signing_cert: STANDARD.encode(&keys.signing_cert),
            sp_encryption_cert: STANDARD.encode(&keys.encryption_cert),
        }
    }

    /// The IdP's certificates as DER.
    pub fn idp_certificates(&self) -> Vec<Vec<u8>> {
        self.idp_certs
            .iter()
            .filter_map(|c| STANDARD.decode(c).ok())
            .collect()
    }
}

/// Kizuna's entity id at the upstream `alias`: the URL of its SP metadata.
pub fn entity_id(idp: &Idp, alias: &str) -> String {
    idp.endpoint(&format!("/federation/saml/{alias}/metadata"))
}

/// The assertion consumer service (HTTP-POST binding).
pub fn acs_url(idp: &Idp, alias: &str) -> String {
    idp.endpoint(&format!("/federation/saml/{alias}/acs"))
}

/// The single logout service (HTTP-Redirect binding), for both directions.
pub fn slo_url(idp: &Idp, alias: &str) -> String {
    idp.endpoint(&format!("/federation/saml/{alias}/slo"))
}

/// The keys made for a new SAML upstream.
pub(crate) struct SpKeys {
    pub signing_key_id: String,
    pub decryption_key: Vec<u8>,
    pub signing_cert: Vec<u8>,
    pub encryption_cert: Vec<u8>,
}

/// How long the SP certificates are valid. They only carry keys (no one validates a path to
/// them), so they are made to outlive the keys, which are replaced with the upstream.
const CERT_YEARS: i64 = 10;

fn cert_params(alias: &str, purpose: &str) -> Result<rcgen::CertificateParams, FederationError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| FederationError::Invalid(e.to_string()))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Kizuna SAML SP {alias} ({purpose})"),
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365 * CERT_YEARS);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(
        &kizuna_core::secret::random_bytes::<16>(),
    ));
    Ok(params)
}

/// Makes the SP's keys for the upstream `alias`: an RSA-2048 signing key in custody (in the
/// caller's transaction) and an RSA-2048 decryption key, each with a self-signed certificate.
pub(crate) async fn generate(
    idp: &Idp,
    conn: &mut AnyConnection,
    alias: &str,
) -> Result<SpKeys, FederationError> {
    let signing = idp
        .core
        .custody
        .generate_in(conn, "upstream-saml-sp", KeyAlgorithm::Rsa2048)
        .await?;
    let signing_cert = cert_params(alias, "signing")?
        .self_signed(&CustodySigner(signing.clone()))
        .map_err(|e| FederationError::Invalid(format!("the SP signing certificate: {e}")))?;
    let decryption_key = rsa_pkcs8(2048)?;
    let pair = rcgen::KeyPair::try_from(decryption_key.as_slice())
        .map_err(|e| FederationError::Invalid(format!("the SP encryption key: {e}")))?;
    let encryption_cert = cert_params(alias, "encryption")?
        .self_signed(&pair)
        .map_err(|e| FederationError::Invalid(format!("the SP encryption certificate: {e}")))?;
    Ok(SpKeys {
        signing_key_id: signing.id().to_string(),
        decryption_key,
        signing_cert: signing_cert.der().to_vec(),
        encryption_cert: encryption_cert.der().to_vec(),
    })
}

const NAMEID_FORMATS: [&str; 3] = [
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
];

/// The SP metadata for a SAML upstream (`None` for an OpenID one): its entity id as stored
/// (the one its requests are issued by and its assertions are for), requests signed,
/// assertions wanted signed, the ACS (HTTP-POST), SLO (HTTP-Redirect), and both
/// certificates.
pub fn metadata(idp: &Idp, upstream: &Upstream) -> Option<String> {
    let settings = upstream.saml.as_ref()?;
    let alias = &upstream.alias;
    let key = |usage: &str, cert: &str| {
        format!(
            "<md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}\
             </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        )
    };
    let formats: String = NAMEID_FORMATS
        .iter()
        .map(|f| format!("<md:NameIDFormat>{f}</md:NameIDFormat>"))
        .collect();
    Some(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
         xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{entity}\">\
         <md:SPSSODescriptor AuthnRequestsSigned=\"true\" WantAssertionsSigned=\"true\" \
         protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
         {signing}{encryption}\
         <md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" \
         Location=\"{slo}\"/>{formats}\
         <md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" \
         Location=\"{acs}\" index=\"0\" isDefault=\"true\"/>\
         </md:SPSSODescriptor></md:EntityDescriptor>",
        entity = escape(&upstream.client_id),
        signing = key("signing", &settings.sp_signing_cert),
        encryption = key("encryption", &settings.sp_encryption_cert),
        slo = escape(&slo_url(idp, alias)),
        acs = escape(&acs_url(idp, alias)),
    ))
}
