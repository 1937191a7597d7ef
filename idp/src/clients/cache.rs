//! Recently read clients and their assurance settings, kept for a moment on each replica so
//! that the token endpoint and the steps of one sign-in do not read the same rows each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kizuna_core::db::Db;
use kizuna_core::time::Stamp;

use super::{Client, get};
use crate::assurance::{ClientAssurance, client_settings};

/// How long a replica may use a client record it read before reading it again. A change
/// made on one replica (disable, delete, new secret) reaches the others within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Values by client id, each with the moment it was read.
struct Remembered<V> {
    entries: Mutex<HashMap<String, (V, Stamp)>>,
}

impl<V: Clone> Remembered<V> {
    fn new() -> Self {
        Remembered {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn recent(&self, client_id: &str) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (value, at) = entries.get(client_id)?;
        (at.age() < CACHE_TTL).then(|| value.clone())
    }

    fn keep(&self, client_id: &str, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.retain(|_, (_, at)| at.age() < CACHE_TTL);
            }
            entries.insert(client_id.to_string(), (value, Stamp::now()));
        }
    }

    fn forget(&self, client_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(client_id);
        }
    }
}

/// Recently read clients (or that there is none), and their assurance settings.
#[derive(Clone)]
pub struct ClientCache {
    clients: Arc<Remembered<Option<Arc<Client>>>>,
    assurance: Arc<Remembered<Arc<ClientAssurance>>>,
}

impl Default for ClientCache {
    fn default() -> Self {
        ClientCache {
            clients: Arc::new(Remembered::new()),
            assurance: Arc::new(Remembered::new()),
        }
    }
}

impl ClientCache {
    /// The client with this id (`None` when unknown), from memory when fresh.
    pub async fn get(&self, db: &Db, client_id: &str) -> Result<Option<Arc<Client>>, sqlx::Error> {
        match self.clients.recent(client_id) {
            Some(client) => Ok(client),
            None => self.fresh(db, client_id).await,
        }
    }

    /// The client as stored now (remembered for the steps that follow, such as the rest of
    /// one sign-in, whose assurance settings are then read once, at their first use).
    pub async fn fresh(
        &self,
        db: &Db,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, sqlx::Error> {
        let client = get(db, client_id).await?.map(Arc::new);
        self.clients.keep(client_id, client.clone());
        self.assurance.forget(client_id);
        Ok(client)
    }

    /// The client's assurance settings (defaults when it has none), from memory when fresh.
    pub async fn assurance(
        &self,
        db: &Db,
        client_id: &str,
    ) -> Result<Arc<ClientAssurance>, sqlx::Error> {
        if let Some(settings) = self.assurance.recent(client_id) {
            return Ok(settings);
        }
        let mut conn = db.conn().await?;
        let settings = Arc::new(client_settings(&mut conn, client_id).await?);
        self.assurance.keep(client_id, settings.clone());
        Ok(settings)
    }

    /// Forgets a client changed on this replica.
    pub fn forget(&self, client_id: &str) {
        self.clients.forget(client_id);
        self.assurance.forget(client_id);
    }
}
