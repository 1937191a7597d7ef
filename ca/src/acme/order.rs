//! Orders (RFC 8555 §7.4): `newOrder`, an order's state, and finalization with a CSR.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::time::unix_to_rfc3339;

use super::jws::Signed;
use super::problem::{Kind, Problem};
use super::store::{self, Account, Authorization, Challenge, Identifier, Order};
use super::{ByAccount, order_url, reply};
use crate::issue::IssueRequest;
use crate::names::{San, valid_dns_name};
use crate::profile::NameRule;
use crate::{Ca, csr};

/// An order's status as a client should see it (an expired order is invalid).
fn order_status(o: &Order) -> &str {
    if matches!(o.status.as_str(), "pending" | "ready")
        && o.expires_at <= kizuna_core::time::now_unix()
    {
        "invalid"
    } else {
        &o.status
    }
}

async fn order_json(ca: &Ca, o: &Order) -> Result<Value, Problem> {
    let mut conn = ca.core.db.conn().await?;
    let authzs = store::authorizations_of(&mut conn, &o.id).await?;
    let mut body = json!({
        "status": order_status(o),
        "expires": unix_to_rfc3339(o.expires_at),
        "identifiers": o.identifiers(),
        "authorizations": authzs.iter().map(|a| ca.url(&format!("/acme/authz/{}", a.id))).collect::<Vec<_>>(),
        "finalize": ca.url(&format!("/acme/order/{}/finalize", o.id)),
    });
    if let Some(serial) = &o.cert_serial {
        body["certificate"] = json!(ca.url(&format!("/acme/cert/{serial}")));
    }
    if let Some(error) = o
        .error
        .as_deref()
        .and_then(|e| serde_json::from_str::<Value>(e).ok())
    {
        body["error"] = error;
    }
    Ok(body)
}

