//! Changes to a registered client: edits of its reach (redirect URIs, minimum level), a new
//! secret, and its lifecycle status. Each is audited in the transaction that makes it.

use serde_json::json;

use kizuna_core::Core;
use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::AnyConnection;
use kizuna_core::secret;

use super::rules::{check_redirect_uri, invalid};
use super::{Client, ClientError, GrantType, get, get_in, to_json};
use crate::store::clients::{self as store, ClientUpdate};
use crate::store::grants;

/// A client's lifecycle: `pending` until approved, `active`, or `disabled`. Only active
/// clients can sign anyone in or get tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Pending,
    Active,
    Disabled,
}

impl ClientStatus {
    pub const ALL: [ClientStatus; 3] = [
        ClientStatus::Pending,
        ClientStatus::Active,
        ClientStatus::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Pending => "pending",
            ClientStatus::Active => "active",
            ClientStatus::Disabled => "disabled",
        }
    }
}

impl std::str::FromStr for ClientStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<ClientStatus, String> {
        ClientStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown client status {s:?}"))
    }
}

impl std::fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an edit of a registered client may change.
#[derive(Debug, Clone)]
pub struct ClientEdit {
    pub redirect_uris: Vec<String>,
    pub min_aal: u8,
    /// The version the editor read; the edit is refused when the client changed since.
    pub expected_version: i64,
}

/// Applies `update` to a client whose version is still `expected` (any version without one),
/// counting a new version; the current client when someone else was first.
pub(super) async fn change(
    conn: &mut AnyConnection,
    client_id: &str,
    expected: Option<i64>,
    update: ClientUpdate<'_>,
) -> Result<Client, ClientError> {
    let changed = store::update(
        &mut *conn,
        client_id,
        expected,
        update,
        kizuna_core::time::now_unix(),
    )
    .await?;
    let client = get_in(conn, client_id)
        .await?
        .ok_or_else(|| ClientError::NotFound(client_id.to_string()))?;
    if !changed {
        return Err(ClientError::Stale(Box::new(client)));
    }
    Ok(client)
}

/// Replaces a client's redirect URIs and required assurance level; audited.
/// Changes a client's redirect URIs and minimum level. With `review`, a change of either
/// sends an active client back to `pending` until a city administrator approves it again
/// (an organization administrator re-pointing a client they do not approve).
pub async fn edit(
    core: &Core,
    actor: Actor,
    client_id: &str,
    edit: ClientEdit,
    review: bool,
) -> Result<Client, ClientError> {
    if edit.min_aal > 3 {
        return Err(invalid("min_aal must be 0 (none), 1, 2 or 3"));
    }
    let current = get(&core.db, client_id)
        .await?
        .ok_or_else(|| ClientError::NotFound(client_id.to_string()))?;
    for uri in &edit.redirect_uris {
        check_redirect_uri(uri, current.is_public())?;
    }
    if edit.redirect_uris.is_empty() && current.allows(GrantType::AuthorizationCode) {
        return Err(invalid(
            "a client using the authorization code grant needs at least one redirect URI",
        ));
    }
    let changes_reach =
        edit.redirect_uris != current.redirect_uris || edit.min_aal != current.min_aal;
    let status = if review && changes_reach && current.status == ClientStatus::Active {
        ClientStatus::Pending
    } else {
        current.status
    };
    let mut tx = core.db.begin().await?;
    let client = change(
        tx.conn(),
        client_id,
        Some(edit.expected_version),
        ClientUpdate::Reach {
            redirect_uris: &to_json(&edit.redirect_uris),
            min_aal: edit.min_aal as i64,
            status: status.as_str(),
        },
    )
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, "client.update", format!("client:{client_id}"))
            .details(json!({"redirect_uris": client.redirect_uris, "min_aal": client.min_aal, "status": client.status, "version": client.version}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(client)
}

/// Gives a confidential client a new secret (shown once); the old one stops working at once.
pub async fn rotate_secret(
    core: &Core,
    actor: Actor,
    client_id: &str,
) -> Result<String, ClientError> {
    let current = get(&core.db, client_id)
        .await?
        .ok_or_else(|| ClientError::NotFound(client_id.to_string()))?;
    if !current.auth_method.uses_secret() {
        return Err(invalid(format!(
            "client {client_id} authenticates with {}, not a secret",
            current.auth_method.as_str()
        )));
    }
    let secret = secret::random_token();
    let mut tx = core.db.begin().await?;
    change(
        tx.conn(),
        client_id,
        None,
        ClientUpdate::SecretHash(&secret::token_hash(&secret)),
    )
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            actor,
            "client.rotate_secret",
            format!("client:{client_id}"),
        )],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(secret)
}

/// Moves a client to `to` (approve a pending one, disable, re-enable), audited as `action`.
/// Disabling revokes its grants.
pub async fn set_status(
    core: &Core,
    actor: Actor,
    client_id: &str,
    to: ClientStatus,
    action: &str,
) -> Result<Client, ClientError> {
    let mut tx = core.db.begin().await?;
    let client = change(
        tx.conn(),
        client_id,
        None,
        ClientUpdate::Status(to.as_str()),
    )
    .await?;
    if to == ClientStatus::Disabled {
        grants::revoke_for_client(
            tx.conn(),
            client_id,
            "client disabled",
            kizuna_core::time::now_unix(),
        )
        .await?;
    }
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, action, format!("client:{client_id}"))
                .details(json!({"status": to.as_str()})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(client)
}
