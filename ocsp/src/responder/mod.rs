//! The responder's state and answers: the served issuers and their signers, the cache of
//! pre-signed responses, and signing a response for an OCSP request.

mod follow;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use kizuna_core::Core;
use kizuna_core::custody::KeyHandle;
use kizuna_core::pki::{CertStatus, CertificateBook, Reason, Serial, Standing};
use kizuna_core::web::rate::AddressBudget;

use crate::codec::{self, ErrorStatus, HashAlg, ParseError, Status};
use crate::{OcspConfig, OcspError};

/// An issuer's name hash and key hash under one algorithm.
type IssuerHash = (HashAlg, Vec<u8>, Vec<u8>);

/// A served issuing CA: its hashes for matching CertIDs, and its current signer.
struct Issuer {
    ca_id: String,
    hashes: Vec<IssuerHash>,
    signer: Option<Arc<Signer>>,
}

struct Signer {
    serial: Serial,
    key: KeyHandle,
    cert_der: Vec<u8>,
    key_hash: Vec<u8>,
    signature_algorithm: Vec<u8>,
}

/// A signed response ready to serve.
pub struct Prepared {
    pub der: Bytes,
    pub etag: String,
    pub this_update: i64,
    pub next_update: i64,
    /// What the response says, so a refresh that would say the same is skipped.
    pub status: Status,
}

type CacheKey = (String, Serial, HashAlg);

/// The responder. Cheap to clone.
#[derive(Clone)]
pub struct Responder(Arc<ResponderState>);

pub struct ResponderState {
    core: Core,
    /// The CA's certificate records (implemented by the CA; never its tables directly).
    book: Arc<dyn CertificateBook>,
    pub(crate) config: OcspConfig,
    issuers: RwLock<Vec<Arc<Issuer>>>,
    cache: RwLock<HashMap<CacheKey, Arc<Prepared>>>,
    last_seq: AtomicI64,
    /// When a request for an unknown issuer last made the responder reload its CAs.
    last_issuer_reload: AtomicI64,
    /// Responses signed on demand and never cached (a nonce, several certificates, an
    /// unknown serial), per client address.
    live_signing: AddressBudget,
}

impl std::ops::Deref for Responder {
    type Target = ResponderState;
    fn deref(&self) -> &ResponderState {
        &self.0
    }
}

/// What OCSP says about a certificate that stands so (`None`: never issued here).
fn status_of(standing: Option<&Standing>) -> Status {
    match standing {
        None => Status::Unknown,
        Some(s) if s.status == CertStatus::Valid => Status::Good,
        Some(s) => Status::Revoked {
            at: s.revoked_at.unwrap_or(0),
            reason: s.reason.map(Reason::code),
        },
    }
}

fn issuer_hashes(cert_der: &[u8]) -> Result<Vec<IssuerHash>, OcspError> {
    let cert = Certificate::from_der(cert_der).map_err(|e| OcspError::Invalid(e.to_string()))?;
    let name = cert
        .tbs_certificate()
        .subject()
        .to_der()
        .map_err(|e| OcspError::Invalid(e.to_string()))?;
    let key = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec();
    Ok(HashAlg::ALL
        .into_iter()
        .map(|h| (h, h.digest(&name), h.digest(&key)))
        .collect())
}

impl Responder {
    pub fn new(core: Core, config: OcspConfig, book: Arc<dyn CertificateBook>) -> Responder {
        Responder(Arc::new(ResponderState {
            core,
            book,
            issuers: RwLock::new(Vec::new()),
            cache: RwLock::new(HashMap::new()),
            last_seq: AtomicI64::new(0),
            last_issuer_reload: AtomicI64::new(0),
            live_signing: AddressBudget::new(config.live_signing_per_address_per_minute),
            config,
        }))
    }

