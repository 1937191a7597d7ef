//! Changes other parts of the same process react to at once (a revoked certificate's OCSP
//! response, a CRL to regenerate). Replicas learn of the same changes from the
//! `cert_changes` table, which every change also writes.

use tokio::sync::broadcast;

/// A certificate whose status (or existence) changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertChange {
    pub ca_id: String,
    pub serial: String,
}

/// A broadcast of certificate changes within this process. Cheap to clone.
#[derive(Clone)]
pub struct ChangeBus {
    sender: broadcast::Sender<CertChange>,
}

impl Default for ChangeBus {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(4096);
        ChangeBus { sender }
    }
}

impl ChangeBus {
    pub fn publish(&self, change: CertChange) {
        // No subscriber (a CLI process) is fine.
        let _ = self.sender.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CertChange> {
        self.sender.subscribe()
    }
}
