//! The dashboard: counts, recent security events, and what waits for approval.

use serde::Serialize;

use kizuna_core::audit::AuditEntry;
use kizuna_idp::clients::{self, ClientStatus};
use kizuna_idp::federation::UpstreamStatus;
use kizuna_idp::federation::upstreams;

use crate::Console;
use crate::error::ConsoleError;
use crate::store::{self, Counts};
use kizuna_core::access::{Action, Caller};

#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub counts: Counts,
    /// Only for callers who may read the audit log.
    pub security_events: Vec<AuditEntry>,
    /// Clients and upstreams waiting for the caller's approval (city administrators).
    pub pending: Vec<PendingApproval>,
}

/// Something an organization registered that waits for a city administrator.
#[derive(Debug, Serialize)]
pub struct PendingApproval {
    /// `client` or `upstream`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub org_id: Option<String>,
}

pub async fn dashboard(c: &Console, who: &Caller) -> Result<Dashboard, ConsoleError> {
    let reach = who.require(Action::ViewDashboard)?;
    let counts = store::counts(&c.idp.core.db, &reach).await?;
    let security_events = if who.may_in(Action::ViewAudit, None) {
        store::security_events(&c.idp.core.db).await?
    } else {
        Vec::new()
    };
    let mut pending = Vec::new();
    if who.may_in(Action::ApproveClients, None) {
        pending.extend(
            clients::list(&c.idp.core.db)
                .await?
                .into_iter()
                .filter(|cl| cl.status == ClientStatus::Pending)
                .map(|cl| PendingApproval {
                    kind: "client",
                    id: cl.client_id,
                    name: cl.name,
                    org_id: cl.org_id,
                }),
        );
    }
    if who.may_in(Action::ApproveUpstreams, None) {
        pending.extend(
            upstreams::list(&c.idp)
                .await?
                .into_iter()
                .filter(|u| u.status == UpstreamStatus::Pending.as_str())
                .map(|u| PendingApproval {
                    kind: "upstream",
                    id: u.alias,
                    name: u.name,
                    org_id: Some(u.org_id),
                }),
        );
    }
    Ok(Dashboard {
        counts,
        security_events,
        pending,
    })
}
