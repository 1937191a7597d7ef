//! The second step of signing in: `GET/POST /login/mfa` asks for the missing factor
//! (authenticator-app code, passkey, or recovery code) after the password or for a step-up,
//! `POST /login/passkey` signs in passwordless with a discoverable passkey, and
//! `/assets/webauthn.js` runs the browser side of the passkey ceremonies.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::web::{Lang, local_path};

use super::{check_csrf, form_page, internal_error, page_lang, request_expired, see_other};
use crate::Idp;
use crate::authorize::flow::error_redirect;
use crate::authorize::pending::{self, Pending};
use crate::error::OAuthError;
use crate::login;
use crate::mfa::pending::{self as mfa_pending, PendingMfa};
use crate::mfa::policy::{self, Aal, Factor, Next};
use crate::mfa::{self, MfaError, recovery, totp, webauthn};
use crate::sessions;

/// `GET /assets/webauthn.js`.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../assets/webauthn.js"),
    )
        .into_response()
}

/// Where a finished sign-in goes: back into the authorization request, or to a local page.
/// `login_done` says the step was a sign-in (not a step-up), and `loaded` is the request when
/// the caller read it already. Only a request that asks for a fresh sign-in (`prompt=login`,
/// `select_account`, `max_age`) has to remember that one happened.
pub(crate) async fn continue_to(
    idp: &Idp,
    req: Option<&str>,
    next: Option<&str>,
    cookies: Vec<HeaderValue>,
    login_done: bool,
    loaded: Option<&Pending>,
) -> Response {
    let location = match req.filter(|r| !r.is_empty()) {
        Some(req) => {
            if login_done {
                let request = match loaded {
                    Some(p) => Some(p.clone()),
                    None => match pending::load(idp, req).await {
                        Ok(Some(p)) => Some(p),
                        Ok(None) => return request_expired(page_lang(None)),
                        Err(_) => return internal_error(),
                    },
                };
                if let Some(mut p) = request.filter(Pending::asks_for_fresh_sign_in) {
                    p.login_done = true;
                    if pending::update(idp, req, &p).await.is_err() {
                        return internal_error();
                    }
                }
            }
            format!("/authorize/resume?req={req}")
        }
        None => local_path(next),
    };
    let mut response = see_other(&location, None);
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// After the password: starts the session, or asks for the second factor when the account
/// has one (and for the strongest the request needs, when one of its factors reaches it).
pub async fn after_password(
    idp: &Idp,
    headers: &HeaderMap,
    user_id: &str,
    (req, loaded): (&str, Option<&Pending>),
    next: &str,
) -> Response {
    let amr = vec!["pwd".to_string()];
    let target = match first_target(idp, user_id, req, loaded).await {
        Ok(t) => t,
        Err(_) => return internal_error(),
    };
    match target {
        Some(target) => {
            let pending = PendingMfa {
                user_id: user_id.to_string(),
                sid: None,
                amr,
                req: Some(req.to_string()).filter(|r| !r.is_empty()),
                next: Some(next.to_string()),
                target,
            };
            match mfa_pending::start(idp, &pending).await {
                Ok(cookie) => see_other("/login/mfa", Some(cookie)),
                Err(_) => internal_error(),
            }
        }
        None => match login::sign_in_with(idp, user_id, &amr, "pwd", headers).await {
            Ok(signed_in) => {
                continue_to(idp, Some(req), Some(next), signed_in.cookies, true, loaded).await
            }
            Err(_) => internal_error(),
        },
    }
}

/// The level the second step must reach after a password, or `None` when the password is
/// enough (the account has no second factor).
async fn first_target(
    idp: &Idp,
    user_id: &str,
    req: &str,
    loaded: Option<&Pending>,
) -> Result<Option<Aal>, sqlx::Error> {
    let mut conn = idp.core.db.conn().await?;
    let factors = mfa::factors(&mut conn, user_id).await?;
    if !factors.has_strong_factor() {
        return Ok(None);
    }
    let enrolled = mfa::with_rule(idp, &mut conn, user_id, factors).await?;
    drop(conn);
    let mut wanted = Aal::Two;
    let request = match loaded {
        Some(p) => Some(p.clone()),
        None if !req.is_empty() => pending::load(idp, req).await?,
        None => None,
    };
    if let Some(p) = request {
        let client_min = idp
            .clients
            .get(&idp.core.db, &p.request.client_id)
            .await?
            .map_or(0, |c| c.min_aal);
        wanted = wanted.max(policy::required(
            &p.request.acr_request(),
            client_min,
            enrolled.min_aal,
        ));
    }
    let pwd = ["pwd".to_string()];
    if wanted > Aal::Two && policy::next_factor(&pwd, wanted, &enrolled.factors) == Next::Unmet {
        // The request cannot be met; still require the account's second factor here, and
        // let the authorization step answer the client.
        wanted = Aal::Two;
    }
    Ok(Some(wanted))
}

/// For a sign-in outside an authorization request (approving a device): when the session
/// is weaker than the client's or the account's rule, the response that asks for the
/// missing factor (and comes back to `back`), or explains that none can reach it.
pub async fn require_level(
    idp: &Idp,
    session: &sessions::Session,
    client_id: &str,
    back: &str,
) -> Option<Response> {
    let found = async {
        let client_min = idp
            .clients
            .get(&idp.core.db, client_id)
            .await?
            .map_or(0, |c| c.min_aal);
        let mut conn = idp.core.db.conn().await?;
        let account_min = mfa::account_min_aal(idp, &mut conn, session).await?;
        let target = policy::required(&policy::AcrRequest::default(), client_min, account_min);
        if session.aal() >= target {
            return Ok::<_, sqlx::Error>(None);
        }
        let enrolled = mfa::enrolled(idp, &mut conn, &session.user_id).await?;
        Ok(Some((
            target,
            policy::next_factor(&session.amr, target, &enrolled.factors),
        )))
    };
    match found.await {
        Ok(None) | Ok(Some((_, Next::Satisfied))) => None,
        Ok(Some((target, Next::Ask(_)))) => {
            let pending = PendingMfa {
                user_id: session.user_id.clone(),
                sid: Some(session.sid.clone()),
                amr: session.amr.clone(),
                req: None,
                next: Some(back.to_string()),
                target,
            };
            Some(match mfa_pending::start(idp, &pending).await {
                Ok(cookie) => see_other("/login/mfa", Some(cookie)),
                Err(_) => internal_error(),
            })
        }
        Ok(Some((target, Next::Unmet))) => Some(super::message(
            StatusCode::FORBIDDEN,
            page_lang(None),
            (
                "より強いサインインが必要です",
                "A stronger sign-in is needed",
            ),
            (
                &format!(
                    "このサービスには {} のサインインが必要ですが、アカウントに使える方法がありません。アカウントページでパスキーか認証アプリを追加してください。",
                    target.uri()
                ),
                &format!(
                    "This service needs a {} sign-in, which none of your account's methods reaches. Add a passkey or an authenticator app on your account page.",
                    target.uri()
                ),
            ),
        )),
        Err(_) => Some(internal_error()),
    }
}

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct MfaPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    step_up: bool,
    target: String,
    totp: bool,
    recovery: bool,
    passkey: Option<(String, String)>,
    error: Option<String>,
}

