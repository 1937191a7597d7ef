//! Second factors and the steps around them: authenticator app seeds, passkeys, WebAuthn
//! ceremonies, recovery codes, pending second-factor steps and known devices
//! (`totp_credentials`, `webauthn_credentials`, `webauthn_ceremonies`, `recovery_codes`,
//! `mfa_pending`, `known_devices`).

use kizuna_core::db::{AnyConnection, Db};

use super::{list_from_json, list_to_json};

mod rows;
pub use rows::PasskeyInfo;
pub(crate) use rows::{NewPasskey, PendingStep, StoredPasskey};

// ---------------------------------------------------------------------------------------------
// Authenticator app (TOTP)

/// The account's sealed seed, whether it is confirmed, and the last step used.
pub(crate) async fn totp(
    db: &Db,
    user_id: &str,
) -> Result<Option<(Vec<u8>, bool, i64)>, sqlx::Error> {
    let row: Option<(Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT secret, confirmed, last_step FROM totp_credentials WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(secret, confirmed, last_step)| (secret, confirmed == 1, last_step)))
}

/// Stores an unconfirmed sealed seed at `now`, unless the account already has one.
pub(crate) async fn insert_totp(
    db: &Db,
    user_id: &str,
    sealed: &[u8],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO totp_credentials (user_id, secret, confirmed, last_step, created_at) VALUES ($1, $2, 0, 0, $3) \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(sealed)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// True when the account has a confirmed seed.
pub(crate) async fn has_confirmed_totp(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1 AND confirmed = 1",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok(count > 0)
}

/// Spends time step `step` at `now`, when no later or equal step was used; false when one
/// was (a replay, or a concurrent use of the same code).
pub(crate) async fn use_totp_step(
    db: &Db,
    user_id: &str,
    step: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE totp_credentials SET last_step = $1, last_used_at = $2 WHERE user_id = $3 AND last_step < $1",
    )
    .bind(step)
    .bind(now)
    .bind(user_id)
    .execute(db.pool())
    .await?
    .rows_affected()
        > 0)
}

