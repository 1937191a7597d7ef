//! The console's pages (`/admin/…`): server-rendered HTML in Japanese and English, no
//! script. Each page is described as sections (facts, a table, forms) and rendered by one
//! template; every form post carries the CSRF token; every action calls [`crate::ops`].

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use kizuna_ca::revoke::Reason;
use kizuna_core::audit::AuditEntry;
use kizuna_core::time::unix_to_rfc3339;
use kizuna_core::web::{Lang, RequestContext, csrf, local_path, page};
use kizuna_idp::assurance::counter::{CounterCheck, DOCUMENT_TYPES};
use kizuna_idp::assurance::{ATTRIBUTES, ClientAssurance};
use kizuna_idp::clients::{Client, ClientEdit};
use kizuna_idp::users::Role;

use crate::Console;
use crate::api::{
    AuditQuery, CertQuery, ClientRequest, DeviceQuery, DeviceRequest, OrgRequest, TokenRequest,
    UpstreamPatch, UpstreamRequest,
};
use crate::auth::{self, CallbackQuery, Finished, Signed};
use crate::error::{ConsoleError, Stale};
use crate::ops::{
    self, ClientChange, ClientPage, DeviceChange, Target, UpstreamChange, UpstreamView,
};
use kizuna_core::access::{Action, Caller};
use kizuna_idp::federation::ClientAuth;
use kizuna_idp::federation::ceiling::{AcrMap, TrustCeiling};
use kizuna_idp::federation::claims::ClaimMap;
use kizuna_idp::federation::upstreams::{acr_entries, acr_map_from, claim_entries, claim_map_from};

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/login", get(login))
        .route("/admin/callback", get(callback))
        .route("/admin/logout", post(logout))
        .route("/admin/devices", get(devices).post(create_device))
        .route("/admin/devices/{id}", get(device))
        .route("/admin/devices/{id}/{action}", post(device_action))
        .route("/admin/certificates/{serial}", get(certificate))
        .route("/admin/certificates/{serial}/pem", get(certificate_pem))
        .route("/admin/certificates/{serial}/unhold", post(unhold))
        .route("/admin/revoke", get(revoke_confirm).post(revoke))
        .route("/admin/enrollment-tokens", post(create_token))
        .route("/admin/enrollment-tokens/void", post(void_tokens))
        .route("/admin/audit", get(audit))
        .route("/admin/audit/export", get(audit_export))
        .route("/admin/audit/verify", post(audit_verify))
        .route("/admin/audit/{id}", get(audit_entry))
        .route("/admin/users", get(users))
        .route("/admin/users/{id}", get(user))
        .route("/admin/users/{id}/{action}", post(user_action))
        .route("/admin/clients", get(clients).post(create_client))
        .route("/admin/clients/{id}", get(client).post(edit_client))
        .route("/admin/clients/{id}/{action}", post(client_action))
        .route("/admin/upstreams", get(upstreams).post(create_upstream))
        .route("/admin/upstreams/{id}", get(upstream).post(edit_upstream))
        .route("/admin/upstreams/{id}/{action}", post(upstream_action))
        .route("/admin/orgs", get(orgs).post(create_org))
        .route("/admin/orgs/{id}", get(org).post(edit_org))
        .route("/admin/orgs/{id}/{action}", post(org_action))
        .route("/admin/reviews", get(reviews))
        .route("/admin/reviews/disable", post(review_disable))
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

fn time(unix: i64) -> String {
    unix_to_rfc3339(unix)
}

fn opt_time(unix: Option<i64>) -> String {
    unix.map(time).unwrap_or_else(|| "-".into())
}

// The page model.

#[derive(Default)]
struct Cell {
    text: String,
    href: Option<String>,
}

fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: None,
    }
}

fn link(text: impl Into<String>, href: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: Some(href.into()),
    }
}

#[derive(Default)]
struct Row {
    cells: Vec<Cell>,
    select: String,
}

#[derive(Default)]
struct Table {
    headers: Vec<String>,
    rows: Vec<Row>,
    /// A checkbox per row for the form with this id, under this field name.
    select: Option<(String, String)>,
}

fn table(headers: &[(&str, &str)], rows: Vec<Vec<Cell>>) -> Table {
    Table {
        headers: headers.iter().map(|(ja, en)| t(ja, en)).collect(),
        rows: rows
            .into_iter()
            .map(|cells| Row {
                cells,
                select: String::new(),
            })
            .collect(),
        select: None,
    }
}

#[derive(Default)]
struct Field {
    kind: &'static str,
    name: &'static str,
    label: String,
    value: String,
    options: Vec<(String, String)>,
    required: bool,
    max: usize,
}

fn text_field(name: &'static str, label: String, value: &str) -> Field {
    Field {
        kind: "text",
        name,
        label,
        value: value.to_string(),
        max: 2048,
        ..Field::default()
    }
}

fn required(mut f: Field) -> Field {
    f.required = true;
    f
}

fn hidden(name: &'static str, value: &str) -> Field {
    Field {
        kind: "hidden",
        name,
        value: value.to_string(),
        ..Field::default()
    }
}

fn select(name: &'static str, label: String, value: &str, options: Vec<(String, String)>) -> Field {
    Field {
        kind: "select",
        name,
        label,
        value: value.to_string(),
        options,
        ..Field::default()
    }
}

struct Form {
    id: String,
    method: &'static str,
    action: String,
    fields: Vec<Field>,
    submit: String,
    danger: bool,
}

fn post_form(id: &str, action: impl Into<String>, fields: Vec<Field>, submit: String) -> Form {
    Form {
        id: id.to_string(),
        method: "post",
        action: action.into(),
        fields,
        submit,
        danger: false,
    }
}

fn danger(mut f: Form) -> Form {
    f.danger = true;
    f
}

fn search_form(id: &str, action: &str, fields: Vec<Field>) -> Form {
    Form {
        id: id.to_string(),
        method: "get",
        action: action.to_string(),
        fields,
        submit: t("検索", "Search"),
        danger: false,
    }
}

#[derive(Default)]
struct Section {
    id: String,
    title: String,
    text: String,
    facts: Vec<(String, String)>,
    pre: Option<String>,
    table: Option<Table>,
    forms: Vec<Form>,
    links: Vec<(String, String, bool)>,
}

fn section(title: String) -> Section {
    Section {
        title,
        ..Section::default()
    }
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
    sections: Vec<Section>,
}

/// A page being built for a staff member (or nobody, for sign-in errors).
struct View {
    title: String,
    path: String,
    notice: Option<String>,
    error: Option<String>,
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
            error: self.error,
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
    let mut v = view(
        match status {
            StatusCode::NOT_FOUND => t("見つかりません", "Not found"),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => t("できません", "Not allowed"),
            StatusCode::CONFLICT => t("実行できません", "Cannot do that"),
            StatusCode::INTERNAL_SERVER_ERROR => t("エラー", "Error"),
            _ => t("入力を確認してください", "Check the input"),
        },
        "/admin",
    );
    v.error = Some(e.public_message());
    v.status = status;
    v.render(c, headers, who)
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// The staff member, or the response that sends the browser to sign in.
async fn staff(c: &Console, headers: &HeaderMap, path: &str) -> Result<Caller, Response> {
    match auth::session(c, headers).await {
        Ok(Signed::In(s)) => Ok(s),
        Ok(Signed::Out(_)) => Err(see_other(&crate::views::login_path(path))),
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
            ConsoleError::Forbidden(t(
                "フォームの有効期限が切れたか、このサイトから送信されていません。ページを再読み込みしてやり直してください。",
                "The form expired or did not come from this site. Reload the page and try again.",
            )),
        ));
    }
    match auth::session(c, headers).await {
        Ok(Signed::In(who)) => Ok(Posted { who, fields }),
        Ok(Signed::Out(_)) => Err(error_page(
            c,
            headers,
            None,
            ConsoleError::Unauthorized(t(
                "コンソールのセッションが終了しています。もう一度サインインしてください。",
                "Your console session has ended. Sign in again.",
            )),
        )),
        Err(e) => Err(error_page(c, headers, None, e)),
    }
}

/// Runs a page body for a signed-in staff member; errors become error pages.
macro_rules! page_for {
    ($c:expr, $headers:expr, $path:expr, |$who:ident| $body:expr) => {{
        let $who = match staff(&$c, &$headers, &$path).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let result: Result<View, ConsoleError> = async { $body }.await;
        match result {
            Ok(v) => v.render(&$c, &$headers, Some(&$who)),
            Err(e) => error_page(&$c, &$headers, Some(&$who), e),
        }
    }};
}

/// Runs a form post; its result is a redirect, or an error page.
macro_rules! post_for {
    ($c:expr, $headers:expr, $body:expr, |$p:ident| $action:expr) => {{
        let $p = match posted(&$c, &$headers, &$body).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        let result: Result<Response, ConsoleError> = async { $action }.await;
        match result {
            Ok(r) => r,
            Err(e) => error_page(&$c, &$headers, Some(&$p.who), e),
        }
    }};
}

fn done(path: &str, what: &str) -> Result<Response, ConsoleError> {
    let sep = if path.contains('?') { '&' } else { '?' };
    Ok(see_other(&format!("{path}{sep}done={what}")))
}

fn notice_for(query: &Option<String>) -> Option<String> {
    let done = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "done")
        .map(|(_, v)| v.into_owned())?;
    Some(match done.as_str() {
        "revoked" => t("失効しました。", "Revoked."),
        "held" => t("一時停止しました。", "Suspended (on hold)."),
        "released" => t("一時停止を解除しました。", "Released from hold."),
        "saved" => t("保存しました。", "Saved."),
        "disabled" => t("無効にしました。", "Disabled."),
        "enabled" => t("有効にしました。", "Enabled."),
        "approved" => t("承認しました。", "Approved."),
        "sessions" => t("セッションを終了しました。", "Sessions ended."),
        "reset" => t("認証要素をリセットしました。", "Factors reset."),
        "role" => t("役割を変更しました。", "Role changed."),
        "created" => t("作成しました。", "Created."),
        "voided" => t("トークンを無効にしました。", "Tokens voided."),
        "proofed" => t("本人確認を記録しました。", "Identity check recorded."),
        _ => return None,
    })
}

fn query_value(query: &Option<String>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.trim().is_empty())
}

// Sign-in.

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    let next = if next.starts_with("/admin") {
        next
    } else {
        "/admin".into()
    };
    let aal = match auth::session(&c, &headers).await {
        Ok(Signed::Out(aal)) => aal,
        Ok(Signed::In(_)) => return see_other(&next),
        Err(e) => return error_page(&c, &headers, None, e),
    };
    match auth::start(&c, &next, aal).await {
        Ok(r) => r,
        Err(e) => error_page(&c, &headers, None, e),
    }
}

async fn callback(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    match auth::finish(&c, &headers, q).await {
        Ok(Finished::Session(r) | Finished::StepUp(r)) => r,
        Err(e) => error_page(&c, &headers, None, e),
    }
}

async fn logout(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| auth::end(&c, &headers, &p.who).await)
}

// Dashboard.