async fn render(
    idp: &Idp,
    headers: &HeaderMap,
    pending: &PendingMfa,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let lang = page_lang(None);
    let mut conn = match idp.core.db.conn().await {
        Ok(c) => c,
        Err(_) => return internal_error(),
    };
    let enrolled = match mfa::enrolled(idp, &mut conn, &pending.user_id).await {
        Ok(e) => e,
        Err(_) => return internal_error(),
    };
    drop(conn);
    let ask = match policy::next_factor(&pending.amr, pending.target, &enrolled.factors) {
        Next::Ask(list) => list,
        _ => Vec::new(),
    };
    let passkey =
        if idp.passkeys.available() && ask.iter().any(|f| matches!(f, Factor::Passkey { .. })) {
            let hardware_only = !ask.contains(&Factor::Passkey { hardware: false });
            match webauthn::start_authentication(idp, &pending.user_id, hardware_only).await {
                Ok(found) => Some(found),
                Err(e) if e.is_internal() => return internal_error(),
                Err(_) => None,
            }
        } else {
            None
        };
    form_page(idp, headers, status, |csrf| MfaPage {
        lang,
        back_path: "/login/mfa".into(),
        csrf,
        step_up: pending.sid.is_some(),
        target: pending.target.uri().to_string(),
        totp: ask.contains(&Factor::Totp),
        recovery: ask.contains(&Factor::RecoveryCode),
        passkey,
        error,
    })
}

