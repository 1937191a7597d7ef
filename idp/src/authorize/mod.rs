//! The authorization endpoint (RFC 6749 §3.1, OpenID Connect Core §3.1.2), its continuation
//! after sign-in and consent, and pushed authorization requests (RFC 9126).

pub mod flow;
pub mod pending;
pub mod request;

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use self::flow::{Step, decide, error_redirect};
use self::pending::{Pending, REQUEST_URI_PREFIX};
use self::request::{Params, Rejection};
use kizuna_core::web::client_cert::Channel;

use crate::Idp;
use crate::client_auth;
use crate::error::{OAuthError, request_error_page};
use crate::pages::{internal_error, page_lang, request_expired};
use crate::sessions;
use crate::token::form_params;

fn query_params(raw: Option<&str>) -> Params {
    Params(
        url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

pub async fn get(
    State(idp): State<Idp>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(&idp, &headers, query_params(query.as_deref())).await
}

pub async fn post(State(idp): State<Idp>, headers: HeaderMap, body: Bytes) -> Response {
    match form_params(&headers, &body) {
        Ok(params) => authorize(&idp, &headers, params).await,
        Err(e) => request_error_page(
            "The sign-in request is not valid",
            "サインイン要求が正しくありません",
            &e.description,
        ),
    }
}

fn to_response(step: Result<Step, OAuthError>) -> Response {
    match step {
        Ok(Step::Redirect(url)) => Redirect::to(&url).into_response(),
        Ok(Step::Login(id)) => Redirect::to(&format!("/login?req={id}")).into_response(),
        Ok(Step::Consent(id)) => Redirect::to(&format!("/consent?req={id}")).into_response(),
        Ok(Step::SecondFactor(cookie)) => crate::pages::see_other("/login/mfa", Some(cookie)),
        Ok(Step::Proofing(id)) => {
            Redirect::to(&format!("/account/identity?req={id}")).into_response()
        }
        Err(e) if e.status.is_server_error() => internal_error(),
        Err(e) => request_error_page(
            "The sign-in request cannot continue",
            "サインインを続行できません",
            &e.description,
        ),
    }
}

fn rejection_response(idp: &Idp, rejection: Rejection) -> Response {
    match rejection {
        Rejection::Page(detail) => request_error_page(
            "The sign-in request is not valid",
            "サインイン要求が正しくありません",
            &detail,
        ),
        Rejection::Redirect {
            redirect_uri,
            state,
            error,
        } => Redirect::to(&error_redirect(
            idp,
            &redirect_uri,
            state.as_deref(),
            &error,
        ))
        .into_response(),
    }
}

async fn authorize(idp: &Idp, headers: &HeaderMap, params: Params) -> Response {
    let request = match parse(idp, &params).await {
        Ok(request) => request,
        Err(rejection) => return rejection_response(idp, rejection),
    };
    let client = match idp.clients.get(&idp.core.db, &request.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return request_error_page(
                "Unknown service",
                "不明なサービス",
                "The service is no longer registered.",
            );
        }
        Err(_) => return internal_error(),
    };
    let session = match sessions::current(idp, headers).await {
        Ok(s) => s,
        Err(_) => return internal_error(),
    };
    to_response(decide(idp, &client, session, Pending::new(request), None).await)
}

async fn parse(idp: &Idp, params: &Params) -> Result<request::AuthorizationRequest, Rejection> {
    let request_uri = params.get("request_uri").map_err(Rejection::Page)?;
    if let Some(request_uri) = request_uri {
        let client_id = params
            .get("client_id")
            .map_err(Rejection::Page)?
            .ok_or_else(|| Rejection::Page("client_id is missing".into()))?;
        return match pending::take_pushed(idp, request_uri, client_id).await {
            Ok(Some(request)) => Ok(request),
            Ok(None) => Err(Rejection::Page(
                "The pushed request (request_uri) is unknown, expired, already used, or for another service.".into(),
            )),
            Err(_) => Err(Rejection::Page("The request could not be looked up; try again later.".into())),
        };
    }
    let (client, redirect_uri) = request::client_and_redirect(idp, params).await?;
    if client.require_par {
        return Err(Rejection::Redirect {
            redirect_uri,
            state: params.get("state").ok().flatten().map(str::to_string),
            error: OAuthError::invalid_request(
                "this client must use pushed authorization requests (PAR)",
            ),
        });
    }
    request::parse_rest(&client, redirect_uri, params)
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    req: Option<String>,
}

/// Continues a request after sign-in or consent.
pub async fn resume(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<ResumeQuery>,
) -> Response {
    let req = q.req.unwrap_or_default();
    let pending = match pending::load(&idp, &req).await {
        Ok(Some(p)) => p,
        Ok(None) => return request_expired(page_lang(None)),
        Err(_) => return internal_error(),
    };
    let client = match idp
        .clients
        .get(&idp.core.db, &pending.request.client_id)
        .await
    {
        Ok(Some(c)) if c.is_active() => c,
        Ok(_) => return request_expired(page_lang(None)),
        Err(_) => return internal_error(),
    };
    let session = match sessions::current(&idp, &headers).await {
        Ok(s) => s,
        Err(_) => return internal_error(),
    };
    to_response(decide(&idp, &client, session, pending, Some(req)).await)
}

/// `POST /par`: stores a validated request and returns its `request_uri` (RFC 9126 §2).
pub async fn par(
    State(idp): State<Idp>,
    channel: Option<axum::Extension<Channel>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = channel.as_ref().and_then(|c| c.leaf());
    match push(&idp, &headers, &body, certificate).await {
        Ok((request_uri, expires_in)) => (
            StatusCode::CREATED,
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(json!({"request_uri": request_uri, "expires_in": expires_in})),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn push(
    idp: &Idp,
    headers: &HeaderMap,
    body: &[u8],
    certificate: Option<&[u8]>,
) -> Result<(String, i64), OAuthError> {
    let params = form_params(headers, body)?;
    let client = client_auth::authenticate(idp, headers, &params, certificate)
        .await?
        .client;
    if params
        .get("request_uri")
        .map_err(OAuthError::invalid_request)?
        .is_some()
    {
        return Err(OAuthError::invalid_request(
            "request_uri must not be pushed",
        ));
    }
    let (found, redirect_uri) = request::client_and_redirect(idp, &params)
        .await
        .map_err(|r| match r {
            Rejection::Page(detail) => OAuthError::invalid_request(detail),
            Rejection::Redirect { error, .. } => error,
        })?;
    if found.client_id != client.client_id {
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }
    let request = request::parse_rest(&client, redirect_uri, &params).map_err(|r| match r {
        Rejection::Page(detail) => OAuthError::invalid_request(detail),
        Rejection::Redirect { error, .. } => error,
    })?;
    let id = pending::store(idp, &Pending::new(request), true).await?;
    Ok((format!("{REQUEST_URI_PREFIX}{id}"), idp.config.par_ttl_secs))
}
