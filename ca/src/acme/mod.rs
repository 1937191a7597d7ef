//! ACME (RFC 8555) for services, under `/acme/`: directory, nonces, accounts (bound to an
//! organization by external account binding), orders, authorizations with `http-01` and
//! `tls-alpn-01` challenges, finalization, certificate download, revocation and account key
//! rollover. Names are checked against the account's organization's allowed names; every
//! error is a problem document; every response carries a fresh nonce.

pub mod eab;
mod jws;
#[cfg(feature = "fuzzing")]
pub(crate) use jws::parse as parse_jws;
pub mod problem;
pub mod store;
pub mod validate;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::jose::{self, PublicJwk};
use kizuna_core::time::unix_to_rfc3339;

use self::jws::{Signed, Signer};
use self::problem::{Kind, Problem};
use self::store::{Account, Authorization, Challenge, Identifier, Order};
use crate::issue::{IssueRequest, pem};
use crate::names::{San, valid_dns_name};
use crate::profile::NameRule;
use crate::revoke::{Reason, Selector};
use crate::{Ca, csr, hierarchy};

pub fn router(ca: Ca) -> Router {
    Router::new()
        .route("/acme/directory", get(directory))
        .route("/acme/new-nonce", get(nonce_get).head(nonce_head))
        .route("/acme/new-account", post(new_account))
        .route("/acme/account/{id}", post(account))
        .route("/acme/account/{id}/orders", post(orders))
        .route("/acme/new-order", post(new_order))
        .route("/acme/order/{id}", post(order))
        .route("/acme/order/{id}/finalize", post(finalize))
        .route("/acme/authz/{id}", post(authorization))
        .route("/acme/chall/{id}", post(challenge))
        .route("/acme/cert/{serial}", post(certificate))
        .route("/acme/revoke-cert", post(revoke_cert))
        .route("/acme/key-change", post(key_change))
        .layer(from_fn_with_state(ca.clone(), replay_nonce))
        .with_state(ca)
}

