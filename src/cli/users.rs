//! `kizuna user create|list|disable|enable|set-password|verify-email|set-min-aal|mfa-reset`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use kizuna_core::audit::Actor;
use kizuna_idp::mfa;
use kizuna_idp::users::{self, NewUser};

use crate::config::Config;
use crate::serve::{close, open_idp};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (at least 12 characters).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: its sessions end and its tokens stop working.
    Disable {
        /// Username, email or id.
        user: String,
    },
    /// Enable a disabled account.
    Enable { user: String },
    /// Record that the account's email address is verified (by the operator, e.g. imported
    /// from a proofed registry); notifications go only to verified addresses.
    VerifyEmail { user: String },
    /// Set the lowest authentication assurance level the account must reach at every
    /// sign-in (0 none, 2 a second factor, 3 a hardware-bound passkey). Staff accounts
    /// also follow mfa.staff_min_aal.
    SetMinAal {
        user: String,
        #[arg(value_parser = clap::value_parser!(u8).range(0..=3))]
        level: u8,
    },
    /// Helpdesk reset of a person who lost every factor: removes their passkeys,
    /// authenticator app and recovery codes, ends their sessions. Requires the reference of
    /// the re-proofing record (identity checked again at the account's assurance level).
    MfaReset {
        user: String,
        /// For an account proven at IAL2 or above: the id of a fresh proofing record of this
        /// person at that level (the console's user page shows it). For an IAL1 account:
        /// the helpdesk's own reference (e.g. a counter visit number).
        #[arg(long, value_name = "REF")]
        reproofing_ref: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Set an account's password (read from standard input).
    SetPassword {
        user: String,
        /// Read the password from standard input (the default; kept for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
}

pub(super) fn read_password() -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn run(cmd: UserCommand, config: &Config) -> Result<ExitCode> {
    let password = match &cmd {
        UserCommand::Create {
            password_stdin: true,
            ..
        }
        | UserCommand::SetPassword { .. } => Some(read_password()?),
        _ => None,
    };
    let (idp, writer) = open_idp(config).await?;
    let result = run_with(&idp, cmd, password).await;
    close(idp, writer).await;
    result
}

async fn run_with(
    idp: &kizuna_idp::Idp,
    cmd: UserCommand,
    password: Option<String>,
) -> Result<ExitCode> {
    match cmd {
        UserCommand::Create {
            username,
            email,
            name,
            json,
            ..
        } => {
            let user = users::create_account(
                &idp.core,
                Actor::cli(),
                NewUser {
                    username,
                    email,
                    name,
                    password_hash: None,
                    org_id: None,
                },
                password.as_deref(),
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&user)?);
            } else {
                println!("created user {} ({})", user.username, user.id);
            }
        }
        UserCommand::List { json } => {
            let mut conn = idp.core.db.conn().await?;
            let list = users::list(&mut conn).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no users");
            } else {
                println!("{:<36}  {:<9}  {:<24}  EMAIL", "ID", "STATUS", "USERNAME");
                for u in list {
                    println!(
                        "{:<36}  {:<9}  {:<24}  {}",
                        u.id,
                        u.status,
                        u.username,
                        u.email.unwrap_or_default()
                    );
                }
            }
        }
        UserCommand::Disable { user } => {
            let u = users::change_status(&idp.core, Actor::cli(), &user, false).await?;
            println!(
                "disabled {} ({}); its sessions and tokens are revoked",
                u.username, u.id
            );
        }
        UserCommand::Enable { user } => {
            let u = users::change_status(&idp.core, Actor::cli(), &user, true).await?;
            println!("enabled {} ({})", u.username, u.id);
        }
        UserCommand::VerifyEmail { user } => {
            let u = users::mark_email_verified(&idp.core, Actor::cli(), &user).await?;
            println!("email of {} ({}) marked verified", u.username, u.id);
        }
        UserCommand::SetMinAal { user, level } => {
            let u = mfa::set_account_min_aal(idp, Actor::cli(), &user, level).await?;
            println!(
                "{} ({}) must now reach AAL{level} at sign-in",
                u.username, u.id
            );
        }
        UserCommand::MfaReset {
            user,
            reproofing_ref,
            reason,
            json,
        } => {
            let report =
                mfa::reset::reset(idp, Actor::cli(), &user, &reproofing_ref, reason.as_deref())
                    .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "reset {} ({}): removed {} passkeys, {} authenticator app, {} recovery codes; ended {} sessions",
                    report.username,
                    report.user_id,
                    report.passkeys,
                    report.totp,
                    report.recovery_codes,
                    report.sessions_ended
                );
            }
        }
        UserCommand::SetPassword { user, .. } => {
            let u = users::change_password(
                &idp.core,
                Actor::cli(),
                &user,
                password.as_deref().unwrap_or_default(),
            )
            .await?;
            println!("password set for {} ({})", u.username, u.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
