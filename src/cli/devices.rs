//! `kizuna device …` (the device registry) and `kizuna enroll …` (one-time enrollment
//! tokens for installers).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use kizuna_ca::devices::{self, Device, DeviceFilter, NewDevice, StatusChange};
use kizuna_ca::enroll::tokens::{self, TokenSpec};
use kizuna_ca::{Ca, cert_clients};
use kizuna_core::audit::Actor;
use kizuna_core::orgs;
use kizuna_core::time::unix_to_rfc3339;

use crate::config::Config;
use crate::serve::{close, open_idp};

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Register a device (status pending until it enrolls).
    Add {
        /// Owner organization (id or name).
        #[arg(long, value_name = "ORG")]
        org: String,
        /// The device id (1-64 letters, digits, - _ .); generated when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "")]
        model: String,
        /// The hardware serial number (what the device puts in its subject serialNumber, or
        /// what its manufacturer certificate names).
        #[arg(long, value_name = "SERIAL")]
        serial: Option<String>,
        /// Where it is installed, in words ("Lamp post 12, Ekimae-dori").
        #[arg(long, default_value = "")]
        location: String,
        /// Latitude and longitude, e.g. --lat 35.681 --lon 139.767.
        #[arg(long, requires = "lon", allow_hyphen_values = true)]
        lat: Option<f64>,
        #[arg(long, requires = "lat", allow_hyphen_values = true)]
        lon: Option<f64>,
        /// Who installs it (person or company).
        #[arg(long, default_value = "")]
        installer: String,
        #[arg(long)]
        json: bool,
    },
    /// List devices.
    List {
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// pending, active, suspended or retired.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show a device and its certificates over time.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Suspend a device: its certificates are put on hold (OCSP and CRLs say certificateHold).
    Suspend {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Bring a suspended device back: its held certificates are valid again.
    Resume {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Retire a device for good: every certificate it holds is revoked (cessationOfOperation).
    Retire {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Let an organization's certificates act as OAuth clients of their own (RFC 8705): with
    /// their certificate at the mutual-TLS token endpoint, devices (and ACME-enrolled
    /// services) get client_credentials tokens with these scopes, bound to the certificate.
    /// No scope removes the rule. Management scopes (kizuna:*) are refused.
    ClientScopes {
        /// The organization (id or name).
        #[arg(long)]
        org: String,
        /// The certificate profile the rule is for (device, service, …).
        #[arg(long, default_value = "device")]
        profile: String,
        /// Only devices of this model (default: every model of the profile).
        #[arg(long, default_value = "")]
        model: String,
        /// A scope they may get (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Only list the organization's rules.
        #[arg(long, conflicts_with = "scopes")]
        list: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum EnrollCommand {
    /// Create one-time enrollment tokens and write them as CSV (header row, `token` column).
    Tokens {
        /// The organization the devices belong to (id or name).
        #[arg(long, value_name = "ORG")]
        org: String,
        /// The certificate profile the tokens enroll for (e.g. device).
        #[arg(long)]
        profile: String,
        /// Bind the token to this registered device.
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// For batch tokens: the model the new devices are registered as.
        #[arg(long)]
        model: Option<String>,
        /// A glob the request's subject CN must match (e.g. "SL-*").
        #[arg(long, value_name = "PATTERN", default_value = "*")]
        subject: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Lifetime: seconds, or with a unit (30m, 24h, 7d). Default: ca.enrollment.token_ttl_secs.
        #[arg(long)]
        ttl: Option<String>,
        /// The CSV file to write (tokens are shown only once). Without it, CSV goes to stdout.
        #[arg(long, value_name = "FILE.csv")]
        out: Option<PathBuf>,
    },
    /// List enrollment tokens (never their secrets).
    List {
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        #[arg(long, value_name = "ID")]
        batch: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AcmeCommand {
    /// Create an external account binding key for an organization: an ACME client that
    /// registers with it is bound to the organization and may order its allowed names.
    Eab {
        #[command(subcommand)]
        cmd: EabCommand,
    },
}

#[derive(Subcommand)]
pub enum EabCommand {
    /// Create a key id and HMAC key (shown once), e.g. for certbot's --eab-kid/--eab-hmac-key.
    Create {
        #[arg(long, value_name = "ORG")]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// List binding keys and the accounts they bound.
    List {
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// `90`, `30m`, `24h`, `7d` as seconds.
fn parse_ttl(text: &str) -> Result<i64> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: i64 = number
        .parse()
        .with_context(|| format!("--ttl {text:?}: use seconds or 30m, 24h, 7d"))?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => bail!("--ttl {text:?}: the unit is s, m, h or d"),
    };
    Ok(n.saturating_mul(factor))
}

fn print_device(d: &Device) {
    println!("id:              {}", d.id);
    println!("organization:    {}", d.org_id);
    println!("status:          {}", d.status);
    println!("model:           {}", d.model);
    println!(
        "hardware serial: {}",
        d.hardware_serial.as_deref().unwrap_or("-")
    );
    println!("location:        {}", d.location);
    if let (Some(lat), Some(lon)) = (d.latitude, d.longitude) {
        println!("coordinates:     {lat}, {lon}");
    }
    println!("installer:       {}", d.installer);
    println!("registered:      {}", unix_to_rfc3339(d.created_at));
    println!(
        "enrolled:        {}",
        d.enrolled_at
            .map(unix_to_rfc3339)
            .unwrap_or_else(|| "-".into())
    );
    println!(
        "last seen:       {}",
        d.last_seen_at
            .map(unix_to_rfc3339)
            .unwrap_or_else(|| "-".into())
    );
}

fn print_change(change: &StatusChange, verb: &str, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(change)?);
    } else {
        println!(
            "device {} is {} ({} certificates {verb}, {} bound access tokens ended)",
            change.device.id,
            change.device.status,
            change.certificates.len(),
            change.tokens_ended
        );
    }
    Ok(())
}

async fn org_id(ca: &Ca, org: &str) -> Result<String> {
    Ok(orgs::find(&ca.core.db, org).await?.id)
}

async fn optional_org(ca: &Ca, org: Option<String>) -> Result<Option<String>> {
    match org {
        Some(o) => Ok(Some(org_id(ca, &o).await?)),
        None => Ok(None),
    }
}

/// What this module's commands are.
pub enum Registry {
    Device(DeviceCommand),
    Enroll(EnrollCommand),
    Acme(AcmeCommand),
}

/// Runs a registry command over a freshly opened CA, committing its audit entries.
pub async fn run(cmd: Registry, config: &Config) -> Result<ExitCode> {
    let (idp, writer) = open_idp(config).await?;
    let ca = crate::serve::ca(config, &idp)?;
    let result = match cmd {
        Registry::Device(cmd) => run_device(cmd, &ca).await,
        Registry::Enroll(cmd) => run_enroll(cmd, &ca).await,
        Registry::Acme(cmd) => run_acme(cmd, &ca).await,
    };
    drop(ca);
    close(idp, writer).await;
    result
}

async fn run_device(cmd: DeviceCommand, ca: &Ca) -> Result<ExitCode> {
    let db = &ca.core.db;
    match cmd {
        DeviceCommand::Add {
            org,
            id,
            model,
            serial,
            location,
            lat,
            lon,
            installer,
            json,
        } => {
            let device = devices::create(
                db,
                Actor::cli(),
                NewDevice {
                    id,
                    org_id: org_id(ca, &org).await?,
                    model,
                    hardware_serial: serial,
                    location,
                    coordinates: lat.zip(lon),
                    installer,
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&device)?);
            } else {
                println!("registered device {} (pending enrollment)", device.id);
            }
        }
        DeviceCommand::List {
            org,
            status,
            model,
            limit,
            json,
        } => {
            let filter = DeviceFilter {
                org_id: optional_org(ca, org).await?,
                status: status.as_deref().map(str::parse).transpose()?,
                model,
                limit,
            };
            let list = devices::list(db, &filter).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no devices");
            } else {
                println!(
                    "{:<36}  {:<9}  {:<16}  {:<16}  LOCATION",
                    "ID", "STATUS", "MODEL", "SERIAL"
                );
                for d in list {
                    println!(
                        "{:<36}  {:<9}  {:<16}  {:<16}  {}",
                        d.id,
                        d.status.as_str(),
                        d.model,
                        d.hardware_serial.as_deref().unwrap_or("-"),
                        d.location
                    );
                }
            }
        }
        DeviceCommand::Show { id, json } => {
            let device = devices::find(db, &id).await?;
            let certificates = devices::certificates(db, &id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(
                        &serde_json::json!({"device": device, "certificates": certificates})
                    )?
                );
            } else {
                print_device(&device);
                println!("certificates:");
                if certificates.is_empty() {
                    println!("  none");
                }
                for c in certificates {
                    println!(
                        "  {}  {:<7}  {} .. {}",
                        c.serial,
                        c.status,
                        unix_to_rfc3339(c.not_before),
                        unix_to_rfc3339(c.not_after)
                    );
                }
            }
        }
        DeviceCommand::Suspend { id, json } => print_change(
            &devices::suspend(ca, &id, Actor::cli()).await?,
            "on hold",
            json,
        )?,
        DeviceCommand::Resume { id, json } => print_change(
            &devices::resume(ca, &id, Actor::cli()).await?,
            "released",
            json,
        )?,
        DeviceCommand::Retire { id, json } => print_change(
            &devices::retire(ca, &id, Actor::cli()).await?,
            "revoked",
            json,
        )?,
        DeviceCommand::ClientScopes {
            org,
            profile,
            model,
            scopes,
            list,
            json,
        } => {
            let org = org_id(ca, &org).await?;
            if !list {
                cert_clients::set(ca, Actor::cli(), &org, &profile, &model, &scopes).await?;
            }
            let rules = cert_clients::list(db, &org).await?;
            if json {
                println!("{}", serde_json::to_string(&rules)?);
            } else {
                for r in rules {
                    let model = if r.model.is_empty() { "*" } else { &r.model };
                    println!("{:<10}  {:<12}  {}", r.profile, model, r.scopes.join(" "));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_enroll(cmd: EnrollCommand, ca: &Ca) -> Result<ExitCode> {
    match cmd {
        EnrollCommand::Tokens {
            org,
            profile,
            device,
            model,
            subject,
            count,
            ttl,
            out,
        } => {
            let spec = TokenSpec {
                org_id: org_id(ca, &org).await?,
                profile,
                device_id: device,
                model,
                subject_pattern: subject,
                ttl_secs: match ttl {
                    Some(t) => parse_ttl(&t)?,
                    None => ca.config.enrollment.token_ttl_secs,
                },
                count,
            };
            // Open the file first: tokens are shown once, so never create them unwritable.
            let mut file = match &out {
                Some(path) => Some(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                ),
                None => None,
            };
            let mut progress = |done: usize| {
                let mut err = std::io::stderr();
                let width = 30;
                let filled = done * width / count.max(1);
                let _ = write!(
                    err,
                    "\r[{}{}] {done}/{count} tokens",
                    "#".repeat(filled),
                    ".".repeat(width - filled)
                );
                let _ = err.flush();
            };
            let created = tokens::create(ca, Actor::cli(), &spec, &mut progress).await;
            eprintln!();
            let created = match created {
                Ok(created) => created,
                Err(e) => {
                    if let Some(path) = &out {
                        let _ = std::fs::remove_file(path);
                    }
                    return Err(e.into());
                }
            };
            match (&mut file, &out) {
                (Some(f), Some(path)) => {
                    let mut w = std::io::BufWriter::new(f);
                    tokens::write_csv(&mut w, &created)?;
                    w.flush()?;
                    eprintln!(
                        "wrote {} tokens (expiring {}) to {}",
                        created.len(),
                        unix_to_rfc3339(created[0].expires_at),
                        path.display()
                    );
                }
                _ => {
                    let stdout = std::io::stdout();
                    let mut w = stdout.lock();
                    tokens::write_csv(&mut w, &created)?;
                    w.flush()?;
                }
            }
        }
        EnrollCommand::List {
            org,
            batch,
            limit,
            json,
        } => {
            let org_id = optional_org(ca, org).await?;
            let list =
                tokens::list(&ca.core.db, org_id.as_deref(), batch.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no enrollment tokens");
            } else {
                println!(
                    "{:<36}  {:<10}  {:<20}  {:<20}  DEVICE",
                    "ID", "PROFILE", "EXPIRES", "USED"
                );
                for t in list {
                    println!(
                        "{:<36}  {:<10}  {:<20}  {:<20}  {}",
                        t.id,
                        t.profile,
                        unix_to_rfc3339(t.expires_at),
                        t.used_at.map(unix_to_rfc3339).unwrap_or_else(|| "-".into()),
                        t.used_device_id
                            .or(t.device_id)
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_acme(cmd: AcmeCommand, ca: &Ca) -> Result<ExitCode> {
    let AcmeCommand::Eab { cmd } = cmd;
    match cmd {
        EabCommand::Create { org, json } => {
            let key =
                kizuna_ca::acme::eab::create(ca, Actor::cli(), &org_id(ca, &org).await?).await?;
            if json {
                println!("{}", serde_json::to_string(&key)?);
            } else {
                println!("key id:   {}", key.kid);
                println!("HMAC key: {}", key.hmac_key);
                println!("expires:  {}", unix_to_rfc3339(key.expires_at));
                println!(
                    "certbot --server {} --eab-kid {} --eab-hmac-key {} …",
                    ca.url("/acme/directory"),
                    key.kid,
                    key.hmac_key
                );
            }
        }
        EabCommand::List { org, json } => {
            let org_id = optional_org(ca, org).await?;
            let list = kizuna_ca::acme::eab::list(ca, org_id.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no external account binding keys");
            } else {
                println!(
                    "{:<28}  {:<36}  {:<20}  ACCOUNT",
                    "KEY ID", "ORGANIZATION", "EXPIRES"
                );
                for k in list {
                    println!(
                        "{:<28}  {:<36}  {:<20}  {}",
                        k.kid,
                        k.org_id,
                        unix_to_rfc3339(k.expires_at),
                        k.account_id.unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_take_units() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("30m").unwrap(), 1800);
        assert_eq!(parse_ttl("24h").unwrap(), 86_400);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
