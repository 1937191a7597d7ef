//! Kizuna's certificate authority: the CA hierarchy (root, issuing CAs, rollover, offline
//! root), profiles, issuance from PKCS#10 requests, the certificate store, and the public
//! download URLs. Keys live in key custody (software or PKCS#11).

pub mod acme;
pub mod book;
pub mod cert_clients;
pub mod changes;
pub mod config;
pub mod crl;
pub mod csr;
pub mod device_name;
pub mod devices;
pub mod enroll;
pub mod ext;
pub mod hierarchy;
mod http;
pub mod issue;
pub mod keys;
pub mod names;
pub mod ocsp_signer;
pub mod profile;
mod registry_http;
pub mod revoke;
pub mod store;
pub mod tls_identity;
pub mod verify;

/// Crate-private parsers of untrusted input, for the fuzz targets in `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Parses an ACME request body (a flattened JWS) as every ACME endpoint does first.
    pub fn acme_jws(body: &[u8]) -> Result<kizuna_core::jose::Jws, crate::acme::problem::Problem> {
        crate::acme::parse_jws(body)
    }

    /// Decodes an EST simpleenroll/simplereenroll body (base64 DER, any whitespace) to DER.
    pub fn est_body(body: &[u8]) -> Result<Vec<u8>, String> {
        crate::enroll::est::pkcs10_body(body)
    }
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;

use kizuna_core::Core;
use kizuna_core::auth::Authenticator;

pub use config::CaConfig;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{0}")]
    Csr(#[from] csr::CsrError),
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the CA is not ready: {0}")]
    NotReady(String),
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("storing the certificate failed: {0}")]
    Storage(String),
    #[error("key custody: {0}")]
    Custody(#[from] kizuna_core::custody::CustodyError),
    #[error("storage failed: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Signing(e.to_string())
    }
}

impl From<kizuna_core::audit::AuditError> for CaError {
    fn from(e: kizuna_core::audit::AuditError) -> Self {
        CaError::Storage(e.to_string())
    }
}

/// The certificate authority's state. Cheap to clone.
#[derive(Clone)]
pub struct Ca(Arc<CaState>);

pub struct CaState {
    pub core: Core,
    pub config: CaConfig,
    pub profiles: profile::Profiles,
    pub auth: Arc<dyn Authenticator>,
    writer: store::CertWriter,
    loaded: Mutex<HashMap<String, Arc<hierarchy::LoadedCa>>>,
    /// The active CA per logical name, re-read after a few seconds (rollover on another
    /// replica shows within that time).
    active: Mutex<HashMap<String, (Arc<hierarchy::LoadedCa>, Instant)>>,
    /// Chains (PEM) by CA id, briefly: a root rollover adds the cross-certificates.
    chains: Mutex<HashMap<String, (Arc<String>, Instant)>>,
    /// Organizations with their allowed names, briefly.
    orgs: Mutex<HashMap<String, (OrgNames, Instant)>>,
    /// Manufacturers' trust anchors for IDevID enrollment.
    pub vendor_anchors: Vec<x509_cert::Certificate>,
    /// The SPIFFE trust domain device names are issued under.
    pub trust_domain: String,
    /// ACME requests per client address (each stores a nonce).
    acme_budget: kizuna_core::web::rate::AddressBudget,
}

/// An organization and the names it may use.
type OrgNames = (kizuna_core::orgs::Organization, names::AllowedNames);

/// How long a replica reuses what it read about CAs and organizations.
const CACHE_TTL: Duration = Duration::from_secs(5);

impl std::ops::Deref for Ca {
    type Target = CaState;
    fn deref(&self) -> &CaState {
        &self.0
    }
}

impl Ca {
    /// Fails when the configuration's profiles do not resolve.
    pub fn new(core: Core, config: CaConfig, auth: Arc<dyn Authenticator>) -> Result<Ca, String> {
        let profiles = profile::Profiles::new(&config.profiles)?;
        let vendor_anchors = enroll::load_anchors(&config.enrollment.idevid_anchors)?;
        let trust_domain = config
            .trust_domain
            .clone()
            .unwrap_or_else(|| device_name::default_trust_domain(&core.public_url));
        device_name::check_trust_domain(&trust_domain)?;
        Ok(Ca(Arc::new(CaState {
            vendor_anchors,
            trust_domain,
            acme_budget: kizuna_core::web::rate::AddressBudget::new(
                config.acme.requests_per_address_per_minute,
            ),
            writer: store::CertWriter::start(core.db.clone()),
            core,
            config,
            profiles,
            auth,
            loaded: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            chains: Mutex::new(HashMap::new()),
            orgs: Mutex::new(HashMap::new()),
        })))
    }

