//! Recognising a device a person signed in from before: a long-lived random cookie whose
//! hash is remembered per account. A sign-in from a device the account has not seen (when
//! it has signed in before) sends a notification.

use axum::http::{HeaderMap, HeaderValue, header};

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;
use kizuna_core::web::{RequestContext, cookie};

use super::notify;
use crate::store::mfa as store;

const MAX_AGE_SECS: i64 = 400 * 86_400;

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-kizuna_device"
    } else {
        "kizuna_device"
    }
}

/// A short description of the browser, from its `User-Agent`.
pub fn describe(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("");
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"]
        .iter()
        .find(|b| ua.contains(*b))
        .map(|b| match *b {
            "Edg/" => "Edge",
            "Firefox/" => "Firefox",
            "Chrome/" if ua.contains("HeadlessChrome") => "Headless Chrome",
            "Chrome/" => "Chrome",
            _ => "Safari",
        });
    let os = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} ({o})"),
        (Some(b), None) => b.to_string(),
        (None, Some(o)) => o.to_string(),
        (None, None) if ua.is_empty() => "unknown".into(),
        (None, None) => ua.chars().take(40).collect(),
    }
}

/// Records that the account signed in from this browser, inside the sign-in's transaction,
/// and queues a notice when the device is new to an account that has signed in before.
/// Returns the cookie to set when the browser had none.
pub async fn remember(
    conn: &mut AnyConnection,
    secure: bool,
    user_id: &str,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, sqlx::Error> {
    let existing = cookie(headers, cookie_name(secure))
        .filter(|v| v.len() == 43)
        .map(str::to_string);
    let (token, new_cookie) = match existing {
        Some(t) => (t, None),
        None => {
            let t = secret::random_token();
            let value = HeaderValue::from_str(&format!(
                "{}={t}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Lax{}",
                cookie_name(secure),
                if secure { "; Secure" } else { "" }
            ))
            .ok();
            (t, value)
        }
    };
    let now = kizuna_core::time::now_unix();
    let hash = secret::token_hash(&token);
    let (known, seen_before) = store::device_seen(&mut *conn, user_id, &hash).await?;
    if known {
        store::touch_device(&mut *conn, user_id, &hash, now).await?;
        return Ok(new_cookie);
    }
    store::insert_device(&mut *conn, user_id, &hash, now).await?;
    if seen_before {
        let place = RequestContext::current()
            .and_then(|c| c.peer_ip)
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into());
        let device = describe(
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        );
        notify::factor_changed(conn, user_id, notify::Change::NewDevice { place, device }).await?;
    }
    Ok(new_cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_summarised() {
        assert_eq!(
            describe(Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
            )),
            "Chrome (Linux)"
        );
        assert_eq!(
            describe(Some(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"
            )),
            "Safari (iPhone)"
        );
        assert_eq!(describe(None), "unknown");
        assert_eq!(describe(Some("curl/8.0")), "curl/8.0");
    }
}
