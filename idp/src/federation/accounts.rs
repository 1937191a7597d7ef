//! Account resolution for a validated upstream identity (the first-broker-login flow): a
//! linked account signs in; otherwise, when the upstream allows it and no account uses the
//! address, an account is provisioned just in time; otherwise the person is asked to sign in
//! to their existing account to link it. An address alone never links accounts, verified or
//! not. Links are listed and removed from `/account` (never the last way to sign in).

use axum::http::{HeaderMap, HeaderValue};
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::{AnyConnection, Db, is_unique_violation};
use kizuna_core::secret;
use kizuna_core::web::cookie;

use super::FederationError;
use super::client::{Continuation, UpstreamIdentity};
use crate::Idp;
use crate::login::{self, SignedIn};
use crate::store::{
    federation as store, mfa as store_mfa, sessions as store_sessions, users as store_users,
};
use crate::users::{self, NewUser};

pub use crate::store::federation::Link;

/// The `amr` value of a federated sign-in (RFC 8176 §2).
pub const AMR_FED: &str = "fed";
const LINK_TTL_SECS: i64 = 600;

/// What a validated upstream identity led to.
pub enum Resolution {
    /// A session for the linked (or just provisioned) account.
    SignedIn(SignedIn),
    /// No account may be used yet: the person must sign in to an existing one to link it.
    /// The cookie names the waiting identity.
    NeedsLink(HeaderValue),
}

fn link_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-kizuna_fed_link"
    } else {
        "kizuna_fed_link"
    }
}

/// What the audit log keeps of a federated sign-in.
fn summary(identity: &UpstreamIdentity) -> serde_json::Value {
    json!({
        "upstream": identity.upstream_alias,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "mapped": {
            "email": identity.mapped.email,
            "email_verified": identity.mapped.email_verified,
            "name": identity.mapped.name.is_some(),
            "name_kana": identity.mapped.name_kana.is_some(),
            "birthdate": identity.mapped.birthdate.is_some(),
            "address": identity.mapped.address.is_some(),
            "groups": identity.mapped.groups,
            "dropped": identity.mapped.dropped,
        },
        "upstream_acr": identity.upstream_acr,
        "upstream_amr": identity.upstream_amr,
        "ial": identity.ial,
        "aal": identity.aal,
        "capped": identity.capped,
    })
}

/// Resolves the identity to an account and signs it in, or asks for linking. One
/// transaction: the provisioned account, its link, the session and the audit entries.
pub async fn sign_in(
    idp: &Idp,
    identity: &UpstreamIdentity,
    continuation: &Continuation,
    headers: &HeaderMap,
) -> Result<Resolution, FederationError> {
    let mut tx = idp.core.db.begin().await?;
    let linked =
        match store::linked_account(tx.conn(), &identity.upstream_id, &identity.subject).await? {
            Some(user_id) => users::find(tx.conn(), &user_id)
                .await?
                .map(|user| (user.id, user.status)),
            None => None,
        };
    let mut events = Vec::new();
    let user_id = match linked {
        Some((_, status)) if status != "active" => return Err(FederationError::AccountInactive),
        Some((user_id, _)) => user_id,
        None => {
            let upstream = super::upstreams::find(idp, &identity.upstream_id)
                .await?
                .ok_or(FederationError::BadState)?;
            let taken = match &identity.mapped.email {
                Some(email) => store_users::id_by_email(tx.conn(), email).await?,
                None => None,
            };
            if taken.is_some() || !upstream.jit {
                drop(tx);
                let reason = if taken.is_some() {
                    "an account uses this email address"
                } else {
                    "the upstream does not provision accounts"
                };
                return ask_to_link(idp, identity, continuation, reason).await;
            }
            let user_id = provision(tx.conn(), identity).await?;
            events.push(
                AuditEvent::new(
                    Actor::system("federation"),
                    "federation.provision",
                    format!("user:{user_id}"),
                )
                .details(summary(identity)),
            );
            user_id
        }
    };
    store::record_identity_login(
        tx.conn(),
        &identity.upstream_id,
        &identity.subject,
        &identity.mapped,
        kizuna_core::time::now_unix(),
    )
    .await?;
    let mut signed_in = open(idp, tx.conn(), &user_id, identity, headers).await?;
    events.push(
        AuditEvent::new(
            Actor::user(&user_id),
            "federation.login",
            format!("user:{user_id}"),
        )
        .details(summary(identity)),
    );
    let entries = audit::append_in(tx.conn(), &events).await?;
    signed_in.entries.extend(entries);
    tx.commit().await?;
    audit::publish(&signed_in.entries);
    Ok(Resolution::SignedIn(signed_in))
}

