//! Work every replica does besides answering requests: preparing the signing keys at
//! start-up, scheduled key rotation, back-channel logout and mail delivery, and the removal
//! of expired rows (each store purges its own tables).

use std::time::Duration;

use crate::Idp;
use crate::{federation, logout, mfa, store};

/// Prepares the signing keys; call once at start-up.
pub async fn init(idp: &Idp) -> Result<(), crate::keys::KeyError> {
    idp.keys.ensure("ES256").await
}

/// Background work every replica runs: scheduled key rotation, back-channel logout
/// delivery, and removal of expired rows.
pub fn spawn_background(idp: Idp) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut round: u64 = 0;
        loop {
            tick.tick().await;
            logout::deliver_due(&idp).await;
            mfa::notify::deliver_due(&idp).await;
            if round.is_multiple_of(60) {
                if let Err(e) = idp.keys.rotate_due().await {
                    tracing::warn!(error = %e, "scheduled key rotation");
                }
                sweep(&idp).await;
            }
            round += 1;
        }
    })
}

/// Deletes rows that can no longer matter, on one replica at a time: each store purges its
/// expired rows, then federated sessions whose session is gone are forgotten, and releases
/// older than `oidc.release_retention_days` leave the release history.
async fn sweep(idp: &Idp) {
    let Ok(Some(lock)) = idp.core.db.try_job_lock("oidc-sweep").await else {
        return;
    };
    let db = &idp.core.db;
    let now = kizuna_core::time::now_unix();
    store::codes::purge(db, now).await;
    store::clients::purge(db, now).await;
    store::grants::purge(db, now).await;
    store::throttle::purge(db, now).await;
    store::sessions::purge(db, now).await;
    store::mfa::purge(db, now).await;
    store::assurance::purge(db, now).await;
    store::federation::purge(db, now).await;
    if let Err(e) = federation::accounts::forget_ended_sessions(db, now).await {
        tracing::warn!(error = %e, "sweeping expired rows");
    }
    store::mail::purge(db, now).await;
    store::releases::purge(db, now, idp.config.release_retention_days).await;
    let _ = lock.release().await;
}
