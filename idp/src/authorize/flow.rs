//! What happens next for an authorization request (OpenID Connect Core §3.1.2.2–3.1.2.6):
//! sign in, consent, or a code back to the client — or the error that `prompt=none` asks for.

use kizuna_core::secret;

use super::pending::{self, Pending};
use crate::Idp;
use crate::clients::Client;
use crate::consent;
use crate::error::OAuthError;
use crate::mfa::{
    self,
    policy::{self, Next},
};
use crate::sessions::{self, Session};
use crate::store::codes;

/// The next step for the browser.
#[derive(Debug)]
pub enum Step {
    /// Show the sign-in page for this pending request.
    Login(String),
    /// Show the consent page for this pending request.
    Consent(String),
    /// Ask for a further factor: the pending second-factor step's cookie.
    SecondFactor(axum::http::HeaderValue),
    /// Send the browser back to the client.
    Redirect(String),
    /// Offer identity proofing for this pending request (the person is below the IAL asked).
    Proofing(String),
}

/// A URI with query parameters appended (keeping any it already has).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return uri.to_string();
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

/// The client's redirect URI with response parameters and `iss` (RFC 9207).
pub fn redirect_url(idp: &Idp, redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut all = params.to_vec();
    all.push(("iss", idp.issuer()));
    with_query(redirect_uri, &all)
}

/// The client's redirect URI carrying an error.
pub fn error_redirect(
    idp: &Idp,
    redirect_uri: &str,
    state: Option<&str>,
    error: &OAuthError,
) -> String {
    let mut params = vec![
        ("error", error.code),
        ("error_description", error.description.as_str()),
    ];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_url(idp, redirect_uri, &params)
}

/// Decides the next step. `pending_id` is set when the request is already stored.
pub async fn decide(
    idp: &Idp,
    client: &Client,
    session: Option<Session>,
    pending: Pending,
    pending_id: Option<String>,
) -> Result<Step, OAuthError> {
    let req = &pending.request;
    let now = kizuna_core::time::now_unix();
    let too_old = |s: &Session| req.max_age.is_some_and(|max| now - s.auth_time > max);
    // There is no account chooser: `select_account` shows the sign-in page, where the person
    // may sign in as anyone, as `login` does.
    let fresh_sign_in = req.has_prompt("login") || req.has_prompt("select_account");
    let session = session.filter(|s| pending.login_done || !(fresh_sign_in || too_old(s)));
    let Some(session) = session else {
        if req.has_prompt("none") {
            return Ok(Step::Redirect(error_redirect(
                idp,
                &req.redirect_uri,
                req.state.as_deref(),
                &OAuthError::login_required("the person is not signed in"),
            )));
        }
        return Ok(Step::Login(keep(idp, &pending, pending_id).await?));
    };
    // Management scopes go only to an account that holds a matching role; dropped before
    // consent so the person is never asked to grant what they cannot hold.
    let mut pending = pending;
    let asked = std::mem::take(&mut pending.request.scope);
    pending.request.scope = {
        let mut conn = idp.core.db.conn().await?;
        crate::users::permitted_scopes(&mut conn, &session.user_id, asked).await?
    };
    let req = &pending.request;
    if let Some(step) = check_assurance(idp, client, &session, &pending, pending_id.clone()).await?
    {
        return Ok(step);
    }
    if let Some(step) =
        crate::assurance::flow::check(idp, client, &session, &pending, pending_id.clone()).await?
    {
        return Ok(step);
    }
    let needs_consent = client.require_consent
        && (!consent::covers(idp, &session.user_id, &client.client_id, &req.scope).await?
            || (req.has_prompt("consent") && !pending.consent_done));
    if needs_consent {
        if req.has_prompt("none") {
            return Ok(Step::Redirect(error_redirect(
                idp,
                &req.redirect_uri,
                req.state.as_deref(),
                &OAuthError::consent_required("the person has not consented to these scopes"),
            )));
        }
        return Ok(Step::Consent(keep(idp, &pending, pending_id).await?));
    }
    issue_code(idp, &pending, pending_id.as_deref(), &session).await
}

