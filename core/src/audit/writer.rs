//! The audit writer: events that stand alone go through one task that commits whatever is
//! waiting in a single transaction (group commit), answering each caller once its entry is
//! committed.

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::{AuditEntry, AuditError, AuditEvent, publish};
use crate::db::Db;

/// The most entries the writer commits in one transaction.
const MAX_BATCH: usize = 1024;

type Reply = oneshot::Sender<Result<AuditEntry, AuditError>>;

/// Appends events that stand alone (a login, a token issued) through one writer task that
/// commits whatever is waiting in a single transaction (group commit). `record` returns once
/// the entry is committed.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<(AuditEvent, Reply)>,
}

impl AuditLog {
    /// Starts the writer. It stops, after committing what is queued, when every `AuditLog`
    /// clone has been dropped.
    pub fn start(db: Db) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * 8);
        // Its statements carry the span's name in the logs (the statement budget test counts them).
        let writer = tokio::spawn(
            write_batches(db, receiver).instrument(tracing::info_span!("audit_writer")),
        );
        (AuditLog { sender }, writer)
    }

    pub async fn record(&self, event: AuditEvent) -> Result<AuditEntry, AuditError> {
        let (reply, done) = oneshot::channel();
        self.sender
            .send((event, reply))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        done.await.map_err(|_| AuditError::WriterStopped)?
    }
}

/// After the database was found unreachable, how long the writer answers waiting requests
/// at once (503) instead of letting each batch wait out the pool's acquire timeout in turn.
const UNAVAILABLE_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

async fn write_batches(db: Db, mut receiver: mpsc::Receiver<(AuditEvent, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut unreachable_since: Option<std::time::Instant> = None;
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        if unreachable_since.is_some_and(|t| t.elapsed() < UNAVAILABLE_PAUSE) {
            for reply in replies {
                let _ = reply.send(Err(AuditError::Storage(sqlx::Error::PoolTimedOut)));
            }
            continue;
        }
        let result = super::append_alone(&db, &events).await;
        unreachable_since = match &result {
            Err(e) if crate::db::is_unavailable(e) => Some(std::time::Instant::now()),
            _ => None,
        };
        match result {
            Ok(entries) => {
                // Answer the waiting requests first; the log stream can wait a moment.
                for (entry, reply) in entries.iter().cloned().zip(replies) {
                    let _ = reply.send(Ok(entry));
                }
                publish(&entries);
            }
            Err(e) => {
                tracing::error!(error = %e, count = events.len(), "audit append failed");
                // Each waiting request gets the failure; one that means the database is
                // unreachable stays recognizable as that (a 503, not a 500).
                let unavailable = crate::db::is_unavailable(&e);
                let message = e.to_string();
                for reply in replies {
                    let error = if unavailable {
                        sqlx::Error::PoolTimedOut
                    } else {
                        sqlx::Error::Protocol(message.clone())
                    };
                    let _ = reply.send(Err(AuditError::Storage(error)));
                }
            }
        }
    }
}