fn audit_table(entries: &[AuditEntry]) -> Table {
    table(
        &[
            ("時刻", "Time"),
            ("実行者", "Actor"),
            ("操作", "Action"),
            ("対象", "Target"),
            ("結果", "Outcome"),
        ],
        entries
            .iter()
            .map(|e| {
                vec![
                    link(e.at.clone(), format!("/admin/audit/{}", e.id)),
                    cell(format!("{}:{}", e.actor_kind, e.actor_id)),
                    cell(e.action.clone()),
                    cell(e.target.clone()),
                    cell(e.outcome.clone()),
                ]
            })
            .collect(),
    )
}

async fn dashboard(State(c): State<Console>, headers: HeaderMap) -> Response {
    page_for!(c, headers, "/admin", |who| {
        let d = ops::dashboard(&c, &who).await?;
        let mut v = view(t("ダッシュボード", "Dashboard"), "/admin");
        let mut counts = section(t("件数", "Counts"));
        counts.id = "counts".into();
        counts.facts = vec![
            (t("利用者", "Users"), d.counts.users.to_string()),
            (
                t("有効なセッション", "Active sessions"),
                d.counts.active_sessions.to_string(),
            ),
            (
                t(
                    "30日以内に期限切れの証明書",
                    "Certificates expiring within 30 days",
                ),
                d.counts.certificates_expiring_30d.to_string(),
            ),
            (
                t("本日の失効", "Revocations today"),
                d.counts.revocations_today.to_string(),
            ),
        ];
        for (status, n) in &d.counts.devices_by_status {
            counts.facts.push((
                format!("{} ({status})", t("機器", "Devices")),
                n.to_string(),
            ));
        }
        v.sections.push(counts);
        if !d.pending.is_empty() {
            let mut pending = section(t("承認待ち", "Waiting for approval"));
            pending.id = "pending".into();
            pending.table = Some(table(
                &[("種類", "Kind"), ("名前", "Name"), ("組織", "Organization")],
                d.pending
                    .iter()
                    .map(|p| {
                        let (kind, href) = match p.kind {
                            "upstream" => (
                                t("外部IdP", "Identity provider"),
                                format!("/admin/upstreams/{}", p.id),
                            ),
                            _ => (
                                t("クライアント", "Client"),
                                format!("/admin/clients/{}", p.id),
                            ),
                        };
                        vec![
                            cell(kind),
                            link(p.name.clone(), href),
                            cell(p.org_id.clone().unwrap_or_default()),
                        ]
                    })
                    .collect(),
            ));
            v.sections.push(pending);
        }
        if who.may_in(Action::ViewAudit, None) {
            let mut events = section(t("最近のセキュリティイベント", "Recent security events"));
            events.table = Some(audit_table(&d.security_events));
            v.sections.push(events);
        }
        Ok(v)
    })
}

// Devices and certificates.

fn status_options(values: &[&str]) -> Vec<(String, String)> {
    std::iter::once((String::new(), t("すべて", "any")))
        .chain(values.iter().map(|s| (s.to_string(), s.to_string())))
        .collect()
}

fn reason_options() -> Vec<(String, String)> {
    Reason::ALL
        .iter()
        .filter(|r| **r != Reason::CertificateHold)
        .map(|r| (r.as_str().to_string(), r.as_str().to_string()))
        .collect()
}

fn cert_rows(certs: &[kizuna_ca::store::CertRecord]) -> Vec<Vec<Cell>> {
    certs
        .iter()
        .map(|r| {
            vec![
                link(
                    r.serial.clone(),
                    format!("/admin/certificates/{}", r.serial),
                ),
                cell(r.subject.clone()),
                cell(r.device_id.clone().unwrap_or_default()),
                cell(r.org_id.clone().unwrap_or_default()),
                cell(r.status.clone()),
                cell(time(r.not_after)),
            ]
        })
        .collect()
}

const CERT_HEADERS: [(&str, &str); 6] = [
    ("シリアル", "Serial"),
    ("サブジェクト", "Subject"),
    ("機器", "Device"),
    ("組織", "Organization"),
    ("状態", "Status"),
    ("有効期限", "Expires"),
];

async fn devices(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/devices", &raw);
    page_for!(c, headers, path, |who| {
        let q = |n| query_value(&raw, n);
        let dq = DeviceQuery {
            q: q("q"),
            org: q("org"),
            status: q("status"),
        };
        let cq = CertQuery {
            q: q("q"),
            org: q("org"),
            device: None,
            status: q("cert_status"),
        };
        let devices = ops::search_devices(&c, &who, dq.search()?).await?;
        let certs = ops::search_certificates(&c, &who, cq.search()?).await?;
        let mut v = view(t("機器と証明書", "Devices and certificates"), &path);
        v.notice = notice_for(&raw);
        let mut search = section(t("検索", "Search"));
        search.forms.push(search_form(
            "search",
            "/admin/devices",
            vec![
                text_field(
                    "q",
                    t(
                        "機器ID・シリアル・SAN・サブジェクト",
                        "Device id, serial, SAN or subject",
                    ),
                    &q("q").unwrap_or_default(),
                ),
                text_field(
                    "org",
                    t("組織ID", "Organization id"),
                    &q("org").unwrap_or_default(),
                ),
                select(
                    "status",
                    t("機器の状態", "Device status"),
                    &q("status").unwrap_or_default(),
                    status_options(&["pending", "active", "suspended", "retired"]),
                ),
                select(
                    "cert_status",
                    t("証明書の状態", "Certificate status"),
                    &q("cert_status").unwrap_or_default(),
                    status_options(&["valid", "hold", "revoked"]),
                ),
            ],
        ));
        v.sections.push(search);
        let mut ds = section(t("機器", "Devices"));
        ds.id = "devices".into();
        ds.table = Some(table(
            &[
                ("機器ID", "Device id"),
                ("組織", "Organization"),
                ("型式", "Model"),
                ("シリアル", "Hardware serial"),
                ("設置場所", "Location"),
                ("状態", "Status"),
            ],
            devices
                .iter()
                .map(|d| {
                    vec![
                        link(d.id.clone(), format!("/admin/devices/{}", d.id)),
                        cell(d.org_id.clone()),
                        cell(d.model.clone()),
                        cell(d.hardware_serial.clone().unwrap_or_default()),
                        cell(d.location.clone()),
                        cell(d.status.as_str()),
                    ]
                })
                .collect(),
        ));
        v.sections.push(ds);
        let mut cs = section(t("証明書", "Certificates"));
        cs.id = "certificates".into();
        cs.table = Some(table(&CERT_HEADERS, cert_rows(&certs)));
        v.sections.push(cs);
        if who.may(Action::ManageDevices) {
            let orgs = ops::list_orgs(&c, &who).await?;
            let org_options: Vec<(String, String)> = orgs
                .iter()
                .filter(|o| who.may_in(Action::ManageDevices, Some(&o.id)))
                .map(|o| (o.id.clone(), o.name.clone()))
                .collect();
            let mut add = section(t("機器を登録", "Register a device"));
            add.forms.push(post_form(
                "new-device",
                "/admin/devices",
                vec![
                    select("org_id", t("組織", "Organization"), "", org_options.clone()),
                    text_field(
                        "id",
                        t("機器ID（空欄で自動）", "Device id (blank: generated)"),
                        "",
                    ),
                    required(text_field("model", t("型式", "Model"), "")),
                    text_field(
                        "hardware_serial",
                        t("ハードウェアシリアル", "Hardware serial"),
                        "",
                    ),
                    text_field("location", t("設置場所", "Location"), ""),
                    text_field("installer", t("設置業者", "Installer"), ""),
                ],
                t("登録", "Register"),
            ));
            v.sections.push(add);
            let mut tok = section(t("登録トークンを発行", "Create an enrollment token"));
            tok.forms.push(post_form(
                "new-token",
                "/admin/enrollment-tokens",
                vec![
                    select("org_id", t("組織", "Organization"), "", org_options),
                    text_field(
                        "device_id",
                        t(
                            "機器ID（登録済みの機器に限定）",
                            "Device id (bind to a registered device)",
                        ),
                        "",
                    ),
                    text_field(
                        "subject_pattern",
                        t("サブジェクトCNのパターン", "Subject CN pattern"),
                        "*",
                    ),
                    text_field("profile", t("プロファイル", "Profile"), "device"),
                ],
                t("発行", "Create"),
            ));
            v.sections.push(tok);
        }
        if let Some(org) = q("org").filter(|o| who.may_in(Action::ManageDevices, Some(o))) {
            let tokens = ops::enrollment_tokens(&c, &who, &org).await?;
            let now = kizuna_core::time::now_unix();
            let mut ts = section(t("登録トークン", "Enrollment tokens"));
            ts.id = "tokens".into();
            let mut tbl = table(
                &[
                    ("ID", "Id"),
                    ("機器", "Device"),
                    ("プロファイル", "Profile"),
                    ("有効期限", "Expires"),
                    ("状態", "State"),
                ],
                tokens
                    .iter()
                    .map(|r| {
                        let state = match (r.used_at, r.expires_at > now) {
                            (Some(_), _) => t("使用済み", "used"),
                            (None, true) => t("未使用", "unused"),
                            (None, false) => t("期限切れ・無効", "expired or void"),
                        };
                        vec![
                            cell(r.id.clone()),
                            cell(r.device_id.clone().unwrap_or_default()),
                            cell(r.profile.clone()),
                            cell(time(r.expires_at)),
                            cell(state),
                        ]
                    })
                    .collect(),
            );
            for (row, r) in tbl.rows.iter_mut().zip(&tokens) {
                row.select = r.id.clone();
            }
            tbl.select = Some(("void-tokens".into(), "token_id".into()));
            ts.table = Some(tbl);
            ts.forms.push(danger(post_form(
                "void-tokens",
                "/admin/enrollment-tokens/void",
                vec![hidden("org", &org)],
                t("選択したトークンを無効にする", "Void the selected tokens"),
            )));
            v.sections.push(ts);
        }
        if who.may(Action::RevokeCertificates) {
            let mut bulk = section(t("一括失効", "Bulk revocation"));
            bulk.text = t(
                "次の画面で、失効する証明書を確認してから実行します。",
                "The next page shows exactly what will be revoked before anything happens.",
            );
            bulk.forms.push(Form {
                id: "bulk-device".into(),
                method: "get",
                action: "/admin/revoke".into(),
                fields: vec![
                    required(text_field("device", t("機器ID", "Device id"), "")),
                    text_field(
                        "org",
                        t(
                            "組織ID（同じIDが複数の組織にある場合）",
                            "Organization id (when the id exists in several)",
                        ),
                        "",
                    ),
                    select(
                        "reason",
                        t("理由", "Reason"),
                        "keyCompromise",
                        reason_options(),
                    ),
                ],
                submit: t(
                    "機器の証明書の失効を確認",
                    "Review revoking the device's certificates",
                ),
                danger: true,
            });
            bulk.forms.push(Form {
                id: "bulk-org".into(),
                method: "get",
                action: "/admin/revoke".into(),
                fields: vec![
                    required(text_field("org", t("組織ID", "Organization id"), "")),
                    select(
                        "reason",
                        t("理由", "Reason"),
                        "cessationOfOperation",
                        reason_options(),
                    ),
                ],
                submit: t(
                    "組織の証明書の失効を確認",
                    "Review revoking the organization's certificates",
                ),
                danger: true,
            });
            v.sections.push(bulk);
        }
        Ok(v)
    })
}

