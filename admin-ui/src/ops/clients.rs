//! Relying parties: register, edit, rotate secrets, approve, disable and enable, and their
//! identity assurance settings and request quota.

use kizuna_idp::assurance;
use kizuna_idp::clients::{self, Client, ClientEdit, ClientStatus, CreatedClient, NewClient};
use kizuna_idp::users::CITY_WIDE;

use super::require_in;
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use kizuna_core::access::{ADMIN_SCOPE, Action, Caller, ROLE_SCOPE_PREFIX};

pub async fn list_clients(c: &Console, who: &Caller) -> Result<Vec<Client>, ConsoleError> {
    who.require(Action::ViewClients)?;
    Ok(clients::list(&c.idp.core.db)
        .await?
        .into_iter()
        .filter(|cl| who.may_in(Action::ViewClients, cl.org_id.as_deref()))
        .collect())
}

pub async fn client(c: &Console, who: &Caller, id: &str) -> Result<Client, ConsoleError> {
    let missing = Msg::NoClient { id: id.into() };
    let client = clients::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(who, Action::ViewClients, client.org_id.as_deref(), missing)?;
    Ok(client)
}

async fn managed_client(c: &Console, who: &Caller, id: &str) -> Result<Client, ConsoleError> {
    let client = client(c, who, id).await?;
    require_in(
        who,
        Action::ManageClients,
        client.org_id.as_deref(),
        Msg::NoClient { id: id.into() },
    )?;
    if client.client_id == crate::auth::CLIENT_ID && !who.may_in(Action::ApproveClients, None) {
        return Err(ConsoleError::Forbidden(
            Msg::ConsoleClientForCityAdmins.into(),
        ));
    }
    Ok(client)
}

/// A client the caller may edit, give a new secret or re-point: one they manage, and for a
/// client carrying admin scopes (`kizuna:admin`, `kizuna:role:*`), a city administrator only.
async fn repointable_client(c: &Console, who: &Caller, id: &str) -> Result<Client, ConsoleError> {
    let client = managed_client(c, who, id).await?;
    if carries_admin_scopes(&client.scopes) && !who.may_in(Action::ApproveClients, None) {
        return Err(ConsoleError::Forbidden(
            Msg::AdminScopeClientForCityAdmins.into(),
        ));
    }
    Ok(client)
}

fn carries_admin_scopes(scopes: &[String]) -> bool {
    scopes
        .iter()
        .any(|s| s == ADMIN_SCOPE || s.starts_with(ROLE_SCOPE_PREFIX))
}

/// Registers a client. One an organization administrator registers starts `pending` until
/// a city administrator approves it; only city administrators register admin scopes.
pub async fn create_client(
    c: &Console,
    who: &Caller,
    new: NewClient,
) -> Result<CreatedClient, ConsoleError> {
    require_in(
        who,
        Action::ManageClients,
        new.org_id.as_deref(),
        Msg::NoOrg {
            id: new.org_id.as_deref().unwrap_or(CITY_WIDE).into(),
        },
    )?;
    let city = who.may_in(Action::ApproveClients, None);
    if !city && carries_admin_scopes(&new.scopes) {
        return Err(ConsoleError::Forbidden(
            Msg::AdminScopesForCityAdmins.into(),
        ));
    }
    let status = if city {
        ClientStatus::Active
    } else {
        ClientStatus::Pending
    };
    let created = clients::create_with_status(&c.idp.core, who.actor.clone(), new, status).await?;
    c.idp
        .keys
        .ensure(&created.client.id_token_alg)
        .await
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(created)
}

/// Edits a client. An organization administrator's change of where it redirects or what
/// level it asks for sends it back to `pending` for a city administrator's approval.
pub async fn edit_client(
    c: &Console,
    who: &Caller,
    id: &str,
    edit: ClientEdit,
) -> Result<Client, ConsoleError> {
    repointable_client(c, who, id).await?;
    let review = !who.may_in(Action::ApproveClients, None);
    let client = clients::edit(&c.idp.core, who.actor.clone(), id, edit, review).await?;
    c.idp.clients.forget(id);
    Ok(client)
}

pub async fn rotate_client_secret(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<String, ConsoleError> {
    repointable_client(c, who, id).await?;
    let secret = clients::rotate_secret(&c.idp.core, who.actor.clone(), id).await?;
    c.idp.clients.forget(id);
    Ok(secret)
}

/// What can happen to a client's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientChange {
    Approve,
    Disable,
    Enable,
}

