//! `/account`: the signed-in person's own page. Passkeys (add, remove), the authenticator
//! app (set up, remove), recovery codes (make new ones, shown once), live sessions (device,
//! place, time; end them), sign-in history, recovery-code use, and the mail sent to them.
//! Every change needs an authentication within the last `mfa.reauth_secs` and is audited.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use kizuna_core::web::Lang;

use super::mfa::refusal;
use super::{check_csrf, form_page, internal_error, page_lang, see_other};
use crate::Idp;
use crate::federation::{FederationError, accounts};
use crate::logout;
use crate::mfa::devices::describe;
use crate::mfa::policy::Factor;
use crate::mfa::{self, Enrolled, MfaError, notify, recovery, totp, webauthn};
use crate::sessions::{self, Session};
use crate::users::{self, UserRecord};

/// A time for people: `2026-11-23 09:41 UTC`.
pub fn display_time(unix: i64) -> String {
    display_rfc3339(&kizuna_core::time::unix_to_rfc3339(unix))
}

/// An RFC 3339 time (as audit entries store it) for people: `2026-11-23 09:41 UTC`.
pub fn display_rfc3339(at: &str) -> String {
    format!(
        "{} {} UTC",
        at.get(..10).unwrap_or(""),
        at.get(11..16).unwrap_or("")
    )
}

pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub created: String,
    pub last_used: String,
    pub blocked: bool,
}

pub struct SessionRow {
    pub sid: String,
    pub device: String,
    pub place: String,
    pub signed_in: String,
    pub current: bool,
}

pub struct HistoryRow {
    pub time: String,
    pub method: String,
    pub place: String,
    pub success: bool,
}

pub struct LinkRow {
    pub alias: String,
    pub name: String,
    pub linked: String,
    pub last_used: String,
}

pub struct MailRow {
    pub time: String,
    pub subject: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    lang: Lang,
    back_path: String,
    csrf: String,
    username: String,
    email: Option<String>,
    fresh: bool,
    notice: Option<String>,
    error: Option<String>,
    level: String,
    min_aal: u8,
    passkeys_available: bool,
    passkeys: Vec<PasskeyRow>,
    totp: bool,
    codes_left: usize,
    recovery_uses: Vec<HistoryRow>,
    sessions: Vec<SessionRow>,
    history: Vec<HistoryRow>,
    mail: Vec<MailRow>,
    links: Vec<LinkRow>,
}

/// The signed-in person, or the redirect to sign in first.
pub(super) async fn signed_in(
    idp: &Idp,
    headers: &HeaderMap,
) -> Result<(Session, UserRecord), Response> {
    let session = match sessions::current(idp, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(see_other("/login?next=/account", None)),
        Err(_) => return Err(internal_error()),
    };
    let mut conn = idp.core.db.conn().await.map_err(|_| internal_error())?;
    match users::find(&mut conn, &session.user_id).await {
        Ok(Some(user)) => Ok((session, user)),
        _ => Err(internal_error()),
    }
}

fn is_fresh(idp: &Idp, session: &Session) -> bool {
    kizuna_core::time::now_unix() - session.auth_time <= idp.mfa.reauth_secs
}

/// For a page that starts a change: the person, signed in recently enough.
async fn freshly_signed_in(idp: &Idp, headers: &HeaderMap) -> Result<UserRecord, Response> {
    let (session, user) = signed_in(idp, headers).await?;
    if !is_fresh(idp, &session) {
        return Err(see_other("/account?error=reauth", None));
    }
    Ok(user)
}