async fn create_device(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let req = DeviceRequest {
            id: p.opt("id"),
            org_id: p.get("org_id"),
            model: p.get("model"),
            hardware_serial: p.opt("hardware_serial"),
            location: p.get("location"),
            installer: p.get("installer"),
        };
        let device = ops::create_device(&c, &p.who, req.into()).await?;
        done(&format!("/admin/devices/{}", device.id), "created")
    })
}

async fn create_token(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let req = TokenRequest {
            org_id: p.get("org_id"),
            profile: p.opt("profile").unwrap_or_else(|| "device".into()),
            device_id: p.opt("device_id"),
            subject_pattern: p.opt("subject_pattern").unwrap_or_else(|| "*".into()),
            ttl_secs: 86_400,
        };
        let token = ops::create_enrollment_token(&c, &p.who, req.into()).await?;
        let mut v = view(t("登録トークン", "Enrollment token"), "/admin/devices");
        let mut s = section(t(
            "このトークンは一度だけ表示されます",
            "This token is shown once",
        ));
        s.id = "token".into();
        s.facts = vec![
            (t("トークン", "Token"), token.token.clone()),
            (t("組織", "Organization"), token.org_id.clone()),
            (
                t("機器", "Device"),
                token.device_id.clone().unwrap_or_default(),
            ),
            (t("有効期限", "Expires"), time(token.expires_at)),
        ];
        v.sections.push(s);
        v.status = StatusCode::CREATED;
        Ok(v.render(&c, &headers, Some(&p.who)))
    })
}

async fn device_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let change = match action.as_str() {
            "suspend" => DeviceChange::Suspend,
            "resume" => DeviceChange::Resume,
            "retire" => DeviceChange::Retire,
            other => return Err(ConsoleError::NotFound(format!("action {other}"))),
        };
        ops::change_device(&c, &p.who, &id, change).await?;
        done(&format!("/admin/devices/{id}"), "saved")
    })
}

async fn void_tokens(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let ids = p.all("token_id");
        if ids.is_empty() {
            return Err(ConsoleError::Invalid(t(
                "トークンが選択されていません。",
                "No token is selected.",
            )));
        }
        for id in &ids {
            ops::void_enrollment_token(&c, &p.who, id).await?;
        }
        done(
            &kizuna_idp::authorize::flow::with_query("/admin/devices", &[("org", &p.get("org"))]),
            "voided",
        )
    })
}

async fn device(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/devices/{id}");
    page_for!(c, headers, path, |who| {
        let d = ops::device(&c, &who, &id).await?;
        let mut v = view(format!("{} {}", t("機器", "Device"), d.device.id), &path);
        v.notice = notice_for(&raw);
        let mut s = section(t("登録情報", "Registration"));
        s.facts = vec![
            (t("機器ID", "Device id"), d.device.id.clone()),
            (t("組織", "Organization"), d.device.org_id.clone()),
            (t("型式", "Model"), d.device.model.clone()),
            (
                t("ハードウェアシリアル", "Hardware serial"),
                d.device.hardware_serial.clone().unwrap_or_default(),
            ),
            (t("設置場所", "Location"), d.device.location.clone()),
            (t("状態", "Status"), d.device.status.as_str().to_string()),
            (t("登録", "Enrolled"), opt_time(d.device.enrolled_at)),
        ];
        if who.may_in(Action::RevokeCertificates, Some(&d.device.org_id)) {
            let base = format!("/admin/devices/{}", d.device.id);
            match d.device.status.as_str() {
                "active" | "pending" => s.forms.push(post_form(
                    "suspend",
                    format!("{base}/suspend"),
                    vec![],
                    t(
                        "一時停止（証明書を保留）",
                        "Suspend (hold its certificates)",
                    ),
                )),
                "suspended" => s.forms.push(post_form(
                    "resume",
                    format!("{base}/resume"),
                    vec![],
                    t("再開", "Resume"),
                )),
                _ => {}
            }
            if d.device.status.as_str() != "retired" {
                s.forms.push(danger(post_form(
                    "retire",
                    format!("{base}/retire"),
                    vec![],
                    t(
                        "廃止（証明書をすべて失効）",
                        "Retire (revoke all its certificates)",
                    ),
                )));
            }
        }
        v.sections.push(s);
        let mut cs = section(t("証明書", "Certificates"));
        cs.table = Some(table(&CERT_HEADERS, cert_rows(&d.certificates)));
        if who.may_in(Action::RevokeCertificates, Some(&d.device.org_id)) {
            cs.forms.push(Form {
                id: "revoke-device".into(),
                method: "get",
                action: "/admin/revoke".into(),
                fields: vec![
                    hidden("device", &d.device.id),
                    hidden("org", &d.device.org_id),
                    select(
                        "reason",
                        t("理由", "Reason"),
                        "keyCompromise",
                        reason_options(),
                    ),
                ],
                submit: t(
                    "この機器の証明書をすべて失効…",
                    "Revoke all of this device's certificates…",
                ),
                danger: true,
            });
        }
        v.sections.push(cs);
        Ok(v)
    })
}

async fn certificate(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/certificates/{serial}");
    page_for!(c, headers, path, |who| {
        let cert = ops::certificate(&c, &who, &serial).await?;
        let mut v = view(
            format!("{} {}", t("証明書", "Certificate"), cert.serial),
            &path,
        );
        v.notice = notice_for(&raw);
        let mut s = section(t("状態", "Status"));
        s.id = "status".into();
        s.facts = vec![
            (t("状態", "Status"), cert.status.clone()),
            (t("失効日時", "Revoked at"), opt_time(cert.revoked_at)),
            (
                t("失効理由", "Revocation reason"),
                cert.revocation_reason.clone().unwrap_or_default(),
            ),
            (
                t("組織", "Organization"),
                cert.org_id.clone().unwrap_or_default(),
            ),
            (
                t("機器", "Device"),
                cert.device_id.clone().unwrap_or_default(),
            ),
            (t("プロファイル", "Profile"), cert.profile.clone()),
            (t("要求者", "Requested by"), cert.requested_by.clone()),
        ];
        s.links.push((
            format!("/admin/certificates/{}/pem", cert.serial),
            t("PEMをダウンロード", "Download PEM"),
            true,
        ));
        if let Some(device) = &cert.device_id {
            s.links.push((
                format!("/admin/devices/{device}"),
                t("機器を表示", "Show the device"),
                false,
            ));
        }
        if who.may_in(Action::RevokeCertificates, cert.org_id.as_deref()) {
            if cert.status != "revoked" {
                s.forms.push(Form {
                    id: "revoke".into(),
                    method: "get",
                    action: "/admin/revoke".into(),
                    fields: vec![
                        hidden("serial", &cert.serial),
                        select(
                            "reason",
                            t("理由", "Reason"),
                            "keyCompromise",
                            reason_options(),
                        ),
                    ],
                    submit: t("失効…", "Revoke…"),
                    danger: true,
                });
            }
            if cert.status == "valid" {
                s.forms.push(Form {
                    id: "hold".into(),
                    method: "get",
                    action: "/admin/revoke".into(),
                    fields: vec![
                        hidden("serial", &cert.serial),
                        hidden("reason", Reason::CertificateHold.as_str()),
                    ],
                    submit: t("一時停止…", "Suspend (hold)…"),
                    danger: false,
                });
            }
            if cert.status == "hold" {
                s.forms.push(post_form(
                    "unhold",
                    format!("/admin/certificates/{}/unhold", cert.serial),
                    vec![],
                    t("一時停止を解除", "Release from hold"),
                ));
            }
        }
        v.sections.push(s);
        let mut f = section(t("内容", "Decoded fields"));
        f.id = "fields".into();
        f.facts = crate::decode::fields(&cert.der)
            .into_iter()
            .map(|(name, value)| (lang().pick(name.0, name.1).to_string(), value))
            .collect();
        f.pre = Some(kizuna_ca::issue::pem("CERTIFICATE", &cert.der));
        v.sections.push(f);
        Ok(v)
    })
}

async fn certificate_pem(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Response {
    let path = format!("/admin/certificates/{serial}/pem");
    let who = match staff(&c, &headers, &path).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match ops::certificate(&c, &who, &serial).await {
        Ok(cert) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/pem-certificate-chain".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.pem\"", cert.serial),
                ),
            ],
            kizuna_ca::issue::pem("CERTIFICATE", &cert.der),
        )
            .into_response(),
        Err(e) => error_page(&c, &headers, Some(&who), e),
    }
}

fn target_of(
    serial: Option<String>,
    device: Option<String>,
    org: Option<String>,
) -> Result<Target, ConsoleError> {
    match (serial, device, org) {
        (Some(s), None, None) => Ok(Target::Serial(s)),
        (None, Some(d), org) => Ok(Target::Device {
            device_id: d,
            org_id: org,
        }),
        (None, None, Some(o)) => Ok(Target::Org(o)),
        _ => Err(ConsoleError::Invalid(t(
            "証明書のシリアル、機器ID、組織IDのいずれか一つを指定してください。",
            "Name one certificate serial, device id or organization id.",
        ))),
    }
}

/// The confirmation: names exactly what will be revoked before anything changes.
async fn revoke_confirm(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/revoke", &raw);
    page_for!(c, headers, path, |who| {
        let q = |n| query_value(&raw, n);
        let reason: Reason = q("reason")
            .unwrap_or_else(|| "unspecified".into())
            .parse()
            .map_err(ConsoleError::Invalid)?;
        let target = target_of(q("serial"), q("device"), q("org"))?;
        let plan = ops::plan_revocation(&c, &who, target).await?;
        let hold = reason == Reason::CertificateHold;
        let mut v = view(
            if hold {
                t("一時停止の確認", "Confirm the suspension")
            } else {
                t("失効の確認", "Confirm the revocation")
            },
            &path,
        );
        let mut s = section(t("対象", "What will change"));
        s.id = "confirm".into();
        let kind = match plan.kind {
            "certificate" => t("証明書", "certificate"),
            "device" => t("機器", "device"),
            _ => t("組織", "organization"),
        };
        s.text = format!(
            "{} {} {} ({}: {}) — {} {} — {}: {}",
            if hold {
                t("一時停止:", "Suspend:")
            } else {
                t("失効:", "Revoke:")
            },
            kind,
            plan.id,
            t("組織", "organization"),
            plan.org_id.clone().unwrap_or_default(),
            plan.count,
            t("件の証明書", "certificate(s)"),
            t("理由", "reason"),
            reason.as_str(),
        );
        s.table = Some(table(
            &[("シリアル", "Serial")],
            plan.serials
                .iter()
                .map(|x| vec![link(x.clone(), format!("/admin/certificates/{x}"))])
                .collect(),
        ));
        if plan.count == 0 {
            v.error = Some(t(
                "失効できる証明書はありません（すでに失効済みです）。",
                "There is nothing to revoke: the certificates are already revoked.",
            ));
        } else {
            let mut fields = vec![hidden("reason", reason.as_str())];
            match plan.kind {
                "certificate" => fields.push(hidden("serial", &plan.id)),
                "device" => {
                    fields.push(hidden("device", &plan.id));
                    fields.push(hidden("org", plan.org_id.as_deref().unwrap_or_default()));
                }
                _ => fields.push(hidden("org", &plan.id)),
            }
            fields.push(hidden("expected", &plan.count.to_string()));
            s.forms.push(danger(post_form(
                "confirm-revoke",
                "/admin/revoke",
                fields,
                format!(
                    "{} {} {}",
                    if hold {
                        t("一時停止する", "Suspend")
                    } else {
                        t("失効する", "Revoke")
                    },
                    plan.count,
                    t("件", "certificate(s)")
                ),
            )));
        }
        v.sections.push(s);
        Ok(v)
    })
}

