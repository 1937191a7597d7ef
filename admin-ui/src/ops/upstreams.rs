//! Upstream identity providers: register, edit, approve, disable and enable.

use serde::Serialize;

use kizuna_core::orgs;
use kizuna_idp::federation::upstreams::{self, Registration};
use kizuna_idp::federation::{NewUpstream, Upstream, UpstreamEdit, UpstreamStatus};

use super::require_in;
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
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
    /// Kizuna's SP metadata at a SAML IdP.
    pub sp_metadata: Option<String>,
}

async fn upstream_in(
    c: &Console,
    who: &Caller,
    action: Action,
    id: &str,
) -> Result<Upstream, ConsoleError> {
    let missing = Msg::NoUpstream { id: id.into() };
    let found = upstreams::find(&c.idp, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(
        who,
        Action::ViewUpstreams,
        Some(&found.org_id),
        missing.clone(),
    )?;
    require_in(who, action, Some(&found.org_id), missing)?;
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
        sp_metadata: kizuna_idp::federation::saml::sp::metadata(&c.idp, &upstream),
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
    saml_metadata_url: Option<&str>,
) -> Result<UpstreamView, ConsoleError> {
    let missing = Msg::NoOrg {
        id: new.org_id.clone(),
    };
    let org = orgs::find(&c.idp.core.db, &new.org_id)
        .await
        .map_err(|_| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(who, Action::ManageUpstreams, Some(&org.id), missing)?;
    if org.status != "active" {
        return Err(ConsoleError::Invalid(
            Msg::OrgDisabled { name: org.name }.into(),
        ));
    }
    new.org_id = org.id;
    if let Some(url) = saml_metadata_url {
        new.saml = Some(kizuna_idp::federation::saml::idp_from_url(&c.idp, url).await?);
    }
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
        return Err(ConsoleError::Forbidden(Msg::TrustSetByCity.into()));
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
            require_in(
                who,
                Action::ApproveUpstreams,
                None,
                Msg::NoUpstream { id: id.into() },
            )?;
            if !pending {
                return Err(ConsoleError::Conflict(
                    Msg::UpstreamNotPending {
                        alias: current.alias,
                        status: current.status,
                    }
                    .into(),
                ));
            }
            UpstreamStatus::Active
        }
        UpstreamChange::Disable => UpstreamStatus::Disabled,
        UpstreamChange::Enable => {
            if pending {
                return Err(ConsoleError::Conflict(
                    Msg::UpstreamPending {
                        alias: current.alias,
                    }
                    .into(),
                ));
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
