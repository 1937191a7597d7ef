//! Token signing keys (OpenID Connect Core §10.1): one `active` key per algorithm signs; the
//! `next` key is published in JWKS a whole rotation period before it signs; a `retired` key
//! stays published until every token it signed has expired. Keys live in key custody.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use kizuna_core::Core;
use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::custody::{CustodyError, KeyAlgorithm, KeyHandle, PublicKey};
use kizuna_core::jose::{JoseError, Jws};

use crate::config::OidcConfig;
use crate::store::keys as store;

pub use crate::store::keys::SigningKeyInfo;

/// The algorithms tokens are signed with.
pub const SIGNING_ALGS: [&str; 2] = ["ES256", "RS256"];
const PURPOSE: &str = "oidc-signing";
/// How long a replica signs with the key it last looked up before checking for a rotation.
const ACTIVE_CACHE: Duration = Duration::from_secs(5);

fn key_algorithm(alg: &str) -> KeyAlgorithm {
    if alg == "RS256" {
        KeyAlgorithm::Rsa2048
    } else {
        KeyAlgorithm::P256
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported signing algorithm {0:?}: use ES256 or RS256")]
    UnsupportedAlg(String),
    #[error("another replica is managing the signing keys; try again")]
    Busy,
    #[error(transparent)]
    Custody(#[from] CustodyError),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("audit failed: {0}")]
    Audit(#[from] audit::AuditError),
}

/// The signing key for an algorithm: its kid, the key, and when it was looked up.
type ActiveKey = (String, KeyHandle, Instant);

/// The signing key set of this issuer. Cheap to clone.
#[derive(Clone)]
pub struct SigningKeys {
    core: Core,
    config: Arc<OidcConfig>,
    active: Arc<Mutex<HashMap<String, ActiveKey>>>,
    public: Arc<Mutex<HashMap<String, (String, PublicKey)>>>,
    verified: Arc<Mutex<HashSet<[u8; 32]>>>,
}

/// How many verified tokens [`SigningKeys::verify_own`] remembers before it starts afresh.
const VERIFIED_MAX: usize = 8192;

impl SigningKeys {
    pub fn new(core: Core, config: Arc<OidcConfig>) -> Self {
        SigningKeys {
            core,
            config,
            active: Arc::default(),
            public: Arc::default(),
            verified: Arc::default(),
        }
    }

    /// Makes sure `alg` has an active and a next key. Safe to call from every replica.
    pub async fn ensure(&self, alg: &str) -> Result<(), KeyError> {
        if !SIGNING_ALGS.contains(&alg) {
            return Err(KeyError::UnsupportedAlg(alg.to_string()));
        }
        for _ in 0..300 {
            let Some(lock) = self.core.db.try_job_lock("oidc-signing-keys").await? else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let result = self.fill(alg).await;
            lock.release().await?;
            return result;
        }
        Err(KeyError::Busy)
    }

    async fn fill(&self, alg: &str) -> Result<(), KeyError> {
        let mut tx = self.core.db.begin().await?;
        let states = store::live_states(tx.conn(), alg).await?;
        let mut events = Vec::new();
        for wanted in ["active", "next"] {
            if states.iter().any(|s| s == wanted) {
                continue;
            }
            let key = self
                .core
                .custody
                .generate_in(tx.conn(), PURPOSE, key_algorithm(alg))
                .await?;
            let kid = key.public_key().thumbprint();
            let now = kizuna_core::time::now_unix();
            store::insert(tx.conn(), &kid, key.id(), alg, wanted, now).await?;
            events.push(
                AuditEvent::new(
                    Actor::system("kizuna"),
                    "key.create",
                    format!("signing-key:{kid}"),
                )
                .details(json!({"alg": alg, "state": wanted})),
            );
        }
        let entries = audit::append_in(tx.conn(), &events).await?;
        tx.commit().await?;
        audit::publish(&entries);
        Ok(())
    }

    /// The key that signs now for `alg`, with its `kid`.
    pub async fn active(&self, alg: &str) -> Result<(String, KeyHandle), KeyError> {
        if let Some((kid, key, at)) = self.active.lock().ok().and_then(|c| c.get(alg).cloned())
            && at.elapsed() < ACTIVE_CACHE
        {
            return Ok((kid, key));
        }
        let (kid, key_id) = match store::active(&self.core.db, alg).await? {
            Some(row) => row,
            None => {
                self.ensure(alg).await?;
                return Box::pin(self.active(alg)).await;
            }
        };
        let key = self.core.custody.get(&key_id).await?;
        if let Ok(mut cache) = self.active.lock() {
            cache.insert(alg.to_string(), (kid.clone(), key.clone(), Instant::now()));
        }
        Ok((kid, key))
    }

    /// The JWK Set: next, active, and retired keys still inside their publication window.
    pub async fn jwks(&self) -> Result<serde_json::Value, KeyError> {
        let rows = store::published(&self.core.db, kizuna_core::time::now_unix()).await?;
        let mut keys = Vec::with_capacity(rows.len());
        for (kid, key_id, alg) in rows {
            let public = self.core.custody.get(&key_id).await?.public_key().clone();
            let mut jwk = public.jwk();
            jwk["kid"] = json!(kid);
            jwk["use"] = json!("sig");
            jwk["alg"] = json!(alg);
            keys.push(jwk);
        }
        Ok(json!({ "keys": keys }))
    }

    /// Verifies a token this issuer signed (any key it ever published) and returns the JWS.
    /// A token whose signature this process verified before (a bearer token presented on
    /// every call) is known by its SHA-256 digest and costs a hash instead of a signature
    /// check. Only the signature is remembered: callers check expiry and revocation at every
    /// use, and no key is ever withdrawn from verification here, so nothing goes stale.
    pub async fn verify_own(&self, token: &str) -> Result<Jws, VerifyError> {
        let jws = Jws::parse(token)?;
        let kid = jws.header.kid.clone().ok_or(JoseError::NoKey)?;
        let (alg, public) = self.public_key(&kid).await?.ok_or(JoseError::NoKey)?;
        if jws.header.alg != alg {
            return Err(JoseError::AlgorithmNotAllowed(jws.header.alg.clone()).into());
        }
        let digest = kizuna_core::secret::sha256(token.as_bytes());
        if !self.verified.lock().is_ok_and(|v| v.contains(&digest)) {
            jws.verify(&public.jwk(), &SIGNING_ALGS)?;
            if let Ok(mut verified) = self.verified.lock() {
                if verified.len() >= VERIFIED_MAX {
                    verified.clear();
                }
                verified.insert(digest);
            }
        }
        Ok(jws)
    }

    async fn public_key(&self, kid: &str) -> Result<Option<(String, PublicKey)>, VerifyError> {
        if let Some(found) = self.public.lock().ok().and_then(|c| c.get(kid).cloned()) {
            return Ok(Some(found));
        }
        let Some((key_id, alg)) = store::find(&self.core.db, kid).await? else {
            return Ok(None);
        };
        let public = self
            .core
            .custody
            .get(&key_id)
            .await
            .map_err(KeyError::from)?
            .public_key()
            .clone();
        if let Ok(mut cache) = self.public.lock() {
            cache.insert(kid.to_string(), (alg.clone(), public.clone()));
        }
        Ok(Some((alg, public)))
    }

    /// Rotates `alg`: next becomes active, active retires (published until its tokens
    /// expire), and a new next key is created.
    pub async fn rotate(&self, alg: &str, actor: Actor) -> Result<(), KeyError> {
        if !SIGNING_ALGS.contains(&alg) {
            return Err(KeyError::UnsupportedAlg(alg.to_string()));
        }
        self.ensure(alg).await?;
        let lock = loop {
            match self.core.db.try_job_lock("oidc-signing-keys").await? {
                Some(lock) => break lock,
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let now = kizuna_core::time::now_unix();
        let mut tx = self.core.db.begin().await?;
        let publish_until = now + self.config.max_signed_token_ttl() + 60;
        store::retire_active(tx.conn(), alg, now, publish_until).await?;
        store::activate_next(tx.conn(), alg, now).await?;
        let entries = audit::append_in(
            tx.conn(),
            &[
                AuditEvent::new(actor, "key.rotate", format!("signing-keys:{alg}"))
                    .details(json!({"alg": alg, "retired_published_until": publish_until})),
            ],
        )
        .await?;
        tx.commit().await?;
        audit::publish(&entries);
        let filled = self.fill(alg).await;
        lock.release().await?;
        filled?;
        if let Ok(mut cache) = self.active.lock() {
            cache.remove(alg);
        }
        Ok(())
    }

    /// Rotates every algorithm whose active key is older than the rotation period.
    pub async fn rotate_due(&self) -> Result<Vec<String>, KeyError> {
        let due_before = kizuna_core::time::now_unix() - self.config.key_rotation_days * 86_400;
        let due = store::due_for_rotation(&self.core.db, due_before).await?;
        for alg in &due {
            self.rotate(alg, Actor::system("kizuna")).await?;
        }
        Ok(due)
    }

    /// Every key, by algorithm and age.
    pub async fn list(&self) -> Result<Vec<SigningKeyInfo>, KeyError> {
        Ok(store::list(&self.core.db).await?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Jose(#[from] JoseError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[tokio::test]
    async fn a_token_verified_once_passes_again_and_no_altered_copy_ever_does() {
        for test_db in kizuna_core::testing::databases().await {
            let core = kizuna_core::testing::core(&test_db.db).await;
            let keys = SigningKeys::new(core, Arc::new(OidcConfig::default()));
            let (kid, key) = keys.active("ES256").await.unwrap();
            let token =
                kizuna_core::jose::sign(&key, &kid, Some("at+jwt"), &json!({"sub": "hanako"}))
                    .unwrap();
            let (head, rest) = token.split_once('.').unwrap();
            let (_, signature) = rest.split_once('.').unwrap();
            let forged = |claims: serde_json::Value| {
                let payload =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
                format!("{head}.{payload}.{signature}")
            };
            // Refused before and after the genuine token was verified (and remembered).
            assert!(
                keys.verify_own(&forged(json!({"sub": "admin"})))
                    .await
                    .is_err()
            );
            for _ in 0..2 {
                let jws = keys.verify_own(&token).await.unwrap();
                assert_eq!(jws.claims::<serde_json::Value>().unwrap()["sub"], "hanako");
            }
            assert!(
                keys.verify_own(&forged(json!({"sub": "admin"})))
                    .await
                    .is_err()
            );
            let mut flipped = token.clone().into_bytes();
            let inside = flipped.len() - 10;
            flipped[inside] = if flipped[inside] == b'A' { b'B' } else { b'A' };
            let flipped = String::from_utf8(flipped).unwrap();
            assert!(keys.verify_own(&flipped).await.is_err());
        }
    }
}