async fn revoke(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let reason: Reason = p.get("reason").parse().map_err(ConsoleError::Invalid)?;
        let target = target_of(p.opt("serial"), p.opt("device"), p.opt("org"))?;
        let back = match &target {
            Target::Serial(s) => format!("/admin/certificates/{s}"),
            Target::Device { device_id, .. } => format!("/admin/devices/{device_id}"),
            Target::Org(_) => "/admin/devices".to_string(),
        };
        let plan = ops::plan_revocation(&c, &p.who, target.clone()).await?;
        if p.opt("expected")
            .is_some_and(|e| e != plan.count.to_string())
        {
            return Err(ConsoleError::Conflict(t(
                "確認後に対象の証明書が変わりました。もう一度確認してください。",
                "The certificates changed since you confirmed; review them again.",
            )));
        }
        ops::revoke(&c, &p.who, target, reason).await?;
        done(
            &back,
            if reason == Reason::CertificateHold {
                "held"
            } else {
                "revoked"
            },
        )
    })
}

async fn unhold(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        ops::unhold(&c, &p.who, &serial).await?;
        done(&format!("/admin/certificates/{serial}"), "released")
    })
}

// Audit log.

fn audit_query(raw: &Option<String>) -> AuditQuery {
    let q = |n| query_value(raw, n);
    AuditQuery {
        actor: q("actor"),
        action: q("action"),
        target: q("target"),
        since: q("since"),
        until: q("until"),
        format: q("format"),
    }
}

async fn audit(State(c): State<Console>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let path = path_with_query("/admin/audit", &raw);
    page_for!(c, headers, path, |who| {
        let q = audit_query(&raw);
        let entries = ops::search_audit(&c, &who, q.search(0)).await?;
        let mut v = view(t("監査ログ", "Audit log"), &path);
        let mut s = section(t("絞り込み", "Filter"));
        let val = |x: &Option<String>| x.clone().unwrap_or_default();
        s.forms.push(search_form(
            "audit-filter",
            "/admin/audit",
            vec![
                text_field("actor", t("実行者ID", "Actor id"), &val(&q.actor)),
                text_field(
                    "action",
                    t(
                        "操作（例: cert.revoke、接頭辞は cert.）",
                        "Action (e.g. cert.revoke; prefix: cert.)",
                    ),
                    &val(&q.action),
                ),
                text_field(
                    "target",
                    t("対象（例: cert:…）", "Target (e.g. cert:…)"),
                    &val(&q.target),
                ),
                text_field(
                    "since",
                    t("開始（RFC 3339）", "From (RFC 3339)"),
                    &val(&q.since),
                ),
                text_field(
                    "until",
                    t("終了（RFC 3339）", "Until (RFC 3339)"),
                    &val(&q.until),
                ),
            ],
        ));
        let filter = raw.clone().unwrap_or_default();
        let sep = if filter.is_empty() { "" } else { "&" };
        s.links.push((
            format!("/admin/audit/export?{filter}{sep}format=jsonl"),
            t("JSON Lines で書き出す", "Export JSON lines"),
            true,
        ));
        s.links.push((
            format!("/admin/audit/export?{filter}{sep}format=csv"),
            t("CSV で書き出す", "Export CSV"),
            true,
        ));
        s.forms.push(post_form(
            "verify",
            "/admin/audit/verify",
            vec![],
            t("ハッシュチェーンを検証", "Verify chain"),
        ));
        v.sections.push(s);
        let mut list = section(t("記録", "Entries"));
        list.id = "entries".into();
        list.table = Some(audit_table(&entries));
        v.sections.push(list);
        Ok(v)
    })
}

async fn audit_export(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/audit/export", &raw);
    let who = match staff(&c, &headers, &path).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = audit_query(&raw);
    let format = q.format.clone().unwrap_or_else(|| "jsonl".into());
    match crate::api::export(&c, &who, &q, &format).await {
        Ok(r) => r,
        Err(e) => error_page(&c, &headers, Some(&who), e),
    }
}

async fn audit_verify(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let report = ops::verify_audit(&c, &p.who).await?;
        let mut v = view(
            t("ハッシュチェーンの検証", "Chain verification"),
            "/admin/audit",
        );
        let mut s = section(t("結果", "Result"));
        s.id = "verify".into();
        match &report.broken {
            None => {
                s.text = format!(
                    "ok: {} {}",
                    report.entries,
                    t("件の記録を検証しました", "entries verified")
                );
            }
            Some(b) => {
                v.error = Some(t(
                    "ハッシュチェーンが壊れています。",
                    "The hash chain is broken.",
                ));
                s.text = format!("broken at entry {} ({}): {}", b.seq, b.id, b.reason);
            }
        }
        v.sections.push(s);
        Ok(v.render(&c, &headers, Some(&p.who)))
    })
}

async fn audit_entry(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/admin/audit/{id}");
    page_for!(c, headers, path, |who| {
        let e = ops::audit_entry(&c, &who, &id).await?;
        let mut v = view(
            format!("{} #{}", t("監査記録", "Audit entry"), e.seq),
            &path,
        );
        let mut s = section(e.action.clone());
        s.id = "entry".into();
        s.facts = vec![
            (t("番号", "Sequence"), e.seq.to_string()),
            ("ID".into(), e.id.clone()),
            (t("時刻", "Time"), e.at.clone()),
            (
                t("実行者", "Actor"),
                format!("{}:{}", e.actor_kind, e.actor_id),
            ),
            (t("操作", "Action"), e.action.clone()),
            (t("対象", "Target"), e.target.clone()),
            (t("結果", "Outcome"), e.outcome.clone()),
            (
                t("送信元", "Source address"),
                e.source_ip.clone().unwrap_or_default(),
            ),
            (
                t("リクエストID", "Request id"),
                e.request_id.clone().unwrap_or_default(),
            ),
            (t("直前のハッシュ", "Previous hash"), e.prev_hash.clone()),
            (t("ハッシュ", "Hash"), e.hash.clone()),
        ];
        s.pre = Some(
            serde_json::from_str::<serde_json::Value>(&e.details)
                .and_then(|d| serde_json::to_string_pretty(&d))
                .unwrap_or_else(|_| e.details.clone()),
        );
        v.sections.push(s);
        Ok(v)
    })
}

// Users.

async fn users(State(c): State<Console>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let path = path_with_query("/admin/users", &raw);
    page_for!(c, headers, path, |who| {
        let text = query_value(&raw, "q");
        let found = ops::search_users(&c, &who, text.clone()).await?;
        let mut v = view(t("利用者", "Users"), &path);
        let mut s = section(t("検索", "Search"));
        s.forms.push(search_form(
            "user-search",
            "/admin/users",
            vec![text_field(
                "q",
                t(
                    "ユーザー名・メール・名前・ID",
                    "Username, email, name or id",
                ),
                &text.unwrap_or_default(),
            )],
        ));
        v.sections.push(s);
        let mut list = section(t("アカウント", "Accounts"));
        list.id = "users".into();
        list.table = Some(user_table(&found));
        v.sections.push(list);
        Ok(v)
    })
}

fn user_table(found: &[crate::store::UserRow]) -> Table {
    table(
        &[
            ("ユーザー名", "Username"),
            ("名前", "Name"),
            ("メール", "Email"),
            ("組織", "Organization"),
            ("状態", "Status"),
            ("最終サインイン", "Last sign-in"),
        ],
        found
            .iter()
            .map(|u| {
                vec![
                    link(u.username.clone(), format!("/admin/users/{}", u.id)),
                    cell(u.name.clone().unwrap_or_default()),
                    cell(u.email.clone().unwrap_or_default()),
                    cell(u.org_id.clone().unwrap_or_default()),
                    cell(u.status.clone()),
                    cell(opt_time(u.last_login_at)),
                ]
            })
            .collect(),
    )
}