/// Confirms the account's seed.
pub(crate) async fn confirm_totp(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE totp_credentials SET confirmed = 1 WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the account's seed (confirmed or not); returns how many were deleted.
pub(crate) async fn delete_totp(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
            .bind(user_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Every account's sealed seed (account id, sealed seed), for re-sealing under a new KEK.
pub(crate) async fn sealed_totp_seeds(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT user_id, secret FROM totp_credentials ORDER BY user_id")
        .fetch_all(conn)
        .await
}

/// Replaces the account's sealed seed with the same seed sealed under another KEK, if it is
/// still `was`; false when it changed or was deleted meanwhile.
pub(crate) async fn reseal_totp_seed(
    conn: &mut AnyConnection,
    user_id: &str,
    was: &[u8],
    sealed: &[u8],
) -> Result<bool, sqlx::Error> {
    let updated =
        sqlx::query("UPDATE totp_credentials SET secret = $1 WHERE user_id = $2 AND secret = $3")
            .bind(sealed)
            .bind(user_id)
            .bind(was)
            .execute(conn)
            .await?;
    Ok(updated.rows_affected() == 1)
}

// ---------------------------------------------------------------------------------------------
// Passkeys (WebAuthn credentials)

/// The account's passkeys, oldest first.
pub(crate) async fn passkeys(db: &Db, user_id: &str) -> Result<Vec<PasskeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, hardware_bound, attested, possibly_cloned, created_at, last_used_at \
         FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
}

/// Stores a passkey of the account; fails with a unique violation when the credential is
/// already registered.
pub(crate) async fn insert_passkey(
    conn: &mut AnyConnection,
    user_id: &str,
    new: &NewPasskey<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webauthn_credentials (id, user_id, credential_id, name, passkey, hardware_bound, attested, aaguid, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&new.info.id)
    .bind(user_id)
    .bind(new.credential_id)
    .bind(&new.info.name)
    .bind(new.passkey)
    .bind(new.info.hardware_bound)
    .bind(new.info.attested)
    .bind(new.aaguid)
    .bind(new.info.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The passkey with this credential id (base64url).
pub(crate) async fn passkey_by_credential(
    conn: &mut AnyConnection,
    credential_id: &str,
) -> Result<Option<StoredPasskey>, sqlx::Error> {
    let row: Option<(String, String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT id, user_id, name, passkey, hardware_bound, possibly_cloned FROM webauthn_credentials WHERE credential_id = $1",
    )
    .bind(credential_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(
        |(id, user_id, name, passkey, hardware, cloned)| StoredPasskey {
            id,
            user_id,
            name,
            passkey,
            hardware_bound: hardware != 0,
            possibly_cloned: cloned != 0,
        },
    ))
}

/// The account's usable credentials (not blocked; only hardware-bound ones with
/// `hardware_only`), as webauthn-rs JSON.
pub(crate) async fn usable_passkeys(
    db: &Db,
    user_id: &str,
    hardware_only: bool,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT passkey FROM webauthn_credentials WHERE user_id = $1 AND possibly_cloned = 0 AND (hardware_bound = 1 OR $2 = 0)",
    )
    .bind(user_id)
    .bind(hardware_only as i64)
    .fetch_all(db.pool())
    .await
}

/// What an account has enrolled, counted in one statement: unblocked passkeys
/// (hardware-bound, others), whether a TOTP seed is confirmed, and unused recovery codes.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub(crate) struct FactorCounts {
    pub hardware_passkeys: i64,
    pub other_passkeys: i64,
    pub confirmed_totp: i64,
    pub recovery_codes: i64,
}

pub(crate) async fn factor_counts(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<FactorCounts, sqlx::Error> {
    sqlx::query_as(
        "SELECT \
         (SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = $1 AND possibly_cloned = 0 \
          AND hardware_bound <> 0) AS hardware_passkeys, \
         (SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = $1 AND possibly_cloned = 0 \
          AND hardware_bound = 0) AS other_passkeys, \
         (SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1 AND confirmed = 1) AS confirmed_totp, \
         (SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL) AS recovery_codes",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await
}

/// Stores a passkey's updated credential (its counter) after a use at `now`.
pub(crate) async fn record_passkey_use(
    db: &Db,
    id: &str,
    passkey: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webauthn_credentials SET passkey = $1, last_used_at = $2 WHERE id = $3")
        .bind(passkey)
        .bind(now)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Blocks a passkey as possibly cloned.
pub(crate) async fn block_passkey(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webauthn_credentials SET possibly_cloned = 1 WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes one of the account's passkeys; returns its name, `None` when there was none.
pub(crate) async fn delete_passkey(
    conn: &mut AnyConnection,
    user_id: &str,
    id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2 RETURNING name",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// Deletes every passkey of the account; returns how many.
pub(crate) async fn delete_passkeys(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM webauthn_credentials WHERE user_id = $1")
            .bind(user_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

// ---------------------------------------------------------------------------------------------
// WebAuthn ceremonies

/// Stores a ceremony's state (JSON) under the hash of its id, for `purpose` and the account
/// (none for a passwordless one), from `now` to `expires_at`.
pub(crate) async fn insert_ceremony(
    db: &Db,
    id_hash: &str,
    purpose: &str,
    user_id: Option<&str>,
    state: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webauthn_ceremonies (id, purpose, user_id, state, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash)
    .bind(purpose)
    .bind(user_id)
    .bind(state)
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Takes (deletes) a ceremony of `purpose`: its state, account and expiry.
pub(crate) async fn take_ceremony(
    db: &Db,
    id_hash: &str,
    purpose: &str,
) -> Result<Option<(String, Option<String>, i64)>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM webauthn_ceremonies WHERE id = $1 AND purpose = $2 RETURNING state, user_id, expires_at",
    )
    .bind(id_hash)
    .bind(purpose)
    .fetch_optional(db.pool())
    .await
}

// ---------------------------------------------------------------------------------------------
// Recovery codes

/// Replaces the account's codes with new ones (`code_id`, hash) made at `now`.
pub(crate) async fn replace_recovery_codes(
    conn: &mut AnyConnection,
    user_id: &str,
    codes: &[(String, String)],
    now: i64,
) -> Result<(), sqlx::Error> {
    delete_recovery_codes(&mut *conn, user_id).await?;
    for (code_id, hash) in codes {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_id, code_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user_id)
        .bind(code_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The hash of the account's code named `code_id`, and when it was used.
pub(crate) async fn recovery_code(
    db: &Db,
    user_id: &str,
    code_id: &str,
) -> Result<Option<(String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT code_hash, used_at FROM recovery_codes WHERE user_id = $1 AND code_id = $2",
    )
    .bind(user_id)
    .bind(code_id)
    .fetch_optional(db.pool())
    .await
}

/// Spends the account's code named `code_id` at `now`; false when it was already used.
pub(crate) async fn use_recovery_code(
    conn: &mut AnyConnection,
    user_id: &str,
    code_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_id = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(code_id)
    .execute(conn)
    .await?
    .rows_affected()
        > 0)
}

/// How many of the account's codes are unused.
pub(crate) async fn unused_recovery_codes(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .fetch_one(conn)
        .await
}

/// Deletes every code of the account; returns how many.
pub(crate) async fn delete_recovery_codes(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

// ---------------------------------------------------------------------------------------------
// Pending second-factor steps

/// Stores a pending step under the hash of its cookie value, from `now` to `expires_at`.
pub(crate) async fn insert_pending(
    db: &Db,
    id_hash: &str,
    step: &PendingStep,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mfa_pending (id_hash, user_id, sid, amr, req, next, target_aal, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id_hash)
    .bind(&step.user_id)
    .bind(&step.sid)
    .bind(list_to_json(&step.amr))
    .bind(&step.req)
    .bind(&step.next)
    .bind(step.target_aal)
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

type PendingRow = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    i64,
);

/// The unexpired pending step stored under this hash.
pub(crate) async fn live_pending(
    db: &Db,
    id_hash: &str,
    now: i64,
) -> Result<Option<PendingStep>, sqlx::Error> {
    let row: Option<PendingRow> = sqlx::query_as(
        "SELECT user_id, sid, amr, req, next, target_aal FROM mfa_pending WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(
        row.map(|(user_id, sid, amr, req, next, target_aal)| PendingStep {
            user_id,
            sid,
            amr: list_from_json(&amr),
            req,
            next,
            target_aal,
        }),
    )
}

/// Deletes the pending step stored under this hash; false when there was none.
pub(crate) async fn delete_pending(
    conn: &mut AnyConnection,
    id_hash: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM mfa_pending WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// Deletes every pending step of the account.
pub(crate) async fn delete_pending_of(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM mfa_pending WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Known devices

/// Whether the account signed in from the device with this hash before, and from any device
/// before (one statement).
pub(crate) async fn device_seen(
    conn: &mut AnyConnection,
    user_id: &str,
    device_hash: &str,
) -> Result<(bool, bool), sqlx::Error> {
    let (this, any): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN device_hash = $2 THEN 1 ELSE 0 END), 0), COUNT(*) \
         FROM known_devices WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(device_hash)
    .fetch_one(conn)
    .await?;
    Ok((this > 0, any > 0))
}

/// Records that the account was seen on a known device at `now`.
pub(crate) async fn touch_device(
    conn: &mut AnyConnection,
    user_id: &str,
    device_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE known_devices SET last_seen = $1 WHERE user_id = $2 AND device_hash = $3")
        .bind(now)
        .bind(user_id)
        .bind(device_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Remembers a new device of the account, first seen at `now`.
pub(crate) async fn insert_device(
    conn: &mut AnyConnection,
    user_id: &str,
    device_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO known_devices (user_id, device_hash, first_seen, last_seen) VALUES ($1, $2, $3, $3)")
        .bind(user_id)
        .bind(device_hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes ceremonies and pending steps past their expiry.
pub(crate) async fn purge(db: &Db, now: i64) {
    super::delete_expired(
        db,
        &[
            ("DELETE FROM webauthn_ceremonies WHERE expires_at < $1", now),
            ("DELETE FROM mfa_pending WHERE expires_at < $1", now),
        ],
    )
    .await;
}
