//! The pages a person sees: sign-in (with the second factor and passkeys), consent,
//! sign-out, device approval, and the account page. Server-rendered,
//! Japanese and English, CSRF-protected.

pub mod account;
pub mod consent;
pub mod device;
pub mod federation;
pub mod login;
pub mod logout;
pub mod mfa;
pub mod saml;
pub mod services;

use askama::Template;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use kizuna_core::web::{ErrorPage, Lang, RequestContext, csrf, page};

use crate::Idp;

/// The page language: the request's `ui_locales` when it names one we have, else the
/// browser's choice.
pub fn page_lang(ui_locales: Option<&str>) -> Lang {
    ui_locales
        .and_then(|l| l.split(' ').find_map(Lang::from_code))
        .or_else(|| RequestContext::current().map(|c| c.lang))
        .unwrap_or_default()
}

/// How a scope is described on the consent page.
pub fn scope_label(scope: &str, lang: Lang) -> String {
    let text = match scope {
        "openid" => lang.pick(
            "あなたが市のアカウントでサインインしたこと",
            "That you signed in with your city account",
        ),
        "profile" => lang.pick("氏名とユーザー名", "Your name and username"),
        "email" => lang.pick("メールアドレス", "Your email address"),
        "offline_access" => lang.pick(
            "サインアウト後も利用を続けること",
            "Continued access after you sign out",
        ),
        other => return other.to_string(),
    };
    text.to_string()
}

/// What a claim is, for the person: the consent page and the services page.
pub fn claim_label(claim: &str, lang: Lang) -> String {
    let text = match claim {
        "preferred_username" => lang.pick("ユーザー名", "Your username"),
        "name" => lang.pick("氏名", "Your name"),
        "updated_at" => lang.pick("プロフィールの更新日時", "When your profile last changed"),
        "email" => lang.pick("メールアドレス", "Your email address"),
        "email_verified" => lang.pick(
            "メールアドレスが確認済みかどうか",
            "Whether your email address is verified",
        ),
        other => return other.to_string(),
    };
    text.to_string()
}

/// Renders a form page with a CSRF token (and sets the token cookie when new).
pub fn form_page<T: Template>(
    idp: &Idp,
    headers: &HeaderMap,
    status: StatusCode,
    build: impl FnOnce(String) -> T,
) -> Response {
    let token = csrf::CsrfToken::issue(headers, idp.core.secure_cookies);
    let mut response = (status, page(&build(token.value.clone()))).into_response();
    token.apply(&mut response);
    response
}

/// Refuses a form post whose CSRF token is missing or wrong.
pub fn check_csrf(idp: &Idp, headers: &HeaderMap, submitted: Option<&str>) -> Result<(), Response> {
    if csrf::verify(headers, submitted, idp.core.secure_cookies) {
        Ok(())
    } else {
        Err(ErrorPage::new(
            StatusCode::FORBIDDEN,
            "フォームの有効期限が切れたか、このサイトから送信されていません。ページを再読み込みしてやり直してください。",
            "The form expired or did not come from this site. Reload the page and try again.",
        )
        .into_response())
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub lang: Lang,
    pub back_path: String,
    pub title: String,
    pub text: String,
    pub link: Option<(String, String)>,
}

/// A short page with a title and a sentence.
pub fn message(
    status: StatusCode,
    lang: Lang,
    title: (&str, &str),
    text: (&str, &str),
) -> Response {
    (
        status,
        page(&MessagePage {
            lang,
            back_path: "/".into(),
            title: lang.pick(title.0, title.1).to_string(),
            text: lang.pick(text.0, text.1).to_string(),
            link: None,
        }),
    )
        .into_response()
}

/// The page shown when a sign-in request is gone (expired, finished, or never existed).
pub fn request_expired(lang: Lang) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        lang,
        ("サインインの有効期限切れ", "Sign-in expired"),
        (
            "このサインイン手続きは期限切れか、すでに完了しています。利用中のサービスに戻ってやり直してください。",
            "This sign-in has expired or was already completed. Go back to the service and start again.",
        ),
    )
}

/// A 303 to a same-site path, with a `Set-Cookie` when given.
pub fn see_other(location: &str, cookie: Option<axum::http::HeaderValue>) -> Response {
    let mut response = Redirect::to(location).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The page for a failure on our side.
pub fn internal_error() -> Response {
    ErrorPage::internal().into_response()
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    lang: Lang,
    back_path: String,
    csrf: String,
    username: Option<String>,
}

/// `GET /`: who is signed in on this browser, with sign-in or sign-out.
pub async fn home(
    axum::extract::State(idp): axum::extract::State<Idp>,
    headers: HeaderMap,
) -> Response {
    let username = match crate::sessions::current(&idp, &headers).await {
        Ok(Some(session)) => {
            let Ok(mut conn) = idp.core.db.conn().await else {
                return internal_error();
            };
            crate::users::find(&mut conn, &session.user_id)
                .await
                .ok()
                .flatten()
                .map(|u| u.username)
        }
        Ok(None) => None,
        Err(_) => return internal_error(),
    };
    form_page(&idp, &headers, StatusCode::OK, |csrf| HomePage {
        lang: page_lang(None),
        back_path: "/".into(),
        csrf,
        username,
    })
}
