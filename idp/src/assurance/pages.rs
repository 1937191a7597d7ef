//! `/account/identity`: the person's identity assurance level, their verified attributes, the
//! proofing providers they may use (those a client allows when a sign-in sent them here),
//! and their name (editing a verified name drops the level). Also the pages that start the
//! signature-certificate and eKYC providers.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use kizuna_core::web::Lang;

use super::{AssuranceError, Ial, NAME_ATTRIBUTES, client_settings, current, flow};
use crate::Idp;
use crate::authorize::flow::error_redirect;
use crate::authorize::pending::{self, Pending};
use crate::error::OAuthError;
use crate::pages::account::display_time;
use crate::pages::{check_csrf, form_page, internal_error, message, page_lang, see_other};
use crate::sessions::{self, Session};
use crate::users;

/// Where the browser goes after proofing: back to the sign-in it came from, or the page.
pub fn continue_path(req: Option<&str>) -> String {
    match req {
        Some(req) => format!(
            "/account/identity/continue?req={}",
            url::form_urlencoded::byte_serialize(req.as_bytes()).collect::<String>()
        ),
        None => "/account/identity".into(),
    }
}

fn attribute_label(name: &str, lang: Lang) -> String {
    let label = match name {
        "family_name" => lang.pick("姓", "Family name"),
        "given_name" => lang.pick("名", "Given name"),
        "name" => lang.pick("氏名", "Name"),
        "family_name#ja-Kana-JP" => lang.pick("姓（カナ）", "Family name (kana)"),
        "given_name#ja-Kana-JP" => lang.pick("名（カナ）", "Given name (kana)"),
        "birthdate" => lang.pick("生年月日", "Date of birth"),
        "gender" => lang.pick("性別", "Gender"),
        "address" => lang.pick("住所", "Address"),
        other => other,
    };
    label.to_string()
}

pub struct ProviderRow {
    pub id: String,
    pub label: String,
    pub path: String,
    pub ceiling: u8,
}

#[derive(Template)]
#[template(path = "identity.html")]
struct IdentityPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    level: u8,
    target: Option<u8>,
    notice: Option<String>,
    error: Option<String>,
    attributes: Vec<(String, String)>,
    provider: String,
    verified_at: String,
    expires_at: String,
    providers: Vec<ProviderRow>,
    counter: bool,
    req: String,
    name: String,
    name_verified: bool,
}

#[derive(Deserialize)]
pub struct IdentityQuery {
    req: Option<String>,
    done: Option<String>,
}

async fn signed_in(idp: &Idp, headers: &HeaderMap, back: &str) -> Result<Session, Response> {
    match sessions::current(idp, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(see_other(
            &format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
            ),
            None,
        )),
        Err(_) => Err(internal_error()),
    }
}

/// The pending request the person came from, if it is theirs to continue.
async fn pending_request(idp: &Idp, req: Option<&str>) -> Result<Option<Pending>, Response> {
    match req.filter(|r| !r.is_empty()) {
        Some(req) => pending::load(idp, req).await.map_err(|_| internal_error()),
        None => Ok(None),
    }
}

