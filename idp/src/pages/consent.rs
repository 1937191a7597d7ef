//! `GET/POST /consent`: what the service asks for, and the person's answer.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::orgs;
use kizuna_core::web::Lang;

use super::{
    check_csrf, form_page, internal_error, page_lang, request_expired, scope_label, see_other,
};
use crate::Idp;
use crate::authorize::flow::error_redirect;
use crate::authorize::pending::{self, Pending};
use crate::clients::Client;
use crate::error::OAuthError;
use crate::sessions::{self, Session};

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    action: String,
    req: String,
    client_name: String,
    org_name: Option<String>,
    description: Option<String>,
    scopes: Vec<String>,
}

#[derive(Deserialize)]
pub struct ConsentQuery {
    req: Option<String>,
}

/// The pending request, its client, and the signed-in person; `None` when any is gone.
async fn load(
    idp: &Idp,
    headers: &HeaderMap,
    req: &str,
) -> Result<Option<(Pending, Client, Session)>, sqlx::Error> {
    let Some(pending) = pending::load(idp, req).await? else {
        return Ok(None);
    };
    let Some(client) = idp
        .clients
        .get(&idp.core.db, &pending.request.client_id)
        .await?
    else {
        return Ok(None);
    };
    let Some(session) = sessions::current(idp, headers).await? else {
        return Ok(None);
    };
    Ok(Some((
        pending,
        std::sync::Arc::unwrap_or_clone(client),
        session,
    )))
}

pub async fn show(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let req = q.req.unwrap_or_default();
    let (pending, client, _) = match load(&idp, &headers, &req).await {
        Ok(Some(found)) => found,
        Ok(None) => return request_expired(page_lang(None)),
        Err(_) => return internal_error(),
    };
    let lang = page_lang(pending.request.ui_locales.as_deref());
    let org_name = match &client.org_id {
        Some(org) => orgs::find(&idp.core.db, org)
            .await
            .ok()
            .map(|o| match (lang, o.name_ja) {
                (Lang::Ja, Some(ja)) => ja,
                _ => o.name,
            }),
        None => None,
    };
    form_page(&idp, &headers, StatusCode::OK, |csrf| ConsentPage {
        back_path: format!("/consent?req={req}"),
        lang,
        csrf,
        action: "/consent".into(),
        req,
        client_name: client.name.clone(),
        org_name,
        description: client.description.clone(),
        scopes: pending
            .request
            .scope
            .iter()
            .map(|s| scope_label(s, lang))
            .collect(),
    })
}

#[derive(Deserialize)]
pub struct ConsentForm {
    csrf_token: Option<String>,
    req: Option<String>,
    decision: Option<String>,
}

pub async fn submit(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let req = form.req.unwrap_or_default();
    let (mut pending, client, session) = match load(&idp, &headers, &req).await {
        Ok(Some(found)) => found,
        Ok(None) => return request_expired(page_lang(None)),
        Err(_) => return internal_error(),
    };
    let approve = form.decision.as_deref() == Some("approve");
    let result = record(&idp, &session, &client, &pending, &req, approve).await;
    if result.is_err() {
        return internal_error();
    }
    if !approve {
        let url = error_redirect(
            &idp,
            &pending.request.redirect_uri,
            pending.request.state.as_deref(),
            &OAuthError::access_denied("the person declined"),
        );
        return see_other(&url, None);
    }
    pending.consent_done = true;
    if pending::update(&idp, &req, &pending).await.is_err() {
        return internal_error();
    }
    see_other(&format!("/authorize/resume?req={req}"), None)
}

async fn record(
    idp: &Idp,
    session: &Session,
    client: &Client,
    pending: &Pending,
    req: &str,
    approve: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = idp.core.db.begin().await?;
    if approve {
        crate::consent::grant(
            tx.conn(),
            &session.user_id,
            &client.client_id,
            &pending.request.scope,
        )
        .await?;
    } else {
        pending::consume(tx.conn(), req).await?;
    }
    let event = AuditEvent::new(
        Actor::user(&session.user_id),
        if approve {
            "consent.grant"
        } else {
            "consent.deny"
        },
        format!("client:{}", client.client_id),
    )
    .outcome(if approve {
        Outcome::Success
    } else {
        Outcome::Denied
    })
    .details(json!({"scope": pending.request.scope}));
    let entries = audit::append_in(tx.conn(), &[event]).await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
}