async fn user(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/users/{id}");
    page_for!(c, headers, path, |who| {
        let u = ops::user(&c, &who, &id).await?;
        let org = u.user.org_id.clone();
        let mut v = view(
            format!("{} {}", t("利用者", "User"), u.user.username),
            &path,
        );
        v.notice = notice_for(&raw);
        let mut s = section(t("アカウント", "Account"));
        s.id = "account".into();
        s.facts = vec![
            ("ID".into(), u.user.id.clone()),
            (t("ユーザー名", "Username"), u.user.username.clone()),
            (t("名前", "Name"), u.user.name.clone().unwrap_or_default()),
            (
                t("メール", "Email"),
                u.user.email.clone().unwrap_or_default(),
            ),
            (t("組織", "Organization"), org.clone().unwrap_or_default()),
            (t("状態", "Status"), u.user.status.clone()),
            (
                t("役割", "Roles"),
                u.roles
                    .iter()
                    .map(|(r, s)| format!("{}@{s}", r.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                t("必要な認証レベル", "Required level"),
                format!("AAL{}", u.min_aal),
            ),
            (t("パスキー", "Passkeys"), u.passkeys.to_string()),
            (
                t("認証アプリ", "Authenticator app"),
                if u.totp {
                    t("あり", "yes")
                } else {
                    t("なし", "no")
                },
            ),
            (
                t("回復コード残り", "Recovery codes left"),
                u.recovery_codes_left.to_string(),
            ),
            (
                t("身元確認レベル", "Identity assurance"),
                match &u.proofing {
                    Some(r) => format!("IAL{} ({})", r.level, r.provider),
                    None => format!("IAL{}", u.ial),
                },
            ),
            (
                t("身元確認記録", "Proofing record"),
                u.proofing
                    .as_ref()
                    .map(|r| format!("{} ({})", r.id, time(r.verified_at)))
                    .unwrap_or_default(),
            ),
            (
                t("連携アカウント", "Linked identity providers"),
                u.linked
                    .iter()
                    .map(|l| l.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ];
        let base = format!("/admin/users/{}", u.user.id);
        if who.may_in(Action::ManageUsers, org.as_deref()) {
            if u.user.status == "active" {
                s.forms.push(danger(post_form(
                    "disable",
                    format!("{base}/disable"),
                    vec![],
                    t("無効にする", "Disable"),
                )));
            } else {
                s.forms.push(post_form(
                    "enable",
                    format!("{base}/enable"),
                    vec![],
                    t("有効にする", "Enable"),
                ));
            }
            s.forms.push(post_form(
                "role",
                format!("{base}/roles"),
                vec![
                    select(
                        "role",
                        t("役割", "Role"),
                        "",
                        Role::ALL
                            .iter()
                            .map(|r| (r.as_str().to_string(), r.as_str().to_string()))
                            .collect(),
                    ),
                    required(text_field(
                        "scope",
                        t("範囲（組織IDまたは *）", "Scope (organization id or *)"),
                        org.as_deref().unwrap_or("*"),
                    )),
                    select(
                        "granted",
                        t("操作", "Change"),
                        "true",
                        vec![
                            ("true".into(), t("付与", "grant")),
                            ("false".into(), t("取り消し", "withdraw")),
                        ],
                    ),
                ],
                t("役割を変更", "Change role"),
            ));
        }
        if who.may_in(Action::EndSessions, org.as_deref()) {
            s.forms.push(danger(post_form(
                "end-sessions",
                format!("{base}/end-sessions"),
                vec![],
                t("すべてのセッションを終了", "End all sessions"),
            )));
        }
        if who.may_in(Action::ResetFactors, org.as_deref()) {
            s.forms.push(danger(post_form(
                "reset-factors",
                format!("{base}/reset-factors"),
                vec![
                    required(text_field(
                        "reproofing_reference",
                        t(
                            "本人確認の記録（IAL2以上は身元確認記録のID）",
                            "Re-proofing reference (the proofing record id for IAL2 and above)",
                        ),
                        "",
                    )),
                    text_field("reason", t("理由", "Reason"), ""),
                ],
                t("認証要素をリセット", "Reset factors"),
            )));
        }
        v.sections.push(s);
        if who.may_in(Action::RecordProofing, org.as_deref()) && who.user_id.is_some() {
            v.sections.push(counter_check_section(&base));
        }
        let mut sess = section(t("セッション", "Sessions"));
        sess.table = Some(table(
            &[
                ("開始", "Started"),
                ("方法", "Methods"),
                ("送信元", "Address"),
                ("ブラウザ", "Browser"),
            ],
            u.sessions
                .iter()
                .map(|x| {
                    vec![
                        cell(time(x.created_at)),
                        cell(x.amr.clone()),
                        cell(x.ip.clone().unwrap_or_default()),
                        cell(x.user_agent.clone().unwrap_or_default()),
                    ]
                })
                .collect(),
        ));
        v.sections.push(sess);
        let mut cons = section(t("同意", "Consents"));
        cons.table = Some(table(
            &[
                ("クライアント", "Client"),
                ("スコープ", "Scopes"),
                ("更新", "Updated"),
            ],
            u.consents
                .iter()
                .map(|x| {
                    vec![
                        cell(x.client_id.clone()),
                        cell(x.scopes.clone()),
                        cell(time(x.updated_at)),
                    ]
                })
                .collect(),
        ));
        v.sections.push(cons);
        if who.may_in(Action::ViewAudit, None) {
            let mut trail = section(t("監査記録", "Audit trail"));
            trail.table = Some(audit_table(&u.trail));
            v.sections.push(trail);
        }
        Ok(v)
    })
}

async fn user_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let back = format!("/admin/users/{id}");
        match action.as_str() {
            "disable" => {
                ops::set_user_status(&c, &p.who, &id, false).await?;
                done(&back, "disabled")
            }
            "enable" => {
                ops::set_user_status(&c, &p.who, &id, true).await?;
                done(&back, "enabled")
            }
            "end-sessions" => {
                ops::end_sessions(&c, &p.who, &id).await?;
                done(&back, "sessions")
            }
            "reset-factors" => {
                ops::reset_factors(
                    &c,
                    &p.who,
                    &id,
                    &p.get("reproofing_reference"),
                    p.opt("reason").as_deref(),
                )
                .await?;
                done(&back, "reset")
            }
            "proofing" => {
                let check = CounterCheck {
                    document_type: p.get("document_type"),
                    document_number: p.get("document_number"),
                    issuer: p.opt("issuer"),
                    level: p
                        .get("level")
                        .parse()
                        .map_err(|_| ConsoleError::Invalid("level must be 2 or 3".into()))?,
                    attributes: ATTRIBUTES
                        .iter()
                        .filter_map(|a| p.opt(a).map(|v| (a.to_string(), v)))
                        .collect(),
                };
                ops::record_proofing(&c, &p.who, &id, check).await?;
                done(&back, "proofed")
            }
            "roles" => {
                let role: Role = p.get("role").parse().map_err(ConsoleError::Invalid)?;
                ops::change_role(
                    &c,
                    &p.who,
                    &id,
                    role,
                    p.get("scope").trim(),
                    p.get("granted") != "false",
                )
                .await?;
                done(&back, "role")
            }
            other => Err(ConsoleError::NotFound(format!("action {other}"))),
        }
    })
}

/// The registrar's form for an in-person check of a document at the counter.
fn counter_check_section(base: &str) -> Section {
    let mut s = section(t("窓口での本人確認", "In-person identity check"));
    s.id = "counter-check".into();
    s.text = t(
        "本人確認書類を目の前の本人と照合してから記録してください。書類番号はハッシュとしてのみ保存されます。",
        "Record this only after checking the document against the person in front of you. The document number is stored only as a hash.",
    );
    let mut fields = vec![
        select(
            "document_type",
            t("書類の種類", "Document type"),
            DOCUMENT_TYPES[0],
            DOCUMENT_TYPES
                .iter()
                .map(|d| (d.to_string(), d.to_string()))
                .collect(),
        ),
        required(text_field(
            "document_number",
            t("書類番号", "Document number"),
            "",
        )),
        text_field("issuer", t("発行者", "Issuer"), ""),
        select(
            "level",
            t("確認のレベル", "Level the check supports"),
            "2",
            vec![
                (
                    "2".into(),
                    t("IAL2（書類の確認）", "IAL2 (document checked)"),
                ),
                (
                    "3".into(),
                    t(
                        "IAL3（写真付き書類を本人と照合）",
                        "IAL3 (photo ID matched to the person)",
                    ),
                ),
            ],
        ),
    ];
    fields.extend(
        ATTRIBUTES
            .iter()
            .map(|a| text_field(a, attribute_label(a), "")),
    );
    s.forms.push(post_form(
        "record-proofing",
        format!("{base}/proofing"),
        fields,
        t("確認を記録", "Record the check"),
    ));
    s
}

fn attribute_label(attribute: &str) -> String {
    match attribute {
        "family_name" => t("姓", "Family name"),
        "given_name" => t("名", "Given name"),
        "name" => t("氏名", "Full name"),
        "family_name#ja-Kana-JP" => t("姓（カナ）", "Family name (kana)"),
        "given_name#ja-Kana-JP" => t("名（カナ）", "Given name (kana)"),
        "birthdate" => t("生年月日（YYYY-MM-DD）", "Birthdate (YYYY-MM-DD)"),
        "gender" => t(
            "性別（male / female / other）",
            "Gender (male / female / other)",
        ),
        "address" => t("住所", "Address"),
        other => other.to_string(),
    }
}

// Clients.

/// The choices of a required level: none, or `AAL1`–`AAL3` / `IAL1`–`IAL3`.
fn required_level_options(kind: &str) -> Vec<(String, String)> {
    (0..=3)
        .map(|l| {
            (
                l.to_string(),
                if l == 0 {
                    t("指定なし", "none")
                } else {
                    format!("{kind}{l}")
                },
            )
        })
        .collect()
}

async fn clients(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    page_for!(c, headers, "/admin/clients", |who| {
        let list = ops::list_clients(&c, &who).await?;
        let mut v = view(t("クライアント", "Clients"), "/admin/clients");
        v.notice = notice_for(&raw);
        let mut s = section(t("登録済みのクライアント", "Registered clients"));
        s.id = "clients".into();
        s.table = Some(table(
            &[
                ("名前", "Name"),
                ("クライアントID", "Client id"),
                ("組織", "Organization"),
                ("状態", "Status"),
                ("必要なAAL", "Required AAL"),
            ],
            list.iter()
                .map(|cl| {
                    vec![
                        link(cl.name.clone(), format!("/admin/clients/{}", cl.client_id)),
                        cell(cl.client_id.clone()),
                        cell(cl.org_id.clone().unwrap_or_default()),
                        cell(cl.status.clone()),
                        cell(cl.min_aal.to_string()),
                    ]
                })
                .collect(),
        ));
        v.sections.push(s);
        if who.may(Action::ManageClients) {
            let orgs = ops::list_orgs(&c, &who).await?;
            let mut options: Vec<(String, String)> = Vec::new();
            if who.may_in(Action::ManageClients, None) {
                options.push((
                    String::new(),
                    t("市（組織なし）", "the city (no organization)"),
                ));
            }
            options.extend(
                orgs.iter()
                    .filter(|o| who.may_in(Action::ManageClients, Some(&o.id)))
                    .map(|o| (o.id.clone(), o.name.clone())),
            );
            let mut add = section(t("クライアントを登録", "Register a client"));
            if !who.may_in(Action::ApproveClients, None) {
                add.text = t(
                    "登録したクライアントは、市の管理者が承認するまで保留になります。",
                    "A client you register stays pending until a city administrator approves it.",
                );
            }
            add.forms.push(post_form(
                "new-client",
                "/admin/clients",
                vec![
                    required(text_field("client_name", t("名前", "Name"), "")),
                    select("org_id", t("組織", "Organization"), "", options),
                    Field {
                        kind: "textarea",
                        name: "redirect_uris",
                        label: t(
                            "リダイレクトURI（1行に1つ）",
                            "Redirect URIs (one per line)",
                        ),
                        ..Field::default()
                    },
                    select(
                        "min_aal",
                        t("必要な認証レベル", "Required level"),
                        "0",
                        required_level_options("AAL"),
                    ),
                ],
                t("登録", "Register"),
            ));
            v.sections.push(add);
        }
        Ok(v)
    })
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn secret_view(title: String, client_id: &str, secret: Option<&str>) -> View {
    let mut v = view(title, "/admin/clients");
    let mut s = section(t(
        "このシークレットは一度だけ表示されます",
        "This secret is shown once",
    ));
    s.id = "secret".into();
    s.facts = vec![(t("クライアントID", "Client id"), client_id.to_string())];
    if let Some(secret) = secret {
        s.facts.push((
            t("クライアントシークレット", "Client secret"),
            secret.to_string(),
        ));
    }
    s.links.push((
        format!("/admin/clients/{client_id}"),
        t("クライアントを表示", "Show the client"),
        false,
    ));
    v.sections.push(s);
    v
}

async fn create_client(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let req = ClientRequest {
            client_name: p.get("client_name"),
            description: None,
            org_id: p.opt("org_id"),
            redirect_uris: lines(&p.get("redirect_uris")),
            post_logout_redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            token_endpoint_auth_method: None,
            scope: None,
            jwks: None,
            jwks_uri: None,
            id_token_signed_response_alg: None,
            require_pushed_authorization_requests: false,
            require_consent: None,
            backchannel_logout_uri: None,
            min_aal: p.get("min_aal").parse().unwrap_or(0),
        };
        let created = ops::create_client(&c, &p.who, req.into_new()?).await?;
        let mut v = secret_view(
            t("クライアントを登録しました", "Client registered"),
            &created.client.client_id,
            created.client_secret.as_deref(),
        );
        v.status = StatusCode::CREATED;
        Ok(v.render(&c, &headers, Some(&p.who)))
    })
}

