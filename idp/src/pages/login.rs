//! `GET/POST /login`: the sign-in page, for an authorization request (`req`) or a local
//! page to return to (`next`): a password, or a passkey without a username (a button, and
//! the browser's autofill where it offers passkeys there), or an upstream organization's
//! sign-in (a button each, and an email field for home-realm discovery).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use kizuna_core::web::{Lang, local_path};

use super::{check_csrf, form_page, internal_error, page_lang, request_expired};
use crate::Idp;
use crate::authorize::pending::{self, Pending};
use crate::federation::upstreams;
use crate::login::{self, LoginFailure};
use crate::mfa::webauthn;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    req: String,
    next: String,
    client_name: Option<String>,
    login_hint: String,
    error: Option<String>,
    /// The passwordless ceremony: its id and the options for the browser.
    passkey: Option<(String, String)>,
    /// The upstream providers offered ("Sign in with …"): alias and name.
    upstreams: Vec<(String, String)>,
    /// Some upstream has email domains for home-realm discovery.
    realm_discovery: bool,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    req: Option<String>,
    next: Option<String>,
}

async fn context(idp: &Idp, req: &str) -> Result<Option<(Pending, Option<String>)>, sqlx::Error> {
    if req.is_empty() {
        return Ok(None);
    }
    let Some(pending) = pending::load(idp, req).await? else {
        return Ok(None);
    };
    let client = idp
        .clients
        .get(&idp.core.db, &pending.request.client_id)
        .await?;
    Ok(Some((pending, client.map(|c| c.name.clone()))))
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Renders the page (with a fresh passwordless ceremony when passkeys are on).
async fn render(
    idp: &Idp,
    headers: &HeaderMap,
    status: StatusCode,
    req: String,
    next: Option<String>,
    username: Option<String>,
    error: Option<String>,
) -> Response {
    let found = match context(idp, &req).await {
        Ok(found) => found,
        Err(_) => return internal_error(),
    };
    if !req.is_empty() && found.is_none() {
        return request_expired(page_lang(None));
    }
    let (lang, client_name, hint) = match &found {
        Some((p, name)) => (
            page_lang(p.request.ui_locales.as_deref()),
            name.clone(),
            p.request.login_hint.clone().unwrap_or_default(),
        ),
        None => (page_lang(None), None, String::new()),
    };
    let passkey = if idp.passkeys.available() {
        match webauthn::start_discoverable(idp).await {
            Ok(found) => Some(found),
            Err(e) if e.is_internal() => return internal_error(),
            Err(_) => None,
        }
    } else {
        None
    };
    let Ok(offered) = upstreams::active(idp).await else {
        return internal_error();
    };
    let realm_discovery = offered.iter().any(|u| !u.email_domains.is_empty());
    let next = local_path(next.as_deref());
    form_page(idp, headers, status, |csrf| LoginPage {
        back_path: format!("/login?req={req}&next={}", url_encode(&next)),
        lang,
        csrf,
        req,
        next,
        client_name,
        login_hint: username.unwrap_or(hint),
        error,
        passkey,
        upstreams: offered.into_iter().map(|u| (u.alias, u.name)).collect(),
        realm_discovery,
    })
}

pub async fn show(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    render(
        &idp,
        &headers,
        StatusCode::OK,
        q.req.unwrap_or_default(),
        q.next,
        None,
        None,
    )
    .await
}

/// The page again, with a message (a refused passkey).
pub async fn show_with_error(
    idp: &Idp,
    headers: &HeaderMap,
    req: String,
    next: Option<String>,
    error: String,
) -> Response {
    render(
        idp,
        headers,
        StatusCode::UNAUTHORIZED,
        req,
        next,
        None,
        Some(error),
    )
    .await
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf_token: Option<String>,
    req: Option<String>,
    next: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

pub async fn submit(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let req = form.req.unwrap_or_default();
    let found = match context(&idp, &req).await {
        Ok(found) => found,
        Err(_) => return internal_error(),
    };
    if !req.is_empty() && found.is_none() {
        return request_expired(page_lang(None));
    }
    let lang = page_lang(
        found
            .as_ref()
            .and_then(|(p, _)| p.request.ui_locales.as_deref()),
    );
    let username = form.username.unwrap_or_default();
    let next = local_path(form.next.as_deref());
    match login::check_password(&idp, &username, &form.password.unwrap_or_default()).await {
        Ok(user) => {
            let loaded = found.as_ref().map(|(p, _)| p);
            super::mfa::after_password(&idp, &headers, &user.id, (&req, loaded), &next).await
        }
        Err(failure) => {
            let (status, text) = match failure {
                LoginFailure::BadCredentials => (
                    StatusCode::UNAUTHORIZED,
                    lang.pick(
                        "ユーザー名またはパスワードが正しくありません。失敗が続いたアカウントは、しばらくサインインできません。",
                        "The username or password is not correct. After repeated failures an account cannot sign in for a while.",
                    ),
                ),
                LoginFailure::Throttled => (
                    StatusCode::TOO_MANY_REQUESTS,
                    lang.pick(
                        "試行回数が多すぎます。しばらくしてからやり直してください。",
                        "Too many attempts. Try again later.",
                    ),
                ),
            };
            render(
                &idp,
                &headers,
                status,
                req,
                Some(next),
                Some(username),
                Some(text.to_string()),
            )
            .await
        }
    }
}