pub async fn show(State(idp): State<Idp>, headers: HeaderMap) -> Response {
    match mfa_pending::current(&idp, &headers).await {
        Ok(Some(pending)) => render(&idp, &headers, &pending, StatusCode::OK, None).await,
        Ok(None) => request_expired(page_lang(None)),
        Err(_) => internal_error(),
    }
}

#[derive(Deserialize)]
pub struct FactorForm {
    csrf_token: Option<String>,
    method: Option<String>,
    code: Option<String>,
    ceremony: Option<String>,
    credential: Option<String>,
}

/// A message for a refused factor, in the page language.
pub fn refusal(lang: Lang, error: &MfaError) -> String {
    let text = match error {
        MfaError::WrongCode => lang.pick("コードが正しくありません。", "The code is not correct."),
        MfaError::Throttled => lang.pick(
            "誤ったコードが続いたため、しばらく受け付けません。時間をおいてやり直してください。",
            "Too many wrong codes. Wait a while and try again.",
        ),
        MfaError::PossiblyCloned => lang.pick(
            "このパスキーは複製された可能性があるため停止しました。別の方法でサインインしてください。",
            "This passkey may have been copied, so it is blocked. Sign in another way.",
        ),
        MfaError::ForeignCredential => lang.pick(
            "このパスキーは別のアカウントのものです。",
            "This passkey belongs to another account.",
        ),
        MfaError::Expired => lang.pick(
            "手続きの有効期限が切れました。もう一度お試しください。",
            "This step expired. Try again.",
        ),
        MfaError::NotEnrolled => lang.pick("この方法は設定されていません。", "This method is not set up."),
        _ => lang.pick(
            "確認できませんでした。もう一度お試しください。",
            "That could not be verified. Try again.",
        ),
    };
    text.to_string()
}

async fn check_factor(
    idp: &Idp,
    pending: &PendingMfa,
    form: &FactorForm,
) -> Result<(Factor, &'static str), MfaError> {
    let user = &pending.user_id;
    match form.method.as_deref() {
        Some("totp") => totp::verify(idp, user, form.code.as_deref().unwrap_or(""))
            .await
            .map(|_| (Factor::Totp, "otp")),
        Some("recovery") => recovery::consume(idp, user, form.code.as_deref().unwrap_or(""))
            .await
            .map(|_| (Factor::RecoveryCode, "recovery")),
        Some("passkey") => webauthn::finish_authentication(
            idp,
            user,
            form.ceremony.as_deref().unwrap_or(""),
            form.credential.as_deref().unwrap_or(""),
        )
        .await
        .map(|f| (f, "passkey")),
        _ => Err(MfaError::NotEnrolled),
    }
}

pub async fn submit(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<FactorForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let pending = match mfa_pending::current(&idp, &headers).await {
        Ok(Some(p)) => p,
        Ok(None) => return request_expired(page_lang(None)),
        Err(_) => return internal_error(),
    };
    let lang = page_lang(None);
    let (factor, method) = match check_factor(&idp, &pending, &form).await {
        Ok(found) => found,
        Err(e) if e.is_internal() => return internal_error(),
        Err(e) => {
            let status = if matches!(e, MfaError::Throttled) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            return render(&idp, &headers, &pending, status, Some(refusal(lang, &e))).await;
        }
    };
    let amr = policy::combine(&pending.amr, factor.amr());
    if Aal::from_amr(&amr).is_none_or(|a| a < pending.target) {
        let text = lang.pick(
            "この方法では必要な強さに足りません。別の方法を選んでください。",
            "This method is not strong enough here. Choose another one.",
        );
        return render(
            &idp,
            &headers,
            &pending,
            StatusCode::UNAUTHORIZED,
            Some(text.into()),
        )
        .await;
    }
    match finish(&idp, &headers, &pending, &amr, method).await {
        Ok(Some(cookies)) => {
            continue_to(
                &idp,
                pending.req.as_deref(),
                pending.next.as_deref(),
                cookies,
                pending.sid.is_none(),
                None,
            )
            .await
        }
        Ok(None) => request_expired(lang),
        Err(_) => internal_error(),
    }
}