/// The status buttons of something a city administrator vets (a client, an upstream):
/// approve while it is pending (for those who may), enable when disabled, else disable.
fn status_forms(base: &str, status: &str, may_approve: bool) -> Vec<Form> {
    let mut forms = Vec::new();
    if status == "pending" && may_approve {
        forms.push(post_form(
            "approve",
            format!("{base}/approve"),
            vec![],
            t("承認", "Approve"),
        ));
    }
    forms.push(if status == "disabled" {
        post_form(
            "enable",
            format!("{base}/enable"),
            vec![],
            t("有効にする", "Enable"),
        )
    } else {
        danger(post_form(
            "disable",
            format!("{base}/disable"),
            vec![],
            t("無効にする", "Disable"),
        ))
    });
    forms
}

/// The client page; after a refused stale edit it shows the newer version with the error.
fn client_view(
    who: &Caller,
    page: &ClientPage,
    notice: Option<String>,
    error: Option<String>,
) -> View {
    let (cl, ia, quota) = (
        &page.client,
        &page.assurance,
        page.quota.requests_per_minute,
    );
    let path = format!("/admin/clients/{}", cl.client_id);
    let mut v = view(
        format!("{} {}", t("クライアント", "Client"), cl.name),
        &path,
    );
    v.notice = notice;
    v.error = error;
    let mut s = section(t("登録情報", "Registration"));
    s.id = "client".into();
    s.facts = vec![
        (t("クライアントID", "Client id"), cl.client_id.clone()),
        (t("名前", "Name"), cl.name.clone()),
        (
            t("組織", "Organization"),
            cl.org_id.clone().unwrap_or_default(),
        ),
        (t("状態", "Status"), cl.status.clone()),
        (
            t("認証方式", "Authentication"),
            cl.auth_method.as_str().to_string(),
        ),
        (
            t("リダイレクトURI", "Redirect URIs"),
            cl.redirect_uris.join(" "),
        ),
        (
            t("必要な認証レベル", "Required level"),
            cl.min_aal.to_string(),
        ),
        (t("版", "Version"), cl.version.to_string()),
    ];
    let base = path.clone();
    if who.may_in(Action::ManageClients, cl.org_id.as_deref()) {
        s.forms.push(post_form(
            "edit-client",
            base.clone(),
            vec![
                hidden("version", &cl.version.to_string()),
                Field {
                    kind: "textarea",
                    name: "redirect_uris",
                    label: t(
                        "リダイレクトURI（1行に1つ）",
                        "Redirect URIs (one per line)",
                    ),
                    value: cl.redirect_uris.join("\n"),
                    ..Field::default()
                },
                select(
                    "min_aal",
                    t("必要な認証レベル", "Required level"),
                    &cl.min_aal.to_string(),
                    required_level_options("AAL"),
                ),
            ],
            t("保存", "Save"),
        ));
        if cl.auth_method.uses_secret() {
            s.forms.push(danger(post_form(
                "rotate",
                format!("{base}/rotate"),
                vec![],
                t("シークレットを再発行", "Rotate secret"),
            )));
        }
        s.forms.extend(status_forms(
            &base,
            &cl.status,
            who.may_in(Action::ApproveClients, None),
        ));
    }
    v.sections.push(s);
    v.sections.push(client_assurance_section(who, cl, ia));
    v.sections.push(client_quota_section(who, cl, quota));
    v
}

/// The client's request quota at the endpoints it calls; city administrators change it.
fn client_quota_section(who: &Caller, cl: &Client, quota: Option<i64>) -> Section {
    let mut s = section(t("リクエスト上限", "Request quota"));
    s.id = "client-quota".into();
    s.facts = vec![(
        t("1分あたりのリクエスト", "Requests per minute"),
        quota.map_or_else(|| t("上限なし", "not limited"), |n| n.to_string()),
    )];
    if who.may_in(Action::ApproveClients, None) {
        s.forms.push(post_form(
            "edit-quota",
            format!("/admin/clients/{}/quota", cl.client_id),
            vec![text_field(
                "requests_per_minute",
                t(
                    "1分あたりのリクエスト（空欄で上限なし）",
                    "Requests per minute (empty: not limited)",
                ),
                &quota.map(|n| n.to_string()).unwrap_or_default(),
            )],
            t("保存", "Save"),
        ));
    }
    s
}

/// The identity level a client requires, the verified claims it may receive and the
/// proofing providers its residents are offered; city administrators change them.
fn client_assurance_section(who: &Caller, cl: &Client, ia: &ClientAssurance) -> Section {
    let mut s = section(t("身元確認", "Identity assurance"));
    s.id = "client-assurance".into();
    s.facts = vec![
        (
            t("必要な身元確認レベル", "Required identity level"),
            if ia.min_ial == 0 {
                t("指定なし", "none")
            } else {
                format!("IAL{}", ia.min_ial)
            },
        ),
        (
            t("受け取れる確認済み属性", "Verified claims it may receive"),
            ia.verified_claims.join(" "),
        ),
        (
            t("案内する身元確認の方法", "Proofing providers offered"),
            ia.proofing_providers.join(" "),
        ),
    ];
    if who.may_in(Action::ApproveClients, None) {
        s.forms.push(post_form(
            "edit-assurance",
            format!("/admin/clients/{}/assurance", cl.client_id),
            vec![
                select(
                    "min_ial",
                    t("必要な身元確認レベル", "Required identity level"),
                    &ia.min_ial.to_string(),
                    required_level_options("IAL"),
                ),
                text_field(
                    "verified_claims",
                    t(
                        "受け取れる確認済み属性（空白区切り）",
                        "Verified claims it may receive (space-separated)",
                    ),
                    &ia.verified_claims.join(" "),
                ),
                text_field(
                    "proofing_providers",
                    t(
                        "案内する身元確認の方法（空白区切り）",
                        "Proofing providers offered (space-separated)",
                    ),
                    &ia.proofing_providers.join(" "),
                ),
            ],
            t("保存", "Save"),
        ));
    }
    s
}

async fn client(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/clients/{id}");
    page_for!(c, headers, path, |who| {
        let page = ops::client_page(&c, &who, &id).await?;
        Ok(client_view(&who, &page, notice_for(&raw), None))
    })
}

async fn edit_client(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let edit = ClientEdit {
            redirect_uris: lines(&p.get("redirect_uris")),
            min_aal: p
                .get("min_aal")
                .parse()
                .map_err(|_| ConsoleError::Invalid("min_aal must be 0 to 3".into()))?,
            expected_version: p
                .get("version")
                .parse()
                .map_err(|_| ConsoleError::Invalid("the form has no version".into()))?,
        };
        match ops::edit_client(&c, &p.who, &id, edit).await {
            Ok(_) => done(&format!("/admin/clients/{id}"), "saved"),
            Err(e @ ConsoleError::Stale(Stale::Client(_))) => {
                let page = ops::client_page(&c, &p.who, &id).await?;
                let mut v = client_view(&p.who, &page, None, Some(e.public_message()));
                v.status = StatusCode::CONFLICT;
                Ok(v.render(&c, &headers, Some(&p.who)))
            }
            Err(e) => Err(e),
        }
    })
}

async fn client_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let back = format!("/admin/clients/{id}");
        let change = match action.as_str() {
            "rotate" => {
                let secret = ops::rotate_client_secret(&c, &p.who, &id).await?;
                return Ok(secret_view(
                    t("シークレットを再発行しました", "Secret rotated"),
                    &id,
                    Some(&secret),
                )
                .render(&c, &headers, Some(&p.who)));
            }
            "assurance" => {
                let settings = ClientAssurance {
                    min_ial: p
                        .get("min_ial")
                        .parse()
                        .map_err(|_| ConsoleError::Invalid("min_ial must be 0 to 3".into()))?,
                    verified_claims: words(&p.get("verified_claims")),
                    proofing_providers: words(&p.get("proofing_providers")),
                };
                ops::set_client_assurance(&c, &p.who, &id, settings).await?;
                return done(&back, "saved");
            }
            "quota" => {
                let limit = match p.opt("requests_per_minute") {
                    None => None,
                    Some(n) => Some(n.trim().parse().map_err(|_| {
                        ConsoleError::Invalid("requests per minute must be a whole number".into())
                    })?),
                };
                ops::set_client_quota(&c, &p.who, &id, limit).await?;
                return done(&back, "saved");
            }
            "approve" => ClientChange::Approve,
            "disable" => ClientChange::Disable,
            "enable" => ClientChange::Enable,
            other => return Err(ConsoleError::NotFound(format!("action {other}"))),
        };
        ops::change_client(&c, &p.who, &id, change).await?;
        done(
            &back,
            match change {
                ClientChange::Approve => "approved",
                ClientChange::Disable => "disabled",
                ClientChange::Enable => "enabled",
            },
        )
    })
}

// Upstream identity providers.

fn level_options() -> Vec<(String, String)> {
    (1..=3).map(|l| (l.to_string(), l.to_string())).collect()
}

fn yes_no() -> Vec<(String, String)> {
    vec![
        ("true".into(), t("はい", "yes")),
        ("false".into(), t("いいえ", "no")),
    ]
}

