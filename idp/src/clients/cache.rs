//! Recently read clients, kept for a moment on each replica so that the token endpoint does
//! not read the same row on every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kizuna_core::db::Db;
use kizuna_core::time::Stamp;

use super::{Client, get};

/// How long a replica may use a client record it read before reading it again. A change
/// made on one replica (disable, delete, new secret) reaches the others within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Recently read clients, so the token endpoint does not read the same row on every call.
/// A cached lookup: the client (or that there is none) and when it was read.
type CachedClient = (Option<Arc<Client>>, Stamp);

#[derive(Clone, Default)]
pub struct ClientCache {
    entries: Arc<Mutex<HashMap<String, CachedClient>>>,
}

impl ClientCache {
    /// The client with this id (`None` when unknown), from memory when fresh.
    pub async fn get(&self, db: &Db, client_id: &str) -> Result<Option<Arc<Client>>, sqlx::Error> {
        if let Some((client, at)) = self
            .entries
            .lock()
            .ok()
            .and_then(|e| e.get(client_id).cloned())
            && at.age() < CACHE_TTL
        {
            return Ok(client);
        }
        self.fresh(db, client_id).await
    }

    /// The client as stored now (remembered for the steps that follow, such as the rest of
    /// one sign-in).
    pub async fn fresh(
        &self,
        db: &Db,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, sqlx::Error> {
        let client = get(db, client_id).await?.map(Arc::new);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.retain(|_, (_, at)| at.age() < CACHE_TTL);
            }
            entries.insert(client_id.to_string(), (client.clone(), Stamp::now()));
        }
        Ok(client)
    }

    /// Forgets a client changed on this replica.
    pub fn forget(&self, client_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(client_id);
        }
    }
}
