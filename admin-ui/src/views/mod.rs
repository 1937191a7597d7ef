//! The console's pages (`/admin/…`): server-rendered HTML in Japanese and English, no
//! script. Each page is described as sections (facts, a table, forms) and rendered by one
//! template; every form post carries the CSRF token; every action calls [`crate::ops`].
//! Errors and notices come from the catalogue ([`crate::messages`]) in the page's language.
//! One module per resource; this one holds the router and what every page shares.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use kizuna_core::web::{Lang, RequestContext, csrf, page};

use crate::Console;
use crate::auth::{self, Signed};
use crate::error::ConsoleError;
use crate::messages::{Message, Msg};
use kizuna_core::access::{Action, Caller};

use widgets::Section;

/// Runs a page body for a signed-in staff member; errors become error pages.
macro_rules! page_for {
    ($c:expr, $headers:expr, $path:expr, |$who:ident| $body:expr) => {{
        let $who = match $crate::views::staff(&$c, &$headers, &$path).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let result: Result<$crate::views::View, $crate::error::ConsoleError> =
            async { $body }.await;
        match result {
            Ok(v) => v.render(&$c, &$headers, Some(&$who)),
            Err(e) => $crate::views::error_page(&$c, &$headers, Some(&$who), e),
        }
    }};
}

/// Runs a form post; its result is a redirect, or an error page.
macro_rules! post_for {
    ($c:expr, $headers:expr, $body:expr, |$p:ident| $action:expr) => {{
        let $p = match $crate::views::posted(&$c, &$headers, &$body).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        let result: Result<axum::response::Response, $crate::error::ConsoleError> =
            async { $action }.await;
        match result {
            Ok(r) => r,
            Err(e) => $crate::views::error_page(&$c, &$headers, Some(&$p.who), e),
        }
    }};
}

// The page modules come after the macros above, which they use.
mod audit;
mod certificates;
mod clients;
mod dashboard;
mod devices;
mod enrollment;
mod orgs;
mod reviews;
mod signin;
mod upstreams;
mod users;
mod widgets;

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/admin", get(dashboard::show))
        .route("/admin/", get(dashboard::to_canonical))
        .route("/admin/login", get(signin::login))
        .route("/admin/callback", get(signin::callback))
        .route("/admin/logout", post(signin::logout))
        .route("/admin/devices", get(devices::list).post(devices::create))
        .route("/admin/devices/{id}", get(devices::show))
        .route("/admin/devices/{id}/{action}", post(devices::action))
        .route("/admin/certificates/{serial}", get(certificates::show))
        .route("/admin/certificates/{serial}/pem", get(certificates::pem))
        .route(
            "/admin/certificates/{serial}/unhold",
            post(certificates::unhold),
        )
        .route(
            "/admin/revoke",
            get(certificates::revoke_confirm).post(certificates::revoke),
        )
        .route("/admin/enrollment-tokens", post(enrollment::create))
        .route("/admin/enrollment-tokens/void", post(enrollment::void))
        .route("/admin/audit", get(audit::list))
        .route("/admin/audit/export", get(audit::export))
        .route("/admin/audit/verify", post(audit::verify))
        .route("/admin/audit/{id}", get(audit::show))
        .route("/admin/users", get(users::list))
        .route("/admin/users/{id}", get(users::show))
        .route("/admin/users/{id}/{action}", post(users::action))
        .route("/admin/clients", get(clients::list).post(clients::create))
        .route(
            "/admin/clients/{id}",
            get(clients::show).post(clients::edit),
        )
        .route("/admin/clients/{id}/{action}", post(clients::action))
        .route(
            "/admin/upstreams",
            get(upstreams::list).post(upstreams::create),
        )
        .route(
            "/admin/upstreams/{id}",
            get(upstreams::show).post(upstreams::edit),
        )
        .route("/admin/upstreams/{id}/{action}", post(upstreams::action))
        .route("/admin/orgs", get(orgs::list).post(orgs::create))
        .route("/admin/orgs/{id}", get(orgs::show).post(orgs::edit))
        .route("/admin/orgs/{id}/client-scopes", post(orgs::client_scopes))
        .route("/admin/orgs/{id}/{action}", post(orgs::action))
        .route("/admin/reviews", get(reviews::list))
        .route("/admin/reviews/disable", post(reviews::disable))
        .with_state(console)
}

fn lang() -> Lang {
    RequestContext::current()
        .map(|c| c.lang)
        .unwrap_or_default()
}

