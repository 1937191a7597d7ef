//! Who is calling the console. People sign in through Kizuna's own OpenID provider: the
//! console is a public client (`kizuna-console`, authorization code with PKCE) whose code
//! is exchanged in process, and its session lasts no longer than the sign-in session it came
//! from. Automation calls the admin API with a bearer access token whose scopes name roles.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::secret;
use kizuna_core::web::cookie;
use kizuna_idp::authorize::flow::with_query;
use kizuna_idp::authorize::request::Params;
use kizuna_idp::clients;
use kizuna_idp::mfa::policy::Aal;
use kizuna_idp::store::{sessions as session_store, users as user_store};
use kizuna_idp::token::authorization_code::{exchange, pkce_s256};
use kizuna_idp::userinfo::bearer_token;
use kizuna_idp::users;

use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use kizuna_core::access::Caller;
use kizuna_core::auth::Authenticator;

/// The console's client id at Kizuna's own provider.
pub const CLIENT_ID: &str = "kizuna-console";
const LOGIN_TTL_SECS: i64 = 600;

fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-kizuna_console"
    } else {
        "kizuna_console"
    }
}

fn login_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-kizuna_console_login"
    } else {
        "kizuna_console_login"
    }
}

fn set_cookie(secure: bool, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let attrs = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{attrs}"
    ))
    .expect("cookie of token characters")
}

pub fn redirect_uri(c: &Console) -> String {
    c.idp.endpoint("/admin/callback")
}