/// Step-up (OpenID Connect Core §3.1.2.1 `acr_values`, §5.5.1.1 essential `acr`): when the
/// session is weaker than the request, the client or the account requires, asks for the
/// missing factor only; when no enrolled factor can reach it, answers
/// `unmet_authentication_requirements` (or `login_required` to `prompt=none`).
async fn check_assurance(
    idp: &Idp,
    client: &Client,
    session: &Session,
    pending: &Pending,
    pending_id: Option<String>,
) -> Result<Option<Step>, OAuthError> {
    let req = &pending.request;
    let mut conn = idp.core.db.conn().await?;
    let account_min = mfa::account_min_aal(idp, &mut conn, session).await?;
    let target = policy::required(&req.acr_request(), client.min_aal, account_min)
        .max(crate::assurance::flow::requested_aal(req).unwrap_or(policy::Aal::One));
    if session.aal() >= target {
        return Ok(None);
    }
    let enrolled = mfa::enrolled(idp, &mut conn, &session.user_id).await?;
    drop(conn);
    let refuse = |error: OAuthError| {
        Ok(Some(Step::Redirect(error_redirect(
            idp,
            &req.redirect_uri,
            req.state.as_deref(),
            &error,
        ))))
    };
    match policy::next_factor(&session.amr, target, &enrolled.factors) {
        Next::Satisfied => Ok(None),
        _ if req.has_prompt("none") => refuse(OAuthError::login_required(format!(
            "a stronger sign-in ({}) is needed",
            target.uri()
        ))),
        Next::Unmet => refuse(OAuthError::unmet_authentication_requirements(format!(
            "the account has no factor that reaches {}",
            target.uri()
        ))),
        Next::Ask(_) => {
            let id = keep(idp, pending, pending_id).await?;
            let cookie = mfa::pending::start(
                idp,
                &mfa::pending::PendingMfa {
                    user_id: session.user_id.clone(),
                    sid: Some(session.sid.clone()),
                    amr: session.amr.clone(),
                    req: Some(id),
                    next: None,
                    target,
                },
            )
            .await?;
            Ok(Some(Step::SecondFactor(cookie)))
        }
    }
}

pub(crate) async fn keep(
    idp: &Idp,
    pending: &Pending,
    id: Option<String>,
) -> Result<String, OAuthError> {
    Ok(match id {
        Some(id) => {
            pending::update(idp, &id, pending).await?;
            id
        }
        None => pending::store(idp, pending, false).await?,
    })
}

async fn issue_code(
    idp: &Idp,
    pending: &Pending,
    pending_id: Option<&str>,
    session: &Session,
) -> Result<Step, OAuthError> {
    let req = &pending.request;
    let code = secret::random_token();
    let now = kizuna_core::time::now_unix();
    let acr = crate::assurance::flow::acr_claim(idp, req, session).await?;
    let mut tx = idp.core.db.begin().await?;
    if let Some(id) = pending_id
        && !pending::consume(tx.conn(), id).await?
    {
        return Err(OAuthError::invalid_request(
            "this sign-in request was already completed",
        ));
    }
    codes::insert_code(
        tx.conn(),
        &secret::token_hash(&code),
        &codes::Code {
            grant_id: secret::new_id(),
            client_id: req.client_id.clone(),
            user_id: session.user_id.clone(),
            sid: Some(session.sid.clone()),
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            auth_time: session.auth_time,
            acr: Some(acr),
            amr: session.amr.clone(),
            expires_at: now + idp.config.code_ttl_secs,
            claims: req.claims.clone(),
        },
        now,
    )
    .await?;
    sessions::add_client(tx.conn(), &session.sid, &req.client_id).await?;
    tx.commit().await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &req.state {
        params.push(("state", state));
    }
    Ok(Step::Redirect(redirect_url(
        idp,
        &req.redirect_uri,
        &params,
    )))
}
