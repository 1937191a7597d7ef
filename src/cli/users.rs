//! `kizuna user create|list|disable|enable|set-password`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use kizuna_core::audit::Actor;
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
    /// Set an account's password (read from standard input).
    SetPassword {
        user: String,
        /// Read the password from standard input (the default; kept for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
}

fn read_password() -> Result<String> {
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
