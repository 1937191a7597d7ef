//! Fixed-window counters in the database (so every replica sees the same count), for
//! throttling failed sign-ins per source address and guesses at device user codes.

use crate::Idp;
use crate::store::throttle as store;

/// Counts one event for `key`; returns the count in the current window.
pub async fn hit(idp: &Idp, key: &str, window_secs: i64) -> Result<i64, sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    store::hit(&idp.core.db, key, now, now - window_secs).await
}

/// The count in the current window without adding to it.
pub async fn count(idp: &Idp, key: &str, window_secs: i64) -> Result<i64, sqlx::Error> {
    store::count(
        &idp.core.db,
        key,
        kizuna_core::time::now_unix() - window_secs,
    )
    .await
}
