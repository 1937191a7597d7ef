//! ACME state in the database, so any replica answers any request: nonces, accounts,
//! external account binding keys, orders, authorizations and challenges.

use serde::{Deserialize, Serialize};

use kizuna_core::db::{AnyConnection, Db};

use crate::names::San;

/// An identifier as ACME writes it (RFC 8555 §9.7.7; `ip` per RFC 8738).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl Identifier {
    /// The name it certifies.
    pub fn san(&self) -> Option<San> {
        match self.kind.as_str() {
            "dns" => Some(San::Dns(self.value.clone())),
            "ip" => self.value.parse().ok().map(San::Ip),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub id: String,
    pub jwk: String,
    pub thumbprint: String,
    pub org_id: Option<String>,
    pub eab_kid: Option<String>,
    pub contact: String,
    pub status: String,
    pub created_at: i64,
}

impl Account {
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::from_str(&self.jwk).unwrap_or_default()
    }

    pub fn contact(&self) -> Vec<String> {
        serde_json::from_str(&self.contact).unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Order {
    pub id: String,
    pub account_id: String,
    pub status: String,
    pub identifiers: String,
    pub expires_at: i64,
    pub error: Option<String>,
    pub cert_serial: Option<String>,
    pub created_at: i64,
}

impl Order {
    pub fn identifiers(&self) -> Vec<Identifier> {
        serde_json::from_str(&self.identifiers).unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Authorization {
    pub id: String,
    pub order_id: String,
    pub account_id: String,
    pub id_type: String,
    pub id_value: String,
    pub status: String,
    pub expires_at: i64,
}

impl Authorization {
    pub fn identifier(&self) -> Identifier {
        Identifier {
            kind: self.id_type.clone(),
            value: self.id_value.clone(),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Challenge {
    pub id: String,
    pub authz_id: String,
    pub kind: String,
    pub token: String,
    pub status: String,
    pub validated_at: Option<i64>,
    pub error: Option<String>,
}

/// How long a nonce may wait to be used.
const NONCE_LIFETIME_SECS: i64 = 3600;

pub async fn new_nonce(db: &Db) -> Result<String, sqlx::Error> {
    let nonce = kizuna_core::secret::random_token();
    sqlx::query("INSERT INTO acme_nonces (nonce, expires_at) VALUES ($1, $2)")
        .bind(&nonce)
        .bind(kizuna_core::time::now_unix() + NONCE_LIFETIME_SECS)
        .execute(db.pool())
        .await?;
    Ok(nonce)
}

/// Uses a nonce up; false when it is unknown, used or expired.
pub async fn consume_nonce(db: &Db, nonce: &str) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM acme_nonces WHERE nonce = $1 AND expires_at > $2")
        .bind(nonce)
        .bind(kizuna_core::time::now_unix())
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Forgets expired nonces.
pub async fn purge_nonces(db: &Db) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM acme_nonces WHERE expires_at <= $1")
            .bind(kizuna_core::time::now_unix())
            .execute(db.pool())
            .await?
            .rows_affected(),
    )
}

const ACCOUNT_COLUMNS: &str = "id, jwk, thumbprint, org_id, eab_kid, contact, status, created_at";

pub async fn account(db: &Db, id: &str) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM acme_accounts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

pub async fn account_by_thumbprint(
    db: &Db,
    thumbprint: &str,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM acme_accounts WHERE thumbprint = $1"
    ))
    .bind(thumbprint)
    .fetch_optional(db.pool())
    .await
}

pub async fn insert_account(conn: &mut AnyConnection, a: &Account) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO acme_accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&a.id)
    .bind(&a.jwk)
    .bind(&a.thumbprint)
    .bind(&a.org_id)
    .bind(&a.eab_kid)
    .bind(&a.contact)
    .bind(&a.status)
    .bind(a.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

const ORDER_COLUMNS: &str =
    "id, account_id, status, identifiers, expires_at, error, cert_serial, created_at";

pub async fn order(db: &Db, id: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM acme_orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

pub async fn orders_of(db: &Db, account_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM acme_orders WHERE account_id = $1 ORDER BY created_at DESC LIMIT 1000",
    )
    .bind(account_id)
    .fetch_all(db.pool())
    .await
}

/// The order that produced a certificate.
pub async fn order_of_certificate(db: &Db, serial: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM acme_orders WHERE cert_serial = $1"
    ))
    .bind(serial)
    .fetch_optional(db.pool())
    .await
}

pub async fn insert_order(conn: &mut AnyConnection, o: &Order) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO acme_orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&o.id)
    .bind(&o.account_id)
    .bind(&o.status)
    .bind(&o.identifiers)
    .bind(o.expires_at)
    .bind(&o.error)
    .bind(&o.cert_serial)
    .bind(o.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves an order from one status to another; false if it was not in `from`.
pub async fn set_order_status(
    conn: &mut AnyConnection,
    id: &str,
    from: &str,
    to: &str,
    error: Option<&str>,
    cert_serial: Option<&str>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE acme_orders SET status = $3, error = COALESCE($4, error), cert_serial = COALESCE($5, cert_serial) \
         WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(error)
    .bind(cert_serial)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

const AUTHZ_COLUMNS: &str = "id, order_id, account_id, id_type, id_value, status, expires_at";

pub async fn authorization(db: &Db, id: &str) -> Result<Option<Authorization>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {AUTHZ_COLUMNS} FROM acme_authorizations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

pub async fn authorizations_of(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Vec<Authorization>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {AUTHZ_COLUMNS} FROM acme_authorizations WHERE order_id = $1 ORDER BY id"
    ))
    .bind(order_id)
    .fetch_all(conn)
    .await
}