/// Completes the pending step in one transaction: raises the session (step-up) or starts
/// it (second factor after the password). `None` when the step was already used.
async fn finish(
    idp: &Idp,
    headers: &HeaderMap,
    pending: &PendingMfa,
    amr: &[String],
    method: &str,
) -> Result<Option<Vec<HeaderValue>>, sqlx::Error> {
    let mut tx = idp.core.db.begin().await?;
    if !mfa_pending::finish(idp, tx.conn(), headers).await? {
        return Ok(None);
    }
    let mut cookies = vec![mfa_pending::clear_cookie(idp)];
    let entries = match &pending.sid {
        Some(sid) => {
            if !sessions::elevate(tx.conn(), sid, amr).await? {
                return Ok(None);
            }
            audit::append_in(
                tx.conn(),
                &[AuditEvent::new(Actor::user(&pending.user_id), "login.step_up", format!("user:{}", pending.user_id))
                    .details(json!({"method": method, "sid": sid, "amr": amr, "acr": Aal::from_amr(amr).map(|a| a.uri())}))],
            )
            .await?
        }
        None => {
            let signed_in = login::open_session(
                idp,
                tx.conn(),
                &pending.user_id,
                amr,
                None,
                &format!("pwd+{method}"),
                headers,
            )
            .await?;
            cookies.extend(signed_in.cookies);
            signed_in.entries
        }
    };
    tx.commit().await?;
    audit::publish(&entries);
    Ok(Some(cookies))
}

#[derive(Deserialize)]
pub struct CancelForm {
    csrf_token: Option<String>,
}

/// `POST /login/mfa/cancel`: gives up the second step; the client hears
/// `unmet_authentication_requirements` (step-up) or `access_denied`.
pub async fn cancel(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<CancelForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let pending = match mfa_pending::current(&idp, &headers).await {
        Ok(Some(p)) => p,
        Ok(None) => return see_other("/", None),
        Err(_) => return internal_error(),
    };
    let done = async {
        let mut tx = idp.core.db.begin().await?;
        mfa_pending::finish(&idp, tx.conn(), &headers).await?;
        tx.commit().await
    };
    if done.await.is_err() {
        return internal_error();
    }
    let clear = Some(mfa_pending::clear_cookie(&idp));
    let Some(req) = pending.req.as_deref() else {
        return see_other(&local_path(pending.next.as_deref()), clear);
    };
    let request = match pending::load(&idp, req).await {
        Ok(Some(p)) => p.request,
        Ok(None) => return request_expired(page_lang(None)),
        Err(_) => return internal_error(),
    };
    let error = if pending.sid.is_some() {
        OAuthError::unmet_authentication_requirements(
            "the person could not complete the stronger sign-in",
        )
    } else {
        OAuthError::access_denied("the person cancelled the sign-in")
    };
    see_other(
        &error_redirect(
            &idp,
            &request.redirect_uri,
            request.state.as_deref(),
            &error,
        ),
        clear,
    )
}

#[derive(Deserialize)]
pub struct PasskeyForm {
    csrf_token: Option<String>,
    req: Option<String>,
    next: Option<String>,
    ceremony: Option<String>,
    credential: Option<String>,
}

/// `POST /login/passkey`: passwordless sign-in with a discoverable passkey (user
/// verification required, so it is multi-factor on its own).
pub async fn passwordless(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<PasskeyForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let found = webauthn::finish_discoverable(
        &idp,
        form.ceremony.as_deref().unwrap_or(""),
        form.credential.as_deref().unwrap_or(""),
    )
    .await;
    let (user_id, factor) = match found {
        Ok(found) => found,
        Err(e) if e.is_internal() => return internal_error(),
        Err(e) => {
            return super::login::show_with_error(
                &idp,
                &headers,
                form.req.unwrap_or_default(),
                form.next,
                refusal(page_lang(None), &e),
            )
            .await;
        }
    };
    let active = match idp.core.db.conn().await {
        Ok(mut conn) => crate::users::find(&mut conn, &user_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|u| u.status == "active"),
        Err(_) => return internal_error(),
    };
    if !active {
        let text = page_lang(None).pick(
            "このアカウントは利用できません。",
            "This account cannot be used.",
        );
        return super::login::show_with_error(
            &idp,
            &headers,
            form.req.unwrap_or_default(),
            form.next,
            text.into(),
        )
        .await;
    }
    let amr = policy::combine(&[], factor.amr());
    match login::sign_in_with(&idp, &user_id, &amr, "passkey", &headers).await {
        Ok(signed_in) => {
            continue_to(
                &idp,
                form.req.as_deref(),
                form.next.as_deref(),
                signed_in.cookies,
                true,
                None,
            )
            .await
        }
        Err(_) => internal_error(),
    }
}
