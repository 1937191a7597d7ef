//! Authorizations and challenges (RFC 8555 §7.5): reading and deactivating an
//! authorization, and answering a challenge by validating it in the background.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::time::unix_to_rfc3339;

use super::jws::Signed;
use super::problem::Problem;
use super::store::{self, Account, Authorization, Challenge};
use super::{ByAccount, reply, validate};
use crate::Ca;

fn authz_status(a: &Authorization) -> &str {
    if a.status == "pending" && a.expires_at <= kizuna_core::time::now_unix() {
        "expired"
    } else {
        &a.status
    }
}

fn challenge_json(ca: &Ca, c: &Challenge) -> Value {
    let mut body = json!({
        "type": c.kind,
        "url": ca.url(&format!("/acme/chall/{}", c.id)),
        "status": c.status,
        "token": c.token,
    });
    if let Some(at) = c.validated_at {
        body["validated"] = json!(unix_to_rfc3339(at));
    }
    if let Some(error) = c
        .error
        .as_deref()
        .and_then(|e| serde_json::from_str::<Value>(e).ok())
    {
        body["error"] = error;
    }
    body
}

async fn own_authorization(ca: &Ca, req: &Signed, id: &str) -> Result<Authorization, Problem> {
    let account = req.account()?;
    store::authorization(&ca.core.db, id)
        .await?
        .filter(|a| a.account_id == account.id)
        .ok_or_else(|| Problem::not_found("authorization"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthorizationUpdate {
    status: Option<String>,
}

/// An authorization (§7.5; deactivation §7.5.2).
pub(super) async fn authorization(
    State(ca): State<Ca>,
    Path(id): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let mut authz = own_authorization(&ca, &req, &id).await?;
    if !req.is_post_as_get() {
        let update: AuthorizationUpdate = req.json()?;
        if update.status.as_deref() != Some("deactivated") {
            return Err(Problem::malformed(
                "an authorization can only be deactivated",
            ));
        }
        let mut tx = ca.core.db.begin().await?;
        store::set_authorization_status(tx.conn(), &id, "deactivated").await?;
        store::set_order_status(tx.conn(), &authz.order_id, "pending", "invalid", None, None)
            .await?;
        store::set_order_status(tx.conn(), &authz.order_id, "ready", "invalid", None, None).await?;
        tx.commit().await?;
        authz.status = "deactivated".into();
    }
    let challenges = store::challenges_of(&ca.core.db, &id).await?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "identifier": authz.identifier(),
            "status": authz_status(&authz),
            "expires": unix_to_rfc3339(authz.expires_at),
            "challenges": challenges.iter().map(|c| challenge_json(&ca, c)).collect::<Vec<_>>(),
        }),
        None,
    ))
}

/// A challenge (§7.5.1): a POST with `{}` asks Kizuna to validate it.
pub(super) async fn challenge(
    State(ca): State<Ca>,
    Path(id): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let account = req.account()?.clone();
    let mut chall = store::challenge(&ca.core.db, &id)
        .await?
        .ok_or_else(|| Problem::not_found("challenge"))?;
    let authz = own_authorization(&ca, &req, &chall.authz_id).await?;
    if !req.is_post_as_get() && chall.status == "pending" {
        if authz_status(&authz) != "pending" {
            return Err(Problem::malformed(format!(
                "the authorization is {}",
                authz_status(&authz)
            )));
        }
        let mut conn = ca.core.db.conn().await?;
        if store::set_challenge_status(&mut conn, &id, "pending", "processing", None).await? {
            chall.status = "processing".into();
            tokio::spawn(run_validation(
                ca.clone(),
                chall.clone(),
                authz.clone(),
                account,
            ));
        }
    }
    let mut response = reply(StatusCode::OK, challenge_json(&ca, &chall), None);
    if let Ok(up) = HeaderValue::from_str(&format!(
        "<{}>;rel=\"up\"",
        ca.url(&format!("/acme/authz/{}", authz.id))
    )) {
        response.headers_mut().append(header::LINK, up);
    }
    Ok(response)
}

/// Validates a challenge and records the outcome on it, its authorization and its order.
async fn run_validation(ca: Ca, chall: Challenge, authz: Authorization, account: Account) {
    let outcome = validate::validate(
        &ca.config.acme,
        &chall.kind,
        &authz.identifier(),
        &chall.token,
        &account.thumbprint,
    )
    .await;
    let recorded = async {
        let mut tx = ca.core.db.begin().await?;
        match &outcome {
            Ok(()) => {
                store::set_challenge_status(tx.conn(), &chall.id, "processing", "valid", None)
                    .await?;
                store::set_authorization_status(tx.conn(), &authz.id, "valid").await?;
                let all = store::authorizations_of(tx.conn(), &authz.order_id).await?;
                if all.iter().all(|a| a.status == "valid") {
                    store::set_order_status(
                        tx.conn(),
                        &authz.order_id,
                        "pending",
                        "ready",
                        None,
                        None,
                    )
                    .await?;
                }
            }
            Err(problem) => {
                let error = problem.to_json().to_string();
                store::set_challenge_status(
                    tx.conn(),
                    &chall.id,
                    "processing",
                    "invalid",
                    Some(&error),
                )
                .await?;
                store::set_authorization_status(tx.conn(), &authz.id, "invalid").await?;
                store::set_order_status(
                    tx.conn(),
                    &authz.order_id,
                    "pending",
                    "invalid",
                    Some(&error),
                    None,
                )
                .await?;
            }
        }
        let entries = audit::append_in(
            tx.conn(),
            &[AuditEvent::new(
                Actor::system(format!("acme-account:{}", account.id)),
                "acme.challenge.validate",
                format!("acme-authz:{}", authz.id),
            )
            .outcome(if outcome.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            })
            .details(json!({
                "type": chall.kind, "identifier": authz.identifier(),
                "error": outcome.as_ref().err().map(|p| p.detail.clone()),
            }))],
        )
        .await?;
        tx.commit().await?;
        audit::publish(&entries);
        Ok::<_, kizuna_core::audit::AuditError>(())
    }
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, challenge = %chall.id, "recording an ACME validation");
    }
}