pub async fn insert_authorization(
    conn: &mut AnyConnection,
    a: &Authorization,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO acme_authorizations ({AUTHZ_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&a.id)
    .bind(&a.order_id)
    .bind(&a.account_id)
    .bind(&a.id_type)
    .bind(&a.id_value)
    .bind(&a.status)
    .bind(a.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_authorization_status(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE acme_authorizations SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

const CHALLENGE_COLUMNS: &str = "id, authz_id, kind, token, status, validated_at, error";

pub async fn challenge(db: &Db, id: &str) -> Result<Option<Challenge>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM acme_challenges WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

pub async fn challenges_of(db: &Db, authz_id: &str) -> Result<Vec<Challenge>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM acme_challenges WHERE authz_id = $1 ORDER BY kind"
    ))
    .bind(authz_id)
    .fetch_all(db.pool())
    .await
}

pub async fn insert_challenge(conn: &mut AnyConnection, c: &Challenge) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO acme_challenges ({CHALLENGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&c.id)
    .bind(&c.authz_id)
    .bind(&c.kind)
    .bind(&c.token)
    .bind(&c.status)
    .bind(c.validated_at)
    .bind(&c.error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a challenge from one status to another; false if it was not in `from`.
pub async fn set_challenge_status(
    conn: &mut AnyConnection,
    id: &str,
    from: &str,
    to: &str,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let validated_at = (to == "valid").then(kizuna_core::time::now_unix);
    Ok(sqlx::query(
        "UPDATE acme_challenges SET status = $3, error = $4, validated_at = COALESCE($5, validated_at) \
         WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(error)
    .bind(validated_at)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Stores an account's contact and status.
pub async fn update_account(db: &Db, account: &Account) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE acme_accounts SET contact = $2, status = $3 WHERE id = $1")
        .bind(&account.id)
        .bind(&account.contact)
        .bind(&account.status)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Rolls an account over to a new key (its JWK text and thumbprint), if its key is still the
/// one the request was checked against; false when it changed meanwhile.
pub async fn change_account_key(
    db: &Db,
    account: &Account,
    jwk: &str,
    thumbprint: &str,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE acme_accounts SET jwk = $2, thumbprint = $3 WHERE id = $1 AND thumbprint = $4",
    )
    .bind(&account.id)
    .bind(jwk)
    .bind(thumbprint)
    .bind(&account.thumbprint)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(changed == 1)
}