/// Registers the console as a client of this provider (on every start, for the current
/// public URL).
pub async fn register(c: &Console) -> Result<(), ConsoleError> {
    clients::ensure_first_party(
        &c.idp.core,
        CLIENT_ID,
        "Kizuna admin console",
        &redirect_uri(c),
        c.idp.core.levels.min_aal,
    )
    .await?;
    c.idp.clients.forget(CLIENT_ID);
    Ok(())
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Sends the browser to sign in at Kizuna's authorization endpoint, asking for `aal`, to
/// come back to `next`.
pub async fn start(c: &Console, next: &str, aal: Aal) -> Result<Response, ConsoleError> {
    let now = kizuna_core::time::now_unix();
    // Sign-ins never finished and sessions long over go first, so the tables stay small.
    sqlx::query("DELETE FROM console_logins WHERE expires_at < $1")
        .bind(now)
        .execute(c.idp.core.db.pool())
        .await?;
    sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
        .bind(now - 86_400)
        .execute(c.idp.core.db.pool())
        .await?;
    let state = secret::random_token();
    let verifier = secret::random_token();
    let nonce = secret::random_token();
    sqlx::query(
        "INSERT INTO console_logins (state_hash, code_verifier, nonce, next_path, aal, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(secret::token_hash(&state))
    .bind(&verifier)
    .bind(&nonce)
    .bind(kizuna_core::web::local_path(Some(next)))
    .bind(aal.level() as i64)
    .bind(now + LOGIN_TTL_SECS)
    .execute(c.idp.core.db.pool())
    .await?;
    let challenge = pkce_s256(&verifier);
    let url = with_query(
        "/authorize",
        &[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", &redirect_uri(c)),
            ("scope", "openid profile"),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("acr_values", aal.uri()),
        ],
    );
    let mut response = see_other(&url);
    let secure = c.idp.core.secure_cookies;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(secure, login_cookie(secure), &state, LOGIN_TTL_SECS),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    sid: Option<String>,
    acr: Option<String>,
}

/// Where a finished sign-in goes: into the console, or back for a stronger sign-in.
pub enum Finished {
    Session(Response),
    StepUp(Response),
}

/// Finishes a sign-in: checks the state against the browser's cookie, exchanges the code,
/// checks the nonce and the level against the person's roles, and opens a console session.
pub async fn finish(
    c: &Console,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<Finished, ConsoleError> {
    let secure = c.idp.core.secure_cookies;
    if let Some(error) = q.error {
        return Err(ConsoleError::Forbidden(
            Msg::SignInNotFinished {
                error,
                description: q.error_description.unwrap_or_default(),
            }
            .into(),
        ));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(ConsoleError::Invalid(Msg::SignInIncomplete.into()));
    };
    let from_cookie = cookie(headers, login_cookie(secure)).unwrap_or("");
    if !secret::constant_time_eq(from_cookie.as_bytes(), state.as_bytes()) {
        return Err(ConsoleError::Forbidden(Msg::SignInOtherBrowser.into()));
    }
    let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
        "DELETE FROM console_logins WHERE state_hash = $1 \
         RETURNING code_verifier, nonce, next_path, aal, expires_at",
    )
    .bind(secret::token_hash(&state))
    .fetch_optional(c.idp.core.db.pool())
    .await?;
    let Some((verifier, nonce, next, asked, expires_at)) = row else {
        return Err(ConsoleError::Forbidden(Msg::SignInUnknown.into()));
    };
    if expires_at < kizuna_core::time::now_unix() {
        return Err(ConsoleError::Forbidden(Msg::SignInExpired.into()));
    }
    let client = clients::get(&c.idp.core.db, CLIENT_ID)
        .await?
        .ok_or_else(|| ConsoleError::Internal("the console client is not registered".into()))?;
    let params = Params(vec![
        ("grant_type".into(), "authorization_code".into()),
        ("code".into(), code),
        ("redirect_uri".into(), redirect_uri(c)),
        ("code_verifier".into(), verifier),
    ]);
    let tokens = exchange(&c.idp, &client, &params, None)
        .await
        .map_err(|e| {
            ConsoleError::Forbidden(Msg::CodeExchangeFailed.with_detail(format!("{e:?}")))
        })?;
    let claims = tokens
        .id_token
        .as_deref()
        .and_then(id_token_claims)
        .ok_or_else(|| ConsoleError::Internal("the token response has no ID token".into()))?;
    if claims.nonce.as_deref() != Some(nonce.as_str()) {
        return Err(ConsoleError::Forbidden(Msg::NonceMismatch.into()));
    }
    let sid = claims
        .sid
        .ok_or_else(|| ConsoleError::Internal("the ID token has no sid".into()))?;
    let reached = claims
        .acr
        .as_deref()
        .and_then(Aal::from_uri)
        .unwrap_or(Aal::One);
    let staff = person(c, &claims.sub).await?;
    if staff.roles.is_empty() {
        audit_denied(c, &claims.sub, "no console role").await?;
        return Err(ConsoleError::Forbidden(Msg::NoStaffRole.into()));
    }
    let needed = needed_aal(c, &staff);
    if reached < needed {
        if (asked as u8) < needed.level() {
            return Ok(Finished::StepUp(start(c, &next, needed).await?));
        }
        audit_denied(c, &claims.sub, "assurance too low").await?;
        return Err(ConsoleError::Forbidden(
            Msg::SignInTooWeak {
                needed: needed.uri().into(),
                reached: reached.uri().into(),
            }
            .into(),
        ));
    }
    let token = secret::random_token();
    let now = kizuna_core::time::now_unix();
    let mut tx = c.idp.core.db.begin().await?;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, user_id, sid, aal, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(secret::token_hash(&token))
    .bind(&claims.sub)
    .bind(&sid)
    .bind(reached.level() as i64)
    .bind(now)
    .bind(now + c.config.session_ttl_secs)
    .execute(tx.conn())
    .await?;
    let entries = kizuna_core::audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            Actor::user(&claims.sub),
            "console.signin",
            format!("user:{}", claims.sub),
        )
        .details(json!({"acr": reached.uri(), "roles": staff.role_names()}))],
    )
    .await?;
    tx.commit().await?;
    kizuna_core::audit::publish(&entries);
    let mut response = see_other(&next);
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            secure,
            session_cookie(secure),
            &token,
            c.config.session_ttl_secs,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(secure, login_cookie(secure), "", 0),
    );
    Ok(Finished::Session(response))
}

async fn audit_denied(c: &Console, user_id: &str, reason: &str) -> Result<(), ConsoleError> {
    c.idp
        .core
        .audit
        .record(
            AuditEvent::new(
                Actor::user(user_id),
                "console.signin",
                format!("user:{user_id}"),
            )
            .outcome(Outcome::Denied)
            .details(json!({"reason": reason})),
        )
        .await?;
    Ok(())
}

