//! Release history (issue #18): each time a person's data leaves for a service — an ID token
//! with claims about them, a UserInfo answer, an introspection answer naming them — is
//! recorded together with the release (no record, no release), kept for
//! `oidc.release_retention_days`, and shown to the person, filtered, paged and exported.

use serde::Serialize;
use serde_json::{Value, json};
use time::macros::format_description;

use kizuna_core::db::AnyConnection;

use crate::Idp;
use crate::store::clients;
use crate::store::releases::{self as store, NewRelease};

pub use crate::store::releases::Filter;

/// Releases per page of the history.
pub const PAGE_SIZE: i64 = 50;

/// How the data left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// In an ID token (OpenID Connect Core §2) from the token endpoint.
    IdToken,
    /// In a UserInfo answer (OpenID Connect Core §5.3).
    Userinfo,
    /// In an introspection answer to a resource server (RFC 7662).
    Introspection,
    /// In a token from a token exchange (RFC 8693). Kizuna does not offer token exchange
    /// yet; the value is part of the history's format so that offering it changes no reader.
    TokenExchange,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::IdToken => "id_token",
            How::Userinfo => "userinfo",
            How::Introspection => "introspection",
            How::TokenExchange => "token_exchange",
        }
    }

    pub fn parse(text: &str) -> Option<How> {
        [
            How::IdToken,
            How::Userinfo,
            How::Introspection,
            How::TokenExchange,
        ]
        .into_iter()
        .find(|h| h.as_str() == text)
    }
}

/// A release about to happen: who, to which service, which claims, under which scopes.
#[derive(Debug, Clone)]
pub struct Released<'a> {
    pub user_id: &'a str,
    /// The service that receives the data (for introspection: the resource server asking).
    pub client_id: &'a str,
    /// The claims about the person besides `sub`, which every release carries.
    pub claims: &'a [String],
    /// The scopes of the token the release was made under.
    pub scope: &'a str,
    pub how: How,
    /// The purpose the resident consented to, when one was shown (a linkage's, for an
    /// exchange).
    pub purpose: Option<&'a str>,
}

impl Released<'_> {
    /// The claim names as recorded: `sub` first.
    fn claim_names(&self) -> Vec<String> {
        std::iter::once("sub".to_string())
            .chain(self.claims.iter().filter(|c| *c != "sub").cloned())
            .collect()
    }
}

/// Records the release in the caller's transaction, with the audit entry written in it: if
/// the record cannot be written the transaction, and so the release, fails.
pub async fn record(
    conn: &mut AnyConnection,
    released: &Released<'_>,
    audit_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    store::insert(
        conn,
        &NewRelease {
            user_id: released.user_id,
            client_id: released.client_id,
            claims: &released.claim_names(),
            scope: released.scope,
            purpose: released.purpose,
            how: released.how.as_str(),
            at: kizuna_core::time::now_unix(),
            audit_id,
            token_ref: None,
        },
    )
    .await
}

/// Records an introspection answer that named the person, once per resource server and
/// token (`token_ref`: the access token's `jti`, or the refresh token's hash): asking again
/// about the same token tells the resource server nothing new. The caller answers only once
/// this returns `Ok`.
pub async fn record_introspection(
    idp: &Idp,
    released: &Released<'_>,
    token_ref: &str,
) -> Result<(), sqlx::Error> {
    store::insert_once(
        &idp.core.db,
        &NewRelease {
            user_id: released.user_id,
            client_id: released.client_id,
            claims: &released.claim_names(),
            scope: released.scope,
            purpose: released.purpose,
            how: released.how.as_str(),
            at: kizuna_core::time::now_unix(),
            audit_id: None,
            token_ref: Some(token_ref),
        },
    )
    .await
    .map(|_| ())
}

/// One release in a person's history, as the page and the exports show it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub at: String,
    /// The service's name (its client id once the service is deleted).
    pub service: String,
    pub client_id: String,
    /// A [`How`] as stored (`id_token`, `userinfo`, …).
    pub how: String,
    pub claims: Vec<String>,
    pub scopes: Vec<String>,
    pub purpose: Option<String>,
}

/// One page of a person's history.
#[derive(Debug, Clone)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// 1-based, clamped to the pages there are.
    pub page: i64,
    pub pages: i64,
    pub total: i64,
}

/// The person's releases matching `filter`, newest first, page `page` (1-based) of
/// [`PAGE_SIZE`].
pub async fn history(
    idp: &Idp,
    user_id: &str,
    filter: &Filter,
    page: i64,
) -> Result<Page, sqlx::Error> {
    let db = &idp.core.db;
    let total = store::count(db, user_id, filter).await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let rows = store::list(db, user_id, filter, (page - 1) * PAGE_SIZE, PAGE_SIZE).await?;
    Ok(Page {
        entries: named(idp, rows).await?,
        page,
        pages,
        total,
    })
}

