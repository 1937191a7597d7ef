//! What a database error means for the caller: worth retrying at start-up, "unavailable"
//! (answer 503 and come back), a full disk, a UNIQUE conflict; and URLs made safe to log.

pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03: the server is starting up; 53300: too many connections.
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// A database URL with any password replaced, safe to print and log.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            let tail = redact_query_password(tail);
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", redact_query_password(tail)),
    }
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// Whether an error means the database cannot serve now (down, restarting, the pool out of
/// connections, its disk full) rather than that the request was wrong: the caller answers
/// 503 with `Retry-After`, and the pool reconnects by itself when the database is back.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    if is_disk_full(e) {
        return true;
    }
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01-57P03 (shutting down, crash,
        // cannot connect now), 53300 (too many connections).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P0") || code == "53300"
        }),
        _ => false,
    }
}

/// Whether a write failed because the database's disk is full: SQLite's `SQLITE_FULL` (13),
/// PostgreSQL's `disk_full` (53100). Nothing of the failed transaction is kept, and writes
/// succeed again once space is freed.
pub fn is_disk_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "13" || c == "53100"))
}

/// The log line for an error that [`is_unavailable`] accepts: what an operator must know.
pub fn unavailable_reason(e: &sqlx::Error) -> &'static str {
    if is_disk_full(e) {
        "the database's disk is full: writes are refused (503) until space is freed"
    } else {
        "database unavailable: answering 503 until it is back"
    }
}

/// How long a client should wait before retrying while the database is unavailable.
pub const RETRY_AFTER_SECS: u32 = 5;

/// True when a query failed on a UNIQUE constraint.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_only() {
        assert_eq!(
            redact_url("postgres://kizuna:s3cret@db.example:5432/kizuna"),
            "postgres://kizuna:***@db.example:5432/kizuna"
        );
        assert_eq!(
            redact_url("postgres://kizuna@db/kizuna?sslmode=require&password=x"),
            "postgres://kizuna@db/kizuna?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("sqlite://./kizuna-data/kizuna.db?mode=rwc"),
            "sqlite://./kizuna-data/kizuna.db?mode=rwc"
        );
    }
}
