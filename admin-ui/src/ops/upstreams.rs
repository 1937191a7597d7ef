//! Upstream identity providers: register, edit, approve, disable and enable.

use serde::Serialize;

use kizuna_core::orgs;
use kizuna_idp::federation::upstreams::{self, Registration};
use kizuna_idp::federation::{NewUpstream, Upstream, UpstreamEdit, UpstreamStatus};

use crate::Console;
use crate::error::ConsoleError;
use kizuna_core::access::{Action, Caller};

pub async fn list_upstreams(c: &Console, who: &Caller) -> Result<Vec<Upstream>, ConsoleError> {
    who.require(Action::ViewUpstreams)?;
    Ok(upstreams::list(&c.idp)
        .await?
        .into_iter()
        .filter(|u| who.may_in(Action::ViewUpstreams, Some(&u.org_id)))
        .collect())
}

/// An upstream with what its operator registers for Kizuna's client there.
#[derive(Debug, Serialize)]
pub struct UpstreamView {
    #[serde(flatten)]
    pub upstream: Upstream,
    pub registration: Registration,
    /// The public JWK Set of the client-assertion key (private_key_jwt).
    pub jwks: Option<serde_json::Value>,
}

async fn upstream_in(
    c: &Console,
    who: &Caller,
    action: Action,
    id: &str,
) -> Result<Upstream, ConsoleError> {
    let what = format!("upstream {id}");
    let found = upstreams::find(&c.idp, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ViewUpstreams, Some(&found.org_id), &what)?;
    who.require_in(action, Some(&found.org_id), &what)?;
    Ok(found)
}

pub async fn upstream(c: &Console, who: &Caller, id: &str) -> Result<UpstreamView, ConsoleError> {
    let upstream = upstream_in(c, who, Action::ViewUpstreams, id).await?;
    upstream_view(c, upstream).await
}

async fn upstream_view(c: &Console, upstream: Upstream) -> Result<UpstreamView, ConsoleError> {
    Ok(UpstreamView {
        registration: upstreams::registration(&c.idp, &upstream),
        jwks: upstreams::client_jwks(&c.idp, &upstream).await?,
        upstream,
    })
}

/// Registers an upstream (its discovery document is read now). One an organization
/// administrator registers starts `pending` until a city administrator approves it; the trust
/// ceiling they ask for is what the city administrator sees when approving.
pub async fn create_upstream(
    c: &Console,
    who: &Caller,
    mut new: NewUpstream,
) -> Result<UpstreamView, ConsoleError> {
    let what = format!("organization {}", new.org_id);
    let org = orgs::find(&c.idp.core.db, &new.org_id)
        .await
        .map_err(|_| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ManageUpstreams, Some(&org.id), &what)?;
    if org.status != "active" {
        return Err(ConsoleError::Invalid(format!(
            "organization {} is disabled",
            org.name
        )));
    }
    new.org_id = org.id;
    let status = if who.may_in(Action::ApproveUpstreams, None) {
        UpstreamStatus::Active
    } else {
        UpstreamStatus::Pending
    };
    let created = upstreams::create(&c.idp, who.actor.clone(), new, status).await?;
    upstream_view(c, created).await
}

/// Edits an upstream. The trust settings (ceiling, email domains for home-realm discovery)
/// are a city administrator's decision: an organization administrator's edit that changes
/// them is refused.
pub async fn edit_upstream(
    c: &Console,
    who: &Caller,
    id: &str,
    edit: UpstreamEdit,
) -> Result<UpstreamView, ConsoleError> {
    let current = upstream_in(c, who, Action::ManageUpstreams, id).await?;
    let trust_changed = edit.ceiling.is_some_and(|x| x != current.ceiling)
        || edit
            .email_domains
            .as_ref()
            .is_some_and(|d| *d != current.email_domains);
    if trust_changed && !who.may_in(Action::ApproveUpstreams, None) {
        return Err(ConsoleError::Forbidden(
            "the trust ceiling and the email domains are set by a city administrator".into(),
        ));
    }
    let edited = upstreams::edit(&c.idp, who.actor.clone(), &current.id, edit).await?;
    upstream_view(c, edited).await
}

/// What can happen to an upstream's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamChange {
    Approve,
    Disable,
    Enable,
}

pub async fn change_upstream(
    c: &Console,
    who: &Caller,
    id: &str,
    change: UpstreamChange,
) -> Result<UpstreamView, ConsoleError> {
    let current = upstream_in(c, who, Action::ManageUpstreams, id).await?;
    let pending = current.status == UpstreamStatus::Pending.as_str();
    let to = match change {
        UpstreamChange::Approve => {
            who.require_in(Action::ApproveUpstreams, None, &format!("upstream {id}"))?;
            if !pending {
                return Err(ConsoleError::Conflict(format!(
                    "upstream {} is {}, not pending",
                    current.alias, current.status
                )));
            }
            UpstreamStatus::Active
        }
        UpstreamChange::Disable => UpstreamStatus::Disabled,
        UpstreamChange::Enable => {
            if pending {
                return Err(ConsoleError::Conflict(format!(
                    "upstream {} is pending: a city administrator approves it",
                    current.alias
                )));
            }
            // An organization administrator's re-enabled upstream is vetted again.
            if current.status == UpstreamStatus::Disabled.as_str()
                && !who.may_in(Action::ApproveUpstreams, None)
            {
                UpstreamStatus::Pending
            } else {
                UpstreamStatus::Active
            }
        }
    };
    let changed = upstreams::set_status(&c.idp, who.actor.clone(), &current.id, to).await?;
    upstream_view(c, changed).await
}
