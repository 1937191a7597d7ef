//! The federated sign-in pages: `POST /login/federated` (a "Sign in with …" button, or
//! home-realm discovery by email domain), `GET /federation/callback` (the upstream's answer),
//! `/federation/link` (link an upstream identity to an existing account after signing in to
//! it), `GET /federation/logout/done` (back from logout at the upstream), and the upstream's
//! protocol endpoints: back-channel logout and the client-assertion JWK Set.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use kizuna_core::web::{ErrorPage, Lang, local_path};

use super::mfa::continue_to;
use super::{
    check_csrf, form_page, internal_error, message, page_lang, request_expired, see_other,
};
use crate::Idp;
use crate::authorize::pending;
use crate::federation::accounts::{self, PendingLink, Resolution};
use crate::federation::client::{self, CallbackParams, Refused};
use crate::federation::{Continuation, FederationError, UpstreamIdentity, logout, upstreams};
use crate::sessions;
use crate::users;

#[derive(Deserialize)]
pub struct StartForm {
    csrf_token: Option<String>,
    req: Option<String>,
    next: Option<String>,
    /// The alias of the button pressed.
    upstream: Option<String>,
    /// An address for home-realm discovery.
    email: Option<String>,
}

/// The page for an upstream that cannot be used right now.
fn unavailable(name: &str, error: &FederationError) -> Response {
    let (status, ja, en) = match error {
        FederationError::Disabled => (
            StatusCode::FORBIDDEN,
            format!("{name} でのサインインは現在使えません"),
            format!("Signing in with {name} is switched off"),
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            format!(
                "{name} に接続できません。しばらくしてからやり直すか、市のアカウントでサインインしてください"
            ),
            format!("{name} cannot be reached. Try again later, or sign in with your city account"),
        ),
    };
    tracing::warn!(error = %error, upstream = name, "upstream sign-in unavailable");
    ErrorPage::new(status, ja, en)
        .detail(error.to_string())
        .into_response()
}

/// `POST /login/federated`: starts the sign-in at the chosen upstream (or the one whose
/// email domain the address has).
pub async fn start(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let req = form.req.unwrap_or_default();
    let next = local_path(form.next.as_deref());
    let lang = if req.is_empty() {
        page_lang(None)
    } else {
        match pending::load(&idp, &req).await {
            Ok(Some(p)) => page_lang(p.request.ui_locales.as_deref()),
            Ok(None) => return request_expired(page_lang(None)),
            Err(_) => return internal_error(),
        }
    };
    let email = form
        .email
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 254);
    let found = match (&form.upstream, &email) {
        (Some(alias), _) => upstreams::find(&idp, alias)
            .await
            .map(|u| u.filter(|u| u.alias == *alias && u.is_active())),
        (None, Some(email)) => upstreams::for_email(&idp, email).await,
        (None, None) => Ok(None),
    };
    let upstream = match found {
        Ok(Some(u)) => u,
        Ok(None) => {
            let text = match &email {
                Some(_) if form.upstream.is_none() => lang.pick(
                    "このメールアドレスの組織のサインインはありません。市のアカウントでサインインしてください。",
                    "There is no organization sign-in for this address. Sign in with your city account.",
                ),
                _ => lang.pick(
                    "このサインイン方法は使えません。",
                    "This sign-in option is not available.",
                ),
            };
            return super::login::show_with_error(&idp, &headers, req, Some(next), text.into())
                .await;
        }
        Err(_) => return internal_error(),
    };
    let continuation = Continuation::SignIn {
        req: Some(req).filter(|r| !r.is_empty()),
        next: Some(next),
    };
    match client::start(&idp, &upstream, &continuation, email.as_deref(), &headers).await {
        Ok(started) => see_other(&started.location, started.cookie),
        Err(e) if e.is_internal() => internal_error(),
        Err(e) => unavailable(&upstream.name, &e),
    }
}

/// The page for a refused upstream answer.
fn refused_page(refused: &Refused) -> Response {
    let name = refused
        .upstream
        .as_ref()
        .map_or("the organization", |u| u.name.as_str());
    let (status, ja, en) = match &refused.error {
        FederationError::BadState => (
            StatusCode::BAD_REQUEST,
            "このサインインは、このブラウザで始めたものと一致しないか、期限切れか、すでに使われています。利用中のサービスに戻ってやり直してください".to_string(),
            "This sign-in does not match one started in this browser, has expired, or was already used. Go back to the service and start again".to_string(),
        ),
        FederationError::Upstream(_) => (
            StatusCode::FORBIDDEN,
            format!("{name} でのサインインは取り消されたか、拒否されました"),
            format!("Signing in with {name} was cancelled or refused"),
        ),
        FederationError::AccountInactive => (
            StatusCode::FORBIDDEN,
            "連携先のアカウントは停止されています".to_string(),
            "The linked account is not active".to_string(),
        ),
        FederationError::Link(_) => (
            StatusCode::CONFLICT,
            format!("{name} のアカウントではサインインできません"),
            format!("You cannot be signed in with this {name} account"),
        ),
        FederationError::Disabled | FederationError::Discovery(_) => {
            return unavailable(name, &refused.error);
        }
        _ => (
            StatusCode::BAD_GATEWAY,
            format!("{name} からの応答を確認できなかったため、サインインできませんでした"),
            format!("The answer from {name} could not be verified, so you are not signed in"),
        ),
    };
    ErrorPage::new(status, ja, en)
        .detail(refused.error.to_string())
        .into_response()
}