/// For a change: the person, signed in recently enough; else back to the page, which offers
/// to sign in again.
async fn for_change(
    idp: &Idp,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<(Session, UserRecord, Enrolled), Response> {
    check_csrf(idp, headers, csrf)?;
    let (session, user) = signed_in(idp, headers).await?;
    if !is_fresh(idp, &session) {
        return Err(see_other("/account?error=reauth", None));
    }
    let mut conn = idp.core.db.conn().await.map_err(|_| internal_error())?;
    let enrolled = mfa::enrolled(idp, &mut conn, &user.id)
        .await
        .map_err(|_| internal_error())?;
    Ok((session, user, enrolled))
}

#[derive(Deserialize)]
pub struct AccountQuery {
    done: Option<String>,
    error: Option<String>,
}

fn notice_text(lang: Lang, done: &str) -> Option<&'static str> {
    Some(match done {
        "passkey_added" => lang.pick("パスキーを追加しました。", "The passkey was added."),
        "passkey_removed" => lang.pick("パスキーを削除しました。", "The passkey was removed."),
        "totp_added" => lang.pick(
            "認証アプリを設定しました。",
            "The authenticator app is set up.",
        ),
        "totp_removed" => lang.pick(
            "認証アプリを削除しました。",
            "The authenticator app was removed.",
        ),
        "session_ended" => lang.pick("セッションを終了しました。", "The session was ended."),
        "link_removed" => lang.pick(
            "組織アカウントの連携を解除しました。",
            "The organization account was unlinked.",
        ),
        _ => return None,
    })
}

fn error_text(lang: Lang, error: &str) -> Option<String> {
    Some(match error {
        "reauth" => lang
            .pick(
                "変更するには、もう一度サインインしてください (最後のサインインから5分以内が必要です)。",
                "To make changes, sign in again (a sign-in within the last five minutes is needed).",
            )
            .to_string(),
        "last_factor" => lang
            .pick(
                "このアカウントには2段階目の認証が必須のため、最後の方法は削除できません。先に別の方法を追加してください。",
                "This account must keep a second factor, so its last one cannot be removed. Add another first.",
            )
            .to_string(),
        "last_method" => lang
            .pick(
                "これはこのアカウントにサインインする唯一の方法のため、連携を解除できません。先にパスキーを追加してください。",
                "This is the only way to sign in to this account, so it cannot be unlinked. Add a passkey first.",
            )
            .to_string(),
        _ => return None,
    })
}

const HISTORY_ACTIONS: &str = "'login', 'login.step_up', 'mfa.totp.verify', 'mfa.passkey.verify', 'mfa.recovery.use', 'mfa.code'";

async fn history(
    idp: &Idp,
    user_id: &str,
    actions: &str,
    limit: i64,
) -> Result<Vec<HistoryRow>, sqlx::Error> {
    let rows: Vec<(String, String, String, Option<String>, String)> = sqlx::query_as(&format!(
        "SELECT at, action, outcome, source_ip, details FROM audit_log WHERE target = $1 AND action IN ({actions}) \
         ORDER BY seq DESC LIMIT $2"
    ))
    .bind(format!("user:{user_id}"))
    .bind(limit)
    .fetch_all(idp.core.db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(at, action, outcome, ip, details)| {
            let details: serde_json::Value = serde_json::from_str(&details).unwrap_or_default();
            let method = details["method"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    match action.as_str() {
                        "mfa.totp.verify" => "otp",
                        "mfa.passkey.verify" => "passkey",
                        "mfa.recovery.use" => "recovery",
                        "mfa.code" => "code (throttled)",
                        _ => "pwd",
                    }
                    .to_string()
                });
            HistoryRow {
                time: display_rfc3339(&at),
                method: if action == "login.step_up" {
                    format!("step-up: {method}")
                } else {
                    method
                },
                place: ip.unwrap_or_else(|| "-".into()),
                success: outcome == "success",
            }
        })
        .collect())
}

