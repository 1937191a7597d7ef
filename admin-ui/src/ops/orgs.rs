//! Organizations: list, look up, add, edit, disable and enable.

use kizuna_ca::cert_clients::{self, ClientScopes};
use kizuna_core::orgs::{self, NewOrganization, Organization};

use super::require_in;
use crate::Console;
use crate::error::ConsoleError;
use crate::forms::ClientScopesRequest;
use crate::messages::Msg;
use kizuna_core::access::{Action, Caller};

pub async fn list_orgs(c: &Console, who: &Caller) -> Result<Vec<Organization>, ConsoleError> {
    who.require(Action::ViewOrgs)?;
    Ok(orgs::list(&c.idp.core.db)
        .await?
        .into_iter()
        .filter(|o| who.may_in(Action::ViewOrgs, Some(&o.id)))
        .collect())
}

pub async fn org(c: &Console, who: &Caller, id: &str) -> Result<Organization, ConsoleError> {
    let missing = Msg::NoOrg { id: id.into() };
    let found = orgs::find(&c.idp.core.db, id)
        .await
        .map_err(|_| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(who, Action::ViewOrgs, Some(&found.id), missing)?;
    Ok(found)
}

/// An organization the caller may see and act on with `action` there.
async fn org_for(
    c: &Console,
    who: &Caller,
    id: &str,
    action: Action,
) -> Result<Organization, ConsoleError> {
    let found = org(c, who, id).await?;
    require_in(who, action, Some(&found.id), Msg::NoOrg { id: id.into() })?;
    Ok(found)
}

pub async fn create_org(
    c: &Console,
    who: &Caller,
    new: NewOrganization,
) -> Result<Organization, ConsoleError> {
    require_in(who, Action::ManageOrgs, None, Msg::NoOrgs)?;
    Ok(orgs::create(&c.idp.core.db, who.actor.clone(), new).await?)
}

pub async fn update_org(
    c: &Console,
    who: &Caller,
    id: &str,
    expected_version: i64,
    new: NewOrganization,
) -> Result<Organization, ConsoleError> {
    require_in(who, Action::ManageOrgs, None, Msg::NoOrgs)?;
    Ok(orgs::update(&c.idp.core.db, who.actor.clone(), id, expected_version, new).await?)
}

pub async fn set_org_status(
    c: &Console,
    who: &Caller,
    id: &str,
    active: bool,
) -> Result<Organization, ConsoleError> {
    require_in(who, Action::ManageOrgs, None, Msg::NoOrgs)?;
    let found = org(c, who, id).await?;
    Ok(orgs::set_status(&c.idp.core.db, who.actor.clone(), &found.id, active).await?)
}

/// The rules letting the organization's certificates act as OAuth clients of their own.
pub async fn client_scopes(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<Vec<ClientScopes>, ConsoleError> {
    let found = org_for(c, who, id, Action::ViewClients).await?;
    Ok(cert_clients::list(&c.idp.core.db, &found.id).await?)
}

/// Sets (or, with no scopes, removes) one rule; an organization's administrators may, for
/// their own organization, as they may register its clients. Management scopes are refused.
pub async fn set_client_scopes(
    c: &Console,
    who: &Caller,
    id: &str,
    rule: ClientScopesRequest,
) -> Result<Vec<ClientScopes>, ConsoleError> {
    let found = org_for(c, who, id, Action::ManageClients).await?;
    cert_clients::set(
        &c.ca,
        who.actor.clone(),
        &found.id,
        &rule.profile,
        &rule.model,
        &rule.scopes,
    )
    .await?;
    Ok(cert_clients::list(&c.idp.core.db, &found.id).await?)
}

/// Sets (or, with `None`, removes) the organization's limit on how long residents' consents
/// to its services last: its administrators, as they manage its clients.
pub async fn set_consent_lifetime(
    c: &Console,
    who: &Caller,
    id: &str,
    days: Option<i64>,
) -> Result<serde_json::Value, ConsoleError> {
    let found = org_for(c, who, id, Action::ManageClients).await?;
    let days =
        kizuna_idp::consent::set_org_lifetime(&c.idp, who.actor.clone(), &found.id, days).await?;
    Ok(serde_json::json!({"org_id": found.id, "lifetime_days": days}))
}
