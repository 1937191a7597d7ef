//! `GET/POST /logout` (RP-initiated logout) and `POST /logout/confirm`; a federated
//! session's logout continues at its upstream.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use kizuna_core::web::{ErrorPage, Lang};

use super::{check_csrf, form_page, internal_error, message, page_lang, see_other};
use crate::Idp;
use crate::authorize::flow::with_query;
use crate::clients;
use crate::federation;
use crate::logout;
use crate::sessions;

#[derive(Template)]
#[template(path = "logout.html")]
struct ConfirmPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    post_logout_redirect_uri: String,
    state: String,
    client_id: String,
}

#[derive(Deserialize, Default)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    ui_locales: Option<String>,
    csrf_token: Option<String>,
}

/// What the ID token hint says (its signature checked; it may have expired).
struct Hint {
    client_id: String,
    sub: String,
    sid: Option<String>,
}

async fn read_hint(idp: &Idp, token: &str) -> Option<Hint> {
    let jws = idp.keys.verify_own(token).await.ok()?;
    let claims: serde_json::Value = jws.claims().ok()?;
    if claims["iss"].as_str() != Some(idp.issuer()) {
        return None;
    }
    let client_id = match &claims["aud"] {
        serde_json::Value::String(a) => a.clone(),
        serde_json::Value::Array(list) => list.first()?.as_str()?.to_string(),
        _ => return None,
    };
    Some(Hint {
        client_id,
        sub: claims["sub"].as_str()?.to_string(),
        sid: claims["sid"].as_str().map(str::to_string),
    })
}

fn bad(detail: &str) -> Response {
    ErrorPage::new(
        StatusCode::BAD_REQUEST,
        "サインアウトの要求が正しくありません",
        "The sign-out request is not valid",
    )
    .detail(detail)
    .into_response()
}

/// Checks the return address against the client's registered ones.
async fn checked_return(
    idp: &Idp,
    client_id: Option<&str>,
    uri: Option<&str>,
) -> Result<Option<String>, Response> {
    let Some(uri) = uri.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
        return Err(bad(
            "post_logout_redirect_uri needs id_token_hint or client_id to identify the service.",
        ));
    };
    let client = clients::get(&idp.core.db, client_id)
        .await
        .map_err(|_| internal_error())?;
    match client {
        Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
            Ok(Some(uri.to_string()))
        }
        _ => Err(bad(
            "post_logout_redirect_uri is not registered for this service.",
        )),
    }
}

fn finish(idp: &Idp, lang: Lang, return_to: Option<String>, state: Option<&str>) -> Response {
    let cookie = Some(sessions::clear_cookie(idp));
    match return_to {
        Some(uri) => {
            let params: Vec<(&str, &str)> = state.map(|s| vec![("state", s)]).unwrap_or_default();
            see_other(&with_query(&uri, &params), cookie)
        }
        None => {
            let mut response = message(
                StatusCode::OK,
                lang,
                ("サインアウトしました", "Signed out"),
                (
                    "市のサインインを終了しました。",
                    "You are signed out of your city account.",
                ),
            );
            if let Some(c) = cookie {
                response
                    .headers_mut()
                    .append(axum::http::header::SET_COOKIE, c);
            }
            response
        }
    }
}

/// Ends the session; a session an upstream's sign-in started continues to the upstream's
/// logout (which sends the browser back to `return_to`) when the upstream offers it.
async fn sign_out(
    idp: &Idp,
    lang: Lang,
    session: &sessions::Session,
    return_to: Option<String>,
    state: Option<&str>,
) -> Response {
    let back = return_to.as_deref().map(|uri| {
        let params: Vec<(&str, &str)> = state.map(|s| vec![("state", s)]).unwrap_or_default();
        with_query(uri, &params)
    });
    let upstream = match federation::logout::upstream_logout(idp, session, back).await {
        Ok(url) => url,
        Err(e) if e.is_internal() => return internal_error(),
        Err(e) => {
            tracing::warn!(error = %e, "logout at the upstream skipped");
            None
        }
    };
    if logout::end_session(idp, session).await.is_err() {
        return internal_error();
    }
    match upstream {
        Some(url) => see_other(&url, Some(sessions::clear_cookie(idp))),
        None => finish(idp, lang, return_to, state),
    }
}

pub async fn start_get(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(p): Query<LogoutParams>,
) -> Response {
    start(&idp, &headers, p).await
}

pub async fn start_post(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(p): Form<LogoutParams>,
) -> Response {
    start(&idp, &headers, p).await
}

async fn start(idp: &Idp, headers: &HeaderMap, p: LogoutParams) -> Response {
    let lang = page_lang(p.ui_locales.as_deref());
    let hint = match &p.id_token_hint {
        Some(token) => match read_hint(idp, token).await {
            Some(hint) => Some(hint),
            None => return bad("id_token_hint is not an ID token issued here."),
        },
        None => None,
    };
    if let (Some(h), Some(c)) = (&hint, &p.client_id)
        && h.client_id != *c
    {
        return bad("client_id does not match id_token_hint.");
    }
    let client_id = hint
        .as_ref()
        .map(|h| h.client_id.clone())
        .or(p.client_id.clone());
    let return_to = match checked_return(
        idp,
        client_id.as_deref(),
        p.post_logout_redirect_uri.as_deref(),
    )
    .await
    {
        Ok(r) => r,
        Err(page) => return page,
    };
    let session = match sessions::current(idp, headers).await {
        Ok(s) => s,
        Err(_) => return internal_error(),
    };
    let Some(session) = session else {
        return finish(idp, lang, return_to, p.state.as_deref());
    };
    let hint_matches = hint.as_ref().is_some_and(|h| {
        h.sub == session.user_id && h.sid.as_deref().is_none_or(|sid| sid == session.sid)
    });
    if hint_matches {
        return sign_out(idp, lang, &session, return_to, p.state.as_deref()).await;
    }
    form_page(idp, headers, StatusCode::OK, |csrf| ConfirmPage {
        lang,
        back_path: "/logout".into(),
        csrf,
        post_logout_redirect_uri: return_to.unwrap_or_default(),
        state: p.state.unwrap_or_default(),
        client_id: client_id.unwrap_or_default(),
    })
}

pub async fn confirm(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(p): Form<LogoutParams>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, p.csrf_token.as_deref()) {
        return refused;
    }
    let lang = page_lang(None);
    let return_to = match checked_return(
        &idp,
        p.client_id.as_deref(),
        p.post_logout_redirect_uri.as_deref(),
    )
    .await
    {
        Ok(r) => r,
        Err(page) => return page,
    };
    let state = p.state.filter(|s| !s.is_empty());
    match sessions::current(&idp, &headers).await {
        Ok(Some(session)) => sign_out(&idp, lang, &session, return_to, state.as_deref()).await,
        Ok(None) => finish(&idp, lang, return_to, state.as_deref()),
        Err(_) => internal_error(),
    }
}