/// Every release of the person matching `filter`, newest first, for an export.
pub async fn export(idp: &Idp, user_id: &str, filter: &Filter) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = store::list(&idp.core.db, user_id, filter, 0, i64::MAX).await?;
    named(idp, rows).await
}

/// The services the person's data went to (id and name), by name: the history's filter.
pub async fn services(idp: &Idp, user_id: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    let ids = store::clients(&idp.core.db, user_id).await?;
    let names = clients::names(&idp.core.db, &ids).await?;
    let mut services: Vec<(String, String)> = ids
        .into_iter()
        .map(|id| {
            let name = names
                .get(&id)
                .map_or_else(|| id.clone(), |(n, _)| n.clone());
            (id, name)
        })
        .collect();
    services.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(services)
}

async fn named(idp: &Idp, rows: Vec<store::Release>) -> Result<Vec<Entry>, sqlx::Error> {
    let mut ids: Vec<String> = rows.iter().map(|r| r.client_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let names = clients::names(&idp.core.db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| Entry {
            at: kizuna_core::time::unix_to_rfc3339(r.at),
            service: names
                .get(&r.client_id)
                .map_or_else(|| r.client_id.clone(), |(name, _)| name.clone()),
            how: r.how,
            client_id: r.client_id,
            claims: r.claims,
            scopes: r.scopes,
            purpose: r.purpose,
        })
        .collect())
}

/// A calendar day (`2026-11-23`) as the unix time of its first second, UTC.
pub fn day_start(text: &str) -> Option<i64> {
    time::Date::parse(text, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

/// The filter for a service and the days `from` through `to` (both included, UTC).
pub fn filter(client_id: Option<String>, from: Option<i64>, to: Option<i64>) -> Filter {
    Filter {
        client_id,
        since: from,
        until: to.map(|day| day + 86_400),
    }
}

/// The history as CSV (RFC 4180): a header row, then one row per release; lists are
/// space-separated. Starts with a byte order mark, so that spreadsheet programs read the
/// UTF-8 (Japanese service names) as such.
pub fn csv(entries: &[Entry]) -> String {
    let mut out = String::from("\u{feff}time,service,client_id,how,claims,scopes,purpose\r\n");
    for e in entries {
        let fields = [
            e.at.as_str(),
            &e.service,
            &e.client_id,
            &e.how,
            &e.claims.join(" "),
            &e.scopes.join(" "),
            e.purpose.as_deref().unwrap_or(""),
        ];
        out.push_str(&kizuna_core::web::csv::row(&fields));
        out.push_str("\r\n");
    }
    out
}

/// The history as JSON: the person's `sub` and the releases, newest first.
pub fn json(user_id: &str, entries: &[Entry]) -> Value {
    json!({ "sub": user_id, "releases": entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(service: &str, claims: &[&str]) -> Entry {
        Entry {
            at: "2026-11-23T09:41:00Z".into(),
            service: service.into(),
            client_id: "c1".into(),
            how: "userinfo".into(),
            claims: claims.iter().map(|c| c.to_string()).collect(),
            scopes: vec!["openid".into(), "profile".into()],
            purpose: None,
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let text = csv(&[entry(
            "Childcare \"Hoiku\", Ward 3\nNorth",
            &["sub", "name"],
        )]);
        let mut lines = text.trim_start_matches('\u{feff}').split("\r\n");
        assert_eq!(
            lines.next(),
            Some("time,service,client_id,how,claims,scopes,purpose")
        );
        assert_eq!(
            lines.next(),
            Some(
                "2026-11-23T09:41:00Z,\"Childcare \"\"Hoiku\"\", Ward 3\nNorth\",c1,userinfo,sub name,openid profile,"
            )
        );
    }

    #[test]
    fn every_how_reads_back() {
        for how in [
            How::IdToken,
            How::Userinfo,
            How::Introspection,
            How::TokenExchange,
        ] {
            assert_eq!(How::parse(how.as_str()), Some(how));
        }
        assert_eq!(How::parse("token.issue"), None);
    }

    #[test]
    fn a_period_covers_whole_days() {
        let from = day_start("2026-11-23").unwrap();
        assert_eq!(from, 1_795_392_000);
        let f = filter(None, Some(from), day_start("2026-11-23"));
        assert_eq!(f.until, Some(from + 86_400), "the last day is included");
        assert_eq!(day_start("2026-13-01"), None);
        assert_eq!(day_start("yesterday"), None);
    }

    #[test]
    fn sub_leads_the_recorded_claims_once() {
        let claims = vec!["email".to_string(), "sub".to_string()];
        let r = Released {
            user_id: "u",
            client_id: "c",
            claims: &claims,
            scope: "openid email",
            how: How::IdToken,
            purpose: None,
        };
        assert_eq!(r.claim_names(), vec!["sub", "email"]);
    }
}
