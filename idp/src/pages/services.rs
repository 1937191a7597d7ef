//! `/account/services`: the services the signed-in person has allowed (what each may read,
//! since when; withdraw), and every release of their data to a service (when, which service,
//! which claims), read from the audit log.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use kizuna_core::web::Lang;

use super::account::{display_rfc3339, display_time, signed_in};
use super::{check_csrf, form_page, internal_error, page_lang, scope_label, see_other};
use crate::Idp;
use crate::consent;

/// Releases shown on the page.
const RELEASES_SHOWN: i64 = 50;

struct ServiceRow {
    client_id: String,
    name: String,
    organization: Option<String>,
    scopes: Vec<String>,
    since: String,
}

struct ReleaseRow {
    time: String,
    service: String,
    how: String,
    claims: String,
}

#[derive(Template)]
#[template(path = "account_services.html")]
struct ServicesPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    notice: bool,
    services: Vec<ServiceRow>,
    releases: Vec<ReleaseRow>,
}

#[derive(Deserialize)]
pub struct ServicesQuery {
    done: Option<String>,
}

pub async fn show(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<ServicesQuery>,
) -> Response {
    let (_, user) = match signed_in(&idp, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let lang = page_lang(None);
    let (granted, released) = match tokio::try_join!(
        consent::list(&idp, &user.id),
        consent::releases(&idp, &user.id, RELEASES_SHOWN)
    ) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "reading consents and releases");
            return internal_error();
        }
    };
    let services = granted
        .into_iter()
        .map(|g| ServiceRow {
            scopes: g.scopes.iter().map(|s| scope_label(s, lang)).collect(),
            since: display_time(g.updated_at),
            client_id: g.client_id,
            name: g.client_name,
            organization: g.organization,
        })
        .collect();
    let releases = released
        .into_iter()
        .map(|r| ReleaseRow {
            time: display_rfc3339(&r.at),
            service: r.client_name.unwrap_or(r.client_id),
            how: if r.action == "userinfo.release" {
                lang.pick("ユーザー情報の問い合わせ", "asked for your details")
            } else {
                lang.pick("サインイン (トークン発行)", "sign-in (tokens issued)")
            }
            .to_string(),
            claims: if r.claims.is_empty() {
                lang.pick("識別子のみ", "your identifier only").to_string()
            } else {
                r.claims.join(", ")
            },
        })
        .collect();
    form_page(&idp, &headers, StatusCode::OK, |csrf| ServicesPage {
        lang,
        back_path: "/account/services".into(),
        csrf,
        notice: q.done.as_deref() == Some("withdrawn"),
        services,
        releases,
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