/// Opens the federated session inside the caller's transaction: `amr` is `fed`, the level
/// is the ceiling-mapped one, and the upstream's `sub`/`sid` are kept for its logout.
async fn open(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
    identity: &UpstreamIdentity,
    headers: &HeaderMap,
) -> Result<SignedIn, FederationError> {
    let signed_in = login::open_session(
        idp,
        conn,
        user_id,
        &[AMR_FED.to_string()],
        Some(identity.aal()),
        &format!("{AMR_FED}:{}", identity.upstream_alias),
        headers,
    )
    .await?;
    store::insert_session(
        conn,
        &store::FederatedSession {
            sid: &signed_in.session.sid,
            upstream_id: &identity.upstream_id,
            subject: &identity.subject,
            upstream_sid: identity.upstream_sid.as_deref(),
            id_token: &identity.id_token,
            ial: identity.ial as i64,
            aal: identity.aal as i64,
            created_at: kizuna_core::time::now_unix(),
        },
    )
    .await?;
    Ok(signed_in)
}

/// A new account for the identity and its link. The username is derived from the
/// upstream and subject (stable, never guessed from claims); the address is kept only when
/// the upstream verified it.
async fn provision(
    conn: &mut AnyConnection,
    identity: &UpstreamIdentity,
) -> Result<String, FederationError> {
    let digest = secret::hex(&secret::sha256(
        format!("{}\n{}", identity.upstream_id, identity.subject).as_bytes(),
    ));
    let email = identity
        .mapped
        .email
        .clone()
        .filter(|_| identity.mapped.email_verified);
    let verified = email.is_some();
    let user = users::insert(
        conn,
        NewUser {
            username: format!("{}.{}", identity.upstream_alias, &digest[..12]),
            email,
            name: identity.mapped.name.clone(),
            password_hash: None,
            org_id: None,
        },
    )
    .await
    .map_err(|e| match e {
        users::UserError::Storage(e) => FederationError::Storage(e),
        other => FederationError::Link(if matches!(other, users::UserError::UsernameTaken(_)) {
            "an account for this upstream identity already exists"
        } else {
            "the upstream's claims do not make a valid account"
        }),
    })?;
    if verified {
        store_users::set_email_verified(&mut *conn, &user.id).await?;
    }
    insert_link(conn, &user.id, identity).await?;
    Ok(user.id)
}

async fn insert_link(
    conn: &mut AnyConnection,
    user_id: &str,
    identity: &UpstreamIdentity,
) -> Result<(), FederationError> {
    store::insert_identity(
        conn,
        &identity.upstream_id,
        &identity.subject,
        user_id,
        &identity.mapped,
        kizuna_core::time::now_unix(),
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            FederationError::Link(
                "this account is already linked to an account at this upstream, or that upstream account to another",
            )
        } else {
            FederationError::Storage(e)
        }
    })?;
    Ok(())
}

async fn ask_to_link(
    idp: &Idp,
    identity: &UpstreamIdentity,
    continuation: &Continuation,
    reason: &str,
) -> Result<Resolution, FederationError> {
    let token = secret::random_token();
    let now = kizuna_core::time::now_unix();
    let mut kept = identity.clone();
    kept.id_token.clear();
    let mut tx = idp.core.db.begin().await?;
    store::insert_link_request(
        tx.conn(),
        &store::NewLinkRequest {
            id_hash: &secret::token_hash(&token),
            upstream_id: &identity.upstream_id,
            subject: &identity.subject,
            identity: &kept,
            continuation,
        },
        now,
        now + LINK_TTL_SECS,
    )
    .await?;
    let mut details = summary(identity);
    details["reason"] = json!(reason);
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::anonymous(),
            "federation.link_required",
            format!("upstream:{}", identity.upstream_id),
        )
        .details(details)],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    let secure = idp.core.secure_cookies;
    Ok(Resolution::NeedsLink(
        HeaderValue::from_str(&format!(
            "{}={token}; Path=/; Max-Age={LINK_TTL_SECS}; HttpOnly; SameSite=Lax{}",
            link_cookie_name(secure),
            if secure { "; Secure" } else { "" }
        ))
        .expect("cookie value is URL-safe base64"),
    ))
}

fn link_token_hash(idp: &Idp, headers: &HeaderMap) -> Option<String> {
    cookie(headers, link_cookie_name(idp.core.secure_cookies))
        .filter(|v| v.len() == 43)
        .map(secret::token_hash)
}

/// An upstream identity waiting on this browser to be linked.
pub struct PendingLink {
    pub identity: UpstreamIdentity,
    pub continuation: Continuation,
    /// When the upstream sign-in finished: linking needs a sign-in to the account after it.
    pub created_at: i64,
}

