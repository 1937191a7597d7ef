//! Accounts (RFC 8555 §7.3): `newAccount`, account update and deactivation, the account's
//! orders list, and account key rollover (`keyChange`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::jose;
use kizuna_core::time::unix_to_rfc3339;

use super::jws::{self, Signed, Signer};
use super::problem::{Kind, Problem};
use super::store::{self, Account};
use super::{ByAccount, eab, order_url, reply, signed};
use crate::Ca;

fn account_url(ca: &Ca, id: &str) -> String {
    ca.url(&format!("/acme/account/{id}"))
}

fn account_json(ca: &Ca, a: &Account) -> Value {
    json!({
        "status": a.status,
        "contact": a.contact(),
        "orders": ca.url(&format!("/acme/account/{}/orders", a.id)),
        "createdAt": unix_to_rfc3339(a.created_at),
    })
}

async fn audit_record(ca: &Ca, event: AuditEvent) {
    if let Err(e) = ca.core.audit.record(event).await {
        tracing::error!(error = %e, "ACME audit entry");
    }
}

fn check_contacts(contacts: &[String]) -> Result<(), Problem> {
    if contacts.len() > 10 {
        return Err(Problem::new(Kind::InvalidContact, "at most 10 contacts"));
    }
    for c in contacts {
        let Some(address) = c.strip_prefix("mailto:") else {
            return Err(Problem::new(
                Kind::UnsupportedContact,
                format!("{c:?}: only mailto: contacts are supported"),
            ));
        };
        if address.contains(['?', ',', ' ']) || !address.contains('@') || address.len() > 254 {
            return Err(Problem::new(
                Kind::InvalidContact,
                format!("{c:?} is not a single email address"),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct NewAccount {
    contact: Option<Vec<String>>,
    only_return_existing: bool,
    external_account_binding: Option<Value>,
}

/// `newAccount` (§7.3): registers the key, or finds the account it already has.
pub(super) async fn new_account(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let req = signed(&ca, &headers, &body, "/acme/new-account", Signer::Jwk).await?;
    let payload: NewAccount = req.json()?;
    let thumbprint = jose::thumbprint(&req.jwk)
        .map_err(|e| Problem::malformed(format!("the account key: {e}")))?;
    if let Some(existing) = store::account_by_thumbprint(&ca.core.db, &thumbprint).await? {
        return Ok(reply(
            StatusCode::OK,
            account_json(&ca, &existing),
            Some(account_url(&ca, &existing.id)),
        ));
    }
    if payload.only_return_existing {
        return Err(Problem::new(
            Kind::AccountDoesNotExist,
            "no account has this key",
        ));
    }
    let contact = payload.contact.unwrap_or_default();
    check_contacts(&contact)?;
    let binding = match &payload.external_account_binding {
        Some(binding) => {
            Some(eab::verify(&ca, binding, &req.jwk, &ca.url("/acme/new-account")).await?)
        }
        None if ca.config.acme.require_eab => {
            return Err(Problem::new(
                Kind::ExternalAccountRequired,
                "accounts are bound to an organization: register with the key id and HMAC key an administrator created (kizuna acme eab create)",
            ));
        }
        None => None,
    };
    let account = Account {
        id: kizuna_core::secret::new_id(),
        jwk: req.jwk.to_string(),
        thumbprint,
        org_id: binding.as_ref().map(|(_, org)| org.clone()),
        eab_kid: binding.as_ref().map(|(kid, _)| kid.clone()),
        contact: json!(contact).to_string(),
        status: "valid".into(),
        created_at: kizuna_core::time::now_unix(),
    };
    let mut tx = ca.core.db.begin().await?;
    store::insert_account(tx.conn(), &account).await?;
    if let Some((kid, _)) = &binding
        && !eab::bind_in(tx.conn(), kid, &account.id).await?
    {
        return Err(Problem::unauthorized(
            "external account binding: this key is already bound to an account",
        ));
    }
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::system(format!("acme-account:{}", account.id)),
            "acme.account.create",
            format!("acme-account:{}", account.id),
        )
        .details(json!({"org_id": account.org_id, "eab_kid": account.eab_kid, "thumbprint": account.thumbprint}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(reply(
        StatusCode::CREATED,
        account_json(&ca, &account),
        Some(account_url(&ca, &account.id)),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AccountUpdate {
    contact: Option<Vec<String>>,
    status: Option<String>,
}

/// The account the request is signed by, which must be the one in the URL.
fn own_account<'a>(req: &'a Signed, id: &str) -> Result<&'a Account, Problem> {
    let account = req.account()?;
    if account.id != id {
        return Err(Problem::unauthorized(
            "the request is signed by another account",
        ));
    }
    Ok(account)
}

/// An account (§7.3.2 update, §7.3.6 deactivation, or POST-as-GET).
pub(super) async fn account(
    State(ca): State<Ca>,
    Path(id): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let mut account = own_account(&req, &id)?.clone();
    if !req.is_post_as_get() {
        let update: AccountUpdate = req.json()?;
        if let Some(contact) = update.contact {
            check_contacts(&contact)?;
            account.contact = json!(contact).to_string();
        }
        match update.status.as_deref() {
            None => {}
            Some("deactivated") => account.status = "deactivated".into(),
            Some(other) => {
                return Err(Problem::malformed(format!(
                    "an account can only be deactivated, not set to {other:?}"
                )));
            }
        }
        store::update_account(&ca.core.db, &account).await?;
        audit_record(
            &ca,
            AuditEvent::new(
                Actor::system(format!("acme-account:{}", account.id)),
                "acme.account.update",
                format!("acme-account:{}", account.id),
            )
            .details(json!({"status": account.status})),
        )
        .await;
    }
    Ok(reply(
        StatusCode::OK,
        account_json(&ca, &account),
        Some(account_url(&ca, &account.id)),
    ))
}

/// The account's orders (§7.1.2.1).
pub(super) async fn orders(
    State(ca): State<Ca>,
    Path(id): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    own_account(&req, &id)?;
    let ids = store::orders_of(&ca.core.db, &id).await?;
    let urls: Vec<String> = ids.iter().map(|o| order_url(&ca, o)).collect();
    Ok(reply(StatusCode::OK, json!({ "orders": urls }), None))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyChange {
    account: String,
    old_key: Value,
}

/// `keyChange` (§7.3.5): the inner JWS, signed by the new key, names the account and its old
/// key; the outer one is signed by the account as it is.
pub(super) async fn key_change(
    State(ca): State<Ca>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let url = ca.url("/acme/key-change");
    let account = req.account()?.clone();
    let inner = jws::parse(&req.payload)?;
    let new_key = inner
        .header
        .jwk
        .clone()
        .ok_or_else(|| Problem::malformed("the inner JWS must carry the new key (jwk)"))?;
    if inner.header.url.as_deref() != Some(url.as_str()) {
        return Err(Problem::malformed(
            "the inner JWS url must be the keyChange URL",
        ));
    }
    if inner.header.nonce.is_some() || inner.header.kid.is_some() {
        return Err(Problem::malformed(
            "the inner JWS must not carry a nonce or kid",
        ));
    }
    inner
        .verify(&new_key, jws::ALGORITHMS)
        .map_err(|e| Problem::malformed(format!("the inner JWS: {e}")))?;
    let change: KeyChange = inner
        .claims()
        .map_err(|_| Problem::malformed("the inner payload must be {account, oldKey}"))?;
    if change.account != account_url(&ca, &account.id) {
        return Err(Problem::unauthorized("the inner JWS names another account"));
    }
    let old = jose::thumbprint(&change.old_key).map_err(|e| Problem::malformed(e.to_string()))?;
    if old != account.thumbprint {
        return Err(Problem::unauthorized(
            "oldKey is not the account's current key",
        ));
    }
    let new = jose::thumbprint(&new_key).map_err(|e| Problem::malformed(e.to_string()))?;
    if let Some(other) = store::account_by_thumbprint(&ca.core.db, &new).await? {
        let mut response = Problem::malformed("another account already uses the new key")
            .status(StatusCode::CONFLICT)
            .into_response();
        if let Ok(location) = HeaderValue::from_str(&account_url(&ca, &other.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        return Ok(response);
    }
    if !store::change_account_key(&ca.core.db, &account, &new_key.to_string(), &new).await? {
        return Err(Problem::unauthorized("the account key changed meanwhile"));
    }
    audit_record(
        &ca,
        AuditEvent::new(
            Actor::system(format!("acme-account:{}", account.id)),
            "acme.account.key_change",
            format!("acme-account:{}", account.id),
        )
        .details(json!({"old": account.thumbprint, "new": new})),
    )
    .await;
    let updated = store::account(&ca.core.db, &account.id)
        .await?
        .ok_or_else(Problem::internal)?;
    Ok(reply(
        StatusCode::OK,
        account_json(&ca, &updated),
        Some(account_url(&ca, &account.id)),
    ))
}