    /// Loads the issuing CAs and their newest signers. A CA whose signer changed has its
    /// cached responses dropped (they carried the old signer).
    pub async fn load_issuers(&self) -> Result<(), OcspError> {
        let now = kizuna_core::time::now_unix();
        let mut issuers = Vec::new();
        for ca in self.book.issuing_cas(now).await? {
            let signer = match ca.signer {
                Some(signer) => {
                    let key = self.core.custody.get(&signer.key_id).await?;
                    let public = key.public_key().raw().to_vec();
                    Some(Arc::new(Signer {
                        serial: signer.serial,
                        key_hash: HashAlg::Sha1.digest(&public),
                        signature_algorithm: key.x509_signature_algorithm(),
                        key,
                        cert_der: signer.cert_der,
                    }))
                }
                None => None,
            };
            issuers.push(Arc::new(Issuer {
                hashes: issuer_hashes(&ca.cert_der)?,
                ca_id: ca.ca_id,
                signer,
            }));
        }
        let changed: Vec<String> = {
            let old = self.issuers.read().map(|i| i.clone()).unwrap_or_default();
            issuers
                .iter()
                .filter(|new| {
                    let before = old
                        .iter()
                        .find(|o| o.ca_id == new.ca_id)
                        .and_then(|o| o.signer.as_ref().map(|s| s.serial.clone()));
                    before != new.signer.as_ref().map(|s| s.serial.clone())
                })
                .map(|i| i.ca_id.clone())
                .collect()
        };
        if let Ok(mut slot) = self.issuers.write() {
            *slot = issuers;
        }
        if !changed.is_empty()
            && let Ok(mut cache) = self.cache.write()
        {
            cache.retain(|(ca, _, _), _| !changed.contains(ca));
        }
        Ok(())
    }

    fn issuer_for(&self, id: &codec::CertId) -> Option<Arc<Issuer>> {
        let issuers = self.issuers.read().ok()?;
        issuers
            .iter()
            .find(|i| {
                i.hashes.iter().any(|(h, name, key)| {
                    *h == id.hash && *name == id.issuer_name_hash && *key == id.issuer_key_hash
                })
            })
            .cloned()
    }

    async fn status(&self, ca_id: &str, serial: &Serial) -> Result<Status, OcspError> {
        Ok(status_of(self.book.standing(ca_id, serial).await?.as_ref()))
    }

    fn sign(
        &self,
        signer: &Signer,
        singles: &[Vec<u8>],
        nonce: Option<&[u8]>,
    ) -> Result<Vec<u8>, OcspError> {
        let data = codec::response_data(
            &signer.key_hash,
            kizuna_core::time::now_unix(),
            singles,
            nonce,
        );
        let signature = signer.key.sign_der(&data)?;
        Ok(codec::successful(
            &data,
            &signer.signature_algorithm,
            &signature,
            &signer.cert_der,
        ))
    }

    /// Signs (and caches) the response for one certificate and CertID hash.
    async fn prepare(
        &self,
        issuer: &Issuer,
        serial: &Serial,
        hash: HashAlg,
        cert_id: &[u8],
    ) -> Result<Arc<Prepared>, OcspError> {
        let status = self.status(&issuer.ca_id, serial).await?;
        self.prepare_as(issuer, serial, hash, cert_id, status)
    }

    /// Signs (and caches) the response saying `status` for one certificate and CertID hash.
    fn prepare_as(
        &self,
        issuer: &Issuer,
        serial: &Serial,
        hash: HashAlg,
        cert_id: &[u8],
        status: Status,
    ) -> Result<Arc<Prepared>, OcspError> {
        let signer = issuer
            .signer
            .as_ref()
            .ok_or_else(|| OcspError::Invalid(format!("no OCSP signer for {}", issuer.ca_id)))?;
        let now = kizuna_core::time::now_unix();
        let next_update = now + self.config.response_validity_secs;
        let single = codec::single_response(cert_id, status, now, next_update);
        let der = self.sign(signer, &[single], None)?;
        let etag = format!(
            "\"{}\"",
            &kizuna_core::secret::hex(&kizuna_core::secret::sha256(&der))[..32]
        );
        let prepared = Arc::new(Prepared {
            der: Bytes::from(der),
            etag,
            this_update: now,
            next_update,
            status,
        });
        if status != Status::Unknown
            && let Ok(mut cache) = self.cache.write()
        {
            cache.insert(
                (issuer.ca_id.clone(), serial.clone(), hash),
                prepared.clone(),
            );
        }
        Ok(prepared)
    }

