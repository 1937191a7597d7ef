//! Consent: what a person agreed to give a client, for which purpose, until when. A consent
//! covers a request when it holds every scope asked for, was given to the client's current
//! purpose (a changed purpose asks again) and has not expired (the client's lifetime, never
//! beyond the city's maximum, `oidc.consent_max_lifetime_days`; the person may end it
//! sooner). Optional claims the person declined are never released. Withdrawal ends the
//! client's grants and tells the client (back-channel logout). Only the person gives,
//! shortens or withdraws a consent: nothing here takes an administrator.

use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::AnyConnection;

use crate::Idp;
use crate::store::consents;
pub use crate::store::consents::{Consent, Linkage, Terms};
use crate::store::{clients, grants};

/// How a consent page records itself in the consents it gives (bumped when the page's
/// wording of what is agreed changes).
pub const CONSENT_PAGE: &str = "consent-page/2";
/// The device flow's confirmation page.
pub const DEVICE_PAGE: &str = "device-page/2";

const DAY: i64 = 86_400;

/// A service the person has allowed.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The client's name (its id once the client is deleted).
    pub client_name: String,
    pub organization: Option<String>,
    pub consent: Consent,
    /// When it ends, whatever its age (a consent from before expiry counts until its last
    /// change plus the city's maximum).
    pub ends_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("{0}")]
    Invalid(String),
    #[error("no consent to that service")]
    NotFound,
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// When a consent ends.
fn ends_at(idp: &Idp, c: &Consent) -> i64 {
    c.expires_at
        .unwrap_or(c.updated_at + idp.config.consent_max_lifetime_days * DAY)
}

/// How long a consent to `client_id` given now lasts: the soonest of the client's lifetime
/// (`terms`), its organization's limit and the city's maximum.
async fn lifetime_secs(
    idp: &Idp,
    conn: &mut AnyConnection,
    client_id: &str,
    terms: Option<&Terms>,
) -> Result<i64, sqlx::Error> {
    let org = match idp.clients.get(&idp.core.db, client_id).await? {
        Some(client) => match &client.org_id {
            Some(org) => consents::org_lifetime(conn, org).await?,
            None => None,
        },
        None => None,
    };
    let days = [terms.and_then(|t| t.lifetime_days), org]
        .into_iter()
        .flatten()
        .fold(idp.config.consent_max_lifetime_days, i64::min);
    Ok(days * DAY)
}

/// Sets (or, with `None`, removes) an organization's limit on how long consents to its
/// services last (1 day to the city's maximum); audited as `org.consent_lifetime`.
pub async fn set_org_lifetime(
    idp: &Idp,
    actor: Actor,
    org_id: &str,
    days: Option<i64>,
) -> Result<Option<i64>, ConsentError> {
    let max = idp.config.consent_max_lifetime_days;
    if days.is_some_and(|d| !(1..=max).contains(&d)) {
        return Err(ConsentError::Invalid(format!(
            "an organization's consent lifetime is 1 to {max} days (the city's maximum, oidc.consent_max_lifetime_days)"
        )));
    }
    let mut tx = idp.core.db.begin().await?;
    consents::set_org_lifetime(tx.conn(), org_id, days, kizuna_core::time::now_unix()).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "org.consent_lifetime", format!("org:{org_id}"))
                .details(json!({"lifetime_days": days})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(days)
}

/// What the person has allowed, newest first.
pub async fn list(idp: &Idp, user_id: &str) -> Result<Vec<Granted>, sqlx::Error> {
    let db = &idp.core.db;
    let granted = consents::for_user(db, user_id).await?;
    let ids: Vec<String> = granted.iter().map(|c| c.client_id.clone()).collect();
    let clients = clients::names(db, &ids).await?;
    let org_ids: Vec<String> = clients
        .values()
        .filter_map(|(_, org)| org.clone())
        .collect();
    let orgs = kizuna_core::orgs::names(db, &org_ids).await?;
    Ok(granted
        .into_iter()
        .map(|c| {
            let client = clients.get(&c.client_id);
            Granted {
                client_name: client.map_or_else(|| c.client_id.clone(), |(name, _)| name.clone()),
                organization: client
                    .and_then(|(_, org)| org.as_ref())
                    .and_then(|org| orgs.get(org).cloned()),
                ends_at: ends_at(idp, &c),
                consent: c,
            }
        })
        .collect())
}