/// Every ACME response carries a fresh nonce, the directory link, and no caching (§6.5, §7.1).
/// A nonce is a stored row, so an address's requests are budgeted
/// (`acme.requests_per_address_per_minute`): past it, `rateLimited` with `Retry-After`
/// (§6.6) and nothing stored.
async fn replay_nonce(State(ca): State<Ca>, req: Request, next: Next) -> Response {
    let address = kizuna_core::web::RequestContext::current().and_then(|c| c.peer_ip);
    if !ca.acme_budget.admit(address) {
        tracing::warn!(client = ?address, "ACME request budget spent: rateLimited");
        let mut response = Problem::new(
            Kind::RateLimited,
            "too many requests from this address; retry later",
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&ca.acme_budget.retry_after_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    match store::new_nonce(&ca.core.db).await {
        Ok(nonce) => {
            if let Ok(value) = HeaderValue::from_str(&nonce) {
                headers.insert("replay-nonce", value);
            }
        }
        Err(e) => tracing::error!(error = %e, "creating an ACME nonce"),
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(link) =
        HeaderValue::from_str(&format!("<{}>;rel=\"index\"", ca.url("/acme/directory")))
    {
        headers.append(header::LINK, link);
    }
    response
}

fn reply(status: StatusCode, body: Value, location: Option<String>) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn account_url(ca: &Ca, id: &str) -> String {
    ca.url(&format!("/acme/account/{id}"))
}

fn order_url(ca: &Ca, id: &str) -> String {
    ca.url(&format!("/acme/order/{id}"))
}

async fn directory(State(ca): State<Ca>) -> Response {
    reply(
        StatusCode::OK,
        json!({
            "newNonce": ca.url("/acme/new-nonce"),
            "newAccount": ca.url("/acme/new-account"),
            "newOrder": ca.url("/acme/new-order"),
            "revokeCert": ca.url("/acme/revoke-cert"),
            "keyChange": ca.url("/acme/key-change"),
            "meta": {
                "website": ca.url("/"),
                "externalAccountRequired": ca.config.acme.require_eab,
            },
        }),
        None,
    )
}

async fn nonce_get() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn nonce_head() -> StatusCode {
    StatusCode::OK
}

/// A request signed by an account (`kid`), verified against its own URL.
struct ByAccount(Signed);

impl FromRequest<Ca> for ByAccount {
    type Rejection = Problem;

    async fn from_request(req: Request, ca: &Ca) -> Result<Self, Problem> {
        let path = req.uri().path().to_string();
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, jws::MAX_BODY)
            .await
            .map_err(|_| Problem::malformed("the request body is too large"))?;
        Ok(ByAccount(
            signed(ca, &parts.headers, &body, &path, Signer::Account).await?,
        ))
    }
}

/// Verifies a request for `path` under the public URL.
async fn signed(
    ca: &Ca,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
    signer: Signer,
) -> Result<Signed, Problem> {
    jws::verify(ca, headers, body, &ca.url(path), signer).await
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
async fn new_account(
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
async fn account(
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
async fn orders(
    State(ca): State<Ca>,
    Path(id): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    own_account(&req, &id)?;
    let ids = store::orders_of(&ca.core.db, &id).await?;
    let urls: Vec<String> = ids.iter().map(|o| order_url(&ca, o)).collect();
    Ok(reply(StatusCode::OK, json!({ "orders": urls }), None))
}

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

fn authz_status(a: &Authorization) -> &str {
    if a.status == "pending" && a.expires_at <= kizuna_core::time::now_unix() {
        "expired"
    } else {
        &a.status
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
async fn new_order(State(ca): State<Ca>, ByAccount(req): ByAccount) -> Result<Response, Problem> {
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

async fn order(
    State(ca): State<Ca>,
    Path(id): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let order = own_order(&ca, &req, &id).await?;
    Ok(reply(StatusCode::OK, order_json(&ca, &order).await?, None))
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
async fn authorization(
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
async fn challenge(
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
async fn finalize(
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

/// Certificate download (§7.4.2): the certificate and its issuing CAs, PEM.
async fn certificate(
    State(ca): State<Ca>,
    Path(serial): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let account = req.account()?;
    store::order_of_certificate(&ca.core.db, &serial)
        .await?
        .filter(|o| o.account_id == account.id)
        .ok_or_else(|| Problem::not_found("certificate"))?;
    let record = crate::store::get(&ca.core.db, &serial)
        .await?
        .ok_or_else(|| Problem::not_found("certificate"))?;
    let mut chain = hierarchy::chain(&ca, &record.ca_id).await?;
    // The root is the relying party's trust anchor, not part of what the server sends.
    if chain.len() > 1 {
        chain.pop();
    }
    let mut text = pem("CERTIFICATE", &record.der);
    for der in &chain {
        text.push_str(&pem("CERTIFICATE", der));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        text,
    )
        .into_response())
}

#[derive(Deserialize)]
struct RevokeCert {
    certificate: String,
    #[serde(default)]
    reason: Option<u8>,
}

/// `revokeCert` (§7.6): by the account that ordered it (or its organization's), or by the
/// certificate's own key.
async fn revoke_cert(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let req = signed(&ca, &headers, &body, "/acme/revoke-cert", Signer::Either).await?;
    let payload: RevokeCert = req.json()?;
    let der = URL_SAFE_NO_PAD
        .decode(payload.certificate.trim_end_matches('='))
        .map_err(|_| Problem::malformed("the certificate is not base64url DER"))?;
    let cert = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(&der)
        .map_err(|_| Problem::malformed("the certificate is not a DER X.509 certificate"))?;
    let serial = crate::enroll::serial_hex(&cert);
    let record = crate::store::get(&ca.core.db, &serial)
        .await?
        .filter(|r| kizuna_core::secret::constant_time_eq(&r.der, &der))
        .ok_or_else(|| Problem::not_found("certificate issued by this CA"))?;
    let reason = match payload.reason {
        None => Reason::Unspecified,
        Some(code) => Reason::ALL
            .into_iter()
            .find(|r| r.code() == code && *r != Reason::CertificateHold)
            .ok_or_else(|| {
                Problem::new(
                    Kind::BadRevocationReason,
                    format!("reason code {code} is not allowed (0-5, 9, 10)"),
                )
            })?,
    };
    let actor = match &req.account {
        Some(account) => {
            let ordered = store::order_of_certificate(&ca.core.db, &serial)
                .await?
                .is_some_and(|o| o.account_id == account.id);
            let same_org = account.org_id.is_some() && account.org_id == record.org_id;
            if !ordered && !same_org {
                return Err(Problem::unauthorized(
                    "this account may not revoke that certificate",
                ));
            }
            Actor::system(format!("acme-account:{}", account.id))
        }
        None => {
            let spki = PublicJwk::parse(&req.jwk)
                .map_err(|e| Problem::malformed(format!("the JWS key: {e}")))?
                .public_key()
                .spki_der();
            let fingerprint = kizuna_core::secret::hex(&kizuna_core::secret::sha256(&spki));
            if fingerprint != record.key_sha256 {
                return Err(Problem::unauthorized(
                    "the request is not signed by the certificate's key",
                ));
            }
            Actor::system(format!("cert-key:{serial}"))
        }
    };
    if record.status == "revoked" {
        return Err(Problem::new(
            Kind::AlreadyRevoked,
            "the certificate is already revoked",
        ));
    }
    crate::revoke::revoke(&ca, &Selector::Serial(serial), reason, actor)
        .await
        .map_err(Problem::from)?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyChange {
    account: String,
    old_key: Value,
}

/// `keyChange` (§7.3.5): the inner JWS, signed by the new key, names the account and its old
/// key; the outer one is signed by the account as it is.
async fn key_change(State(ca): State<Ca>, ByAccount(req): ByAccount) -> Result<Response, Problem> {
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

/// Forgets expired nonces (run from the CA's background work).
pub async fn purge(ca: &Ca) {
    if let Err(e) = store::purge_nonces(&ca.core.db).await {
        tracing::warn!(error = %e, "purging ACME nonces");
    }
}