fn textarea(name: &'static str, label: String, value: String) -> Field {
    Field {
        kind: "textarea",
        name,
        label,
        value,
        ..Field::default()
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn level(p: &Posted, name: &str) -> Result<u8, ConsoleError> {
    p.get(name)
        .parse()
        .map_err(|_| ConsoleError::Invalid(format!("{name} must be 1, 2 or 3")))
}

async fn upstreams(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    page_for!(c, headers, "/admin/upstreams", |who| {
        let list = ops::list_upstreams(&c, &who).await?;
        let mut v = view(t("外部IdP", "Identity providers"), "/admin/upstreams");
        v.notice = notice_for(&raw);
        let mut s = section(t("登録済みの外部IdP", "Upstream identity providers"));
        s.id = "upstreams".into();
        s.table = Some(table(
            &[
                ("名前", "Name"),
                ("別名", "Alias"),
                ("組織", "Organization"),
                ("発行者", "Issuer"),
                ("状態", "Status"),
                ("信頼の上限", "Trust ceiling"),
            ],
            list.iter()
                .map(|u| {
                    vec![
                        link(u.name.clone(), format!("/admin/upstreams/{}", u.alias)),
                        cell(u.alias.clone()),
                        cell(u.org_id.clone()),
                        cell(u.issuer.clone()),
                        cell(u.status.clone()),
                        cell(format!(
                            "IAL{} / AAL{}",
                            u.ceiling.max_ial, u.ceiling.max_aal
                        )),
                    ]
                })
                .collect(),
        ));
        v.sections.push(s);
        if who.may(Action::ManageUpstreams) {
            let orgs = ops::list_orgs(&c, &who).await?;
            let options = orgs
                .iter()
                .filter(|o| {
                    o.status == "active" && who.may_in(Action::ManageUpstreams, Some(&o.id))
                })
                .map(|o| (o.id.clone(), o.name.clone()))
                .collect();
            let mut add = section(t("外部IdPを追加", "Add an identity provider"));
            add.text = if who.may_in(Action::ApproveUpstreams, None) {
                t(
                    "発行者のディスカバリ文書を今読み込みます。",
                    "The issuer's discovery document is read now.",
                )
            } else {
                t(
                    "発行者のディスカバリ文書を今読み込みます。追加した外部IdPは、市の管理者が承認するまで保留になります。",
                    "The issuer's discovery document is read now. A provider you add stays pending until a city administrator approves it.",
                )
            };
            add.forms.push(post_form(
                "new-upstream",
                "/admin/upstreams",
                vec![
                    required(text_field(
                        "alias",
                        t("別名（URL用、英小文字・数字・-）", "Alias (for URLs: a-z, 0-9, -)"),
                        "",
                    )),
                    required(text_field(
                        "name",
                        t("ボタンに表示する名前", "Name on the sign-in button"),
                        "",
                    )),
                    select("org_id", t("組織", "Organization"), "", options),
                    required(text_field(
                        "issuer",
                        t("発行者URL", "Issuer URL"),
                        "https://",
                    )),
                    required(text_field(
                        "client_id",
                        t("Kizunaのクライアントid", "Kizuna's client id there"),
                        "",
                    )),
                    select(
                        "client_auth",
                        t("クライアント認証", "Client authentication"),
                        "client_secret_basic",
                        vec![
                            ("client_secret_basic".into(), "client_secret_basic".into()),
                            ("private_key_jwt".into(), "private_key_jwt".into()),
                        ],
                    ),
                    select(
                        "key_algorithm",
                        t("鍵の種類（private_key_jwt）", "Key type (private_key_jwt)"),
                        "p256",
                        vec![
                            ("p256".into(), "P-256 (ES256)".into()),
                            ("rsa2048".into(), "RSA 2048 (RS256)".into()),
                        ],
                    ),
                    Field {
                        kind: "password",
                        ..text_field(
                            "client_secret",
                            t(
                                "クライアントシークレット（client_secret_basic）",
                                "Client secret (client_secret_basic)",
                            ),
                            "",
                        )
                    },
                    text_field(
                        "scopes",
                        t("スコープ（空白区切り）", "Scopes (space-separated)"),
                        "openid email profile",
                    ),
                    text_field(
                        "acr_values",
                        t("送る acr_values（空白区切り）", "acr_values to send (space-separated)"),
                        "",
                    ),
                    textarea(
                        "claim_map",
                        t(
                            "属性の対応（1行に 属性=クレーム、空欄は標準）",
                            "Claim mapping (ATTRIBUTE=CLAIM per line; empty for the standard claims)",
                        ),
                        String::new(),
                    ),
                    textarea(
                        "acr_map",
                        t(
                            "acr の意味（1行に 値=AAL:IAL）",
                            "What acr values mean (VALUE=AAL:IAL per line)",
                        ),
                        String::new(),
                    ),
                    select(
                        "max_ial",
                        t("信頼の上限：身元確認レベル", "Trust ceiling: identity assurance"),
                        "1",
                        level_options(),
                    ),
                    select(
                        "max_aal",
                        t("信頼の上限：認証レベル", "Trust ceiling: authentication assurance"),
                        "1",
                        level_options(),
                    ),
                    select(
                        "jit",
                        t("初回サインインでアカウントを作成", "Create accounts at first sign-in"),
                        "true",
                        yes_no(),
                    ),
                    text_field(
                        "email_domains",
                        t(
                            "この IdP を使うメールドメイン（空白区切り）",
                            "Email domains that sign in here (space-separated)",
                        ),
                        "",
                    ),
                    select(
                        "propagate_logout",
                        t("サインアウトを IdP に伝える", "Continue sign-out at the provider"),
                        "true",
                        yes_no(),
                    ),
                ],
                t("追加", "Add"),
            ));
            v.sections.push(add);
        }
        Ok(v)
    })
}

/// A form's mapping lines (`ATTRIBUTE=CLAIM`, `VALUE=AAL:IAL`) as the API's maps; the API's
/// conversion then checks them as it checks a JSON request.
fn posted_maps(p: &Posted) -> Result<(ClaimMap, AcrMap), ConsoleError> {
    Ok((
        claim_map_from(&lines(&p.get("claim_map")), ClaimMap::new())?,
        acr_map_from(&lines(&p.get("acr_map")))?,
    ))
}

fn posted_ceiling(p: &Posted) -> Result<TrustCeiling, ConsoleError> {
    Ok(TrustCeiling {
        max_ial: level(p, "max_ial")?,
        max_aal: level(p, "max_aal")?,
    })
}

async fn create_upstream(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let (claim_map, acr_map) = posted_maps(&p)?;
        let new = UpstreamRequest {
            alias: p.get("alias").trim().to_string(),
            name: p.get("name").trim().to_string(),
            org_id: p.get("org_id"),
            issuer: p.get("issuer").trim().to_string(),
            client_id: p.get("client_id").trim().to_string(),
            client_auth: p.opt("client_auth"),
            client_secret: p.opt("client_secret"),
            key_algorithm: p.opt("key_algorithm"),
            scopes: words(&p.get("scopes")),
            acr_values: words(&p.get("acr_values")),
            claim_map: (!claim_map.is_empty()).then_some(claim_map),
            acr_map,
            ceiling: Some(posted_ceiling(&p)?),
            jit: p.get("jit") != "false",
            email_domains: words(&p.get("email_domains")),
            propagate_logout: p.get("propagate_logout") != "false",
        }
        .into_new()?;
        let created = ops::create_upstream(&c, &p.who, new).await?;
        done(
            &format!("/admin/upstreams/{}", created.upstream.alias),
            "created",
        )
    })
}

/// The upstream page; after a refused stale edit it shows the newer version with the error.
fn upstream_view(
    who: &Caller,
    uv: &UpstreamView,
    notice: Option<String>,
    error: Option<String>,
) -> View {
    let u = &uv.upstream;
    let path = format!("/admin/upstreams/{}", u.alias);
    let mut v = view(
        format!("{} {}", t("外部IdP", "Identity provider"), u.name),
        &path,
    );
    v.notice = notice;
    v.error = error;
    let mut s = section(t("設定", "Settings"));
    s.id = "upstream".into();
    s.facts = vec![
        ("ID".into(), u.id.clone()),
        (t("別名", "Alias"), u.alias.clone()),
        (t("名前", "Name"), u.name.clone()),
        (t("組織", "Organization"), u.org_id.clone()),
        (t("発行者", "Issuer"), u.issuer.clone()),
        (t("クライアントid", "Client id"), u.client_id.clone()),
        (
            t("クライアント認証", "Client authentication"),
            u.client_auth.as_str().to_string(),
        ),
        (t("状態", "Status"), u.status.clone()),
        (t("スコープ", "Scopes"), u.scopes.join(" ")),
        (
            t("送る acr_values", "acr_values sent"),
            u.acr_values.join(" "),
        ),
        (
            t("属性の対応", "Claim mapping"),
            claim_entries(&u.claim_map).join(", "),
        ),
        (
            t("acr の意味", "What acr values mean"),
            acr_entries(&u.acr_map).join(", "),
        ),
        (
            t("信頼の上限", "Trust ceiling"),
            format!("IAL{} / AAL{}", u.ceiling.max_ial, u.ceiling.max_aal),
        ),
        (
            t(
                "初回サインインでアカウントを作成",
                "Accounts created at first sign-in",
            ),
            if u.jit {
                t("はい", "yes")
            } else {
                t("いいえ", "no")
            },
        ),
        (
            t("メールドメイン", "Email domains"),
            u.email_domains.join(" "),
        ),
        (
            t("サインアウトを伝える", "Sign-out continues upstream"),
            if u.propagate_logout {
                t("はい", "yes")
            } else {
                t("いいえ", "no")
            },
        ),
        (t("版", "Version"), u.version.to_string()),
    ];
    let manage = who.may_in(Action::ManageUpstreams, Some(&u.org_id));
    let trust = who.may_in(Action::ApproveUpstreams, None);
    if manage {
        let mut fields = vec![
            hidden("version", &u.version.to_string()),
            required(text_field("name", t("名前", "Name"), &u.name)),
            text_field("scopes", t("スコープ", "Scopes"), &u.scopes.join(" ")),
            text_field(
                "acr_values",
                t("送る acr_values", "acr_values to send"),
                &u.acr_values.join(" "),
            ),
            textarea(
                "claim_map",
                t(
                    "属性の対応（1行に 属性=クレーム）",
                    "Claim mapping (ATTRIBUTE=CLAIM per line)",
                ),
                claim_entries(&u.claim_map).join("\n"),
            ),
            textarea(
                "acr_map",
                t(
                    "acr の意味（1行に 値=AAL:IAL）",
                    "What acr values mean (VALUE=AAL:IAL per line)",
                ),
                acr_entries(&u.acr_map).join("\n"),
            ),
            select(
                "jit",
                t(
                    "初回サインインでアカウントを作成",
                    "Create accounts at first sign-in",
                ),
                &u.jit.to_string(),
                yes_no(),
            ),
            select(
                "propagate_logout",
                t(
                    "サインアウトを IdP に伝える",
                    "Continue sign-out at the provider",
                ),
                &u.propagate_logout.to_string(),
                yes_no(),
            ),
        ];
        if u.client_auth == ClientAuth::ClientSecretBasic {
            fields.push(Field {
                kind: "password",
                ..text_field(
                    "client_secret",
                    t(
                        "新しいクライアントシークレット（変更する場合のみ）",
                        "New client secret (only to replace it)",
                    ),
                    "",
                )
            });
        }
        if trust {
            fields.extend([
                select(
                    "max_ial",
                    t(
                        "信頼の上限：身元確認レベル",
                        "Trust ceiling: identity assurance",
                    ),
                    &u.ceiling.max_ial.to_string(),
                    level_options(),
                ),
                select(
                    "max_aal",
                    t(
                        "信頼の上限：認証レベル",
                        "Trust ceiling: authentication assurance",
                    ),
                    &u.ceiling.max_aal.to_string(),
                    level_options(),
                ),
                text_field(
                    "email_domains",
                    t(
                        "メールドメイン（空白区切り）",
                        "Email domains (space-separated)",
                    ),
                    &u.email_domains.join(" "),
                ),
            ]);
        }
        s.forms.push(post_form(
            "edit-upstream",
            path.clone(),
            fields,
            t("保存", "Save"),
        ));
        s.forms.extend(status_forms(&path, &u.status, trust));
    }
    v.sections.push(s);
    let mut reg = section(t("外部IdPに登録する値", "What to register at the provider"));
    reg.id = "registration".into();
    reg.facts = vec![
        (
            t("リダイレクトURI", "Redirect URI"),
            uv.registration.redirect_uri.clone(),
        ),
        (
            t("バックチャネルログアウトURI", "Back-channel logout URI"),
            uv.registration.backchannel_logout_uri.clone(),
        ),
        (
            t("ログアウト後のリダイレクトURI", "Post-logout redirect URI"),
            uv.registration.post_logout_redirect_uri.clone(),
        ),
    ];
    if let Some(jwks_uri) = &uv.registration.jwks_uri {
        reg.facts.push(("jwks_uri".into(), jwks_uri.clone()));
    }
    reg.pre = uv
        .jwks
        .as_ref()
        .map(|j| serde_json::to_string_pretty(j).unwrap_or_default());
    v.sections.push(reg);
    v
}