pub async fn change_client(
    c: &Console,
    who: &Caller,
    id: &str,
    change: ClientChange,
) -> Result<Client, ConsoleError> {
    let current = managed_client(c, who, id).await?;
    if current.client_id == crate::auth::CLIENT_ID && change == ClientChange::Disable {
        return Err(ConsoleError::Invalid(Msg::ConsoleClientStaysOn.into()));
    }
    let (to, action) = match change {
        ClientChange::Approve => {
            require_in(
                who,
                Action::ApproveClients,
                None,
                Msg::NoClient { id: id.into() },
            )?;
            if current.status != ClientStatus::Pending {
                return Err(ConsoleError::Conflict(
                    Msg::ClientNotPending {
                        id: id.into(),
                        status: current.status.to_string(),
                    }
                    .into(),
                ));
            }
            (ClientStatus::Active, "client.approve")
        }
        ClientChange::Disable => (ClientStatus::Disabled, "client.disable"),
        ClientChange::Enable => {
            // Re-enabling a pending client would skip the approval.
            if current.status == ClientStatus::Pending {
                return Err(ConsoleError::Conflict(
                    Msg::ClientPending { id: id.into() }.into(),
                ));
            }
            let to = if current.status == ClientStatus::Disabled
                && !who.may_in(Action::ApproveClients, None)
            {
                ClientStatus::Pending
            } else {
                ClientStatus::Active
            };
            (to, "client.enable")
        }
    };
    let client = clients::set_status(&c.idp.core, who.actor.clone(), id, to, action).await?;
    c.idp.clients.forget(id);
    Ok(client)
}

/// A client with its identity assurance settings and request quota: what its console page
/// shows, read with one client lookup.
#[derive(Debug)]
pub struct ClientPage {
    pub client: Client,
    pub assurance: assurance::ClientAssurance,
    pub quota: kizuna_idp::quota::Quota,
}

pub async fn client_page(c: &Console, who: &Caller, id: &str) -> Result<ClientPage, ConsoleError> {
    let client = client(c, who, id).await?;
    let mut conn = c.idp.core.db.conn().await?;
    let assurance = assurance::client_settings(&mut conn, &client.client_id).await?;
    drop(conn);
    let quota = kizuna_idp::quota::get(&c.idp, &client.client_id).await?;
    Ok(ClientPage {
        client,
        assurance,
        quota,
    })
}

/// A client's identity assurance settings, for whoever may view the client.
pub async fn client_assurance(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<assurance::ClientAssurance, ConsoleError> {
    Ok(client_page(c, who, id).await?.assurance)
}

/// A client's request quota, for whoever may view the client.
pub async fn client_quota(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<kizuna_idp::quota::Quota, ConsoleError> {
    Ok(client_page(c, who, id).await?.quota)
}

/// Sets (`Some`) or removes (`None`) a client's request quota: city administrators.
pub async fn set_client_quota(
    c: &Console,
    who: &Caller,
    id: &str,
    requests_per_minute: Option<i64>,
) -> Result<kizuna_idp::quota::Quota, ConsoleError> {
    require_in(
        who,
        Action::ApproveClients,
        None,
        Msg::NoClient { id: id.into() },
    )?;
    Ok(kizuna_idp::quota::set(&c.idp, id, requests_per_minute, who.actor.clone()).await?)
}

/// A client's identity assurance settings (minimum IAL, verified claims it may receive, the
/// proofing providers offered to its residents): city administrators.
pub async fn set_client_assurance(
    c: &Console,
    who: &Caller,
    id: &str,
    settings: assurance::ClientAssurance,
) -> Result<assurance::ClientAssurance, ConsoleError> {
    require_in(
        who,
        Action::ApproveClients,
        None,
        Msg::NoClient { id: id.into() },
    )?;
    Ok(assurance::set_client_settings(&c.idp, who.actor.clone(), id, settings).await?)
}

/// A client's terms for asking consent (purpose, lifetime, optional claims), for whoever
/// may view the client; `None` when it has none.
pub async fn client_consent_terms(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<Option<kizuna_idp::consent::Terms>, ConsoleError> {
    let client = client(c, who, id).await?;
    Ok(kizuna_idp::consent::terms(&c.idp, &client.client_id)
        .await?
        .0)
}

/// Sets a client's consent terms: who may manage the client. A changed purpose asks every
/// resident again; nothing here gives or extends a resident's consent.
pub async fn set_client_consent_terms(
    c: &Console,
    who: &Caller,
    id: &str,
    terms: kizuna_idp::consent::NewTerms,
) -> Result<kizuna_idp::consent::Terms, ConsoleError> {
    let client = managed_client(c, who, id).await?;
    Ok(kizuna_idp::consent::set_terms(&c.idp, who.actor.clone(), &client.client_id, terms).await?)
}

/// A client's offers to obtain residents' data from other services (RFC 8693), for whoever
/// may view the client.
pub async fn client_linkages(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<Vec<kizuna_idp::consent::Linkage>, ConsoleError> {
    let client = client(c, who, id).await?;
    Ok(kizuna_idp::consent::linkages(&c.idp, &client.client_id).await?)
}

/// Sets (no scopes: removes) one offer: who may manage the client. Residents are asked on
/// the consent page; nothing here agrees on their behalf.
pub async fn set_client_linkage(
    c: &Console,
    who: &Caller,
    id: &str,
    linkage: kizuna_idp::consent::NewLinkage,
) -> Result<Vec<kizuna_idp::consent::Linkage>, ConsoleError> {
    let client = managed_client(c, who, id).await?;
    kizuna_idp::consent::set_linkage(&c.idp, who.actor.clone(), &client.client_id, linkage).await?;
    Ok(kizuna_idp::consent::linkages(&c.idp, &client.client_id).await?)
}
