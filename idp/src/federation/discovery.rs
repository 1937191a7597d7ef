//! Upstream discovery (OpenID Connect Discovery 1.0): the broker's HTTP client for
//! upstreams and its cache of their discovery documents and JWK Sets.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, IssuerUrl, ProviderMetadata};
use serde::{Deserialize, Serialize};

use super::{FederationError, clean_text};

/// Provider metadata the core type leaves out: the RP-initiated logout endpoint (OpenID
/// Connect RP-Initiated Logout 1.0 §2.1), the PKCE methods (RFC 8414 §2) and whether
/// authorization responses carry `iss` (RFC 9207 §3).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraMetadata {
    pub end_session_endpoint: Option<String>,
    pub code_challenge_methods_supported: Option<Vec<String>>,
    pub authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

/// An upstream's discovery document with its JWK Set.
pub type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Discovery documents are read again after this long.
const METADATA_TTL: Duration = Duration::from_secs(300);

/// The broker's HTTP client for upstreams (short timeouts, no redirects) and its cache of
/// discovery documents.
pub struct Federation {
    http: reqwest::Client,
    timeout_secs: u64,
    pub(super) skew_secs: i64,
    cache: RwLock<HashMap<String, (Instant, Arc<Metadata>)>>,
}

/// An error with its chain of sources, cleaned for showing and storing.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    clean_text(&text, 400)
}

impl Federation {
    /// `timeout_secs` bounds every request to an upstream; `skew_secs` is the clock skew
    /// allowed on `exp` and `iat`.
    pub fn new(timeout_secs: u64, skew_secs: i64) -> Federation {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(timeout_secs))
            .connect_timeout(Duration::from_secs(timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kizuna/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client with static settings");
        Federation {
            http,
            timeout_secs,
            skew_secs,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The HTTP client for upstreams.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The issuer's discovery document and keys: from the cache unless `refresh` or stale.
    pub async fn metadata(
        &self,
        issuer: &str,
        refresh: bool,
    ) -> Result<Arc<Metadata>, FederationError> {
        if !refresh
            && let Ok(cache) = self.cache.read()
            && let Some((at, md)) = cache.get(issuer)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(md.clone());
        }
        let url = IssuerUrl::new(issuer.to_string())
            .map_err(|_| FederationError::Discovery("the issuer is not a URL".into()))?;
        let md = Metadata::discover_async(url, &self.http)
            .await
            .map_err(|e| {
                let text = chain(&e);
                if text.contains("timed out") {
                    FederationError::Discovery(format!(
                        "{issuer} did not answer within {} seconds",
                        self.timeout_secs
                    ))
                } else {
                    FederationError::Discovery(format!("{issuer}: {text}"))
                }
            })?;
        let md = Arc::new(md);
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(issuer.to_string(), (Instant::now(), md.clone()));
        }
        Ok(md)
    }

    /// Checks that an issuer can be an upstream: its discovery document matches it, and it
    /// offers the code flow with S256 (when it lists PKCE methods at all).
    pub(crate) async fn check_provider(&self, issuer: &str) -> Result<(), FederationError> {
        let md = self.metadata(issuer, true).await?;
        if !md
            .response_types_supported()
            .iter()
            .any(|r| r.as_slice() == [CoreResponseType::Code])
        {
            return Err(FederationError::Discovery(
                "the upstream does not offer the authorization code flow".into(),
            ));
        }
        if md.token_endpoint().is_none() {
            return Err(FederationError::Discovery(
                "the upstream has no token endpoint".into(),
            ));
        }
        if let Some(methods) = &md.additional_metadata().code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(FederationError::Discovery(
                "the upstream does not support PKCE with S256".into(),
            ));
        }
        Ok(())
    }
}
