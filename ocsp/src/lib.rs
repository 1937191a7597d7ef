//! Kizuna's OCSP responder (RFC 6960, RFC 5019 profile). It answers from a cache of
//! pre-signed responses (one per certificate, signed by the issuing CA's delegated OCSP
//! signer), refreshed before nextUpdate and replaced as soon as a certificate changes: at
//! once for changes in this process, and within a fraction of a second for changes made by
//! other replicas (it follows the CA's change feed). Requests with a nonce are signed on
//! the fly so the nonce can be echoed. Runs inside `kizuna serve` or alone
//! (`kizuna ocsp serve`).

pub mod codec;
mod config;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use kizuna_core::Core;
use kizuna_core::custody::KeyHandle;
use kizuna_core::pki::{CertStatus, CertificateBook, Reason, Serial};
use kizuna_core::web::ProtocolResponse;
use kizuna_core::web::rate::AddressBudget;

use codec::{ErrorStatus, HashAlg, ParseError, Status};
pub use config::OcspConfig;

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

/// How far back the responder re-reads status changes, whatever their sequence number.
const STATUS_LOOKBACK_SECS: i64 = 60;

/// The responder. Cheap to clone.
#[derive(Clone)]
pub struct Responder(Arc<ResponderState>);

pub struct ResponderState {
    core: Core,
    /// The CA's certificate records (implemented by the CA; never its tables directly).
    book: Arc<dyn CertificateBook>,
    config: OcspConfig,
    issuers: RwLock<Vec<Arc<Issuer>>>,
    cache: RwLock<HashMap<CacheKey, Arc<Prepared>>>,
    last_seq: AtomicI64,
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

#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("key custody: {0}")]
    Custody(#[from] kizuna_core::custody::CustodyError),
    #[error("{0}")]
    Invalid(String),
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
        Ok(match self.book.standing(ca_id, serial).await? {
            None => Status::Unknown,
            Some(s) if s.status == CertStatus::Valid => Status::Good,
            Some(s) => Status::Revoked {
                at: s.revoked_at.unwrap_or(0),
                reason: s.reason.map(Reason::code),
            },
        })
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
            match self.issuer_for(id) {
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

    fn served(&self, ca_id: &str) -> Option<Arc<Issuer>> {
        self.issuers
            .read()
            .ok()
            .and_then(|i| i.iter().find(|i| i.ca_id == ca_id).cloned())
    }

    /// Re-signs the cached responses of one certificate (after it changed). A certificate of
    /// a CA this responder has not loaded yet (created moments ago) makes it reload its CAs.
    async fn refresh_one(&self, ca_id: &str, serial: &Serial) {
        let issuer = match self.served(ca_id) {
            Some(issuer) => Some(issuer),
            None => match self.load_issuers().await {
                Ok(()) => self.served(ca_id),
                Err(e) => {
                    tracing::warn!(error = %e, "reloading OCSP issuers");
                    None
                }
            },
        };
        let Some(issuer) = issuer else {
            return;
        };
        // Without the status the cached responses are dropped and signed on demand.
        let status = match self.status(ca_id, serial).await {
            Ok(status) => Some(status),
            Err(e) => {
                tracing::warn!(error = %e, ca = ca_id, %serial, "reading a certificate's status");
                None
            }
        };
        let now = kizuna_core::time::now_unix();
        let renew_after = self.config.response_validity_secs / 2;
        let hashes: Vec<HashAlg> = {
            let mut cache = match self.cache.write() {
                Ok(c) => c,
                Err(_) => return,
            };
            let mut any = false;
            let mut stale = Vec::new();
            for hash in HashAlg::ALL {
                let key = (ca_id.to_string(), serial.clone(), hash);
                let Some(cached) = cache.get(&key) else {
                    continue;
                };
                any = true;
                // A response that still says the same and is young is kept: signing it again
                // would change nothing but its ETag, which caches in front revalidate by.
                if Some(cached.status) == status && now - cached.this_update < renew_after {
                    continue;
                }
                cache.remove(&key);
                stale.push(hash);
            }
            if any { stale } else { vec![HashAlg::Sha1] }
        };
        let Some(status) = status else {
            return;
        };
        for hash in hashes {
            let cert_id = cert_id_der(&issuer, hash, serial);
            if let Err(e) = self.prepare_as(&issuer, serial, hash, &cert_id, status) {
                tracing::warn!(error = %e, ca = ca_id, %serial, "refreshing an OCSP response");
            }
        }
    }

    /// Signs a response for every current certificate of every served CA (SHA-1 CertIDs,
    /// which RFC 5019 clients use).
    pub async fn prebuild(&self) -> Result<usize, OcspError> {
        let issuers = self.issuers.read().map(|i| i.clone()).unwrap_or_default();
        let mut built = 0;
        for issuer in issuers.iter().filter(|i| i.signer.is_some()) {
            let now = kizuna_core::time::now_unix();
            for serial in self.book.current_serials(&issuer.ca_id, now).await? {
                let cert_id = cert_id_der(issuer, HashAlg::Sha1, &serial);
                self.prepare(issuer, &serial, HashAlg::Sha1, &cert_id)
                    .await?;
                built += 1;
            }
        }
        Ok(built)
    }

    /// Follows the certificate change feed (other replicas' and CLI revocations) from where
    /// it left off.
    /// `seen` maps each handled change to its time.
    async fn follow_changes(&self, seen: &mut HashMap<i64, i64>) -> Result<(), OcspError> {
        // On PostgreSQL, transactions can commit out of sequence order: look a little behind
        // the last sequence number, and at every status change of the last minute however far
        // behind (a revocation must never be missed; issuances only warm the cache).
        let from = self.last_seq.load(Ordering::Relaxed) - 256;
        let since = kizuna_core::time::now_unix() - STATUS_LOOKBACK_SECS;
        for change in self.book.changes(from, since, 5000).await? {
            if seen.insert(change.seq, change.created_at).is_none() {
                self.refresh_one(&change.ca_id, &change.serial).await;
            }
            self.last_seq.fetch_max(change.seq, Ordering::Relaxed);
        }
        let floor = self.last_seq.load(Ordering::Relaxed) - 1024;
        seen.retain(|seq, at| *seq > floor || *at >= since);
        Ok(())
    }

    /// When the change feed no longer holds the changes this responder has not read (it was
    /// cut off from the database for longer than the feed keeps them), re-signs every
    /// certificate's response from the database.
    async fn resync_if_behind(&self) -> Result<(), OcspError> {
        let (oldest, newest) = self.book.change_bounds().await?;
        let last = self.last_seq.load(Ordering::Relaxed);
        if oldest > last + 1 {
            tracing::warn!(
                last_read = last,
                oldest_kept = oldest,
                "the certificate change feed moved past this responder: re-signing every response"
            );
            self.prebuild().await?;
            self.last_seq.fetch_max(newest, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Re-signs responses past half their validity.
    async fn renew_aging(&self) {
        let now = kizuna_core::time::now_unix();
        let half = self.config.response_validity_secs / 2;
        let aging: Vec<CacheKey> = self
            .cache
            .read()
            .map(|c| {
                c.iter()
                    .filter(|(_, p)| p.next_update - now < half)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        for (ca_id, serial, _) in aging {
            self.refresh_one(&ca_id, &serial).await;
        }
    }

    /// Starts the responder's background work: load issuers, follow changes (this process at
    /// once; the database every 200 ms), pre-sign every certificate, renew aging responses,
    /// reload issuers and signers every minute.
    pub async fn start(&self) -> Result<tokio::task::JoinHandle<()>, OcspError> {
        self.load_issuers().await?;
        let (_, newest) = self.book.change_bounds().await?;
        self.last_seq.store(newest, Ordering::Relaxed);
        let responder = self.clone();
        let mut changes = self.core.changes.subscribe();
        Ok(tokio::spawn(async move {
            // Pre-signing runs beside change handling; both stop with this task.
            let prebuild = {
                let responder = responder.clone();
                async move {
                    match responder.prebuild().await {
                        Ok(n) => tracing::info!(responses = n, "OCSP responses signed ahead"),
                        Err(e) => tracing::warn!(error = %e, "pre-signing OCSP responses"),
                    }
                    std::future::pending::<()>().await
                }
            };
            tokio::pin!(prebuild);
            let mut seen = HashMap::new();
            let mut poll = tokio::time::interval(Duration::from_millis(200));
            let mut round: u64 = 0;
            loop {
                tokio::select! {
                    _ = &mut prebuild => {}
                    change = changes.recv() => {
                        if let Ok(change) = change
                            && let Ok(serial) = change.serial.parse::<Serial>()
                        {
                            responder.refresh_one(&change.ca_id, &serial).await;
                        }
                    }
                    _ = poll.tick() => {
                        if let Err(e) = responder.follow_changes(&mut seen).await {
                            tracing::warn!(error = %e, "following certificate changes");
                        }
                        round += 1;
                        if round.is_multiple_of(300) {
                            if let Err(e) = responder.load_issuers().await {
                                tracing::warn!(error = %e, "reloading OCSP issuers");
                            }
                            responder.renew_aging().await;
                            if let Err(e) = responder.resync_if_behind().await {
                                tracing::warn!(error = %e, "re-signing after falling behind");
                            }
                        }
                    }
                }
            }
        }))
    }
}

/// The DER CertID for a certificate of `issuer`, as a client hashing with `hash` sends it.
fn cert_id_der(issuer: &Issuer, hash: HashAlg, serial: &Serial) -> Vec<u8> {
    use kizuna_core::der;
    let (name, key) = issuer
        .hashes
        .iter()
        .find(|(h, _, _)| *h == hash)
        .map(|(_, n, k)| (n.clone(), k.clone()))
        .unwrap_or_default();
    der::sequence(&[
        &der::sequence(&[&der::oid(&der::oid_content(hash.arcs())), &der::null()]),
        &der::octet_string(&name),
        &der::octet_string(&key),
        &der::unsigned_integer(&serial.to_bytes()),
    ])
}

/// The responder's routes: `POST /ocsp[/{ca}]` and `GET /ocsp/{ca}/{base64 request}`.
pub fn router(responder: Responder) -> Router {
    Router::new()
        .route("/ocsp", post(post_request))
        .route("/ocsp/{ca}", post(post_request_for))
        .route("/ocsp/{ca}/{*request}", get(get_request))
        .with_state(responder)
}

fn http_response(
    der: Bytes,
    prepared: Option<&Prepared>,
    cacheable: bool,
    config: &OcspConfig,
) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "application/ocsp-response")], der).into_response();
    if let (Some(p), true) = (prepared, cacheable) {
        let now = kizuna_core::time::now_unix();
        let max_age = (p.next_update - now).clamp(0, config.max_age_secs);
        let h = response.headers_mut();
        for (name, value) in [
            (
                header::CACHE_CONTROL,
                format!("max-age={max_age}, public, no-transform, must-revalidate"),
            ),
            (header::ETAG, p.etag.clone()),
            (header::LAST_MODIFIED, http_date(p.this_update)),
            (header::EXPIRES, http_date(p.next_update)),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                h.insert(name, value);
            }
        }
    } else {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response.extensions_mut().insert(ProtocolResponse);
    response
}

fn http_date(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).unwrap_or_default()
}

async fn post_request(State(responder): State<Responder>, body: Bytes) -> Response {
    let (der, prepared) = responder.respond(&body).await;
    http_response(der, prepared.as_deref(), false, &responder.config)
}

async fn post_request_for(
    State(responder): State<Responder>,
    Path(_ca): Path<String>,
    body: Bytes,
) -> Response {
    post_request(State(responder), body).await
}

/// RFC 5019 §5: GET with the base64 request (URL-encoded) in the path; cacheable.
async fn get_request(
    State(responder): State<Responder>,
    Path((_ca, encoded)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let cleaned: String = encoded
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace(' ', "+");
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(cleaned.trim_start_matches('/'))
    else {
        return http_response(
            Bytes::from(codec::error(ErrorStatus::MalformedRequest)),
            None,
            false,
            &responder.config,
        );
    };
    let (der, prepared) = responder.respond(&der).await;
    if let Some(p) = &prepared {
        let matches = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == p.etag));
        if matches {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response.extensions_mut().insert(ProtocolResponse);
            return response;
        }
    }
    http_response(der, prepared.as_deref(), true, &responder.config)
}
