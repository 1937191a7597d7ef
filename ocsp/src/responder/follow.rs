//! The responder's background work: following certificate changes (this process's revocations at once,
//! other replicas' through the change feed), pre-signing, and renewing aging responses.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kizuna_core::pki::{Serial, Standing};

use super::{CacheKey, Issuer, Responder, status_of};
use crate::OcspError;
use crate::codec::{HashAlg, Status};

/// How far back the responder re-reads status changes, whatever their sequence number.
const STATUS_LOOKBACK_SECS: i64 = 60;

impl Responder {
    fn served(&self, ca_id: &str) -> Option<Arc<Issuer>> {
        self.issuers
            .read()
            .ok()
            .and_then(|i| i.iter().find(|i| i.ca_id == ca_id).cloned())
    }

    /// Re-signs the cached responses of one certificate (after it changed), reading its
    /// status.
    async fn refresh_one(&self, ca_id: &str, serial: &Serial) {
        // Without the status the cached responses are dropped and signed on demand.
        let status = match self.status(ca_id, serial).await {
            Ok(status) => Some(status),
            Err(e) => {
                tracing::warn!(error = %e, ca = ca_id, %serial, "reading a certificate's status");
                None
            }
        };
        self.refresh_as(ca_id, serial, status).await;
    }

    /// Re-signs the cached responses of one certificate as `status` says (`None`: drops them,
    /// to be signed on demand). A certificate of a CA this responder has not loaded yet
    /// (created moments ago) makes it reload its CAs.
    async fn refresh_as(&self, ca_id: &str, serial: &Serial, status: Option<Status>) {
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
        let mut fresh: HashMap<String, Vec<Serial>> = HashMap::new();
        for change in self.book.changes(from, since, 5000).await? {
            if seen.insert(change.seq, change.created_at).is_none() {
                fresh.entry(change.ca_id).or_default().push(change.serial);
            }
            self.last_seq.fetch_max(change.seq, Ordering::Relaxed);
        }
        // One read per CA for the statuses of everything that changed (under an issuance
        // load, hundreds of certificates per poll), read after the changes were.
        for (ca_id, mut serials) in fresh {
            serials.sort();
            serials.dedup();
            let statuses: Option<HashMap<Serial, Standing>> = match self
                .book
                .standings(&ca_id, &serials)
                .await
            {
                Ok(found) => Some(found.into_iter().collect()),
                Err(e) => {
                    tracing::warn!(error = %e, ca = %ca_id, "reading changed certificates' statuses");
                    None
                }
            };
            for serial in &serials {
                let status = statuses.as_ref().map(|s| status_of(s.get(serial)));
                self.refresh_as(&ca_id, serial, status).await;
            }
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
