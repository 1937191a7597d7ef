//! The periodic access review: accounts left unused, role changes, and disabling many
//! accounts at once.

use serde::Serialize;

use kizuna_core::audit::{self, AuditEntry};
use kizuna_idp::users;

use super::users::user_in_reach;
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::store::{self, AuditSearch, UserRow};
use kizuna_core::access::{Action, Caller, Reach};

/// Disables many accounts after a review, in one transaction (all or none); each is
/// audited. Returns how many.
pub async fn bulk_disable(
    c: &Console,
    who: &Caller,
    ids: &[String],
) -> Result<usize, ConsoleError> {
    let mut found = Vec::new();
    for id in ids {
        let user = user_in_reach(c, who, Action::ManageUsers, id).await?;
        if who.user_id.as_deref() == Some(user.id.as_str()) {
            return Err(ConsoleError::Invalid(Msg::CannotDisableSelf.into()));
        }
        found.push(user.id);
    }
    let mut tx = c.idp.core.db.begin().await?;
    let mut entries = Vec::new();
    for id in &found {
        entries.extend(
            users::change_status_in(tx.conn(), who.actor.clone(), id, false)
                .await?
                .1,
        );
    }
    tx.commit().await?;
    audit::publish(&entries);
    Ok(found.len())
}

#[derive(Debug, Serialize)]
pub struct Review {
    pub days: i64,
    pub unused: Vec<UserRow>,
    /// Role grants and withdrawals in the period.
    pub role_changes: Vec<AuditEntry>,
}

pub async fn review(c: &Console, who: &Caller, days: i64) -> Result<Review, ConsoleError> {
    let reach = who.require(Action::ViewReviews)?;
    if !(1..=3650).contains(&days) {
        return Err(ConsoleError::Invalid(Msg::DaysRange.into()));
    }
    let since = kizuna_core::time::unix_to_rfc3339(kizuna_core::time::now_unix() - days * 86_400);
    let role_changes = store::audit(
        &c.idp.core.db,
        &AuditSearch {
            action: Some("user.role_".into()),
            since: Some(since),
            limit: store::PAGE,
            ..AuditSearch::default()
        },
    )
    .await?;
    let role_changes = if reach == Reach::City {
        role_changes
    } else {
        role_changes
            .into_iter()
            .filter(|e| {
                serde_json::from_str::<serde_json::Value>(&e.details)
                    .ok()
                    .and_then(|d| {
                        d["scope"]
                            .as_str()
                            .map(|s| who.may_in(Action::ViewReviews, Some(s)))
                    })
                    .unwrap_or(false)
            })
            .collect()
    };
    Ok(Review {
        days,
        unused: store::unused(&c.idp.core.db, &reach, days).await?,
        role_changes,
    })
}
