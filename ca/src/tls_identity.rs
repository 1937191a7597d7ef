//! The certificate Kizuna serves its own TLS listener with when none is configured: issued
//! by its CA under the `service` profile for the public URL's host, its key held in key
//! custody (handshakes are signed there), reused across restarts and renewed once a third
//! of its life is left.

use rcgen::CertificateParams;
use serde::{Deserialize, Serialize};

use kizuna_core::audit::Actor;
use kizuna_core::custody::{KeyAlgorithm, KeyHandle};

use crate::issue::{self, IssueRequest};
use crate::names::San;
use crate::{Ca, CaError, store};
use kizuna_core::custody::CustodySigner;

/// A certificate for Kizuna's own host, with its custody key.
pub struct SelfCertificate {
    /// Leaf first, then the issuing CA up to the root (DER).
    pub chain: Vec<Vec<u8>>,
    pub key: KeyHandle,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
}

impl SelfCertificate {
    /// Time to renew: less than a third of the validity is left.
    pub fn due(&self) -> bool {
        let left = self.not_after - kizuna_core::time::now_unix();
        left * 3 < self.not_after - self.not_before
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    key: String,
    serial: String,
}

/// The host of a URL (`https://host:port/path`), as a certificate name.
pub fn url_host(url: &str) -> Option<San> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok().map(San::Ip);
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    match host.parse() {
        Ok(ip) => Some(San::Ip(ip)),
        Err(_) => Some(San::Dns(host.to_ascii_lowercase())),
    }
}

/// The current certificate for `host`, issuing (and storing the key reference) when there is
/// none or it is due for renewal.
pub async fn self_certificate(ca: &Ca, host: &San) -> Result<SelfCertificate, CaError> {
    let meta_key = format!("tls_self:{host}");
    let stored = kizuna_core::custody::meta_value(&ca.core.db, &meta_key).await?;
    let stored: Option<Stored> = stored.and_then(|s| serde_json::from_str(&s).ok());
    if let Some(stored) = &stored
        && let Some(record) = store::get(&ca.core.db, &stored.serial).await?
        && record.status == kizuna_core::pki::CertStatus::Valid
    {
        let current = SelfCertificate {
            chain: chain_of(ca, &record.ca_id, record.der.clone()).await?,
            key: ca.core.custody.get(&stored.key).await?,
            serial: record.serial,
            not_before: record.not_before,
            not_after: record.not_after,
        };
        if !current.due() {
            return Ok(current);
        }
    }
    let key = match &stored {
        Some(stored) => ca.core.custody.get(&stored.key).await?,
        None => {
            ca.core
                .custody
                .generate("tls-self", KeyAlgorithm::P256)
                .await?
        }
    };
    let csr = CertificateParams::default()
        .serialize_request(&CustodySigner(key.clone()))
        .map_err(CaError::from)?;
    let issued = issue::issue(
        ca,
        IssueRequest {
            csr: csr.der().to_vec(),
            profile: "service".into(),
            sans: Some(vec![host.clone()]),
            org_id: None,
            actor: Actor::system("kizuna-tls"),
            internal: true,
            common_name: None,
            ca_id: None,
        },
    )
    .await?;
    let value = serde_json::to_string(&Stored {
        key: key.id().to_string(),
        serial: issued.record.serial.clone(),
    })
    .map_err(|e| CaError::Storage(e.to_string()))?;
    kizuna_core::custody::set_meta_value(&ca.core.db, &meta_key, &value).await?;
    tracing::info!(serial = %issued.record.serial, %host, "issued the TLS listener's own certificate");
    Ok(SelfCertificate {
        chain: chain_of(ca, &issued.record.ca_id, issued.record.der.clone()).await?,
        key,
        serial: issued.record.serial,
        not_before: issued.record.not_before,
        not_after: issued.record.not_after,
    })
}

async fn chain_of(ca: &Ca, ca_id: &str, leaf: Vec<u8>) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    let mut chain = vec![leaf];
    let mut path = crate::hierarchy::chain(ca, ca_id).await?;
    // During a root rollover, the cross-certificate (before the root, so path builders that
    // take the first matching issuer use it) lets clients that trust only the other root
    // connect too.
    if let Some(root) = path.pop() {
        path.extend(crate::hierarchy::bridges(ca, &root).await?);
        path.push(root);
    }
    chain.extend(path);
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_public_urls() {
        assert_eq!(
            url_host("https://id.city.example/"),
            Some(San::Dns("id.city.example".into()))
        );
        assert_eq!(
            url_host("https://127.0.0.1:8443"),
            Some(San::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            url_host("https://[::1]:8443/x"),
            Some(San::Ip("::1".parse().unwrap()))
        );
        assert_eq!(url_host("nonsense"), None);
    }
}