fn t(ja: &str, en: &str) -> String {
    lang().pick(ja, en).to_string()
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage {
    lang: Lang,
    back_path: String,
    csrf: String,
    title: String,
    current: String,
    nav: Vec<(String, String)>,
    who: String,
    roles: String,
    notice: Option<String>,
    error: Option<String>,
    /// A domain error's own text, in a smaller line beneath the error.
    error_detail: Option<String>,
    sections: Vec<Section>,
}

/// A page being built for a staff member (or nobody, for sign-in errors).
struct View {
    title: String,
    path: String,
    notice: Option<String>,
    error: Option<Message>,
    sections: Vec<Section>,
    status: StatusCode,
}

fn view(title: String, path: &str) -> View {
    View {
        title,
        path: path.to_string(),
        notice: None,
        error: None,
        sections: Vec::new(),
        status: StatusCode::OK,
    }
}

impl View {
    fn render(self, c: &Console, headers: &HeaderMap, who: Option<&Caller>) -> Response {
        let token = csrf::CsrfToken::issue(headers, c.idp.core.secure_cookies);
        let nav = who.map(nav).unwrap_or_default();
        let (error, error_detail) = match self.error {
            Some(m) => (Some(m.msg.render(lang())), m.detail),
            None => (None, None),
        };
        let data = ConsolePage {
            lang: lang(),
            back_path: self.path.clone(),
            csrf: token.value.clone(),
            title: self.title,
            current: self.path.split('?').next().unwrap_or("").to_string(),
            nav,
            who: who.map(|w| w.name.clone()).unwrap_or_default(),
            roles: who.map(Caller::role_names).unwrap_or_default(),
            notice: self.notice,
            error,
            error_detail,
            sections: self.sections,
        };
        let mut response = (self.status, page(&data)).into_response();
        token.apply(&mut response);
        response
    }
}

fn nav(who: &Caller) -> Vec<(String, String)> {
    [
        (
            Action::ViewDashboard,
            "/admin",
            "ダッシュボード",
            "Dashboard",
        ),
        (
            Action::ViewDevices,
            "/admin/devices",
            "機器と証明書",
            "Devices and certificates",
        ),
        (Action::ViewAudit, "/admin/audit", "監査ログ", "Audit log"),
        (Action::ViewUsers, "/admin/users", "利用者", "Users"),
        (
            Action::ViewClients,
            "/admin/clients",
            "クライアント",
            "Clients",
        ),
        (
            Action::ViewUpstreams,
            "/admin/upstreams",
            "外部IdP",
            "Identity providers",
        ),
        (Action::ViewOrgs, "/admin/orgs", "組織", "Organizations"),
        (Action::ViewReviews, "/admin/reviews", "棚卸し", "Reviews"),
    ]
    .into_iter()
    .filter(|(action, ..)| {
        if *action == Action::ViewAudit {
            who.may_in(*action, None)
        } else {
            who.may(*action)
        }
    })
    .map(|(_, href, ja, en)| (href.to_string(), t(ja, en)))
    .collect()
}

/// The error as a page in the console frame, with the error's status.
fn error_page(c: &Console, headers: &HeaderMap, who: Option<&Caller>, e: ConsoleError) -> Response {
    let status = e.status();
    let title = match status {
        StatusCode::NOT_FOUND => Msg::TitleNotFound,
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Msg::TitleNotAllowed,
        StatusCode::CONFLICT => Msg::TitleCannot,
        StatusCode::INTERNAL_SERVER_ERROR => Msg::TitleError,
        StatusCode::SERVICE_UNAVAILABLE => Msg::TitleUnavailable,
        _ => Msg::TitleCheckInput,
    };
    let mut v = view(title.render(lang()), "/admin");
    v.error = Some(e.public());
    v.status = status;
    let mut page = v.render(c, headers, who);
    kizuna_core::web::retry_after_if_unavailable(&mut page);
    page
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// The staff member, or the response that sends the browser to sign in.
async fn staff(c: &Console, headers: &HeaderMap, path: &str) -> Result<Caller, Response> {
    match auth::session(c, headers).await {
        Ok(Signed::In(s)) => Ok(s),
        Ok(Signed::Out(_)) => Err(see_other(&login_path(path))),
        Err(e) => Err(error_page(c, headers, None, e)),
    }
}

fn login_path(next: &str) -> String {
    kizuna_idp::authorize::flow::with_query("/admin/login", &[("next", next)])
}

fn path_with_query(path: &str, query: &Option<String>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// A posted form: its fields, after the CSRF check and the session.
struct Posted {
    who: Caller,
    fields: Vec<(String, String)>,
}

impl Posted {
    fn get(&self, name: &str) -> String {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name)).filter(|v| !v.trim().is_empty())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Checks the CSRF token first (a forged post learns nothing), then the session.
async fn posted(c: &Console, headers: &HeaderMap, body: &Bytes) -> Result<Posted, Response> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let token = fields
        .iter()
        .find(|(k, _)| k == csrf::FIELD)
        .map(|(_, v)| v.as_str());
    if !csrf::verify(headers, token, c.idp.core.secure_cookies) {
        return Err(error_page(
            c,
            headers,
            None,
            ConsoleError::Forbidden(Msg::FormExpired.into()),
        ));
    }
    match auth::session(c, headers).await {
        Ok(Signed::In(who)) => Ok(Posted { who, fields }),
        Ok(Signed::Out(_)) => Err(error_page(
            c,
            headers,
            None,
            ConsoleError::Unauthorized(Msg::SessionEnded.into()),
        )),
        Err(e) => Err(error_page(c, headers, None, e)),
    }
}

fn done(path: &str, what: &str) -> Result<Response, ConsoleError> {
    let sep = if path.contains('?') { '&' } else { '?' };
    Ok(see_other(&format!("{path}{sep}done={what}")))
}

fn notice_for(query: &Option<String>) -> Option<String> {
    let done = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "done")
        .map(|(_, v)| v.into_owned())?;
    let notice = match done.as_str() {
        "revoked" => Msg::Revoked,
        "held" => Msg::Held,
        "released" => Msg::Released,
        "saved" => Msg::Saved,
        "disabled" => Msg::Disabled,
        "enabled" => Msg::Enabled,
        "approved" => Msg::Approved,
        "sessions" => Msg::SessionsEnded,
        "reset" => Msg::FactorsReset,
        "role" => Msg::RoleChanged,
        "created" => Msg::Created,
        "voided" => Msg::TokensVoided,
        "proofed" => Msg::ProofingRecorded,
        _ => return None,
    };
    Some(notice.render(lang()))
}

fn query_value(query: &Option<String>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.trim().is_empty())
}
