//! Notifications to the account's verified email address on a sign-in from a new device and
//! on every factor change. Mail is written to the `mail_outbox` table inside the change's
//! own transaction, then delivered through the configured SMTP relay by a background task
//! (retried with backoff). Without a relay (development) it stays in the outbox, where the
//! account page and tests read it.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use kizuna_core::db::AnyConnection;
use kizuna_core::secret;

use super::config::MailConfig;
use crate::Idp;
use crate::store::{mail, users};

pub use crate::store::mail::OutboxMail;

/// What happened, for the message text.
#[derive(Debug, Clone)]
pub enum Change {
    NewDevice { place: String, device: String },
    PasskeyAdded { name: String },
    PasskeyRemoved { name: String },
    PasskeyBlocked { name: String },
    TotpAdded,
    TotpRemoved,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed { left: usize },
    FactorsReset,
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Change::NewDevice { .. } => "new_device",
            Change::PasskeyAdded { .. } => "passkey_added",
            Change::PasskeyRemoved { .. } => "passkey_removed",
            Change::PasskeyBlocked { .. } => "passkey_blocked",
            Change::TotpAdded => "totp_added",
            Change::TotpRemoved => "totp_removed",
            Change::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Change::RecoveryCodeUsed { .. } => "recovery_code_used",
            Change::FactorsReset => "factors_reset",
        }
    }

    /// Subject and body lines, Japanese then English.
    fn text(&self) -> (String, String, String) {
        match self {
            Change::NewDevice { place, device } => (
                "新しい端末からサインインがありました / New sign-in from a new device".into(),
                format!("新しい端末からアカウントにサインインがありました。\n場所 (IPアドレス): {place}\n端末: {device}"),
                format!("Your account was signed in to from a new device.\nPlace (IP address): {place}\nDevice: {device}"),
            ),
            Change::PasskeyAdded { name } => (
                "パスキーが追加されました / A passkey was added".into(),
                format!("パスキー「{name}」がアカウントに追加されました。"),
                format!("The passkey \"{name}\" was added to your account."),
            ),
            Change::PasskeyRemoved { name } => (
                "パスキーが削除されました / A passkey was removed".into(),
                format!("パスキー「{name}」がアカウントから削除されました。"),
                format!("The passkey \"{name}\" was removed from your account."),
            ),
            Change::PasskeyBlocked { name } => (
                "パスキーを停止しました / A passkey was blocked".into(),
                format!("パスキー「{name}」が複製された可能性があるため停止しました。"),
                format!("The passkey \"{name}\" may have been copied, so it was blocked."),
            ),
            Change::TotpAdded => (
                "認証アプリが設定されました / An authenticator app was set up".into(),
                "認証アプリ (ワンタイムパスワード) がアカウントに設定されました。".into(),
                "An authenticator app (one-time codes) was set up for your account.".into(),
            ),
            Change::TotpRemoved => (
                "認証アプリが削除されました / An authenticator app was removed".into(),
                "認証アプリ (ワンタイムパスワード) がアカウントから削除されました。".into(),
                "The authenticator app (one-time codes) was removed from your account.".into(),
            ),
            Change::RecoveryCodesRegenerated => (
                "回復コードを再発行しました / New recovery codes".into(),
                "回復コードが再発行されました。以前のコードは使えません。".into(),
                "New recovery codes were made for your account; the old ones no longer work.".into(),
            ),
            Change::RecoveryCodeUsed { left } => (
                "回復コードが使われました / A recovery code was used".into(),
                format!("回復コードでサインインがありました。残り {left} 個です。"),
                format!("A recovery code was used to sign in. {left} codes are left."),
            ),
            Change::FactorsReset => (
                "サインイン方法がリセットされました / Your sign-in methods were reset".into(),
                "窓口での本人確認の後、アカウントのパスキー・認証アプリ・回復コードがリセットされました。".into(),
                "After identity verification at the helpdesk, your passkeys, authenticator app and recovery codes were reset.".into(),
            ),
        }
    }
}

