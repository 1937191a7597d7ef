//! `/account` changes to the person's second factors: passkeys (add, remove), the
//! authenticator app (set up, remove) and recovery codes (make new ones, shown once).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use kizuna_core::web::Lang;

use super::{for_change, freshly_signed_in};
use crate::Idp;
use crate::mfa::policy::Factor;
use crate::mfa::{self, MfaError, recovery, totp, webauthn};
use crate::pages::mfa::refusal;
use crate::pages::{form_page, internal_error, message, page_lang, see_other};
use crate::users::UserRecord;

/// The outcome of a change: back to the page with a notice, or the refusal.
fn after_change(lang: Lang, result: Result<&str, MfaError>) -> Response {
    match result {
        Ok(done) => see_other(&format!("/account?done={done}"), None),
        Err(MfaError::LastFactor(_)) => see_other("/account?error=last_factor", None),
        Err(e) if e.is_internal() => internal_error(),
        Err(e) => message(
            StatusCode::BAD_REQUEST,
            lang,
            ("変更できませんでした", "The change was not made"),
            (&refusal(Lang::Ja, &e), &refusal(Lang::En, &e)),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Passkeys

#[derive(Template)]
#[template(path = "account_passkey.html")]
struct PasskeyPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    ceremony: String,
    options: String,
    error: Option<String>,
}

pub async fn new_passkey(State(idp): State<Idp>, headers: HeaderMap) -> Response {
    match freshly_signed_in(&idp, &headers).await {
        Ok(user) => passkey_page(&idp, &headers, &user, StatusCode::OK, None).await,
        Err(response) => response,
    }
}

async fn passkey_page(
    idp: &Idp,
    headers: &HeaderMap,
    user: &UserRecord,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let lang = page_lang(None);
    let staff = {
        let Ok(mut conn) = idp.core.db.conn().await else {
            return internal_error();
        };
        match mfa::enrolled(idp, &mut conn, &user.id).await {
            Ok(e) => e.staff,
            Err(_) => return internal_error(),
        }
    };
    let display = user.name.clone().unwrap_or_else(|| user.username.clone());
    match webauthn::start_registration(idp, &user.id, &user.username, &display, staff).await {
        Ok((ceremony, options)) => form_page(idp, headers, status, |csrf| PasskeyPage {
            lang,
            back_path: "/account/passkeys/new".into(),
            csrf,
            ceremony,
            options,
            error,
        }),
        Err(e) => after_change(lang, Err(e)),
    }
}

#[derive(Deserialize)]
pub struct AddPasskeyForm {
    csrf_token: Option<String>,
    ceremony: Option<String>,
    name: Option<String>,
    credential: Option<String>,
}

pub async fn add_passkey(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<AddPasskeyForm>,
) -> Response {
    let (_, user, _) = match for_change(&idp, &headers, form.csrf_token.as_deref()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let result = webauthn::finish_registration(
        &idp,
        &user.id,
        form.ceremony.as_deref().unwrap_or(""),
        form.name.as_deref().unwrap_or(""),
        form.credential.as_deref().unwrap_or(""),
    )
    .await;
    match result {
        Ok(_) => see_other("/account?done=passkey_added", None),
        Err(e) if e.is_internal() => internal_error(),
        Err(e) => {
            let lang = page_lang(None);
            let text = match &e {
                MfaError::InvalidName => lang.pick("名前は1〜64文字で入力してください。", "Give the passkey a name of 1 to 64 characters.").to_string(),
                MfaError::AuthenticatorNotAllowed => lang
                    .pick("職員アカウントでは、市が認めた認証器のみ登録できます。", "Staff accounts can register only the authenticator models the city allows.")
                    .to_string(),
                other => refusal(lang, other),
            };
            passkey_page(&idp, &headers, &user, StatusCode::BAD_REQUEST, Some(text)).await
        }
    }
}

#[derive(Deserialize)]
pub struct RemoveForm {
    csrf_token: Option<String>,
    id: Option<String>,
}

pub async fn remove_passkey(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<RemoveForm>,
) -> Response {
    let (_, user, enrolled) = match for_change(&idp, &headers, form.csrf_token.as_deref()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let lang = page_lang(None);
    let result = async {
        mfa::check_removal(&enrolled, Factor::Passkey { hardware: false })?;
        webauthn::remove(&idp, &user.id, form.id.as_deref().unwrap_or("")).await?;
        Ok("passkey_removed")
    };
    after_change(lang, result.await)
}

// ---------------------------------------------------------------------------------------------
// Authenticator app

#[derive(Template)]
#[template(path = "account_totp.html")]
struct TotpPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    secret: String,
    uri: String,
    qr: Option<String>,
    error: Option<String>,
}

async fn totp_page(
    idp: &Idp,
    headers: &HeaderMap,
    user: &UserRecord,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let lang = page_lang(None);
    let account = user.email.clone().unwrap_or_else(|| user.username.clone());
    match totp::begin(idp, &user.id, &account).await {
        Ok(enrollment) => form_page(idp, headers, status, |csrf| TotpPage {
            lang,
            back_path: "/account/totp/new".into(),
            csrf,
            secret: enrollment.secret_text,
            uri: enrollment.uri,
            qr: enrollment.qr,
            error,
        }),
        Err(e) => after_change(lang, Err(e)),
    }
}

pub async fn new_totp(State(idp): State<Idp>, headers: HeaderMap) -> Response {
    match freshly_signed_in(&idp, &headers).await {
        Ok(user) => totp_page(&idp, &headers, &user, StatusCode::OK, None).await,
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub struct ConfirmTotpForm {
    csrf_token: Option<String>,
    code: Option<String>,
}

pub async fn confirm_totp(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<ConfirmTotpForm>,
) -> Response {
    let (_, user, _) = match for_change(&idp, &headers, form.csrf_token.as_deref()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match totp::confirm(&idp, &user.id, form.code.as_deref().unwrap_or("")).await {
        Ok(()) => see_other("/account?done=totp_added", None),
        Err(e) if e.is_internal() => internal_error(),
        Err(e @ (MfaError::WrongCode | MfaError::Throttled)) => {
            let text = refusal(page_lang(None), &e);
            totp_page(&idp, &headers, &user, StatusCode::BAD_REQUEST, Some(text)).await
        }
        Err(e) => after_change(page_lang(None), Err(e)),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf_token: Option<String>,
}

pub async fn remove_totp(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let (_, user, enrolled) = match for_change(&idp, &headers, form.csrf_token.as_deref()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let result = async {
        mfa::check_removal(&enrolled, Factor::Totp)?;
        totp::remove(&idp, &user.id).await?;
        Ok("totp_removed")
    };
    after_change(page_lang(None), result.await)
}

// ---------------------------------------------------------------------------------------------
// Recovery codes and sessions

#[derive(Template)]
#[template(path = "account_codes.html")]
struct CodesPage {
    lang: Lang,
    back_path: String,
    codes: Vec<String>,
}

pub async fn regenerate_codes(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let (_, user, _) = match for_change(&idp, &headers, form.csrf_token.as_deref()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match recovery::regenerate(&idp, &user.id).await {
        Ok(codes) => kizuna_core::web::page(&CodesPage {
            lang: page_lang(None),
            back_path: "/account".into(),
            codes,
        }),
        Err(e) => after_change(page_lang(None), Err(e)),
    }
}
