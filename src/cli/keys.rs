//! `kizuna keys list|rotate`: the token signing keys.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use kizuna_core::audit::Actor;
use kizuna_core::time::unix_to_rfc3339;

use crate::config::Config;
use crate::serve::{close, open_idp};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List signing keys: next (published, not yet signing), active, retired.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Rotate now: next becomes active, active retires (published until its tokens expire).
    Rotate {
        /// ES256 or RS256.
        #[arg(long, default_value = "ES256")]
        alg: String,
    },
}

pub async fn run(cmd: KeysCommand, config: &Config) -> Result<ExitCode> {
    let (idp, writer) = open_idp(config).await?;
    let result = async {
        match cmd {
            KeysCommand::List { json } => {
                kizuna_idp::init(&idp).await?;
                let keys = idp.keys.list().await?;
                if json {
                    println!("{}", serde_json::to_string(&keys)?);
                } else {
                    println!(
                        "{:<44}  {:<6}  {:<8}  {:<20}  PUBLISHED UNTIL",
                        "KID", "ALG", "STATE", "CREATED"
                    );
                    for k in keys {
                        println!(
                            "{:<44}  {:<6}  {:<8}  {:<20}  {}",
                            k.kid,
                            k.alg,
                            k.state,
                            unix_to_rfc3339(k.created_at),
                            k.publish_until
                                .map(unix_to_rfc3339)
                                .unwrap_or_else(|| "-".into())
                        );
                    }
                }
            }
            KeysCommand::Rotate { alg } => {
                idp.keys.rotate(&alg, Actor::cli()).await?;
                println!("rotated {alg} signing keys");
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    }
    .await;
    close(idp, writer).await;
    result
}