pub async fn show(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<AccountQuery>,
) -> Response {
    let (session, user) = match signed_in(&idp, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match page_data(&idp, &session, &user).await {
        Ok(data) => {
            let lang = page_lang(None);
            form_page(&idp, &headers, StatusCode::OK, |csrf| AccountPage {
                lang,
                back_path: "/account".into(),
                csrf,
                notice: q
                    .done
                    .as_deref()
                    .and_then(|d| notice_text(lang, d))
                    .map(str::to_string),
                error: q.error.as_deref().and_then(|e| error_text(lang, e)),
                ..data
            })
        }
        Err(_) => internal_error(),
    }
}

async fn page_data(
    idp: &Idp,
    session: &Session,
    user: &UserRecord,
) -> Result<AccountPage, sqlx::Error> {
    let mut conn = idp.core.db.conn().await?;
    let enrolled = mfa::enrolled(idp, &mut conn, &user.id).await?;
    drop(conn);
    let lang = page_lang(None);
    let never = lang.pick("未使用", "never").to_string();
    let passkeys = webauthn::list(idp, &user.id)
        .await?
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id,
            name: p.name,
            kind: if p.hardware_bound != 0 {
                lang.pick(
                    "この認証器のみ (ハードウェア)",
                    "this authenticator only (hardware)",
                )
            } else {
                lang.pick("同期パスキー", "synced passkey")
            }
            .to_string(),
            created: display_time(p.created_at),
            last_used: p
                .last_used_at
                .map(display_time)
                .unwrap_or_else(|| never.clone()),
            blocked: p.possibly_cloned != 0,
        })
        .collect();
    let sessions = sessions::list_live(idp, &user.id)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            current: s.sid == session.sid,
            device: describe(s.user_agent.as_deref()),
            place: s.ip.unwrap_or_else(|| "-".into()),
            signed_in: display_time(s.created_at),
            sid: s.sid,
        })
        .collect();
    let mail = notify::recent(idp, &user.id, 10)
        .await?
        .into_iter()
        .map(|m| MailRow {
            time: display_time(m.created_at),
            subject: m.subject,
            status: m.status,
        })
        .collect();
    let links = accounts::links(idp, &user.id)
        .await?
        .into_iter()
        .map(|l| LinkRow {
            alias: l.alias,
            name: l.name,
            linked: display_time(l.created_at),
            last_used: l
                .last_login_at
                .map(display_time)
                .unwrap_or_else(|| never.clone()),
        })
        .collect();
    Ok(AccountPage {
        links,
        lang,
        back_path: "/account".into(),
        csrf: String::new(),
        username: user.username.clone(),
        email: user.email.clone(),
        fresh: is_fresh(idp, session),
        notice: None,
        error: None,
        level: session.aal().uri().to_string(),
        min_aal: enrolled.min_aal,
        passkeys_available: idp.passkeys.available(),
        passkeys,
        totp: enrolled.totp,
        codes_left: enrolled.recovery_codes_left,
        recovery_uses: history(idp, &user.id, "'mfa.recovery.use'", 5)
            .await?
            .into_iter()
            .filter(|h| h.success)
            .collect(),
        sessions,
        history: history(idp, &user.id, HISTORY_ACTIONS, 20).await?,
        mail,
    })
}

/// The outcome of a change: back to the page with a notice, or the refusal.
fn after_change(lang: Lang, result: Result<&str, MfaError>) -> Response {
    match result {
        Ok(done) => see_other(&format!("/account?done={done}"), None),
        Err(MfaError::LastFactor(_)) => see_other("/account?error=last_factor", None),
        Err(e) if e.is_internal() => internal_error(),
        Err(e) => super::message(
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

#[derive(Deserialize)]
pub struct EndSessionForm {
    csrf_token: Option<String>,
    sid: Option<String>,
}

pub async fn end_session(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<EndSessionForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let (current, user) = match signed_in(&idp, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let sid = form.sid.unwrap_or_default();
    let target = match sessions::find_live(&idp, &user.id, &sid).await {
        Ok(Some(s)) => s,
        Ok(None) => return see_other("/account", None),
        Err(_) => return internal_error(),
    };
    if logout::end_session(&idp, &target).await.is_err() {
        return internal_error();
    }
    if target.sid == current.sid {
        return see_other("/", Some(sessions::clear_cookie(&idp)));
    }
    see_other("/account?done=session_ended", None)
}

#[derive(Deserialize)]
pub struct UnlinkForm {
    csrf_token: Option<String>,
    upstream: Option<String>,
}

/// `POST /account/links/remove`: unlinks an organization account (never the last way to
/// sign in).
pub async fn unlink(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<UnlinkForm>,
) -> Response {
    let (_, user, _) = match for_change(&idp, &headers, form.csrf_token.as_deref()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match accounts::unlink(&idp, &user.id, form.upstream.as_deref().unwrap_or_default()).await {
        Ok(()) => see_other("/account?done=link_removed", None),
        Err(FederationError::Link(_)) => see_other("/account?error=last_method", None),
        Err(FederationError::UnknownUpstream(_)) => see_other("/account", None),
        Err(_) => internal_error(),
    }
}
