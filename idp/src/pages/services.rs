//! `/account/services`: the services the signed-in person has allowed (what each may read,
//! since when; withdraw), and every release of their data to a service (when, which service,
//! how, which claims) from the release history, paged, filtered and exported ([`history`]).

mod history;

pub use history::{export_csv, export_json};

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use kizuna_core::web::Lang;

use super::account::{display_time, signed_in};
use super::{
    check_csrf, claim_label, form_page, internal_error, message, page_lang, scope_label, see_other,
};
use crate::Idp;
use crate::consent;

struct ServiceRow {
    client_id: String,
    name: String,
    organization: Option<String>,
    /// The purpose as the consent page showed it.
    purpose: Option<String>,
    scopes: Vec<String>,
    /// What the service may receive, and what the person kept back.
    claims: Vec<String>,
    declined: Vec<String>,
    since: String,
    until: String,
    /// The earliest and latest day the "end sooner" form takes (`YYYY-MM-DD`).
    tomorrow: String,
    last_day: String,
}

#[derive(Template)]
#[template(path = "account_services.html")]
struct ServicesPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    notice: bool,
    shortened: bool,
    services: Vec<ServiceRow>,
    history: history::History,
}

#[derive(Deserialize)]
pub struct ServicesQuery {
    done: Option<String>,
}

pub async fn show(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<ServicesQuery>,
    Query(h): Query<history::HistoryQuery>,
) -> Response {
    let (_, user) = match signed_in(&idp, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let lang = page_lang(None);
    let wanted = match h.read() {
        Ok(wanted) => wanted,
        Err(refused) => return refused,
    };
    let (granted, history) = match tokio::try_join!(
        consent::list(&idp, &user.id),
        history::load(&idp, &user.id, &wanted, lang)
    ) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "reading consents and releases");
            return internal_error();
        }
    };
    let day = |unix: i64| {
        kizuna_core::time::unix_to_rfc3339(unix)
            .get(..10)
            .unwrap_or_default()
            .to_string()
    };
    let now = kizuna_core::time::now_unix();
    let services = granted
        .into_iter()
        .map(|g| {
            let labels = |claims: &[String]| -> Vec<String> {
                claims.iter().map(|c| claim_label(c, lang)).collect()
            };
            ServiceRow {
                scopes: g
                    .consent
                    .scopes
                    .iter()
                    .map(|s| scope_label(s, lang))
                    .collect(),
                claims: labels(&g.consent.claims),
                declined: labels(&g.consent.declined),
                purpose: g.consent.purpose.clone(),
                since: display_time(g.consent.updated_at),
                until: display_time(g.ends_at),
                tomorrow: day(now + 86_400),
                last_day: day(g.ends_at - 86_400),
                client_id: g.consent.client_id,
                name: g.client_name,
                organization: g.organization,
            }
        })
        .collect();
    form_page(&idp, &headers, StatusCode::OK, |csrf| ServicesPage {
        lang,
        back_path: "/account/services".into(),
        csrf,
        notice: q.done.as_deref() == Some("withdrawn"),
        shortened: q.done.as_deref() == Some("shortened"),
        services,
        history,
    })
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    csrf_token: Option<String>,
    client_id: Option<String>,
}

/// `POST /account/services/withdraw`: forgets the consent and ends the service's grants.
pub async fn withdraw(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<WithdrawForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let (_, user) = match signed_in(&idp, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let client_id = form.client_id.unwrap_or_default();
    match consent::withdraw(&idp, &user.id, &client_id).await {
        Ok(true) => see_other("/account/services?done=withdrawn", None),
        Ok(false) => see_other("/account/services", None),
        Err(e) => {
            tracing::error!(error = %e, "withdrawing consent");
            internal_error()
        }
    }
}

#[derive(Deserialize)]
pub struct ShortenForm {
    csrf_token: Option<String>,
    client_id: Option<String>,
    /// The day (`YYYY-MM-DD`, UTC) the consent ends: it ends at the start of that day.
    until: Option<String>,
}

/// `POST /account/services/expiry`: makes a consent end sooner (never later).
pub async fn shorten(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<ShortenForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let (_, user) = match signed_in(&idp, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let lang = page_lang(None);
    let refused = |text: (&str, &str)| {
        message(
            StatusCode::BAD_REQUEST,
            lang,
            (
                "同意の期限を変更できません",
                "The consent's end was not changed",
            ),
            text,
        )
    };
    let Some(until) = form
        .until
        .as_deref()
        .filter(|d| d.len() == 10)
        .and_then(|d| kizuna_core::time::parse_time(d).ok())
    else {
        return refused((
            "日付を YYYY-MM-DD で入力してください。",
            "Give the day as YYYY-MM-DD.",
        ));
    };
    let client_id = form.client_id.unwrap_or_default();
    match consent::shorten(&idp, &user.id, &client_id, until.unix_timestamp()).await {
        Ok(()) => see_other("/account/services?done=shortened", None),
        Err(consent::ConsentError::Invalid(_)) => refused((
            "期限は今日より後で、いまの期限より前の日にしてください。今すぐ終えるには同意を取り消してください。",
            "Choose a day after today and before the consent ends now. To end it now, withdraw it.",
        )),
        Err(consent::ConsentError::NotFound) => refused((
            "そのサービスへの同意はありません。",
            "You have no consent to that service.",
        )),
        Err(consent::ConsentError::Storage(e)) => {
            tracing::error!(error = %e, "shortening a consent");
            internal_error()
        }
    }
}