    /// Answers an OCSP request (DER). Returns the response and, when it came from (or went
    /// into) the cache, its validity for HTTP caching.
    pub async fn respond(&self, request: &[u8]) -> (Bytes, Option<Arc<Prepared>>) {
        let parsed = match codec::parse_request(request) {
            Ok(r) => r,
            Err(ParseError::Malformed | ParseError::UnsupportedHash) => {
                return (
                    Bytes::from(codec::error(ErrorStatus::MalformedRequest)),
                    None,
                );
            }
        };
        let mut issuers = Vec::with_capacity(parsed.ids.len());
        for id in &parsed.ids {
            match self.issuer_or_reload(id).await {
                Some(issuer) => issuers.push(issuer),
                None => return (Bytes::from(codec::error(ErrorStatus::Unauthorized)), None),
            }
        }
        if let ([id], [issuer], None) = (parsed.ids.as_slice(), issuers.as_slice(), &parsed.nonce) {
            let key = (issuer.ca_id.clone(), id.serial.clone(), id.hash);
            let cached = self.cache.read().ok().and_then(|c| c.get(&key).cloned());
            if let Some(hit) = cached.filter(|p| p.next_update > kizuna_core::time::now_unix()) {
                return (hit.der.clone(), Some(hit));
            }
            // No signer valid yet (RFC 6960 §2.3: try later), as below for several.
            if issuer.signer.is_none() {
                return (Bytes::from(codec::error(ErrorStatus::TryLater)), None);
            }
            // A known certificate's answer is signed once and cached; only unknown serials,
            // which are never cached, take from the caller's budget.
            let status = match self.status(&issuer.ca_id, &id.serial).await {
                Ok(status) => status,
                Err(e) => {
                    tracing::error!(error = %e, "OCSP status");
                    return (Bytes::from(codec::error(ErrorStatus::InternalError)), None);
                }
            };
            if status == Status::Unknown && !self.admit_live_signing() {
                return (Bytes::from(codec::error(ErrorStatus::TryLater)), None);
            }
            return match self.prepare_as(issuer, &id.serial, id.hash, &id.raw, status) {
                Ok(p) => (p.der.clone(), Some(p)),
                Err(e) => {
                    tracing::error!(error = %e, "OCSP response");
                    (Bytes::from(codec::error(ErrorStatus::InternalError)), None)
                }
            };
        }
        // Several certificates or a nonce: sign now. All must share one issuer (signer).
        let first = &issuers[0];
        if issuers.iter().any(|i| i.ca_id != first.ca_id) {
            return (
                Bytes::from(codec::error(ErrorStatus::MalformedRequest)),
                None,
            );
        }
        let Some(signer) = first.signer.clone() else {
            return (Bytes::from(codec::error(ErrorStatus::TryLater)), None);
        };
        if !self.admit_live_signing() {
            return (Bytes::from(codec::error(ErrorStatus::TryLater)), None);
        }
        let now = kizuna_core::time::now_unix();
        let mut singles = Vec::new();
        for id in &parsed.ids {
            match self.status(&first.ca_id, &id.serial).await {
                Ok(status) => singles.push(codec::single_response(
                    &id.raw,
                    status,
                    now,
                    now + self.config.response_validity_secs,
                )),
                Err(e) => {
                    tracing::error!(error = %e, "OCSP status");
                    return (Bytes::from(codec::error(ErrorStatus::InternalError)), None);
                }
            }
        }
        match self.sign(&signer, &singles, parsed.nonce.as_deref()) {
            Ok(der) => (Bytes::from(der), None),
            Err(e) => {
                tracing::error!(error = %e, "OCSP signing");
                (Bytes::from(codec::error(ErrorStatus::InternalError)), None)
            }
        }
    }

    /// The issuer of a CertID. An issuer this responder does not know may be a CA another
    /// process created moments ago (a rollover from the command line), before the change
    /// feed shows it: the CAs are reloaded, at most once a second whoever asks, so unknown
    /// issuers cannot turn requests into database reads.
    async fn issuer_or_reload(&self, id: &codec::CertId) -> Option<Arc<Issuer>> {
        // A CA known without a valid signer is read again too: another process (the CLI)
        // commits a new CA and then its signer, and this responder may have read between.
        let known = self.issuer_for(id);
        if known.as_ref().is_some_and(|issuer| issuer.signer.is_some()) {
            return known;
        }
        let now = kizuna_core::time::now_unix();
        let last = self.last_issuer_reload.load(Ordering::Relaxed);
        if now <= last
            || self
                .last_issuer_reload
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return known;
        }
        if let Err(e) = self.load_issuers().await {
            tracing::warn!(error = %e, "reloading OCSP issuers");
        }
        self.issuer_for(id)
    }

    /// Takes one live signature from the caller's budget (`tryLater` when spent, RFC 6960
    /// §2.3): what an unauthenticated client can make the responder sign stays bounded.
    fn admit_live_signing(&self) -> bool {
        let address = kizuna_core::web::RequestContext::current().and_then(|c| c.peer_ip);
        let admitted = self.live_signing.admit(address);
        if !admitted {
            tracing::warn!(client = ?address, "OCSP live-signing budget spent: tryLater");
        }
        admitted
    }
}
