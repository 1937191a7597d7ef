//! What each person agreed to give each client (`consents`), and each client's terms for
//! asking (`consent_terms`).

use kizuna_core::db::{AnyConnection, Db};

use super::{list_from_json, list_to_json};

/// What a person agreed to give a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The claims those scopes release that the person agreed to.
    pub claims: Vec<String>,
    /// Optional claims the person declined: never released to this client.
    pub declined: Vec<String>,
    /// The purpose as the page showed it, and its version (0: the client had no terms).
    pub purpose: Option<String>,
    pub purpose_version: i64,
    /// When the consent was first given and last changed.
    pub created_at: i64,
    pub updated_at: i64,
    /// When it ends (`None`: given before consents expired).
    pub expires_at: Option<i64>,
    /// How it was given: `consent-page` or `device-page`, with the page's version.
    pub given_by: String,
    /// The linkages the person agreed to, as `<target client id>#<offer version>`.
    pub linkages: Vec<String>,
}

const COLUMNS: &str = "client_id, scopes, claims, declined, purpose, purpose_version, created_at, \
    updated_at, expires_at, given_by, linkages";

type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
    String,
    String,
);

fn consent(row: Row) -> Consent {
    let (
        client_id,
        scopes,
        claims,
        declined,
        purpose,
        purpose_version,
        created_at,
        updated_at,
        expires_at,
        given_by,
        linkages,
    ) = row;
    Consent {
        client_id,
        scopes: list_from_json(&scopes),
        claims: list_from_json(&claims),
        declined: list_from_json(&declined),
        purpose,
        purpose_version,
        created_at,
        updated_at,
        expires_at,
        given_by,
        linkages: list_from_json(&linkages),
    }
}

/// The person's consents, most recently changed first.
pub async fn for_user(db: &Db, user_id: &str) -> Result<Vec<Consent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM consents WHERE user_id = $1 ORDER BY updated_at DESC"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(consent).collect())
}

/// The person's consent to the client, if they ever gave one.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<Consent>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM consents WHERE user_id = $1 AND client_id = $2"
    ))
    .bind(user_id)
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(consent))
}

