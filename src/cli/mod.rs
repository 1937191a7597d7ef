//! The operator's commands (`kizuna <noun> <verb>`). Each finds the database exactly as
//! `serve` does, so it works beside a running server.

pub mod assurance;
pub mod backup;
pub mod ca;
pub mod clients;
pub mod devices;
pub mod health;
pub mod kek;
pub mod keys;
pub mod revocations;
pub mod upstreams;
pub mod users;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use kizuna_core::audit::{self, Actor};
use kizuna_core::orgs::{self, NewOrganization, OrgKind};

use crate::config::{Config, Overrides, config_path};
use crate::serve::open_db;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file + environment + defaults), secrets redacted.
    Show {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; prints `ok: N entries` or the first broken entry (exit 1).
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write entries for a SIEM.
    Export {
        /// Only entries at or after this time (RFC 3339, or a date such as 2026-11-01).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization.
    Create {
        /// Name (English or romanized); unique.
        #[arg(long)]
        name: String,
        /// Name in Japanese.
        #[arg(long, value_name = "NAME")]
        name_ja: Option<String>,
        /// city, service-provider, data-provider, device-vendor, platform-operator or other.
        #[arg(long, default_value = "other")]
        kind: String,
        #[arg(long)]
        json: bool,
    },
    /// Limit how long residents' consents to the organization's services last (at most
    /// the city's oidc.consent_max_lifetime_days); --clear removes the limit.
    ConsentLifetime {
        /// The organization (id or name).
        org: String,
        #[arg(long, value_name = "DAYS", required_unless_present = "clear")]
        days: Option<i64>,
        #[arg(long, conflicts_with = "days")]
        clear: bool,
    },
    /// List organizations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set the names an organization may put in service certificates.
    Allow {
        /// Organization id or name.
        org: String,
        /// DNS domain (allows it and every name below it; repeatable).
        #[arg(long = "dns", value_name = "DOMAIN")]
        dns: Vec<String>,
        /// IP range in CIDR notation (repeatable).
        #[arg(long = "ip", value_name = "CIDR")]
        ip: Vec<String>,
    },
}

pub fn config(cmd: ConfigCommand, config: &Config, overrides: &Overrides) -> Result<ExitCode> {
    let ConfigCommand::Show { json } = cmd;
    let shown = config.redacted();
    if json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        let file = config_path(overrides)
            .ok()
            .flatten()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none".into());
        println!(
            "# Effective configuration: defaults < file ({file}) < KIZUNA_* environment < flags"
        );
        print!("{}", toml::to_string(&shown)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(cmd: AuditCommand, config: &Config) -> Result<ExitCode> {
    let db = open_db(config).await?;
    match cmd {
        AuditCommand::Verify { json } => {
            let report = audit::verify(&db).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else if let Some(broken) = &report.broken {
                println!("broken: {broken}");
                println!("{} entries before it verified", report.entries);
            } else {
                println!("ok: {} entries", report.entries);
            }
            Ok(if report.broken.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        AuditCommand::Export {
            since,
            format: ExportFormat::Jsonl,
            out,
        } => {
            let since = since
                .as_deref()
                .map(kizuna_core::time::parse_time)
                .transpose()
                .map_err(anyhow::Error::msg)?
                .map(kizuna_core::time::rfc3339_micros);
            let count = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut writer = std::io::BufWriter::new(file);
                    let n = audit::export_jsonl(&db, since.as_deref(), &mut writer).await?;
                    writer.flush()?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut writer = std::io::BufWriter::new(stdout.lock());
                    let n = audit::export_jsonl(&db, since.as_deref(), &mut writer).await?;
                    writer.flush()?;
                    n
                }
            };
            eprintln!("exported {count} entries");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn org(cmd: OrgCommand, config: &Config) -> Result<ExitCode> {
    match cmd {
        OrgCommand::Create {
            name,
            name_ja,
            kind,
            json,
        } => {
            let kind: OrgKind = kind.parse()?;
            let db = open_db(config).await?;
            let org = orgs::create(
                &db,
                Actor::cli(),
                NewOrganization {
                    name,
                    name_ja,
                    kind,
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&org)?);
            } else {
                println!("created organization {} ({})", org.name, org.id);
            }
        }
        OrgCommand::Allow { org, dns, ip } => {
            let db = open_db(config).await?;
            let org = orgs::find(&db, &org).await?;
            for d in &dns {
                if !kizuna_ca::names::valid_dns_name(d) {
                    anyhow::bail!("{d:?} is not a DNS name");
                }
            }
            for c in &ip {
                c.parse::<kizuna_ca::names::Cidr>()
                    .map_err(anyhow::Error::msg)?;
            }
            let allowed = kizuna_ca::names::AllowedNames { dns, ip };
            orgs::set_allowed_names(&db, Actor::cli(), &org.id, serde_json::to_value(&allowed)?)
                .await?;
            println!("{} may use: {}", org.name, serde_json::to_string(&allowed)?);
        }
        OrgCommand::ConsentLifetime { org, days, .. } => {
            let (idp, writer) = crate::serve::open_idp(config).await?;
            let org = orgs::find(&idp.core.db, &org).await?;
            let set =
                kizuna_idp::consent::set_org_lifetime(&idp, Actor::cli(), &org.id, days).await;
            crate::serve::close(idp, writer).await;
            match set? {
                Some(d) => println!("consents to {}'s services last at most {d} days", org.name),
                None => println!("{} sets no consent lifetime of its own", org.name),
            }
        }
        OrgCommand::List { json } => {
            let db = open_db(config).await?;
            let list = orgs::list(&db).await?;
            if json {
                println!("{}", serde_json::to_string(&json!(list))?);
            } else if list.is_empty() {
                println!("no organizations");
            } else {
                println!("{:<36}  {:<18}  {:<8}  NAME", "ID", "KIND", "STATUS");
                for org in list {
                    let name = match &org.name_ja {
                        Some(ja) => format!("{} ({ja})", org.name),
                        None => org.name.clone(),
                    };
                    println!(
                        "{:<36}  {:<18}  {:<8}  {name}",
                        org.id,
                        org.kind.as_str(),
                        org.status
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