/// Queues the notice for the account's verified address, inside the caller's transaction.
/// An account without a verified address gets none (the account page still shows the
/// change in its history).
pub async fn factor_changed(
    conn: &mut AnyConnection,
    user_id: &str,
    change: Change,
) -> Result<(), sqlx::Error> {
    let Some(email) = users::find(&mut *conn, user_id)
        .await?
        .filter(|u| u.email_verified)
        .and_then(|u| u.email)
    else {
        return Ok(());
    };
    let (subject, ja, en) = change.text();
    let body = format!(
        "{ja}\n心当たりがない場合は、すぐにアカウントページでサインイン方法を確認し、市の窓口に連絡してください。\n\n{en}\nIf this was not you, check your sign-in methods on your account page at once and contact the city helpdesk.\n"
    );
    let now = kizuna_core::time::now_unix();
    mail::queue(
        conn,
        &secret::new_id(),
        &mail::NewMail {
            user_id,
            recipient: &email,
            kind: change.kind(),
            subject: &format!("[Kizuna] {subject}"),
            body: &body,
        },
        now,
    )
    .await
}

/// The account's latest messages in the outbox, newest first.
pub async fn recent(idp: &Idp, user_id: &str, limit: i64) -> Result<Vec<OutboxMail>, sqlx::Error> {
    mail::recent(&idp.core.db, user_id, limit).await
}

/// The SMTP relay, when configured.
pub type Mailer = AsyncSmtpTransport<Tokio1Executor>;

/// Builds the relay client from `[mail]`; `None` when no relay is set.
pub fn mailer(config: &MailConfig) -> Result<Option<Mailer>, String> {
    let Some(host) = &config.relay else {
        return Ok(None);
    };
    let builder = match config.security.as_str() {
        "tls" => Mailer::relay(host).map_err(|e| e.to_string())?,
        "none" => Mailer::builder_dangerous(host),
        _ => Mailer::starttls_relay(host).map_err(|e| e.to_string())?,
    };
    let mut builder = builder.port(config.port);
    if let Some(user) = &config.username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            config.password()?.unwrap_or_default(),
        ));
    }
    Ok(Some(builder.build()))
}

/// Waits after each failed delivery, then gives up.
const BACKOFF_SECS: [i64; 6] = [30, 120, 600, 1800, 3600, 7200];
/// Mail older than this is not sent any more (a relay configured later does not deliver a
/// development outbox).
const MAX_AGE_SECS: i64 = 86_400;

/// Sends what is due through the relay; called by the background task of every replica
/// (rows are claimed one at a time, so two replicas never send the same mail).
pub async fn deliver_due(idp: &Idp) {
    let Some(mailer) = &idp.mailer else {
        return;
    };
    let now = kizuna_core::time::now_unix();
    let db = &idp.core.db;
    let _ = mail::expire_queued(db, now - MAX_AGE_SECS).await;
    let due = match mail::due(db, now, 20).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading the mail outbox");
            return;
        }
    };
    for due in due {
        // Claim the row by pushing its next attempt out; a replica that lost the race skips it.
        let claimed = mail::claim(db, &due.id, now, now + 300)
            .await
            .unwrap_or(false);
        if !claimed {
            continue;
        }
        let result = send(
            mailer,
            &idp.mail_from,
            &due.recipient,
            &due.subject,
            &due.body,
        )
        .await;
        let recorded = match result {
            Ok(()) => mail::mark_sent(db, &due.id, now).await,
            Err(error) => {
                tracing::warn!(%error, mail = %due.id, "mail delivery failed");
                let next = BACKOFF_SECS.get(due.attempts as usize).copied();
                mail::mark_failed(
                    db,
                    &due.id,
                    next.is_some(),
                    now + next.unwrap_or(0),
                    &error.chars().take(500).collect::<String>(),
                )
                .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "recording a mail delivery");
        }
    }
}

async fn send(
    mailer: &Mailer,
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), String> {
    let message = Message::builder()
        .from(
            from.parse()
                .map_err(|e: lettre::address::AddressError| e.to_string())?,
        )
        .to(to
            .parse()
            .map_err(|e: lettre::address::AddressError| e.to_string())?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|e| e.to_string())?;
    mailer
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
