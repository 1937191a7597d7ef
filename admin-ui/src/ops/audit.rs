//! The audit log: search, read one entry, verify the hash chain.

use kizuna_core::audit::{self, AuditEntry, VerifyReport};

use super::{require_in, search_text};
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::store::{self, AuditSearch};
use kizuna_core::access::{Action, Caller};

pub async fn search_audit(
    c: &Console,
    who: &Caller,
    search: AuditSearch,
) -> Result<Vec<AuditEntry>, ConsoleError> {
    require_in(who, Action::ViewAudit, None, Msg::NoAuditLog)?;
    for text in [
        &search.actor,
        &search.action,
        &search.target,
        &search.since,
        &search.until,
    ]
    .into_iter()
    .flatten()
    {
        search_text(Some(text.clone()))?;
    }
    Ok(store::audit(&c.idp.core.db, &search).await?)
}

pub async fn audit_entry(c: &Console, who: &Caller, id: &str) -> Result<AuditEntry, ConsoleError> {
    require_in(who, Action::ViewAudit, None, Msg::NoAuditLog)?;
    store::audit_entry(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(Msg::NoAuditEntry { id: id.into() }.into()))
}

/// The same check as `kizuna audit verify`.
pub async fn verify_audit(c: &Console, who: &Caller) -> Result<VerifyReport, ConsoleError> {
    require_in(who, Action::ViewAudit, None, Msg::NoAuditLog)?;
    Ok(audit::verify(&c.idp.core.db).await?)
}
