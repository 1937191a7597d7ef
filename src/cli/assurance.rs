//! `kizuna assurance renew-cards`: carries the one-person-one-account bindings over to
//! renewed My Number cards, from J-LIS's links between old and new signature certificates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use kizuna_core::audit::Actor;
use kizuna_idp::assurance::renewal::{self, CardRenewal};

use crate::config::Config;
use crate::serve::{close, open_idp};

#[derive(Subcommand)]
pub enum AssuranceCommand {
    /// Bind renewed cards' signature certificates to the accounts their predecessors were
    /// bound to. Give one link (--old-serial, --new-serial) or a CSV file of them.
    RenewCards {
        /// The J-LIS signing CA certificate (PEM) that issued both certificates.
        #[arg(long, value_name = "FILE")]
        issuer_cert: PathBuf,
        /// CSV with a header row and the columns old_serial and new_serial (hex).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["old_serial", "new_serial"])]
        file: Option<PathBuf>,
        /// The old certificate's serial number (hex).
        #[arg(long, value_name = "HEX", requires = "new_serial")]
        old_serial: Option<String>,
        /// The new certificate's serial number (hex).
        #[arg(long, value_name = "HEX", requires = "old_serial")]
        new_serial: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The (old, new) serial pairs of a CSV file: a header naming `old_serial` and `new_serial`
/// (in any order, other columns ignored), then one link per line.
fn read_links(text: &str) -> Result<Vec<(String, String)>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .context("the file is empty")?
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|c| c == name)
            .with_context(|| format!("the header has no {name} column"))
    };
    let (old, new) = (column("old_serial")?, column("new_serial")?);
    lines
        .enumerate()
        .map(|(n, line)| {
            let cells: Vec<&str> = line
                .split(',')
                .map(|c| c.trim().trim_matches('"'))
                .collect();
            match (cells.get(old), cells.get(new)) {
                (Some(o), Some(w)) => Ok((o.to_string(), w.to_string())),
                _ => bail!("line {}: expected old_serial and new_serial", n + 2),
            }
        })
        .collect()
}

pub async fn run(cmd: AssuranceCommand, config: &Config) -> Result<ExitCode> {
    let AssuranceCommand::RenewCards {
        issuer_cert,
        file,
        old_serial,
        new_serial,
        json,
    } = cmd;
    let issuer = renewal::issuer_name(
        &std::fs::read_to_string(&issuer_cert)
            .with_context(|| format!("reading {}", issuer_cert.display()))?,
    )?;
    let pairs = match (file, old_serial, new_serial) {
        (Some(file), _, _) => read_links(
            &std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?,
        )?,
        (None, Some(old), Some(new)) => vec![(old, new)],
        _ => bail!("give --file, or --old-serial and --new-serial"),
    };
    let mut links = Vec::with_capacity(pairs.len());
    for (n, (old, new)) in pairs.iter().enumerate() {
        let serial =
            |s: &str| renewal::normalize_serial(s).with_context(|| format!("link {}", n + 1));
        links.push(CardRenewal {
            issuer: issuer.clone(),
            old_serial: serial(old)?,
            new_serial: serial(new)?,
        });
    }
    let (idp, writer) = open_idp(config).await?;
    let result = renewal::renew(&idp, Actor::cli(), &links).await;
    close(idp, writer).await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} renewed, {} not bound here, {} already carried over, {} conflicts",
            report.renewed,
            report.not_bound,
            report.already,
            report.conflicts.len()
        );
        for n in &report.conflicts {
            println!("  link {n}: the new certificate is already bound to another account");
        }
    }
    Ok(if report.conflicts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
