//! `GET/POST /login`: the sign-in page, for an authorization request (`req`) or a local
//! page to return to (`next`).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use kizuna_core::web::{Lang, local_path};

use super::{check_csrf, form_page, internal_error, page_lang, request_expired, see_other};
use crate::Idp;
use crate::authorize::pending::{self, Pending};
use crate::clients;
use crate::login::{self, LoginFailure};
use crate::sessions;

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
    let client = clients::get(&idp.core.db, &pending.request.client_id).await?;
    Ok(Some((pending, client.map(|c| c.name))))
}

pub async fn show(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let req = q.req.unwrap_or_default();
    let found = match context(&idp, &req).await {
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
    let next = local_path(q.next.as_deref());
    form_page(&idp, &headers, StatusCode::OK, |csrf| LoginPage {
        back_path: format!("/login?req={req}&next={}", url_encode(&next)),
        lang,
        csrf,
        req,
        next,
        client_name,
        login_hint: hint,
        error: None,
    })
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
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
    let acr = found
        .as_ref()
        .and_then(|(p, _)| p.request.acr_values.first().cloned());
    match login::sign_in(
        &idp,
        &username,
        &form.password.unwrap_or_default(),
        acr.as_deref(),
        &headers,
    )
    .await
    {
        Ok((_, cookie)) => {
            let cookie = sessions::set_cookie(&idp, &cookie);
            match found {
                Some((mut pending, _)) => {
                    pending.login_done = true;
                    if pending::update(&idp, &req, &pending).await.is_err() {
                        return internal_error();
                    }
                    see_other(&format!("/authorize/resume?req={req}"), Some(cookie))
                }
                None => see_other(&local_path(form.next.as_deref()), Some(cookie)),
            }
        }
        Err(failure) => {
            let (status, text) = match failure {
                LoginFailure::BadCredentials => (
                    StatusCode::UNAUTHORIZED,
                    lang.pick("ユーザー名またはパスワードが正しくありません。", "The username or password is not correct."),
                ),
                LoginFailure::Locked => (
                    StatusCode::UNAUTHORIZED,
                    lang.pick(
                        "失敗が続いたため、このアカウントは一時的にロックされています。しばらくしてからやり直してください。",
                        "After repeated failures this account is locked for a while. Try again later.",
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
            let client_name = found.and_then(|(_, name)| name);
            let next = local_path(form.next.as_deref());
            form_page(&idp, &headers, status, |csrf| LoginPage {
                back_path: "/login".into(),
                lang,
                csrf,
                req,
                next,
                client_name,
                login_hint: username,
                error: Some(text.to_string()),
            })
        }
    }
}
