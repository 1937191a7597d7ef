//! The identity provider's state: what every handler is given, and its constructor.

use std::sync::Arc;
use std::time::Duration;

use kizuna_core::Core;
use kizuna_core::pki::CertificateBook;

use crate::{AssuranceConfig, MailConfig, MfaConfig, OidcConfig};
use crate::{assurance, client_auth, clients, federation, keys, mfa, quota};

/// The identity provider's state. Cheap to clone (one reference count).
#[derive(Clone)]
pub struct Idp(Arc<IdpState>);

/// What the identity provider holds.
pub struct IdpState {
    pub core: Core,
    pub config: Arc<OidcConfig>,
    pub keys: keys::SigningKeys,
    pub http: reqwest::Client,
    pub remote_jwks: client_auth::RemoteJwks,
    pub clients: clients::ClientCache,
    pub quotas: quota::Quotas,
    /// The broker's client for upstream providers.
    pub federation: federation::Federation,
    pub mfa: Arc<MfaConfig>,
    pub passkeys: mfa::webauthn::Passkeys,
    /// The SMTP relay for notifications; `None` keeps mail in the outbox.
    pub mailer: Option<mfa::notify::Mailer>,
    pub mail_from: String,
    /// Proofing providers and identity assurance settings.
    pub assurance: Arc<assurance::Assurance>,
    /// The CA's certificates, for clients that authenticate with one (RFC 8705) and the
    /// tokens bound to them (implemented by the CA; the IdP never reads its tables).
    pub certificates: Arc<dyn CertificateBook>,
    /// Certificates recently presented as client credentials (their status read each time).
    pub credentials: crate::mtls::CredentialCache,
}

impl std::ops::Deref for Idp {
    type Target = IdpState;
    fn deref(&self) -> &IdpState {
        &self.0
    }
}

impl Idp {
    /// The provider over `core`. Fails when the `[mfa]`, `[mail]` or `[assurance]` settings
    /// cannot be used (an unreadable attestation root or trust anchor, a malformed relay).
    pub fn new(
        core: Core,
        config: OidcConfig,
        mfa: MfaConfig,
        mail: MailConfig,
        assurance: AssuranceConfig,
        certificates: Arc<dyn CertificateBook>,
    ) -> Result<Idp, String> {
        let federation = federation::Federation::new(
            config.upstream_timeout_secs as u64,
            config.upstream_clock_skew_secs,
        );
        let config = Arc::new(config);
        let passkeys = mfa::webauthn::Passkeys::new(&core.public_url, &mfa)?;
        let mailer = mfa::notify::mailer(&mail)?;
        let assurance = Arc::new(assurance::Assurance::new(assurance)?);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kizuna/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client with static settings");
        Ok(Idp(Arc::new(IdpState {
            keys: keys::SigningKeys::new(core.clone(), config.clone()),
            core,
            config,
            http,
            remote_jwks: client_auth::RemoteJwks::default(),
            clients: clients::ClientCache::default(),
            quotas: quota::Quotas::default(),
            federation,
            mfa: Arc::new(mfa),
            passkeys,
            mailer,
            mail_from: mail.from,
            assurance,
            certificates,
            credentials: crate::mtls::CredentialCache::default(),
        })))
    }

    /// The issuer identifier: the public URL.
    pub fn issuer(&self) -> &str {
        &self.core.public_url
    }

    /// The absolute URL of one of this provider's endpoints.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.core.public_url)
    }
}