/// The person's consent to the client with the version of the client's purpose now (0
/// when it has no terms), in one read.
pub(crate) async fn get_with_purpose_version(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<(Consent, i64)>, sqlx::Error> {
    let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
    let row: Option<sqlx::any::AnyRow> = sqlx::query(&format!(
        "SELECT {}, COALESCE(t.version, 0) AS terms_version FROM consents c \
         LEFT JOIN consent_terms t ON t.client_id = c.client_id \
         WHERE c.user_id = $1 AND c.client_id = $2",
        columns.join(", ")
    ))
    .bind(user_id)
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    use sqlx::{FromRow, Row as _};
    let version: i64 = row.try_get("terms_version")?;
    Ok(Some((consent(Row::from_row(&row)?), version)))
}

/// Stores what the person agreed to give the client (replacing what was there; the first
/// time it was given is kept).
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    user_id: &str,
    c: &Consent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO consents (user_id, client_id, scopes, claims, declined, purpose, purpose_version, \
         created_at, updated_at, expires_at, given_by, linkages) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = $3, claims = $4, declined = $5, \
         purpose = $6, purpose_version = $7, updated_at = $8, expires_at = $9, given_by = $10, \
         linkages = $11",
    )
    .bind(user_id)
    .bind(&c.client_id)
    .bind(list_to_json(&c.scopes))
    .bind(list_to_json(&c.claims))
    .bind(list_to_json(&c.declined))
    .bind(&c.purpose)
    .bind(c.purpose_version)
    .bind(c.updated_at)
    .bind(c.expires_at)
    .bind(&c.given_by)
    .bind(list_to_json(&c.linkages))
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the consent's end to `expires_at` if that is sooner; true when it changed.
pub(crate) async fn shorten(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE consents SET expires_at = $3 WHERE user_id = $1 AND client_id = $2 \
         AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(expires_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Forgets the person's consent to the client; returns it, `None` when there was none.
pub(crate) async fn delete(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<Consent>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "DELETE FROM consents WHERE user_id = $1 AND client_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(consent))
}

/// Forgets every consent given to a client, and its terms.
pub(crate) async fn delete_for_client(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM consents WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM consent_terms WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM consent_linkages WHERE client_id = $1 OR target_client_id = $1")
        .bind(client_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A client's terms for asking consent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Terms {
    pub client_id: String,
    /// What the client uses the data for, as the consent page shows it.
    pub purpose: String,
    pub purpose_ja: Option<String>,
    /// Raised whenever the purpose changes: consents to an older version are asked again.
    pub version: i64,
    /// How long a consent lasts (`None`: the city's maximum).
    pub lifetime_days: Option<i64>,
    /// Claims a person may decline while allowing the rest.
    pub optional_claims: Vec<String>,
    pub updated_at: i64,
}

type TermsRow = (
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    String,
    i64,
);

/// The client's terms, if it has any.
pub(crate) async fn terms(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Option<Terms>, sqlx::Error> {
    let row: Option<TermsRow> =
        sqlx::query_as(
            "SELECT client_id, purpose, purpose_ja, version, lifetime_days, optional_claims, updated_at \
             FROM consent_terms WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(
        |(client_id, purpose, purpose_ja, version, lifetime_days, optional, updated_at)| Terms {
            client_id,
            purpose,
            purpose_ja,
            version,
            lifetime_days,
            optional_claims: list_from_json(&optional),
            updated_at,
        },
    ))
}

/// Stores the client's terms.
pub(crate) async fn set_terms(conn: &mut AnyConnection, t: &Terms) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO consent_terms (client_id, purpose, purpose_ja, version, lifetime_days, optional_claims, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (client_id) DO UPDATE SET purpose = $2, \
         purpose_ja = $3, version = $4, lifetime_days = $5, optional_claims = $6, updated_at = $7",
    )
    .bind(&t.client_id)
    .bind(&t.purpose)
    .bind(&t.purpose_ja)
    .bind(t.version)
    .bind(t.lifetime_days)
    .bind(list_to_json(&t.optional_claims))
    .bind(t.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A client's offer to pass a person's data to another service (RFC 8693 token exchange).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Linkage {
    pub client_id: String,
    /// The service the client may get a token for (the audience of exchanged tokens).
    pub target_client_id: String,
    pub purpose: String,
    pub purpose_ja: Option<String>,
    /// The target's scopes the client may ask for.
    pub scopes: Vec<String>,
    /// Raised whenever the purpose or scopes change: agreements to older ones lapse.
    pub version: i64,
    pub updated_at: i64,
}

impl Linkage {
    /// How a person's agreement to this offer is kept in [`Consent::linkages`].
    pub fn agreement(&self) -> String {
        format!("{}#{}", self.target_client_id, self.version)
    }
}

type LinkageRow = (String, String, String, Option<String>, String, i64, i64);

fn linkage(row: LinkageRow) -> Linkage {
    let (client_id, target_client_id, purpose, purpose_ja, scopes, version, updated_at) = row;
    Linkage {
        client_id,
        target_client_id,
        purpose,
        purpose_ja,
        scopes: list_from_json(&scopes),
        version,
        updated_at,
    }
}

const LINKAGE_COLUMNS: &str =
    "client_id, target_client_id, purpose, purpose_ja, scopes, version, updated_at";

/// The client's linkage offers.
pub(crate) async fn linkages(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Vec<Linkage>, sqlx::Error> {
    let rows: Vec<LinkageRow> = sqlx::query_as(&format!(
        "SELECT {LINKAGE_COLUMNS} FROM consent_linkages WHERE client_id = $1 ORDER BY target_client_id"
    ))
    .bind(client_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(linkage).collect())
}

/// One offer of the client to a target.
pub(crate) async fn linkage_to(
    conn: &mut AnyConnection,
    client_id: &str,
    target_client_id: &str,
) -> Result<Option<Linkage>, sqlx::Error> {
    let row: Option<LinkageRow> = sqlx::query_as(&format!(
        "SELECT {LINKAGE_COLUMNS} FROM consent_linkages WHERE client_id = $1 AND target_client_id = $2"
    ))
    .bind(client_id)
    .bind(target_client_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(linkage))
}

/// Stores (or, with no scopes, removes) an offer.
pub(crate) async fn set_linkage(conn: &mut AnyConnection, l: &Linkage) -> Result<(), sqlx::Error> {
    if l.scopes.is_empty() {
        sqlx::query("DELETE FROM consent_linkages WHERE client_id = $1 AND target_client_id = $2")
            .bind(&l.client_id)
            .bind(&l.target_client_id)
            .execute(conn)
            .await?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO consent_linkages (client_id, target_client_id, purpose, purpose_ja, scopes, version, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (client_id, target_client_id) DO UPDATE SET \
         purpose = $3, purpose_ja = $4, scopes = $5, version = $6, updated_at = $7",
    )
    .bind(&l.client_id)
    .bind(&l.target_client_id)
    .bind(&l.purpose)
    .bind(&l.purpose_ja)
    .bind(list_to_json(&l.scopes))
    .bind(l.version)
    .bind(l.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// An organization's limit on its services' consent lifetime, in days.
pub(crate) async fn org_lifetime(
    conn: &mut AnyConnection,
    org_id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT lifetime_days FROM org_consent_lifetimes WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(conn)
        .await
}

/// Sets (or, with `None`, removes) an organization's limit.
pub(crate) async fn set_org_lifetime(
    conn: &mut AnyConnection,
    org_id: &str,
    days: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    match days {
        Some(days) => sqlx::query(
            "INSERT INTO org_consent_lifetimes (org_id, lifetime_days, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id) DO UPDATE SET lifetime_days = $2, updated_at = $3",
        )
        .bind(org_id)
        .bind(days)
        .bind(now),
        None => sqlx::query("DELETE FROM org_consent_lifetimes WHERE org_id = $1").bind(org_id),
    }
    .execute(conn)
    .await?;
    Ok(())
}
