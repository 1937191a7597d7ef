//! `GET/POST /consent`: what the service asks for, and the person's answer.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};
use kizuna_core::orgs;
use kizuna_core::web::Lang;

use super::account::display_time;
use super::{
    check_csrf, claim_label, form_page, internal_error, page_lang, request_expired, scope_label,
    see_other,
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
    /// What the service uses the data for, as its terms say (else its description).
    purpose: Option<String>,
    scopes: Vec<String>,
    claims: Vec<ClaimRow>,
    /// The day the consent ends unless the person ends it sooner.
    until: String,
    /// What the service offers to pass on to other services, each for the person to allow.
    linkages: Vec<LinkageRow>,
}

struct LinkageRow {
    target: String,
    /// "This service may obtain … from … for …", in the page's language.
    text: String,
}

struct ClaimRow {
    name: String,
    label: String,
    /// The person may decline it and still allow the rest.
    optional: bool,
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
    let (terms, lifetime) = match crate::consent::terms(&idp, &client.client_id).await {
        Ok(found) => found,
        Err(_) => return internal_error(),
    };
    let optional = terms
        .as_ref()
        .map(|t| t.optional_claims.clone())
        .unwrap_or_default();
    let purpose = match (&terms, lang) {
        (Some(t), Lang::Ja) => Some(t.purpose_ja.clone().unwrap_or_else(|| t.purpose.clone())),
        (Some(t), _) => Some(t.purpose.clone()),
        (None, _) => client.description.clone(),
    };
    // Whether an address is verified goes with the address: shown, and kept back, with it.
    let claims = crate::tokens::claims_of(&pending.request.scope)
        .into_iter()
        .filter(|name| !(name == "email_verified" && optional.iter().any(|o| o == "email")))
        .map(|name| ClaimRow {
            label: claim_label(&name, lang),
            optional: optional.contains(&name),
            name,
        })
        .collect();
    let until = display_time(kizuna_core::time::now_unix() + lifetime);
    let offers = match crate::consent::linkages(&idp, &client.client_id).await {
        Ok(found) => found,
        Err(_) => return internal_error(),
    };
    let mut linkages = Vec::with_capacity(offers.len());
    for l in offers {
        let target_name = match idp.clients.get(&idp.core.db, &l.target_client_id).await {
            Ok(Some(target)) => target.name.clone(),
            Ok(None) => continue,
            Err(_) => return internal_error(),
        };
        let scopes = l.scopes.join(", ");
        let text = match (lang, &l.purpose_ja) {
            (Lang::Ja, ja) => format!(
                "このサービスが {target_name} から {scopes} を受け取ること（目的: {}）",
                ja.as_ref().unwrap_or(&l.purpose)
            ),
            _ => format!(
                "This service may obtain {scopes} from {target_name}, for: {}",
                l.purpose
            ),
        };
        linkages.push(LinkageRow {
            target: l.target_client_id,
            text,
        });
    }
    form_page(&idp, &headers, StatusCode::OK, |csrf| ConsentPage {
        back_path: format!("/consent?req={req}"),
        lang,
        csrf,
        action: "/consent".into(),
        req,
        client_name: client.name.clone(),
        org_name,
        purpose,
        claims,
        until: until.get(..10).unwrap_or_default().to_string(),
        linkages,
        scopes: pending
            .request
            .scope
            .iter()
            .map(|s| scope_label(s, lang))
            .collect(),
    })
}

/// The page's answer: `csrf_token`, `req`, `decision` (approve or deny), and one `claim` per
/// optional claim the person left ticked (the optional claims not among them are declined).
struct ConsentForm {
    csrf_token: Option<String>,
    req: Option<String>,
    decision: Option<String>,
    kept: Vec<String>,
    /// The linkages (target client ids) the person ticked.
    linked: Vec<String>,
}

impl ConsentForm {
    fn read(body: &[u8]) -> ConsentForm {
        let mut form = ConsentForm {
            csrf_token: None,
            req: None,
            decision: None,
            kept: Vec::new(),
            linked: Vec::new(),
        };
        for (key, value) in url::form_urlencoded::parse(body) {
            match key.as_ref() {
                "csrf_token" => form.csrf_token = Some(value.into_owned()),
                "req" => form.req = Some(value.into_owned()),
                "decision" => form.decision = Some(value.into_owned()),
                "claim" => form.kept.push(value.into_owned()),
                "linkage" => form.linked.push(value.into_owned()),
                _ => {}
            }
        }
        form
    }
}

pub async fn submit(State(idp): State<Idp>, headers: HeaderMap, body: Bytes) -> Response {
    let form = ConsentForm::read(&body);
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
    let declined: Vec<String> = crate::tokens::claims_of(&pending.request.scope)
        .into_iter()
        .filter(|c| !form.kept.contains(c))
        .collect();
    let answer = Answer {
        approve,
        declined: &declined,
        linked: &form.linked,
    };
    let result = record(&idp, &session, &client, &pending, &req, answer).await;
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

/// The person's answer on the page.
struct Answer<'a> {
    approve: bool,
    /// Optional claims kept back.
    declined: &'a [String],
    /// Linkages allowed (target client ids).
    linked: &'a [String],
}

async fn record(
    idp: &Idp,
    session: &Session,
    client: &Client,
    pending: &Pending,
    req: &str,
    answer: Answer<'_>,
) -> Result<(), sqlx::Error> {
    let approve = answer.approve;
    let mut tx = idp.core.db.begin().await?;
    let given = if approve {
        Some(
            crate::consent::grant(
                idp,
                tx.conn(),
                &session.user_id,
                &client.client_id,
                &crate::consent::Agreement {
                    scopes: &pending.request.scope,
                    declined: answer.declined,
                    linked: answer.linked,
                    given_by: crate::consent::CONSENT_PAGE,
                },
            )
            .await?,
        )
    } else {
        pending::consume(tx.conn(), req).await?;
        None
    };
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
    .details(match &given {
        Some(c) => json!({
            "scope": pending.request.scope, "claims": c.claims, "declined": c.declined,
            "purpose_version": c.purpose_version, "expires_at": c.expires_at,
            "given_by": c.given_by, "linkages": c.linkages,
        }),
        None => json!({"scope": pending.request.scope}),
    });
    let entries = audit::append_in(tx.conn(), &[event]).await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
}