/// The identity waiting on this browser to be linked, if any.
pub async fn pending_link(
    idp: &Idp,
    headers: &HeaderMap,
) -> Result<Option<PendingLink>, FederationError> {
    let Some(hash) = link_token_hash(idp, headers) else {
        return Ok(None);
    };
    let found =
        store::live_link_request(&idp.core.db, &hash, kizuna_core::time::now_unix()).await?;
    Ok(
        found.map(|(identity, continuation, created_at)| PendingLink {
            identity,
            continuation,
            created_at,
        }),
    )
}

/// Links the waiting identity to the signed-in account `user_id` (who just proved it by
/// signing in); audited. Returns the identity and where to continue.
pub async fn complete_link(
    idp: &Idp,
    headers: &HeaderMap,
    user_id: &str,
) -> Result<(UpstreamIdentity, Continuation), FederationError> {
    let PendingLink {
        identity,
        continuation,
        ..
    } = pending_link(idp, headers)
        .await?
        .ok_or(FederationError::BadState)?;
    let hash = link_token_hash(idp, headers).ok_or(FederationError::BadState)?;
    let mut tx = idp.core.db.begin().await?;
    if !store::delete_link_request(tx.conn(), &hash).await? {
        return Err(FederationError::BadState);
    }
    insert_link(tx.conn(), user_id, &identity).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(user_id),
            "federation.link",
            format!("user:{user_id}"),
        )
        .details(summary(&identity))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok((identity, continuation))
}

/// Forgets the identity waiting on this browser; returns where it was going.
pub async fn cancel_link(
    idp: &Idp,
    headers: &HeaderMap,
) -> Result<Option<Continuation>, FederationError> {
    let found = pending_link(idp, headers).await?;
    if let Some(hash) = link_token_hash(idp, headers) {
        let mut conn = idp.core.db.conn().await?;
        store::delete_link_request(&mut conn, &hash).await?;
    }
    Ok(found.map(|p| p.continuation))
}

/// The `Set-Cookie` that forgets the waiting identity.
pub fn clear_link_cookie(idp: &Idp) -> HeaderValue {
    let secure = idp.core.secure_cookies;
    HeaderValue::from_str(&format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        link_cookie_name(secure),
        if secure { "; Secure" } else { "" }
    ))
    .expect("static cookie")
}

/// The account's links, by upstream name.
pub async fn links(idp: &Idp, user_id: &str) -> Result<Vec<Link>, sqlx::Error> {
    store::links(&idp.core.db, user_id).await
}

/// Removes the account's link to the upstream `alias`; refused when it is the account's
/// only way to sign in (no password, no passkey, no other link). Audited.
pub async fn unlink(idp: &Idp, user_id: &str, alias: &str) -> Result<(), FederationError> {
    let mut tx = idp.core.db.begin().await?;
    let password = users::find(tx.conn(), user_id)
        .await?
        .is_some_and(|u| u.password_hash.is_some());
    let counts = store_mfa::factor_counts(tx.conn(), user_id).await?;
    let passkeys = counts.hardware_passkeys + counts.other_passkeys;
    let other_links = store::links_except(tx.conn(), user_id, alias).await?;
    if !password && passkeys == 0 && other_links == 0 {
        return Err(FederationError::Link(
            "this is the only way to sign in to the account; add a passkey or another link first",
        ));
    }
    let Some((upstream_id, subject)) = store::delete_identity(tx.conn(), user_id, alias).await?
    else {
        return Err(FederationError::UnknownUpstream(alias.to_string()));
    };
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(user_id),
            "federation.unlink",
            format!("user:{user_id}"),
        )
        .details(json!({"upstream": alias, "upstream_id": upstream_id, "subject": subject}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
}

/// The issuer of the upstream whose sign-in started the session `sid`, if one did: the
/// `idp` claim of Kizuna's ID tokens.
pub async fn session_upstream(idp: &Idp, sid: &str) -> Result<Option<String>, sqlx::Error> {
    store::session_issuer(&idp.core.db, sid).await
}

/// Forgets the federated sessions recorded more than a day before `now` whose session is
/// gone (purged after it expired).
pub(crate) async fn forget_ended_sessions(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    let recorded = store::sessions_before(db, now - 86_400).await?;
    if recorded.is_empty() {
        return Ok(());
    }
    let stored = store_sessions::stored_among(db, &recorded).await?;
    let gone: Vec<String> = recorded
        .into_iter()
        .filter(|sid| !stored.contains(sid))
        .collect();
    store::delete_sessions(db, &gone).await
}