/// `GET /account/identity`.
pub async fn show(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<IdentityQuery>,
) -> Response {
    let session = match signed_in(&idp, &headers, "/account/identity").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lang = page_lang(None);
    let pending = match pending_request(&idp, q.req.as_deref()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(mut conn) = idp.core.db.conn().await else {
        return internal_error();
    };
    let (allowed, target) = match &pending {
        Some(p) => {
            let Ok(settings) = client_settings(&mut conn, &p.request.client_id).await else {
                return internal_error();
            };
            let target = flow::required_ial(settings.min_ial, &flow::IalRequest::of(&p.request));
            (settings.proofing_providers, target)
        }
        None => (Vec::new(), None),
    };
    let (Ok(record), Ok(Some(user))) = (
        current(&mut conn, &session.user_id).await,
        users::find(&mut conn, &session.user_id).await,
    ) else {
        return internal_error();
    };
    drop(conn);
    let providers = flow::offered(&idp, &allowed, target.unwrap_or(Ial::Two))
        .into_iter()
        .map(|p| ProviderRow {
            id: p.id(),
            label: p.label(lang),
            path: p.start_path().unwrap_or_default(),
            ceiling: p.ceiling().level(),
        })
        .collect();
    let notice = match q.done.as_deref() {
        Some("name") => Some(lang.pick("氏名を保存しました。", "Your name was saved.")),
        Some("name-level") => Some(lang.pick(
            "氏名を保存しました。確認済みの氏名を変更したため、身元確認レベルは IAL1 に戻りました。",
            "Your name was saved. Because it changed a verified name, your identity assurance level is back to IAL1.",
        )),
        _ => None,
    };
    let name_verified = record.as_ref().is_some_and(|r| {
        NAME_ATTRIBUTES
            .iter()
            .any(|a| r.attributes.contains_key(*a))
    });
    form_page(&idp, &headers, StatusCode::OK, |csrf| IdentityPage {
        lang,
        back_path: "/account/identity".into(),
        csrf,
        level: record.as_ref().map(|r| r.level).unwrap_or(1),
        target: target.map(Ial::level),
        notice: notice.map(str::to_string),
        error: None,
        attributes: record
            .as_ref()
            .map(|r| {
                r.attributes
                    .iter()
                    .map(|(k, v)| (attribute_label(k, lang), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        provider: record
            .as_ref()
            .and_then(|r| idp.assurance.provider(&r.provider).map(|p| p.label(lang)))
            .or_else(|| record.as_ref().map(|r| r.provider.clone()))
            .unwrap_or_default(),
        verified_at: record
            .as_ref()
            .map(|r| display_time(r.verified_at))
            .unwrap_or_default(),
        expires_at: record
            .as_ref()
            .map(|r| display_time(r.expires_at))
            .unwrap_or_default(),
        providers,
        counter: allowed.is_empty() || allowed.iter().any(|a| a == super::counter::ID),
        req: if pending.is_some() {
            q.req.clone().unwrap_or_default()
        } else {
            String::new()
        },
        name: user.name.unwrap_or_default(),
        name_verified,
    })
}

#[derive(Deserialize)]
pub struct NameForm {
    csrf_token: Option<String>,
    name: Option<String>,
}

/// `POST /account/identity`: the person changes their name.
pub async fn edit_name(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<NameForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let session = match signed_in(&idp, &headers, "/account/identity").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match super::edit_name(&idp, &session.user_id, form.name.as_deref().unwrap_or("")).await {
        Ok(true) => see_other("/account/identity?done=name-level", None),
        Ok(false) => see_other("/account/identity?done=name", None),
        Err(AssuranceError::BadAttribute(_)) => message(
            StatusCode::UNPROCESSABLE_ENTITY,
            page_lang(None),
            ("氏名が正しくありません", "The name is not valid"),
            (
                "氏名は1〜200文字で、制御文字を含めないでください。",
                "A name is 1 to 200 characters without control characters.",
            ),
        ),
        Err(_) => internal_error(),
    }
}

#[derive(Deserialize)]
pub struct ReqForm {
    csrf_token: Option<String>,
    req: Option<String>,
}

/// `POST /account/identity/cancel`: the person declines proofing; the client learns that
/// its requirement was not met (OpenID Connect Core §3.1.2.6).
pub async fn cancel(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<ReqForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let req = form.req.unwrap_or_default();
    let Ok(Some(p)) = pending_request(&idp, Some(&req)).await else {
        return crate::pages::request_expired(page_lang(None));
    };
    let Ok(mut tx) = idp.core.db.begin().await else {
        return internal_error();
    };
    if !matches!(pending::consume(tx.conn(), &req).await, Ok(true)) || tx.commit().await.is_err() {
        return crate::pages::request_expired(page_lang(None));
    }
    let url = error_redirect(
        &idp,
        &p.request.redirect_uri,
        p.request.state.as_deref(),
        &OAuthError::unmet_authentication_requirements(
            "the person did not complete identity proofing",
        ),
    );
    see_other(&url, None)
}

#[derive(Deserialize)]
pub struct ContinueQuery {
    req: Option<String>,
}

/// `GET /account/identity/continue`: back to the sign-in (which checks the level again).
pub async fn resume(Query(q): Query<ContinueQuery>) -> Response {
    match q.req.filter(|r| !r.is_empty() && r.len() <= 64) {
        Some(req) => see_other(
            &format!(
                "/authorize/resume?req={}",
                url::form_urlencoded::byte_serialize(req.as_bytes()).collect::<String>()
            ),
            None,
        ),
        None => see_other("/account/identity", None),
    }
}

/// The page for a person who opened too many proofing attempts at once.
fn too_many_attempts() -> Response {
    message(
        StatusCode::TOO_MANY_REQUESTS,
        page_lang(None),
        (
            "本人確認の手続きが多すぎます",
            "Too many verifications in progress",
        ),
        (
            "始めた本人確認が多すぎます。どれかを完了するか、しばらく待ってからやり直してください。",
            "You have started too many verifications. Finish one, or wait a few minutes and try again.",
        ),
    )
}

#[derive(Template)]
#[template(path = "identity_x509.html")]
struct X509Page {
    lang: Lang,
    back_path: String,
    challenge_id: String,
    challenge: String,
    expires: String,
    continue_path: String,
}

/// `POST /assurance/x509/start`: a challenge for the card-reader app, shown to the person.
pub async fn x509_start(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<ReqForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let session = match signed_in(&idp, &headers, "/account/identity").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if idp.assurance.x509.is_none() {
        return see_other("/account/identity", None);
    }
    let req = form.req.filter(|r| !r.is_empty());
    let c = match super::x509_signature::new_challenge(&idp, &session.user_id, req.as_deref()).await
    {
        Ok(Some(c)) => c,
        Ok(None) => return too_many_attempts(),
        Err(_) => return internal_error(),
    };
    let lang = page_lang(None);
    (
        StatusCode::OK,
        kizuna_core::web::page(&X509Page {
            lang,
            back_path: "/account/identity".into(),
            challenge_id: c["challenge_id"].as_str().unwrap_or_default().into(),
            challenge: c["challenge"].as_str().unwrap_or_default().into(),
            expires: display_time(c["expires_at"].as_i64().unwrap_or_default()),
            continue_path: continue_path(req.as_deref()),
        }),
    )
        .into_response()
}

/// `POST /assurance/webhook/{name}/start`: opens a vendor transaction and sends the person
/// to the vendor; a vendor that does not answer in time gets a clear message, not a hang.
pub async fn webhook_start(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ReqForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let session = match signed_in(&idp, &headers, "/account/identity").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(webhook) = super::webhook::find(&idp, &name) else {
        return see_other("/account/identity", None);
    };
    let req = form.req.filter(|r| !r.is_empty());
    let provider = super::ProofingProvider::id(webhook);
    let txn =
        match super::open_attempt(&idp, &session.user_id, &provider, None, req.as_deref()).await {
            Ok(Some((txn, _))) => txn,
            Ok(None) => return too_many_attempts(),
            Err(_) => return internal_error(),
        };
    let return_url = idp.endpoint(&continue_path(req.as_deref()));
    match webhook.open(&idp, &txn, &return_url).await {
        Ok(url) => see_other(&url, None),
        Err(e) => {
            super::audit_refusal(&idp, &session.user_id, &provider, &e.to_string()).await;
            message(
                StatusCode::GATEWAY_TIMEOUT,
                page_lang(None),
                (
                    "本人確認サービスに接続できません",
                    "The identity verification service is not available",
                ),
                (
                    "本人確認サービスが応答しませんでした。しばらくしてからやり直すか、別の方法をお選びください。",
                    "The identity verification service did not answer. Try again later or choose another way.",
                ),
            )
        }
    }
}