/// Withdraws the person's consent to a client: the consent is forgotten (the next sign-in
/// asks again), the grants the client holds for the person end (refresh tokens, and access
/// tokens at introspection and UserInfo), the client is told by back-channel logout (a
/// logout token naming the person, no session), audited, in one transaction. False when
/// there was no consent to withdraw.
pub async fn withdraw(idp: &Idp, user_id: &str, client_id: &str) -> Result<bool, sqlx::Error> {
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let Some(consent) = consents::delete(tx.conn(), user_id, client_id).await? else {
        return Ok(false);
    };
    let ended =
        grants::revoke_for_user_client(tx.conn(), user_id, client_id, "consent withdrawn", now)
            .await?;
    let told = match crate::clients::get(&idp.core.db, client_id).await? {
        Some(client) => {
            crate::logout::queue_logout_token(idp, tx.conn(), &client, user_id, None, now).await?
        }
        None => false,
    };
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(user_id),
            "consent.withdraw",
            format!("client:{client_id}"),
        )
        .details(json!({"scopes": consent.scopes, "claims": consent.claims,
                        "purpose_version": consent.purpose_version, "grants_ended": ended,
                        "backchannel_logout": told}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    if told {
        let idp = idp.clone();
        tokio::spawn(async move { crate::logout::deliver_due(&idp).await });
    }
    Ok(true)
}

/// Makes the person's consent to a client end at `until` (unix seconds), which must be
/// sooner than it ends now and not in the past; audited. The person may only shorten a
/// consent: a later end is refused (a new consent is given on the consent page).
pub async fn shorten(
    idp: &Idp,
    user_id: &str,
    client_id: &str,
    until: i64,
) -> Result<(), ConsentError> {
    let now = kizuna_core::time::now_unix();
    if until <= now {
        return Err(ConsentError::Invalid(
            "the end must be in the future; to end it now, withdraw it".into(),
        ));
    }
    let mut tx = idp.core.db.begin().await?;
    let consent = consents::get(tx.conn(), user_id, client_id)
        .await?
        .ok_or(ConsentError::NotFound)?;
    let current = ends_at(idp, &consent);
    if until >= current {
        return Err(ConsentError::Invalid(
            "a consent can only be made to end sooner, never later".into(),
        ));
    }
    consents::shorten(tx.conn(), user_id, client_id, until).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(user_id),
            "consent.shorten",
            format!("client:{client_id}"),
        )
        .details(json!({"from": current, "to": until}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
}

/// True when the person's consent to `client_id` covers `scopes` now: every scope given, to
/// the client's current purpose, not expired.
pub async fn covers(
    idp: &Idp,
    user_id: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<bool, sqlx::Error> {
    let mut conn = idp.core.db.conn().await?;
    Ok(current(idp, &mut conn, user_id, client_id)
        .await?
        .is_some_and(|c| scopes.iter().all(|s| c.scopes.contains(s))))
}

/// The person's consent to the client if it is in force (one read).
async fn current(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<Consent>, sqlx::Error> {
    Ok(consents::get_with_purpose_version(conn, user_id, client_id)
        .await?
        .filter(|(consent, version)| is_current(idp, consent, *version))
        .map(|(consent, _)| consent))
}

/// A consent still in force: not expired, given to the client's current purpose.
fn is_current(idp: &Idp, consent: &Consent, version: i64) -> bool {
    ends_at(idp, consent) > kizuna_core::time::now_unix() && consent.purpose_version >= version
}

/// Whether the person's consent to the client is still in force (for a refresh grant of a
/// client that asks for consent): an expired or out-of-date consent ends its grants' use.
pub async fn in_force(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(current(idp, conn, user_id, client_id).await?.is_some())
}

/// The claims the person declined to give the client: never released to it.
pub async fn declined(
    idp: &Idp,
    user_id: &str,
    client_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut conn = idp.core.db.conn().await?;
    Ok(consents::get(&mut conn, user_id, client_id)
        .await?
        .map(|c| c.declined)
        .unwrap_or_default())
}

/// What the consent page shows for a client: its terms, and how long a consent lasts.
pub async fn terms(idp: &Idp, client_id: &str) -> Result<(Option<Terms>, i64), sqlx::Error> {
    let mut conn = idp.core.db.conn().await?;
    let terms = consents::terms(&mut conn, client_id).await?;
    let lifetime = lifetime_secs(idp, &mut conn, client_id, terms.as_ref()).await?;
    Ok((terms, lifetime))
}

/// The client's offers to pass a person's data to other services.
pub async fn linkages(idp: &Idp, client_id: &str) -> Result<Vec<Linkage>, sqlx::Error> {
    let mut conn = idp.core.db.conn().await?;
    consents::linkages(&mut conn, client_id).await
}

/// What a client offers to pass to a target.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLinkage {
    pub target_client_id: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub purpose_ja: Option<String>,
    /// The target's scopes; none removes the offer.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Sets (or, with no scopes, removes) a client's offer to pass data to a target service: the
/// target must be a registered client and the scopes its own. A changed purpose or scope set
/// raises the version, so residents are asked again. Audited as `client.linkage`.
pub async fn set_linkage(
    idp: &Idp,
    actor: Actor,
    client_id: &str,
    new: NewLinkage,
) -> Result<Option<Linkage>, ConsentError> {
    let target = crate::clients::get(&idp.core.db, &new.target_client_id)
        .await?
        .ok_or_else(|| {
            ConsentError::Invalid(format!(
                "no client {:?} to pass data to",
                new.target_client_id
            ))
        })?;
    if target.client_id == client_id {
        return Err(ConsentError::Invalid(
            "a client does not pass data to itself".into(),
        ));
    }
    if let Some(bad) = new.scopes.iter().find(|s| !target.scopes.contains(s)) {
        return Err(ConsentError::Invalid(format!(
            "{bad:?} is not a scope of {} ({})",
            target.name,
            target.scopes.join(" ")
        )));
    }
    let purpose = new.purpose.trim().to_string();
    if !new.scopes.is_empty() && (purpose.is_empty() || purpose.chars().count() > 500) {
        return Err(ConsentError::Invalid(
            "the purpose is 1 to 500 characters".into(),
        ));
    }
    if clients::status(&mut *idp.core.db.conn().await?, client_id)
        .await?
        .is_none()
    {
        return Err(ConsentError::NotFound);
    }
    let mut scopes = new.scopes;
    scopes.sort();
    scopes.dedup();
    let purpose_ja = new
        .purpose_ja
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    let mut tx = idp.core.db.begin().await?;
    let before = consents::linkage_to(tx.conn(), client_id, &target.client_id).await?;
    let same = before
        .as_ref()
        .is_some_and(|b| b.purpose == purpose && b.purpose_ja == purpose_ja && b.scopes == scopes);
    let linkage = Linkage {
        client_id: client_id.to_string(),
        target_client_id: target.client_id.clone(),
        version: match &before {
            Some(b) if same => b.version,
            Some(b) => b.version + 1,
            None => 1,
        },
        purpose,
        purpose_ja,
        scopes,
        updated_at: kizuna_core::time::now_unix(),
    };
    consents::set_linkage(tx.conn(), &linkage).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "client.linkage", format!("client:{client_id}")).details(
                json!({"target": linkage.target_client_id, "scopes": linkage.scopes,
                            "version": linkage.version}),
            ),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok((!linkage.scopes.is_empty()).then_some(linkage))
}

/// The linkage a token exchange asks for, if the person's consent to `client_id` is in force
/// and includes their agreement to its current offer to `target`.
pub async fn agreed_linkage(
    idp: &Idp,
    user_id: &str,
    client_id: &str,
    target: &str,
) -> Result<Option<Linkage>, sqlx::Error> {
    let mut conn = idp.core.db.conn().await?;
    let Some(offer) = consents::linkage_to(&mut conn, client_id, target).await? else {
        return Ok(None);
    };
    let agreed = current(idp, &mut conn, user_id, client_id)
        .await?
        .is_some_and(|c| c.linkages.contains(&offer.agreement()));
    Ok(agreed.then_some(offer))
}

/// Records the person's agreement on a consent page (`given_by`): `scopes` join what they
/// gave the client before, `declined` (optional claims only) replaces what they declined,
/// and the consent runs from now for the client's lifetime under its current purpose.
pub async fn grant(
    idp: &Idp,
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    agreed: &Agreement<'_>,
) -> Result<Consent, sqlx::Error> {
    let Agreement {
        scopes,
        declined,
        linked,
        given_by,
    } = *agreed;
    let now = kizuna_core::time::now_unix();
    let terms = consents::terms(&mut *conn, client_id).await?;
    // Only offers the client makes now, at their current version.
    let linkages = consents::linkages(&mut *conn, client_id)
        .await?
        .into_iter()
        .filter(|l| linked.contains(&l.target_client_id))
        .map(|l| l.agreement())
        .collect();
    let before = consents::get(&mut *conn, user_id, client_id).await?;
    let mut all: Vec<String> = before
        .as_ref()
        .filter(|c| is_current(idp, c, terms.as_ref().map_or(0, |t| t.version)))
        .map(|c| c.scopes.clone())
        .unwrap_or_default();
    all.extend(scopes.iter().cloned());
    all.sort();
    all.dedup();
    let lifetime = lifetime_secs(idp, &mut *conn, client_id, terms.as_ref()).await?;
    let optional = terms
        .as_ref()
        .map(|t| t.optional_claims.clone())
        .unwrap_or_default();
    let mut declined: Vec<String> = declined
        .iter()
        .filter(|c| optional.contains(c))
        .cloned()
        .collect();
    // Whether an address is verified says there is one: it goes with the address.
    if declined.iter().any(|c| c == "email") && !declined.iter().any(|c| c == "email_verified") {
        declined.push("email_verified".into());
    }
    let claims = crate::tokens::claims_of(&all)
        .into_iter()
        .filter(|c| !declined.contains(c))
        .collect();
    let consent = Consent {
        client_id: client_id.to_string(),
        scopes: all,
        claims,
        declined,
        purpose: terms.as_ref().map(|t| t.purpose.clone()),
        purpose_version: terms.as_ref().map_or(0, |t| t.version),
        created_at: before.as_ref().map_or(now, |c| c.created_at),
        updated_at: now,
        expires_at: Some(now + lifetime),
        given_by: given_by.to_string(),
        linkages,
    };
    consents::upsert(conn, user_id, &consent).await?;
    Ok(consent)
}

/// What a person agreed to on a consent page.
#[derive(Debug, Clone, Copy)]
pub struct Agreement<'a> {
    /// The scopes asked for.
    pub scopes: &'a [String],
    /// Optional claims kept back (others are ignored).
    pub declined: &'a [String],
    /// The client's linkage offers allowed (target client ids).
    pub linked: &'a [String],
    /// The page that took it: [`CONSENT_PAGE`] or [`DEVICE_PAGE`].
    pub given_by: &'a str,
}

/// What a client sets for asking consent.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTerms {
    pub purpose: String,
    #[serde(default)]
    pub purpose_ja: Option<String>,
    #[serde(default)]
    pub lifetime_days: Option<i64>,
    #[serde(default)]
    pub optional_claims: Vec<String>,
}

/// Sets a client's terms; a changed purpose (either language) raises the version, so every
/// consent given to the old one is asked again. Audited as `client.consent_terms`.
pub async fn set_terms(
    idp: &Idp,
    actor: Actor,
    client_id: &str,
    new: NewTerms,
) -> Result<Terms, ConsentError> {
    let purpose = new.purpose.trim().to_string();
    if purpose.is_empty() || purpose.chars().count() > 500 {
        return Err(ConsentError::Invalid(
            "the purpose is 1 to 500 characters".into(),
        ));
    }
    let purpose_ja = new
        .purpose_ja
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    if purpose_ja.as_ref().is_some_and(|p| p.chars().count() > 500) {
        return Err(ConsentError::Invalid(
            "the Japanese purpose is at most 500 characters".into(),
        ));
    }
    let max = idp.config.consent_max_lifetime_days;
    if let Some(days) = new.lifetime_days
        && !(1..=max).contains(&days)
    {
        return Err(ConsentError::Invalid(format!(
            "the consent lifetime is 1 to {max} days (the city's maximum, oidc.consent_max_lifetime_days)"
        )));
    }
    let known = crate::tokens::claims_of(&crate::tokens::PERSON_SCOPES.map(String::from));
    if let Some(bad) = new.optional_claims.iter().find(|c| !known.contains(c)) {
        return Err(ConsentError::Invalid(format!(
            "{bad:?} is not a claim Kizuna releases ({})",
            known.join(", ")
        )));
    }
    let mut optional = new.optional_claims;
    optional.sort();
    optional.dedup();
    if clients::status(&mut *idp.core.db.conn().await?, client_id)
        .await?
        .is_none()
    {
        return Err(ConsentError::NotFound);
    }
    let now = kizuna_core::time::now_unix();
    let mut tx = idp.core.db.begin().await?;
    let before = consents::terms(tx.conn(), client_id).await?;
    let unchanged = before
        .as_ref()
        .is_some_and(|b| b.purpose == purpose && b.purpose_ja == purpose_ja);
    let terms = Terms {
        client_id: client_id.to_string(),
        version: match &before {
            Some(b) if unchanged => b.version,
            Some(b) => b.version + 1,
            None => 1,
        },
        purpose,
        purpose_ja,
        lifetime_days: new.lifetime_days,
        optional_claims: optional,
        updated_at: now,
    };
    consents::set_terms(tx.conn(), &terms).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "client.consent_terms", format!("client:{client_id}")).details(
                json!({"version": terms.version, "purpose_changed": !unchanged,
                       "lifetime_days": terms.lifetime_days, "optional_claims": terms.optional_claims}),
            ),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(terms)
}
