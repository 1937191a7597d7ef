//! Console pages.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use kizuna_core::Core;
use kizuna_core::web::{ErrorPage, Lang, RequestContext, csrf, page};

use kizuna_idp::password::PasswordError;
use kizuna_idp::users::UserError;

use crate::bootstrap::{self, BootstrapError, NewAdministrator};

pub fn router(core: Core) -> Router {
    Router::new()
        .route(
            "/admin/bootstrap",
            get(bootstrap_form).post(bootstrap_submit),
        )
        .with_state(core)
}

fn lang() -> Lang {
    RequestContext::current()
        .map(|c| c.lang)
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "bootstrap.html")]
struct BootstrapPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    token: String,
    username: String,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "bootstrap_done.html")]
struct BootstrapDone {
    lang: Lang,
    back_path: String,
    created: bool,
    username: String,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn form_page(
    core: &Core,
    headers: &HeaderMap,
    mut page_data: BootstrapPage,
    status: StatusCode,
) -> Response {
    let token = csrf::CsrfToken::issue(headers, core.secure_cookies);
    page_data.csrf = token.value.clone();
    let mut response = (status, page(&page_data)).into_response();
    token.apply(&mut response);
    response
}

fn done_page(created: bool, username: String) -> Response {
    page(&BootstrapDone {
        lang: lang(),
        back_path: "/admin/bootstrap".into(),
        created,
        username,
    })
}

async fn bootstrap_form(
    State(core): State<Core>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    match bootstrap::administrator_exists(&core).await {
        Ok(true) => return (StatusCode::GONE, done_page(false, String::new())).into_response(),
        Ok(false) => {}
        Err(e) => return storage_error(e),
    }
    let token = query.token.unwrap_or_default();
    let error = match (
        token.is_empty(),
        bootstrap::token_is_usable(&core, &token).await,
    ) {
        (true, _) | (false, Ok(true)) => None,
        (false, Ok(false)) => Some(BootstrapError::InvalidToken),
        (false, Err(e)) => return storage_error(e),
    };
    let page_data = BootstrapPage {
        lang: lang(),
        back_path: "/admin/bootstrap".into(),
        csrf: String::new(),
        // An unusable token is not carried into the form; the person may paste another.
        token: if error.is_some() {
            String::new()
        } else {
            token
        },
        username: String::new(),
        email: String::new(),
        error: error.map(|e| message(&e)),
    };
    form_page(&core, &headers, page_data, StatusCode::OK)
}

#[derive(Deserialize)]
struct BootstrapForm {
    csrf_token: Option<String>,
    token: Option<String>,
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    password_confirm: Option<String>,
}

async fn bootstrap_submit(
    State(core): State<Core>,
    headers: HeaderMap,
    Form(form): Form<BootstrapForm>,
) -> Response {
    if !csrf::verify(&headers, form.csrf_token.as_deref(), core.secure_cookies) {
        return ErrorPage::new(
            StatusCode::FORBIDDEN,
            "フォームの有効期限が切れました。ページを再読み込みしてやり直してください。",
            "The form expired or did not come from this site. Reload the page and try again.",
        )
        .into_response();
    }
    let token = form.token.unwrap_or_default();
    let username = form.username.unwrap_or_default();
    let email = form.email.unwrap_or_default();
    let result = bootstrap::redeem(
        &core,
        &token,
        NewAdministrator {
            username: username.clone(),
            email: Some(email.clone()),
            password: form.password.unwrap_or_default(),
            password_confirm: form.password_confirm.unwrap_or_default(),
        },
    )
    .await;
    match result {
        Ok(user) => (StatusCode::CREATED, done_page(true, user.username)).into_response(),
        Err(BootstrapError::AlreadyDone) => {
            (StatusCode::GONE, done_page(false, String::new())).into_response()
        }
        Err(BootstrapError::Storage(e)) => storage_error(BootstrapError::Storage(e)),
        Err(e) => {
            let status = if matches!(e, BootstrapError::InvalidToken) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let page_data = BootstrapPage {
                lang: lang(),
                back_path: "/admin/bootstrap".into(),
                csrf: String::new(),
                token: if matches!(e, BootstrapError::InvalidToken) {
                    String::new()
                } else {
                    token
                },
                username,
                email,
                error: Some(message(&e)),
            };
            form_page(&core, &headers, page_data, status)
        }
    }
}

fn storage_error(e: BootstrapError) -> Response {
    tracing::error!(error = %e, "bootstrap storage failure");
    ErrorPage::internal().into_response()
}

/// The error in the reader's language.
fn message(e: &BootstrapError) -> String {
    let lang = lang();
    let text = match e {
        BootstrapError::InvalidToken => lang.pick(
            "このブートストラップトークンは無効か、期限切れか、使用済みです。サーバーを再起動すると新しいリンクが表示されます。",
            "This bootstrap token is unknown, expired or already used. Restarting the server prints a new link.",
        ),
        BootstrapError::PasswordMismatch => lang.pick("パスワードが一致しません。", "The passwords do not match."),
        BootstrapError::User(UserError::Password(PasswordError::TooShort)) => {
            lang.pick("パスワードは12文字以上にしてください。", "The password must be at least 12 characters.")
        }
        BootstrapError::User(UserError::InvalidEmail) => {
            lang.pick("メールアドレスの形式が正しくありません。", "The email address is not valid.")
        }
        BootstrapError::User(UserError::InvalidUsername(_)) => lang.pick(
            "ユーザー名は3〜64文字の英小文字・数字・. _ - @ で入力してください。",
            "The username must be 3–64 characters: letters, digits and . _ - @.",
        ),
        other => return other.to_string(),
    };
    text.to_string()
}