async fn upstream(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/upstreams/{id}");
    page_for!(c, headers, path, |who| {
        let uv = ops::upstream(&c, &who, &id).await?;
        Ok(upstream_view(&who, &uv, notice_for(&raw), None))
    })
}

async fn edit_upstream(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let trust = p.who.may_in(Action::ApproveUpstreams, None);
        let (claim_map, acr_map) = posted_maps(&p)?;
        let edit = UpstreamPatch {
            version: p
                .get("version")
                .parse()
                .map_err(|_| ConsoleError::Invalid("the form has no version".into()))?,
            name: Some(p.get("name").trim().to_string()),
            client_secret: p.opt("client_secret"),
            scopes: Some(words(&p.get("scopes"))),
            acr_values: Some(words(&p.get("acr_values"))),
            claim_map: Some(claim_map),
            acr_map: Some(acr_map),
            ceiling: if trust {
                Some(posted_ceiling(&p)?)
            } else {
                None
            },
            jit: Some(p.get("jit") != "false"),
            email_domains: trust.then(|| words(&p.get("email_domains"))),
            propagate_logout: Some(p.get("propagate_logout") != "false"),
        }
        .into_edit()?;
        match ops::edit_upstream(&c, &p.who, &id, edit).await {
            Ok(uv) => done(&format!("/admin/upstreams/{}", uv.upstream.alias), "saved"),
            Err(e @ ConsoleError::Stale(_)) => {
                let message = e.public_message();
                let current = ops::upstream(&c, &p.who, &id).await?;
                let mut v = upstream_view(&p.who, &current, None, Some(message));
                v.status = StatusCode::CONFLICT;
                Ok(v.render(&c, &headers, Some(&p.who)))
            }
            Err(e) => Err(e),
        }
    })
}

async fn upstream_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let change = match action.as_str() {
            "approve" => UpstreamChange::Approve,
            "disable" => UpstreamChange::Disable,
            "enable" => UpstreamChange::Enable,
            other => return Err(ConsoleError::NotFound(format!("action {other}"))),
        };
        let uv = ops::change_upstream(&c, &p.who, &id, change).await?;
        done(
            &format!("/admin/upstreams/{}", uv.upstream.alias),
            match change {
                UpstreamChange::Approve => "approved",
                UpstreamChange::Disable => "disabled",
                UpstreamChange::Enable => "enabled",
            },
        )
    })
}

// Organizations.

fn kind_options() -> Vec<(String, String)> {
    kizuna_core::orgs::OrgKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), k.as_str().to_string()))
        .collect()
}

async fn orgs(State(c): State<Console>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    page_for!(c, headers, "/admin/orgs", |who| {
        let list = ops::list_orgs(&c, &who).await?;
        let mut v = view(t("組織", "Organizations"), "/admin/orgs");
        v.notice = notice_for(&raw);
        let mut s = section(t("組織一覧", "Organizations"));
        s.id = "orgs".into();
        s.table = Some(table(
            &[
                ("名前", "Name"),
                ("日本語名", "Japanese name"),
                ("種類", "Kind"),
                ("状態", "Status"),
                ("ID", "Id"),
            ],
            list.iter()
                .map(|o| {
                    vec![
                        link(o.name.clone(), format!("/admin/orgs/{}", o.id)),
                        cell(o.name_ja.clone().unwrap_or_default()),
                        cell(o.kind.as_str()),
                        cell(o.status.clone()),
                        cell(o.id.clone()),
                    ]
                })
                .collect(),
        ));
        v.sections.push(s);
        if who.may_in(Action::ManageOrgs, None) {
            let mut add = section(t("組織を追加", "Add an organization"));
            add.forms.push(post_form(
                "new-org",
                "/admin/orgs",
                vec![
                    required(text_field("name", t("名前", "Name"), "")),
                    text_field("name_ja", t("日本語名", "Japanese name"), ""),
                    select("kind", t("種類", "Kind"), "other", kind_options()),
                ],
                t("追加", "Add"),
            ));
            v.sections.push(add);
        }
        Ok(v)
    })
}

fn org_request(p: &Posted, version: Option<i64>) -> OrgRequest {
    OrgRequest {
        name: p.get("name"),
        name_ja: p.opt("name_ja"),
        kind: p.opt("kind"),
        version,
    }
}

async fn create_org(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let org = ops::create_org(&c, &p.who, org_request(&p, None).organization()?).await?;
        done(&format!("/admin/orgs/{}", org.id), "created")
    })
}

/// The relying parties and upstream identity providers of one organization, as far as the
/// viewer may see them.
async fn org_partners(c: &Console, who: &Caller, org_id: &str) -> Result<Section, ConsoleError> {
    let mut s = section(t(
        "この組織のクライアントと外部IdP",
        "This organization's clients and identity providers",
    ));
    s.id = "partners".into();
    let mut rows = Vec::new();
    if who.may(Action::ViewClients) {
        for cl in ops::list_clients(c, who).await? {
            if cl.org_id.as_deref() == Some(org_id) {
                rows.push(vec![
                    cell(t("クライアント", "Client")),
                    link(cl.name.clone(), format!("/admin/clients/{}", cl.client_id)),
                    cell(cl.status.clone()),
                ]);
            }
        }
    }
    if who.may(Action::ViewUpstreams) {
        for u in ops::list_upstreams(c, who).await? {
            if u.org_id == org_id {
                rows.push(vec![
                    cell(t("外部IdP", "Identity provider")),
                    link(u.name.clone(), format!("/admin/upstreams/{}", u.alias)),
                    cell(u.status.clone()),
                ]);
            }
        }
    }
    s.table = Some(table(
        &[("種類", "Kind"), ("名前", "Name"), ("状態", "Status")],
        rows,
    ));
    Ok(s)
}

fn org_view(
    who: &Caller,
    o: &kizuna_core::orgs::Organization,
    notice: Option<String>,
    error: Option<String>,
) -> View {
    let path = format!("/admin/orgs/{}", o.id);
    let mut v = view(format!("{} {}", t("組織", "Organization"), o.name), &path);
    v.notice = notice;
    v.error = error;
    let mut s = section(t("組織", "Organization"));
    s.id = "org".into();
    s.facts = vec![
        ("ID".into(), o.id.clone()),
        (t("名前", "Name"), o.name.clone()),
        (
            t("日本語名", "Japanese name"),
            o.name_ja.clone().unwrap_or_default(),
        ),
        (t("種類", "Kind"), o.kind.as_str().to_string()),
        (t("状態", "Status"), o.status.clone()),
        (t("版", "Version"), o.version.to_string()),
    ];
    s.links.push((
        format!("/admin/devices?org={}", o.id),
        t(
            "この組織の機器と証明書",
            "This organization's devices and certificates",
        ),
        false,
    ));
    if who.may_in(Action::ManageOrgs, None) {
        s.forms.push(post_form(
            "edit-org",
            path.clone(),
            vec![
                hidden("version", &o.version.to_string()),
                required(text_field("name", t("名前", "Name"), &o.name)),
                text_field(
                    "name_ja",
                    t("日本語名", "Japanese name"),
                    o.name_ja.as_deref().unwrap_or_default(),
                ),
                select("kind", t("種類", "Kind"), o.kind.as_str(), kind_options()),
            ],
            t("保存", "Save"),
        ));
        if o.status == "active" {
            s.forms.push(danger(post_form(
                "disable-org",
                format!("{path}/disable"),
                vec![],
                t("無効にする", "Disable"),
            )));
        } else {
            s.forms.push(post_form(
                "enable-org",
                format!("{path}/enable"),
                vec![],
                t("有効にする", "Enable"),
            ));
        }
    }
    v.sections.push(s);
    v
}

async fn org(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/orgs/{id}");
    page_for!(c, headers, path, |who| {
        let o = ops::org(&c, &who, &id).await?;
        let mut v = org_view(&who, &o, notice_for(&raw), None);
        v.sections.push(org_partners(&c, &who, &o.id).await?);
        Ok(v)
    })
}

async fn edit_org(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let version: i64 = p
            .get("version")
            .parse()
            .map_err(|_| ConsoleError::Invalid("the form has no version".into()))?;
        let new = org_request(&p, Some(version)).organization()?;
        match ops::update_org(&c, &p.who, &id, version, new).await {
            Ok(_) => done(&format!("/admin/orgs/{id}"), "saved"),
            Err(e @ ConsoleError::Stale(_)) => {
                let message = e.public_message();
                let ConsoleError::Stale(Stale::Org(current)) = e else {
                    return Err(e);
                };
                let mut v = org_view(&p.who, &current, None, Some(message));
                v.status = StatusCode::CONFLICT;
                Ok(v.render(&c, &headers, Some(&p.who)))
            }
            Err(e) => Err(e),
        }
    })
}

async fn org_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let active = match action.as_str() {
            "disable" => false,
            "enable" => true,
            other => return Err(ConsoleError::NotFound(format!("action {other}"))),
        };
        ops::set_org_status(&c, &p.who, &id, active).await?;
        done(
            &format!("/admin/orgs/{id}"),
            if active { "enabled" } else { "disabled" },
        )
    })
}

// Reviews.

async fn reviews(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/reviews", &raw);
    page_for!(c, headers, path, |who| {
        let days: i64 = match query_value(&raw, "days") {
            Some(d) => d
                .parse()
                .map_err(|_| ConsoleError::Invalid("days must be a number".into()))?,
            None => 90,
        };
        let r = ops::review(&c, &who, days).await?;
        let mut v = view(t("定期棚卸し", "Periodic review"), &path);
        v.notice = notice_for(&raw);
        let mut s = section(t("期間", "Period"));
        s.forms.push(search_form(
            "review-days",
            "/admin/reviews",
            vec![text_field("days", t("日数", "Days"), &days.to_string())],
        ));
        v.sections.push(s);
        let mut unused = section(format!(
            "{} ({days} {})",
            t("使われていないアカウント", "Accounts unused"),
            t("日", "days")
        ));
        unused.id = "unused".into();
        let mut tbl = user_table(&r.unused);
        for (row, u) in tbl.rows.iter_mut().zip(&r.unused) {
            row.select = u.id.clone();
        }
        if who.may(Action::ManageUsers) {
            tbl.select = Some(("bulk-disable".into(), "user_id".into()));
            unused.forms.push(danger(post_form(
                "bulk-disable",
                "/admin/reviews/disable",
                vec![],
                t(
                    "選択したアカウントを無効にする",
                    "Disable the selected accounts",
                ),
            )));
        }
        unused.table = Some(tbl);
        v.sections.push(unused);
        let mut roles = section(t("役割が変わったスタッフ", "Caller whose role changed"));
        roles.id = "role-changes".into();
        roles.table = Some(audit_table(&r.role_changes));
        v.sections.push(roles);
        Ok(v)
    })
}

async fn review_disable(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let ids = p.all("user_id");
        if ids.is_empty() {
            return Err(ConsoleError::Invalid(t(
                "アカウントが選択されていません。",
                "No account is selected.",
            )));
        }
        ops::bulk_disable(&c, &p.who, &ids).await?;
        done("/admin/reviews", "disabled")
    })
}