/// Where a continuation goes after a finished sign-in.
async fn proceed(
    idp: &Idp,
    continuation: &Continuation,
    cookies: Vec<axum::http::HeaderValue>,
) -> Response {
    match continuation {
        Continuation::SignIn { req, next } => {
            continue_to(idp, req.as_deref(), next.as_deref(), cookies, true, None).await
        }
        Continuation::Proofing { req, .. } => see_other(
            &crate::assurance::pages::continue_path(req.as_deref()),
            None,
        ),
    }
}

/// `GET /federation/callback`: the upstream's answer, checked, then handed to what the
/// authorization was started for.
pub async fn callback(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let result = client::finish(&idp, &headers, &params).await;
    answered(&idp, &headers, result).await
}

/// An upstream's answer (OpenID Connect or SAML): the refusal page, or on to what the
/// sign-in was started for.
pub(super) async fn answered(
    idp: &Idp,
    headers: &HeaderMap,
    result: Result<(UpstreamIdentity, Continuation), Refused>,
) -> Response {
    let (identity, continuation) = match result {
        Ok(done) => done,
        Err(refused) if refused.error.is_internal() => return internal_error(),
        Err(refused) => return refused_page(&refused),
    };
    match &continuation {
        Continuation::SignIn { .. } => sign_in(idp, headers, &identity, &continuation).await,
        Continuation::Proofing { user_id, .. } => {
            match crate::assurance::jpki_oidc::record(idp, headers, &identity, user_id).await {
                Ok(()) => proceed(idp, &continuation, Vec::new()).await,
                Err(page) => page,
            }
        }
    }
}

/// A federated sign-in: the linked or provisioned account's session, or the link page.
async fn sign_in(
    idp: &Idp,
    headers: &HeaderMap,
    identity: &UpstreamIdentity,
    continuation: &Continuation,
) -> Response {
    match accounts::sign_in(idp, identity, continuation, headers).await {
        Ok(Resolution::SignedIn(signed_in)) => proceed(idp, continuation, signed_in.cookies).await,
        Ok(Resolution::NeedsLink(cookie)) => see_other("/federation/link", Some(cookie)),
        Err(e) if e.is_internal() => internal_error(),
        Err(error) => refused_page(&Refused {
            error,
            upstream: upstreams::find(idp, &identity.upstream_id)
                .await
                .ok()
                .flatten(),
            continuation: Some(continuation.clone()),
        }),
    }
}

#[derive(Template)]
#[template(path = "federation_link.html")]
struct LinkPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    upstream: String,
    email: Option<String>,
    /// The account signed in (recently enough) to link to.
    username: Option<String>,
    error: Option<String>,
}

async fn link_context(
    idp: &Idp,
    headers: &HeaderMap,
) -> Result<(PendingLink, String, Option<users::UserRecord>), Response> {
    let pending = match accounts::pending_link(idp, headers).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(request_expired(page_lang(None))),
        Err(_) => return Err(internal_error()),
    };
    let name = match upstreams::find(idp, &pending.identity.upstream_id).await {
        Ok(Some(u)) => u.name,
        Ok(None) => return Err(request_expired(page_lang(None))),
        Err(_) => return Err(internal_error()),
    };
    let session = match sessions::current(idp, headers).await {
        Ok(s) => s.filter(|s| {
            s.auth_time >= pending.created_at && !s.amr.iter().any(|a| a == accounts::AMR_FED)
        }),
        Err(_) => return Err(internal_error()),
    };
    let user = match session {
        Some(s) => {
            let Ok(mut conn) = idp.core.db.conn().await else {
                return Err(internal_error());
            };
            match users::find(&mut conn, &s.user_id).await {
                Ok(u) => u,
                Err(_) => return Err(internal_error()),
            }
        }
        None => None,
    };
    Ok((pending, name, user))
}

