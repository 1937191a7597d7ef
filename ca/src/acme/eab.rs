//! External account binding (RFC 8555 §7.3.4): an administrator gives an organization a key
//! id and an HMAC key; the ACME client signs its account key with them when it registers,
//! which ties the account to that organization — whose allowed names then decide what the
//! account may order. A binding key is used once and expires. Its HMAC key is stored sealed
//! under the key-encryption key, bound to its key id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::custody::{CustodyError, Rotation};
use kizuna_core::db::AnyConnection;

use super::jws;
use super::problem::{Kind, Problem};
use crate::{Ca, CaError};

/// A binding key as shown once to the administrator.
#[derive(Debug, Clone, Serialize)]
pub struct EabKey {
    pub kid: String,
    /// Base64url, as certbot's `--eab-hmac-key` takes it.
    pub hmac_key: String,
    pub org_id: String,
    pub expires_at: i64,
}

/// A stored binding key (without the key).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EabRecord {
    pub kid: String,
    pub org_id: String,
    pub account_id: Option<String>,
    pub expires_at: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// Length of an HMAC key as stored before keys were sealed: such a row opens as it is until it
/// expires.
const PLAIN_KEY_LEN: usize = 32;

/// What a binding key's HMAC key is sealed to: its key id, so a sealed key copied to another
/// row does not open.
fn context(kid: &str) -> String {
    format!("acme-eab:{kid}")
}

/// Creates a binding key for an organization; audited.
pub async fn create(ca: &Ca, actor: Actor, org_id: &str) -> Result<EabKey, CaError> {
    let (org, _) = ca.organization(org_id).await?;
    let key = kizuna_core::secret::random_bytes::<32>();
    let now = kizuna_core::time::now_unix();
    let eab = EabKey {
        kid: format!(
            "eab_{}",
            kizuna_core::secret::hex(&kizuna_core::secret::random_bytes::<12>())
        ),
        hmac_key: URL_SAFE_NO_PAD.encode(key),
        org_id: org.id.clone(),
        expires_at: now + ca.config.acme.eab_ttl_secs,
    };
    let sealed = ca.core.custody.seal(&context(&eab.kid), &key)?;
    let mut tx = ca.core.db.begin().await?;
    sqlx::query(
        "INSERT INTO acme_eab_keys (kid, org_id, hmac_key, expires_at, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&eab.kid)
    .bind(&eab.org_id)
    .bind(sealed)
    .bind(eab.expires_at)
    .bind(format!("{}:{}", actor.kind.as_str(), actor.id))
    .bind(now)
    .execute(tx.conn())
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "acme.eab.create", format!("org:{}", org.id))
                .details(json!({"kid": eab.kid, "expires_at": eab.expires_at})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(eab)
}

pub async fn list(ca: &Ca, org_id: Option<&str>) -> Result<Vec<EabRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, org_id, account_id, expires_at, created_by, created_at FROM acme_eab_keys \
         WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at DESC LIMIT 1000",
    )
    .bind(org_id)
    .fetch_all(ca.core.db.pool())
    .await
}

/// Checks a newAccount request's `externalAccountBinding` (a flattened JWS over the
/// account key, MACed with the binding key); returns the key id and organization.
pub async fn verify(
    ca: &Ca,
    binding: &serde_json::Value,
    account_jwk: &serde_json::Value,
    url: &str,
) -> Result<(String, String), Problem> {
    let bad = |detail: &str| Problem::unauthorized(format!("external account binding: {detail}"));
    let inner = jws::parse(binding.to_string().as_bytes())?;
    let kid = inner.header.kid.clone().ok_or_else(|| bad("no kid"))?;
    if inner.header.url.as_deref() != Some(url) {
        return Err(bad("its url is not the newAccount URL"));
    }
    if inner.header.nonce.is_some() {
        return Err(Problem::malformed(
            "external account binding: it must not carry a nonce",
        ));
    }
    let bound_key: serde_json::Value =
        serde_json::from_slice(&inner.payload).map_err(|_| bad("its payload is not a JWK"))?;
    if bound_key != *account_jwk {
        return Err(bad("it binds another key than the account's"));
    }
    let row: Option<(String, Vec<u8>, Option<String>, i64)> = sqlx::query_as(
        "SELECT org_id, hmac_key, account_id, expires_at FROM acme_eab_keys WHERE kid = $1",
    )
    .bind(&kid)
    .fetch_optional(ca.core.db.pool())
    .await?;
    let (org_id, stored, account, expires_at) = row.ok_or_else(|| bad("unknown key id"))?;
    let key = if stored.len() == PLAIN_KEY_LEN {
        stored
    } else {
        ca.core.custody.open(&context(&kid), &stored).map_err(|e| {
            tracing::error!(error = %e, kid, "an ACME binding key does not open");
            Problem::internal()
        })?
    };
    inner.verify_hmac(&key).map_err(|e| match e {
        kizuna_core::jose::JoseError::AlgorithmNotAllowed(alg) => Problem::new(
            Kind::BadSignatureAlgorithm,
            format!("external account binding: use HS256, not {alg}"),
        ),
        _ => bad("the MAC does not verify"),
    })?;
    if account.is_some() {
        return Err(bad("this key is already bound to an account"));
    }
    if expires_at <= kizuna_core::time::now_unix() {
        return Err(bad("this key has expired"));
    }
    Ok((kid, org_id))
}

/// Marks a binding key used by an account, inside the account's transaction; false when
/// another registration used it first.
pub async fn bind_in(
    conn: &mut AnyConnection,
    kid: &str,
    account_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE acme_eab_keys SET account_id = $2 WHERE kid = $1 AND account_id IS NULL",
    )
    .bind(kid)
    .bind(account_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Re-seals the binding keys' HMAC keys under a new key-encryption key (`kizuna kek rotate`),
/// in the caller's transaction. Keys stored before sealing (plain, 32 bytes) stay as they are
/// until they expire.
pub async fn reseal(conn: &mut AnyConnection, rotation: &mut Rotation) -> Result<(), CustodyError> {
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT kid, hmac_key FROM acme_eab_keys")
        .fetch_all(&mut *conn)
        .await?;
    for (kid, sealed) in rows.into_iter().filter(|(_, k)| k.len() != PLAIN_KEY_LEN) {
        let what = format!("the HMAC key of ACME binding key {kid}");
        if let Some(next) =
            rotation.reseal_data("acme_eab_hmac_key", &context(&kid), &sealed, &what)?
        {
            let updated = sqlx::query(
                "UPDATE acme_eab_keys SET hmac_key = $1 WHERE kid = $2 AND hmac_key = $3",
            )
            .bind(&next.sealed)
            .bind(&kid)
            .bind(&sealed)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                == 1;
            next.stored(updated);
        }
    }
    Ok(())
}
