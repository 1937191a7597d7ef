//! The trust bundle (RFC 4210 §4.4 root CA key update; RFC 7030 §4.1.3 for EST): the roots
//! relying parties should trust now and, while a root rollover overlaps, the
//! cross-certificates between the old and the new root (NewWithOld, OldWithNew).

use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use super::{COLUMNS, CaRecord, chain};
use crate::Ca;

/// The CA certificates relying parties should hold now: every root that is neither retired
/// nor expired (the active one first), then the cross-certificates of an open overlap.
/// Outside a root rollover this is the one root.
pub async fn trust_bundle(ca: &Ca) -> Result<Vec<CaRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cas WHERE kind IN ('root', 'cross') AND cert_der IS NOT NULL \
         AND status NOT IN ('retired', 'pending') AND (not_after IS NULL OR not_after > $1) \
         ORDER BY kind DESC, CASE WHEN status = 'active' THEN 0 ELSE 1 END, generation DESC"
    ))
    .bind(kizuna_core::time::now_unix())
    .fetch_all(ca.core.db.pool())
    .await
}

/// The chain Kizuna hands out with a certificate of CA `id` (`cert issue --chain`, the
/// issuance API, EST `/cacerts`): the CA up to its root, and during a root rollover's overlap
/// also the other root and the cross-certificates, so a relying party that trusts either
/// root finds a path. The cross-certificate that certifies this chain's root under the other
/// root comes before that root's self-signed certificate: path builders that take the first
/// matching issuer (OpenSSL) then reach the other root instead of stopping at an untrusted
/// self-signed one. DER, leaf-most first.
pub async fn published_chain(ca: &Ca, id: &str) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    let mut out = chain(ca, id).await?;
    let bundle = trust_bundle(ca).await?;
    if bundle.len() <= 1 {
        return Ok(out);
    }
    if let Some(root) = out.pop() {
        let key = spki_of(&root);
        out.extend(
            bundle
                .iter()
                .filter(|r| r.kind == "cross")
                .filter_map(|r| r.cert_der.clone())
                .filter(|der| key.is_some() && spki_of(der) == key),
        );
        out.push(root);
    }
    for der in bundle.into_iter().filter_map(|r| r.cert_der) {
        if !out.contains(&der) {
            out.push(der);
        }
    }
    Ok(out)
}

/// The cross-certificates of an open overlap that certify the key of root `root_der` under
/// the other root: what a TLS server or ACME client sends after its chain so that relying
/// parties that trust only the other root still find a path. DER.
pub async fn bridges(ca: &Ca, root_der: &[u8]) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    let Some(key) = spki_of(root_der) else {
        return Ok(vec![]);
    };
    Ok(trust_bundle(ca)
        .await?
        .into_iter()
        .filter(|r| r.kind == "cross")
        .filter_map(|r| r.cert_der)
        .filter(|der| spki_of(der).as_ref() == Some(&key))
        .collect())
}

/// A certificate's subjectPublicKeyInfo (DER): two certificates for the same key have the
/// same one.
pub(super) fn spki_of(der: &[u8]) -> Option<Vec<u8>> {
    Certificate::from_der(der)
        .ok()?
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()
}