fn render_link(
    idp: &Idp,
    headers: &HeaderMap,
    status: StatusCode,
    pending: &PendingLink,
    upstream: String,
    user: Option<users::UserRecord>,
    error: Option<String>,
) -> Response {
    form_page(idp, headers, status, |csrf| LinkPage {
        lang: page_lang(None),
        back_path: "/federation/link".into(),
        csrf,
        upstream,
        email: pending.identity.mapped.email.clone(),
        username: user.map(|u| u.username),
        error,
    })
}

/// `GET /federation/link`: asks the person to sign in to their existing account (or, once
/// they have, to confirm the link).
pub async fn link_page(State(idp): State<Idp>, headers: HeaderMap) -> Response {
    match link_context(&idp, &headers).await {
        Ok((pending, name, user)) => {
            render_link(&idp, &headers, StatusCode::OK, &pending, name, user, None)
        }
        Err(page) => page,
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf_token: Option<String>,
}

/// `POST /federation/link`: links the waiting identity to the account just signed in to.
pub async fn link(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let (pending, name, user) = match link_context(&idp, &headers).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(user) = user else {
        return see_other("/federation/link", None);
    };
    match accounts::complete_link(&idp, &headers, &user.id).await {
        Ok((_, continuation)) => {
            proceed(&idp, &continuation, vec![accounts::clear_link_cookie(&idp)]).await
        }
        Err(FederationError::Link(text)) => render_link(
            &idp,
            &headers,
            StatusCode::CONFLICT,
            &pending,
            name,
            Some(user),
            Some(text.to_string()),
        ),
        Err(FederationError::BadState) => request_expired(page_lang(None)),
        Err(_) => internal_error(),
    }
}

/// `POST /federation/link/cancel`: forgets the waiting identity and goes back to sign-in.
pub async fn cancel_link(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let location = match accounts::cancel_link(&idp, &headers).await {
        Ok(Some(Continuation::SignIn { req: Some(req), .. })) => format!("/login?req={req}"),
        Ok(_) => "/".to_string(),
        Err(_) => return internal_error(),
    };
    see_other(&location, Some(accounts::clear_link_cookie(&idp)))
}

#[derive(Deserialize)]
pub struct LogoutReturn {
    state: Option<String>,
}

/// `GET /federation/logout/done`: the upstream signed the person out too; on to the city
/// service's page, or a signed-out message.
pub async fn logged_out(State(idp): State<Idp>, Query(q): Query<LogoutReturn>) -> Response {
    let state = q.state.unwrap_or_default();
    match logout::returned(&idp, &state).await {
        Ok(Some(Some(url))) => see_other(&url, None),
        Ok(_) => signed_out(),
        Err(_) => internal_error(),
    }
}

/// The page after a logout that went on to the upstream and has nowhere else to go.
pub(super) fn signed_out() -> Response {
    message(
        StatusCode::OK,
        page_lang(None),
        ("サインアウトしました", "Signed out"),
        (
            "市のサインインと連携先のサインインを終了しました。",
            "You are signed out of your city account and of the organization you signed in with.",
        ),
    )
}

#[derive(Deserialize)]
pub struct LogoutTokenForm {
    logout_token: Option<String>,
}

/// `POST /federation/{alias}/backchannel-logout` (OpenID Connect Back-Channel Logout 1.0
/// §2.5, §2.8): 200 once the sessions are ended, 400 with an OAuth error otherwise.
pub async fn backchannel_logout(
    State(idp): State<Idp>,
    Path(alias): Path<String>,
    Form(form): Form<LogoutTokenForm>,
) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    let Some(token) = form.logout_token.filter(|t| !t.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            no_store,
            Json(
                json!({"error": "invalid_request", "error_description": "logout_token is missing"}),
            ),
        )
            .into_response();
    };
    match logout::backchannel(&idp, &alias, &token).await {
        Ok(_) => (StatusCode::OK, no_store).into_response(),
        Err(e) if e.is_internal() => (StatusCode::INTERNAL_SERVER_ERROR, no_store).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            no_store,
            Json(json!({"error": "invalid_request", "error_description": e.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /federation/{alias}/jwks`: the public key Kizuna signs `private_key_jwt` assertions
/// to this upstream with (for the upstream's `jwks_uri` registration).
pub async fn client_jwks(State(idp): State<Idp>, Path(alias): Path<String>) -> Response {
    let upstream = match upstreams::find(&idp, &alias).await {
        Ok(Some(u)) if u.alias == alias => u,
        Ok(_) => return ErrorPage::not_found().into_response(),
        Err(_) => return internal_error(),
    };
    match upstreams::client_jwks(&idp, &upstream).await {
        Ok(Some(jwks)) => {
            ([(header::CACHE_CONTROL, "public, max-age=300")], Json(jwks)).into_response()
        }
        Ok(None) => ErrorPage::not_found().into_response(),
        Err(_) => internal_error(),
    }
}