    /// An absolute URL under the public URL (protocol endpoints such as ACME's).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.core.public_url)
    }

    /// An absolute URL for certificates and CRLs to name (CRL, OCSP and CA-issuer URLs):
    /// under `ca.pki_url`; by default the public URL itself when it is plain HTTP, or its host
    /// over plain HTTP on port 80 when it is HTTPS.
    pub fn pki_url(&self, path: &str) -> String {
        match &self.config.pki_url {
            Some(base) => format!("{base}{path}"),
            None => match self.core.public_url.strip_prefix("https://") {
                Some(rest) => {
                    let authority = rest.split('/').next().unwrap_or(rest);
                    let host = match authority.rsplit_once(':') {
                        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                        _ => authority,
                    };
                    format!("http://{host}{path}")
                }
                None => format!("{}{path}", self.core.public_url),
            },
        }
    }

    /// The CA that issues for `name` now, ready to sign.
    pub async fn active_issuer(&self, name: &str) -> Result<Arc<hierarchy::LoadedCa>, CaError> {
        if let Some((loaded, at)) = self.active.lock().ok().and_then(|c| c.get(name).cloned())
            && at.elapsed() < CACHE_TTL
        {
            return Ok(loaded);
        }
        let record = hierarchy::active(self, name)
            .await?
            .ok_or_else(|| CaError::NotReady(format!("issuing CA {name} is not set up")))?;
        let loaded = hierarchy::load(self, record).await?;
        if let Ok(mut cache) = self.active.lock() {
            cache.insert(name.to_string(), (loaded.clone(), Instant::now()));
        }
        Ok(loaded)
    }

    /// The chain of a CA (it and its parents; during a root rollover's overlap also the other
    /// root and the cross-certificates), PEM.
    pub async fn chain_pem(&self, ca_id: &str) -> Result<Arc<String>, sqlx::Error> {
        if let Some((chain, at)) = self.chains.lock().ok().and_then(|c| c.get(ca_id).cloned())
            && at.elapsed() < CACHE_TTL
        {
            return Ok(chain);
        }
        let chain = Arc::new(
            hierarchy::published_chain(self, ca_id)
                .await?
                .iter()
                .map(|der| issue::pem("CERTIFICATE", der))
                .collect::<String>(),
        );
        if let Ok(mut cache) = self.chains.lock() {
            cache.insert(ca_id.to_string(), (chain.clone(), Instant::now()));
        }
        Ok(chain)
    }

    /// An organization (by id or name) and the names it may use.
    pub async fn organization(&self, id_or_name: &str) -> Result<OrgNames, CaError> {
        if let Some((found, at)) = self
            .orgs
            .lock()
            .ok()
            .and_then(|c| c.get(id_or_name).cloned())
            && at.elapsed() < CACHE_TTL
        {
            return Ok(found);
        }
        let org = kizuna_core::orgs::find(&self.core.db, id_or_name)
            .await
            .map_err(|_| CaError::Invalid(format!("no organization {id_or_name}")))?;
        let allowed = self.allowed_names(&org.id).await?;
        if let Ok(mut cache) = self.orgs.lock() {
            cache.insert(
                id_or_name.to_string(),
                ((org.clone(), allowed.clone()), Instant::now()),
            );
        }
        Ok((org, allowed))
    }

    /// The names an organization may put in certificates.
    pub async fn allowed_names(&self, org_id: &str) -> Result<names::AllowedNames, sqlx::Error> {
        let text = kizuna_core::orgs::allowed_names(&self.core.db, org_id).await?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }
}

/// The CRL partition of a serial (hex): its first byte modulo the CA's shard count.
pub fn crl_shard(serial_hex: &str, shards: i64) -> i64 {
    let first = u8::from_str_radix(serial_hex.get(..2).unwrap_or("0"), 16).unwrap_or(0);
    i64::from(first) % shards.max(1)
}

/// The CA's routes: public downloads, the issuance and registry API, and EST.
pub fn router(ca: Ca) -> Router {
    let routes = http::router(ca.clone())
        .merge(registry_http::router(ca.clone()))
        .merge(enroll::est::router(ca.clone()));
    if ca.config.acme.enabled {
        routes.merge(acme::router(ca))
    } else {
        routes
    }
}

/// Creates the hierarchy on first start when configured to, then makes sure every issuing
/// CA has an OCSP signer and current CRLs.
pub async fn init(ca: &Ca) -> Result<(), CaError> {
    if ca.config.auto_init {
        hierarchy::init(ca, kizuna_core::audit::Actor::system("kizuna")).await?;
    }
    ocsp_signer::ensure(ca).await?;
    crl::refresh(ca).await?;
    Ok(())
}

/// Background work every replica runs: CRLs regenerated shortly after certificates change
/// status (once changes have been quiet for two seconds, so a burst of revocations makes one
/// CRL) and on schedule; OCSP signers renewed before they expire; the change feed pruned.
/// Run-once parts take advisory locks.
pub fn spawn_background(ca: Ca) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut round: u64 = 0;
        let mut handled = changes::last_status_change(&ca.core.db, None)
            .await
            .unwrap_or(0);
        let mut previous = handled;
        loop {
            tick.tick().await;
            round += 1;
            if round % 1800 == 1
                && let Err(e) = ocsp_signer::ensure(&ca).await
            {
                tracing::warn!(error = %e, "renewing OCSP signers");
            }
            if round % 900 == 450
                && let Err(e) = changes::prune(&ca).await
            {
                tracing::warn!(error = %e, "pruning the certificate change feed");
            }
            if round % 300 == 150 {
                acme::purge(&ca).await;
            }
            let latest = match changes::last_status_change(&ca.core.db, None).await {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::warn!(error = %e, "reading certificate changes");
                    continue;
                }
            };
            let quiet_change = latest > handled && latest == previous;
            previous = latest;
            if quiet_change || round.is_multiple_of(15) {
                match crl::refresh(&ca).await {
                    Ok(_) => handled = latest,
                    Err(e) => tracing::warn!(error = %e, "generating CRLs"),
                }
            }
        }
    })
}
