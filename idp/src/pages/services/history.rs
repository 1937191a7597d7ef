//! The release history on `/account/services`: every release of the person's data (when,
//! which service, how, which claims), newest first, paged, filtered by service and period;
//! and its export (`/account/services/releases.csv`, `.json`), the person's own rows only.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use kizuna_core::web::{ErrorPage, Lang};

use super::super::account::{display_rfc3339, signed_in};
use super::super::internal_error;
use crate::Idp;
use crate::releases::{self, Entry, Filter, How};

/// The history's part of the query, as the filter form and the page links send it:
/// `service` (a client id), `from` and `to` (days, `YYYY-MM-DD`, UTC), `page` (from 1).
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    service: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<String>,
}

/// The query, read.
pub struct Wanted {
    filter: Filter,
    page: i64,
    /// The days as given, to fill the form again.
    from: String,
    to: String,
}

impl HistoryQuery {
    /// Empty fields mean "any"; a day that is not a date is refused with a page saying so.
    pub fn read(&self) -> Result<Wanted, Response> {
        let given = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_string();
        let (from, to) = (given(&self.from), given(&self.to));
        let day = |text: &str| -> Result<Option<i64>, Response> {
            if text.is_empty() {
                return Ok(None);
            }
            releases::day_start(text).map(Some).ok_or_else(|| {
                ErrorPage::new(
                    StatusCode::BAD_REQUEST,
                    "期間の日付は YYYY-MM-DD で指定してください",
                    "Give the period's days as YYYY-MM-DD",
                )
                .into_response()
            })
        };
        let service = given(&self.service);
        Ok(Wanted {
            filter: releases::filter(
                (!service.is_empty()).then_some(service),
                day(&from)?,
                day(&to)?,
            ),
            page: self
                .page
                .as_deref()
                .and_then(|p| p.parse().ok())
                .unwrap_or(1),
            from,
            to,
        })
    }
}

/// One release as the page lists it.
pub struct Row {
    pub time: String,
    pub service: String,
    pub how: String,
    pub claims: String,
}

/// A service in the filter's list.
pub struct ServiceOption {
    pub client_id: String,
    pub name: String,
    pub selected: bool,
}

/// The history part of the page.
pub struct History {
    pub rows: Vec<Row>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub services: Vec<ServiceOption>,
    pub from: String,
    pub to: String,
    /// Whether a filter narrows what is shown.
    pub filtered: bool,
    /// Links to the newer and older page, and to the exports of what the filter shows.
    pub newer: Option<String>,
    pub older: Option<String>,
    pub csv: String,
    pub json: String,
    /// How long releases stay in the history.
    pub retention_days: i64,
}

/// The page's history for what the query asks.
pub async fn load(
    idp: &Idp,
    user_id: &str,
    wanted: &Wanted,
    lang: Lang,
) -> Result<History, sqlx::Error> {
    let (page, services) = tokio::try_join!(
        releases::history(idp, user_id, &wanted.filter, wanted.page),
        releases::services(idp, user_id)
    )?;
    let link = |path: &str, page: Option<i64>| -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(service) = &wanted.filter.client_id {
            q.append_pair("service", service);
        }
        if !wanted.from.is_empty() {
            q.append_pair("from", &wanted.from);
        }
        if !wanted.to.is_empty() {
            q.append_pair("to", &wanted.to);
        }
        if let Some(page) = page {
            q.append_pair("page", &page.to_string());
        }
        let q = q.finish();
        if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{q}")
        }
    };
    Ok(History {
        rows: page.entries.iter().map(|e| row(e, lang)).collect(),
        total: page.total,
        newer: (page.page > 1).then(|| link("/account/services", Some(page.page - 1))),
        older: (page.page < page.pages).then(|| link("/account/services", Some(page.page + 1))),
        csv: link("/account/services/releases.csv", None),
        json: link("/account/services/releases.json", None),
        page: page.page,
        pages: page.pages,
        services: services
            .into_iter()
            .map(|(client_id, name)| ServiceOption {
                selected: wanted.filter.client_id.as_ref() == Some(&client_id),
                client_id,
                name,
            })
            .collect(),
        filtered: wanted.filter != Filter::default(),
        retention_days: idp.config.release_retention_days,
        from: wanted.from.clone(),
        to: wanted.to.clone(),
    })
}

fn row(e: &Entry, lang: Lang) -> Row {
    let how = match How::parse(&e.how) {
        Some(How::IdToken) => lang.pick("サインイン (トークン発行)", "sign-in (tokens issued)"),
        Some(How::Userinfo) => lang.pick("ユーザー情報の問い合わせ", "asked for your details"),
        Some(How::Introspection) => lang.pick(
            "サービスの API がトークンを確認",
            "a service's API checked your token",
        ),
        Some(How::TokenExchange) => lang.pick("トークン交換", "token exchange"),
        None => &e.how,
    };
    Row {
        time: display_rfc3339(&e.at),
        service: e.service.clone(),
        how: how.to_string(),
        claims: if e.claims.iter().all(|c| c == "sub") {
            lang.pick("識別子のみ (sub)", "your identifier only (sub)")
                .to_string()
        } else {
            e.claims.join(", ")
        },
    }
}

/// `GET /account/services/releases.csv`: the person's history (as filtered) as CSV.
pub async fn export_csv(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    export(&idp, &headers, &q, Format::Csv).await
}

/// `GET /account/services/releases.json`: the person's history (as filtered) as JSON.
pub async fn export_json(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    export(&idp, &headers, &q, Format::Json).await
}

enum Format {
    Csv,
    Json,
}

async fn export(idp: &Idp, headers: &HeaderMap, q: &HistoryQuery, format: Format) -> Response {
    let (_, user) = match signed_in(idp, headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let wanted = match q.read() {
        Ok(wanted) => wanted,
        Err(refused) => return refused,
    };
    let entries = match releases::export(idp, &user.id, &wanted.filter).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(error = %e, "exporting the release history");
            return internal_error();
        }
    };
    let today = kizuna_core::time::unix_to_rfc3339(kizuna_core::time::now_unix());
    let today = today.get(..10).unwrap_or("history");
    let (content_type, extension, body) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", releases::csv(&entries)),
        Format::Json => (
            "application/json",
            "json",
            releases::json(&user.id, &entries).to_string(),
        ),
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"kizuna-releases-{today}.{extension}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}
