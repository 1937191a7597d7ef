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
use crate::messages::{Message, Msg};

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
    /// A domain error's own text, in a smaller line beneath the error.
    error_detail: Option<String>,
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
    let (error, error_detail) = shown(error.as_ref().map(message));
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
        error,
        error_detail,
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
            Msg::BootstrapFormExpired.render(Lang::Ja),
            Msg::BootstrapFormExpired.render(Lang::En),
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
            let (error, error_detail) = shown(Some(message(&e)));
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
                error,
                error_detail,
            };
            form_page(&core, &headers, page_data, status)
        }
    }
}

fn storage_error(e: BootstrapError) -> Response {
    tracing::error!(error = %e, "bootstrap storage failure");
    ErrorPage::internal().into_response()
}

/// What the form says about the error; anything not named here keeps its own text as the
/// detail.
fn message(e: &BootstrapError) -> Message {
    match e {
        BootstrapError::InvalidToken => Msg::BootstrapTokenInvalid.into(),
        BootstrapError::PasswordMismatch => Msg::PasswordMismatch.into(),
        BootstrapError::User(UserError::Password(PasswordError::TooShort)) => {
            Msg::PasswordTooShort.into()
        }
        BootstrapError::User(UserError::InvalidEmail) => Msg::EmailInvalid.into(),
        BootstrapError::User(UserError::InvalidUsername(_)) => Msg::UsernameInvalid.into(),
        other => Msg::AccountInvalid.with_detail(other.to_string()),
    }
}

/// The message in the reader's language, and its detail.
fn shown(message: Option<Message>) -> (Option<String>, Option<String>) {
    match message {
        Some(m) => (Some(m.msg.render(lang())), m.detail),
        None => (None, None),
    }
}