/// Checks one identifier against the profile, the CA's name constraints and the
/// organization's allowed names.
async fn check_identifier(ca: &Ca, account: &Account, id: &Identifier) -> Result<San, Problem> {
    let profile = ca
        .profiles
        .get(&ca.config.acme.profile)
        .ok_or_else(Problem::internal)?;
    let (san, rule) = match id.kind.as_str() {
        "dns" if id.value.starts_with("*.") => {
            return Err(Problem::new(
                Kind::RejectedIdentifier,
                format!("{}: wildcard certificates are not issued", id.value),
            ));
        }
        "dns" if valid_dns_name(&id.value) => (San::Dns(id.value.clone()), profile.dns),
        "dns" => {
            return Err(Problem::new(
                Kind::RejectedIdentifier,
                format!(
                    "{:?} is not a valid DNS name (lower case, no wildcards)",
                    id.value
                ),
            ));
        }
        "ip" => match id.value.parse() {
            Ok(ip) => (San::Ip(ip), profile.ip),
            Err(_) => {
                return Err(Problem::malformed(format!(
                    "{:?} is not an IP address",
                    id.value
                )));
            }
        },
        other => {
            return Err(Problem::new(
                Kind::UnsupportedIdentifier,
                format!("identifier type {other:?} is not supported (dns, ip)"),
            ));
        }
    };
    if rule == NameRule::No {
        return Err(Problem::new(
            Kind::UnsupportedIdentifier,
            format!("profile {} does not certify {san}", profile.name),
        ));
    }
    let issuer = ca
        .active_issuer(&profile.issuer)
        .await
        .map_err(Problem::from)?;
    if let Some(v) = issuer
        .name_constraints
        .iter()
        .find_map(|nc| nc.violation(&san))
    {
        return Err(Problem::new(Kind::RejectedIdentifier, v));
    }
    if rule == NameRule::OrgNames {
        let Some(org_id) = &account.org_id else {
            return Err(Problem::new(
                Kind::RejectedIdentifier,
                "the account is not bound to an organization, so it may use no names",
            ));
        };
        let (org, allowed) = ca.organization(org_id).await.map_err(Problem::from)?;
        if !allowed.allows(&san) {
            return Err(Problem::new(
                Kind::RejectedIdentifier,
                format!("{} may not use {}", org.name, id.value),
            ));
        }
    }
    Ok(san)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrder {
    identifiers: Vec<Identifier>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
}

/// `newOrder` (§7.4).
pub(super) async fn new_order(
    State(ca): State<Ca>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let account = req.account()?;
    let payload: NewOrder = req.json()?;
    if payload.not_before.is_some() || payload.not_after.is_some() {
        return Err(Problem::malformed(
            "notBefore and notAfter are not supported: validity comes from the profile",
        ));
    }
    let mut identifiers: Vec<Identifier> = payload
        .identifiers
        .into_iter()
        .map(|i| Identifier {
            value: i.value.to_ascii_lowercase(),
            kind: i.kind,
        })
        .collect();
    identifiers.sort_by(|a, b| (&a.kind, &a.value).cmp(&(&b.kind, &b.value)));
    identifiers.dedup();
    if identifiers.is_empty() || identifiers.len() > 100 {
        return Err(Problem::malformed("an order names 1 to 100 identifiers"));
    }
    for id in &identifiers {
        check_identifier(&ca, account, id).await?;
    }
    let now = kizuna_core::time::now_unix();
    let expires_at = now + ca.config.acme.order_lifetime_secs;
    let order = Order {
        id: kizuna_core::secret::new_id(),
        account_id: account.id.clone(),
        status: "pending".into(),
        identifiers: json!(identifiers).to_string(),
        expires_at,
        error: None,
        cert_serial: None,
        created_at: now,
    };
    let mut tx = ca.core.db.begin().await?;
    store::insert_order(tx.conn(), &order).await?;
    for id in &identifiers {
        let authz = Authorization {
            id: kizuna_core::secret::new_id(),
            order_id: order.id.clone(),
            account_id: account.id.clone(),
            id_type: id.kind.clone(),
            id_value: id.value.clone(),
            status: "pending".into(),
            expires_at,
        };
        store::insert_authorization(tx.conn(), &authz).await?;
        // tls-alpn-01 names the identifier in SNI, which IP addresses cannot be.
        let kinds: &[&str] = if id.kind == "dns" {
            &["http-01", "tls-alpn-01"]
        } else {
            &["http-01"]
        };
        for kind in kinds {
            store::insert_challenge(
                tx.conn(),
                &Challenge {
                    id: kizuna_core::secret::new_id(),
                    authz_id: authz.id.clone(),
                    kind: kind.to_string(),
                    token: kizuna_core::secret::random_token(),
                    status: "pending".into(),
                    validated_at: None,
                    error: None,
                },
            )
            .await?;
        }
    }
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::system(format!("acme-account:{}", account.id)),
            "acme.order.create",
            format!("acme-order:{}", order.id),
        )
        .details(json!({"identifiers": identifiers, "org_id": account.org_id}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(reply(
        StatusCode::CREATED,
        order_json(&ca, &order).await?,
        Some(order_url(&ca, &order.id)),
    ))
}

/// The order, which must belong to the signing account.
async fn own_order(ca: &Ca, req: &Signed, id: &str) -> Result<Order, Problem> {
    let account = req.account()?;
    store::order(&ca.core.db, id)
        .await?
        .filter(|o| o.account_id == account.id)
        .ok_or_else(|| Problem::not_found("order"))
}

pub(super) async fn order(
    State(ca): State<Ca>,
    Path(id): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let order = own_order(&ca, &req, &id).await?;
    Ok(reply(StatusCode::OK, order_json(&ca, &order).await?, None))
}

#[derive(Deserialize)]
struct Finalize {
    csr: String,
}

/// The names a CSR asks for: its subjectAltNames, and a common name (which must be one of
/// them).
fn csr_names(csr: &csr::Csr) -> Result<Vec<San>, Problem> {
    let mut names = csr.requested_sans.clone();
    if let Some(cn) = csr::attribute(&csr.subject, csr::CN) {
        let cn = cn.to_ascii_lowercase();
        let san = cn.parse().map(San::Ip).unwrap_or(San::Dns(cn));
        if !names.contains(&san) {
            names.push(san);
        }
    }
    names.sort_by_key(|n| n.to_string());
    names.dedup();
    Ok(names)
}

/// `finalize` (§7.4): the CSR must ask for exactly the order's names.
pub(super) async fn finalize(
    State(ca): State<Ca>,
    Path(id): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let account = req.account()?.clone();
    let order = own_order(&ca, &req, &id).await?;
    if order_status(&order) != "ready" {
        return Err(Problem::new(
            Kind::OrderNotReady,
            format!("the order is {}, not ready", order_status(&order)),
        ));
    }
    let payload: Finalize = req.json()?;
    let der = URL_SAFE_NO_PAD
        .decode(payload.csr.trim_end_matches('='))
        .map_err(|_| Problem::new(Kind::BadCsr, "the csr is not base64url DER"))?;
    let parsed = crate::issue::parse_csr(&ca, &ca.config.acme.profile, &der)
        .map_err(|e| Problem::new(Kind::BadCsr, e.to_string()))?;
    let mut wanted: Vec<San> = order
        .identifiers()
        .iter()
        .filter_map(Identifier::san)
        .collect();
    wanted.sort_by_key(|n| n.to_string());
    if csr_names(&parsed)? != wanted {
        return Err(Problem::new(
            Kind::BadCsr,
            "the CSR must ask for exactly the order's identifiers",
        ));
    }
    let mut conn = ca.core.db.conn().await?;
    if !store::set_order_status(&mut conn, &id, "ready", "processing", None, None).await? {
        return Err(Problem::new(
            Kind::OrderNotReady,
            "the order is being finalized",
        ));
    }
    let issued = crate::issue::issue(
        &ca,
        IssueRequest {
            csr: der,
            profile: ca.config.acme.profile.clone(),
            sans: Some(wanted),
            org_id: account.org_id.clone(),
            actor: Actor::system(format!("acme-account:{}", account.id)),
            internal: false,
            common_name: None,
            ca_id: None,
        },
    )
    .await;
    let issued = match issued {
        Ok(issued) => issued,
        Err(e) => {
            let problem = Problem::from(e);
            let error = problem.to_json().to_string();
            store::set_order_status(&mut conn, &id, "processing", "invalid", Some(&error), None)
                .await?;
            return Err(problem);
        }
    };
    store::set_order_status(
        &mut conn,
        &id,
        "processing",
        "valid",
        None,
        Some(&issued.record.serial),
    )
    .await?;
    drop(conn);
    let order = store::order(&ca.core.db, &id)
        .await?
        .ok_or_else(Problem::internal)?;
    Ok(reply(
        StatusCode::OK,
        order_json(&ca, &order).await?,
        Some(order_url(&ca, &id)),
    ))
}