/// The claims of an ID token this process just issued (read in process, so its signature
/// needs no check here).
fn id_token_claims(jwt: &str) -> Option<IdClaims> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The level a person's console session must have reached, from their roles.
pub fn needed_aal(c: &Console, staff: &Caller) -> Aal {
    Aal::from_level(c.idp.core.levels.needed(&staff.roles) as i64).unwrap_or(Aal::Three)
}

async fn person(c: &Console, user_id: &str) -> Result<Caller, ConsoleError> {
    let mut conn = c.idp.core.db.conn().await?;
    let user = users::find(&mut conn, user_id).await?;
    let roles = users::assignments(&mut conn, user_id).await?;
    Ok(Caller::person(
        user_id,
        &user.map(|u| u.username).unwrap_or_default(),
        roles,
    ))
}

/// A console session for a page.
pub enum Signed {
    In(Caller),
    /// No session, or one too weak for the person's current roles: sign in (again).
    Out(Aal),
}

/// The staff member behind the browser's console session. The session ends with the
/// sign-in session, the account's disabling, or its expiry.
pub async fn session(c: &Console, headers: &HeaderMap) -> Result<Signed, ConsoleError> {
    let secure = c.idp.core.secure_cookies;
    let Some(value) = cookie(headers, session_cookie(secure)).filter(|v| v.len() == 43) else {
        return Ok(Signed::Out(
            Aal::from_level(c.idp.core.levels.min_aal as i64).unwrap_or(Aal::Two),
        ));
    };
    let now = kizuna_core::time::now_unix();
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT user_id, sid, aal FROM console_sessions \
         WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2",
    )
    .bind(secret::token_hash(value))
    .bind(now)
    .fetch_optional(c.idp.core.db.pool())
    .await?;
    // The console session lasts no longer than the sign-in session and the account.
    let db = &c.idp.core.db;
    let live = match &row {
        Some((user_id, sid, _)) => {
            session_store::find_live(db, user_id, sid, now)
                .await?
                .is_some()
                && user_store::is_active(&mut *db.conn().await?, user_id).await?
        }
        None => false,
    };
    let Some((user_id, _, aal)) = row.filter(|_| live) else {
        return Ok(Signed::Out(
            Aal::from_level(c.idp.core.levels.min_aal as i64).unwrap_or(Aal::Two),
        ));
    };
    let staff = person(c, &user_id).await?;
    let needed = needed_aal(c, &staff);
    if staff.roles.is_empty() || (aal as u8) < needed.level() {
        return Ok(Signed::Out(needed));
    }
    Ok(Signed::In(staff))
}

/// Ends the browser's console session (the sign-in session at the provider stays).
pub async fn end(
    c: &Console,
    headers: &HeaderMap,
    staff: &Caller,
) -> Result<Response, ConsoleError> {
    let secure = c.idp.core.secure_cookies;
    if let Some(value) = cookie(headers, session_cookie(secure)) {
        let mut tx = c.idp.core.db.begin().await?;
        sqlx::query("UPDATE console_sessions SET ended_at = $1 WHERE id_hash = $2")
            .bind(kizuna_core::time::now_unix())
            .bind(secret::token_hash(value))
            .execute(tx.conn())
            .await?;
        let entries = kizuna_core::audit::append_in(
            tx.conn(),
            &[AuditEvent::new(
                staff.actor.clone(),
                "console.signout",
                "console",
            )],
        )
        .await?;
        tx.commit().await?;
        kizuna_core::audit::publish(&entries);
    }
    let mut response = see_other("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(secure, session_cookie(secure), "", 0),
    );
    Ok(response)
}

/// The caller of an admin API request, from its bearer access token, resolved as on every
/// management API.
pub async fn api_caller(c: &Console, headers: &HeaderMap) -> Result<Caller, ConsoleError> {
    let token = bearer_token(headers, &[])
        .ok_or_else(|| ConsoleError::Unauthorized(Msg::BearerTokenRequired.into()))?;
    Ok(c.idp.authenticate(&token).await?)
}
