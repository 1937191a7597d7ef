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

mod factors;

use super::{check_csrf, form_page, internal_error, page_lang, see_other};
use crate::Idp;
use crate::federation::{FederationError, accounts};
use crate::logout;
use crate::mfa::devices::describe;
use crate::mfa::{self, Enrolled, notify, webauthn};
use crate::sessions::{self, Session};
use crate::users::{self, UserRecord};

pub use factors::{
    add_passkey, confirm_totp, new_passkey, new_totp, regenerate_codes, remove_passkey, remove_totp,
};

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

const HISTORY_ACTIONS: [&str; 6] = [
    "login",
    "login.step_up",
    "mfa.totp.verify",
    "mfa.passkey.verify",
    "mfa.recovery.use",
    "mfa.code",
];

/// The account's latest sign-in events among `actions`, newest first, from the audit log.
async fn history(
    idp: &Idp,
    user_id: &str,
    actions: &[&str],
    limit: i64,
) -> Result<Vec<HistoryRow>, sqlx::Error> {
    let entries = kizuna_core::audit::recent_about(
        &idp.core.db,
        &format!("user:{user_id}"),
        None,
        actions,
        limit,
    )
    .await?;
    Ok(entries
        .into_iter()
        .map(|entry| {
            let (at, action, outcome, ip) =
                (entry.at, entry.action, entry.outcome, entry.source_ip);
            let details: serde_json::Value =
                serde_json::from_str(&entry.details).unwrap_or_default();
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
        recovery_uses: history(idp, &user.id, &["mfa.recovery.use"], 5)
            .await?
            .into_iter()
            .filter(|h| h.success)
            .collect(),
        sessions,
        history: history(idp, &user.id, &HISTORY_ACTIONS, 20).await?,
        mail,
    })
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
