//! `kizuna cert revocations export|import`: the revocations made since a time, as JSON
//! lines, to re-apply to a database restored from an earlier backup.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use serde_json::json;

use kizuna_ca::Ca;
use kizuna_ca::revoke::{Reason, Selector};
use kizuna_core::audit::Actor;
use kizuna_core::time::unix_to_rfc3339;

#[derive(Subcommand)]
pub enum RevocationsCommand {
    /// Write the revocations and holds made at or after TIME as JSON lines (serial, ca_id,
    /// reason, revoked_at), to re-apply them to a database restored from an earlier backup.
    Export {
        /// RFC 3339, or a date such as 2026-11-01 (`kizuna backup` prints the time to use).
        #[arg(long, value_name = "TIME")]
        since: String,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Revoke again each certificate in FILE (from `export`) with its reason. Already
    /// revoked is fine; serials this database does not know are listed (exit 3).
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// One line of a revocation export, as written.
#[derive(Serialize)]
struct Exported<'a> {
    serial: &'a str,
    ca_id: &'a str,
    reason: &'a str,
    revoked_at: String,
}

/// One line of a revocation export, as read back (other fields are ignored).
#[derive(Deserialize)]
struct Line {
    serial: String,
    reason: String,
}

pub async fn revocations(cmd: RevocationsCommand, ca: &Ca) -> Result<ExitCode> {
    match cmd {
        RevocationsCommand::Export { since, out } => {
            let since = kizuna_core::time::parse_time(&since)
                .map_err(anyhow::Error::msg)?
                .unix_timestamp();
            let list = kizuna_ca::store::revoked_since(&ca.core.db, since).await?;
            let mut text = String::new();
            for (serial, ca_id, revoked_at, reason) in &list {
                text.push_str(&serde_json::to_string(&Exported {
                    serial,
                    ca_id,
                    reason: reason.as_deref().unwrap_or("unspecified"),
                    revoked_at: unix_to_rfc3339(*revoked_at),
                })?);
                text.push('\n');
            }
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                }
            }
            eprintln!("exported {} revocations", list.len());
            Ok(ExitCode::SUCCESS)
        }
        RevocationsCommand::Import { file, json } => import(&file, json, ca).await,
    }
}

async fn import(file: &Path, json_output: bool, ca: &Ca) -> Result<ExitCode> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    // Every line must parse before any is applied.
    let mut wanted = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", file.display(), n + 1);
        let parsed: Line = serde_json::from_str(&line)
            .with_context(|| format!("{}: not a revocation export line", at()))?;
        let serial: kizuna_core::pki::Serial = parsed
            .serial
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{}: {e}", at()))?;
        let reason: Reason = parsed
            .reason
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{}: {e}", at()))?;
        wanted.push((serial.as_str().to_string(), reason));
    }
    let (mut revoked, mut already, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for (serial, reason) in wanted {
        match kizuna_ca::revoke::revoke(ca, &Selector::Serial(serial.clone()), reason, Actor::cli())
            .await
        {
            Ok(report) if !report.revoked.is_empty() => revoked.push(serial),
            Ok(_) => already.push(serial),
            Err(kizuna_ca::CaError::NotFound(_)) => unknown.push(serial),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "revoking {serial} failed after {} revoked, {} already revoked (importing again is safe)",
                        revoked.len(),
                        already.len()
                    )
                });
            }
        }
    }
    if json_output {
        println!(
            "{}",
            json!({"revoked": revoked, "already": already, "unknown": unknown})
        );
    } else {
        println!(
            "revoked {}, already revoked {}, unknown {}",
            revoked.len(),
            already.len(),
            unknown.len()
        );
        for serial in &revoked {
            println!("revoked: {serial}");
        }
        for serial in &unknown {
            println!("unknown: {serial}");
        }
        if !unknown.is_empty() {
            println!(
                "Unknown serials were issued after the backup: this database cannot revoke them (OCSP answers unknown). Re-enroll those devices or services."
            );
        }
    }
    Ok(if unknown.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
