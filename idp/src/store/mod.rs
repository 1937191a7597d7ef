//! The identity provider's storage: one module per aggregate, and only that module holds SQL
//! naming its tables. Functions take a connection (a transaction, or a pooled connection) or
//! the [`Db`], and typed values; every query is one text that SQLite and PostgreSQL both run.
//! Tables of `core` (`organizations`, `audit_log`, `settings`) are read through `core`.
//!
//! | module | tables |
//! |---|---|
//! | [`assurance`] | identity_proofing, identity_bindings, proofing_attempts, proofing_result_ids, client_assurance |
//! | [`clients`] | clients, client_quotas, client_assertion_jtis |
//! | [`codes`] | authorization_codes, auth_requests, device_codes |
//! | [`consents`] | consents |
//! | [`federation`] | upstreams, upstream_authorizations, federated_identities, federated_sessions, federation_link_requests, federation_logouts |
//! | [`grants`] | grants, refresh_tokens, revoked_tokens |
//! | [`keys`] | signing_keys |
//! | [`logout`] | logout_deliveries |
//! | [`mail`] | mail_outbox |
//! | [`mfa`] | totp_credentials, webauthn_credentials, webauthn_ceremonies, recovery_codes, mfa_pending, known_devices |
//! | [`releases`] | releases |
//! | [`sessions`] | sessions, session_clients |
//! | [`throttle`] | throttle |
//! | [`users`] | users, role_assignments |

pub mod assurance;
pub mod clients;
pub mod codes;
pub mod consents;
pub mod federation;
pub mod grants;
pub mod keys;
pub mod logout;
pub mod mail;
pub mod mfa;
pub mod releases;
pub mod sessions;
pub mod throttle;
pub mod users;

use kizuna_core::db::Db;

/// A day in seconds: how long some expired rows are kept before they are purged.
const DAY: i64 = 86_400;

/// Runs each `DELETE` of expired rows with its cutoff as `$1`; a failure is logged and the
/// next statement still runs, so one table's trouble never stops the others' clean-up.
async fn delete_expired(db: &Db, statements: &[(&str, i64)]) {
    for (sql, cutoff) in statements {
        if let Err(e) = sqlx::query(sql).bind(cutoff).execute(db.pool()).await {
            tracing::warn!(error = %e, "sweeping expired rows");
        }
    }
}

/// `$first, $first+1, …` for `count` values of an `IN (…)` list.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many values one `IN (…)` list carries at most.
const IN_LIST_MAX: usize = 500;

/// Text of a stored JSON list of strings; an unreadable one reads as empty.
fn list_from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A list of strings as stored JSON text.
fn list_to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// A space-separated scope as its list (empty entries dropped).
fn split_scope(scope: &str) -> Vec<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
