//! `kizuna ca …` (the hierarchy) and `kizuna cert …` (issued certificates).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use kizuna_ca::hierarchy;
use kizuna_ca::issue::{IssueRequest, pem};
use kizuna_ca::names::San;
use kizuna_ca::store::{self, Filter};
use kizuna_core::audit::Actor;
use kizuna_core::orgs;
use kizuna_core::time::unix_to_rfc3339;

use crate::config::Config;
use crate::serve::{close, open_idp};

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create the root and issuing CA (what `serve` does on first start), or — with
    /// --root-csr-out — an issuing CA whose root is kept offline: writes its CSR to FILE.
    Init {
        #[arg(long, value_name = "FILE")]
        root_csr_out: Option<PathBuf>,
        /// Logical name of the issuing CA for --root-csr-out.
        #[arg(long, default_value = "issuing")]
        name: String,
    },
    /// Install the certificate an offline root signed for a pending issuing CA.
    ImportIssuer {
        /// The signed issuing CA certificate (PEM).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// The root CA certificate that signed it (PEM).
        #[arg(long, value_name = "FILE")]
        root: PathBuf,
    },
    /// Publish a cross-certificate made where an offline root is kept (the new root's key
    /// certified by the old root, or the old root's by the new one) during a root rollover.
    ImportCross {
        /// The cross-certificate (PEM).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
    },
    /// Create another issuing CA under the root (e.g. one for devices, one for services).
    CreateIssuer {
        #[arg(long)]
        name: String,
    },
    /// Roll over an issuing CA: a new generation issues from now on; the old one stays valid
    /// for its certificates.
    Rollover {
        #[arg(long)]
        name: String,
    },
    /// Roll over the root CA: a new root key and certificate, cross-certificates between the
    /// old and the new root, and a new generation of every issuing CA under the new root.
    ///
    /// New certificates then chain to the new root; certificates already issued keep
    /// chaining to the old one. Both roots are trusted (and published in
    /// /pki/trust-bundle.pem, EST /cacerts and issued chains) until the old root is retired
    /// with `kizuna ca retire-root` or expires. Relying parties should install the new root
    /// during this overlap. Without --yes, prints what would change and changes nothing.
    /// A root kept offline is rolled over where it is kept. See docs/ca.md, "Root rollover".
    RolloverRoot {
        /// Do it (without it, only shows what would change).
        #[arg(long)]
        yes: bool,
        /// Print the result as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// End a root rollover's overlap: the old root and its cross-certificates are no longer
    /// published or handed out in chains.
    ///
    /// Refused while certificates issued under the old root are still valid (they would then
    /// validate only for relying parties that still trust the old root), unless --force.
    RetireRoot {
        /// The root to retire (default: the one the last rollover replaced).
        #[arg(long, value_name = "CA")]
        id: Option<String>,
        /// Retire even though certificates issued under the root are still valid.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// List the CAs with their validity.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum CertCommand {
    /// Issue a certificate from a PKCS#10 request; prints the certificate (PEM).
    Issue {
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        #[arg(long)]
        profile: String,
        /// Owning organization (id or name).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// Name to certify instead of those in the request: dns:…, ip:…, uri:…, email:… (repeatable).
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        /// Also print the chain (issuing CA up to the root).
        #[arg(long)]
        chain: bool,
        #[arg(long)]
        json: bool,
    },
    /// List issued certificates.
    List {
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        #[arg(long)]
        profile: Option<String>,
        /// valid, revoked or hold.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        device: Option<String>,
        /// Only those expiring within this many days.
        #[arg(long, value_name = "DAYS")]
        expiring_days: Option<i64>,
        /// A substring of the subject or a name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate, or every certificate of a device or organization.
    Revoke {
        /// The certificate's serial (hex).
        serial: Option<String>,
        #[arg(long, value_name = "ID", conflicts_with = "serial")]
        device: Option<String>,
        /// Every certificate of this organization; with --device, the organization whose
        /// device is meant (needed when the id is used in several).
        #[arg(long, value_name = "ORG", conflicts_with = "serial")]
        org: Option<String>,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold (suspend), privilegeWithdrawn,
        /// aACompromise.
        #[arg(long)]
        reason: String,
        /// Confirm a revocation by device or organization (without it, prints the count).
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Release a certificate from certificateHold.
    Unhold { serial: String },
    /// Carry revocations over to a database restored from an earlier backup.
    #[command(subcommand)]
    Revocations(crate::cli::revocations::RevocationsCommand),
    /// Show one certificate.
    Show {
        serial: String,
        /// Print the certificate as PEM.
        #[arg(long)]
        pem: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum CrlCommand {
    /// Generate and publish the CRLs (full and partitions) now.
    Generate {
        /// Only this CA (id, e.g. issuing-1).
        #[arg(long, value_name = "CA")]
        issuer: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum OcspCommand {
    /// Serve OCSP (and health endpoints) only.
    Serve {
        /// Address for plain HTTP. Env: KIZUNA_LISTEN.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}

pub async fn crl(cmd: CrlCommand, config: &Config) -> Result<ExitCode> {
    let CrlCommand::Generate { issuer } = cmd;
    let (idp, writer) = open_idp(config).await?;
    let ca = crate::serve::ca(config, &idp)?;
    let result = async {
        let cas = kizuna_ca::crl::publishing_cas(&ca).await?;
        let selected: Vec<_> = cas
            .into_iter()
            .filter(|c| issuer.as_ref().is_none_or(|i| *i == c.id))
            .collect();
        if selected.is_empty() {
            bail!(
                "no CA to generate CRLs for{}",
                issuer
                    .map(|i| format!(" (no CA {i} with a key here)"))
                    .unwrap_or_default()
            );
        }
        for record in selected {
            let generated =
                kizuna_ca::crl::generate(&ca, &record, &mut kizuna_ca::crl::print_progress).await?;
            eprintln!();
            println!(
                "{}: CRL number {}, {} revoked, {} CRLs published (full CRL {} bytes)",
                generated.ca_id,
                generated.number,
                generated.revoked,
                generated.crls,
                generated.full_bytes
            );
        }
        anyhow::Ok(ExitCode::SUCCESS)
    }
    .await;
    drop(ca);
    close(idp, writer).await;
    result
}

pub async fn ca(cmd: CaCommand, config: &Config) -> Result<ExitCode> {
    let (idp, writer) = open_idp(config).await?;
    let ca = crate::serve::ca(config, &idp)?;
    let result = async {
        match cmd {
            CaCommand::Init { root_csr_out: Some(path), name } => {
                let csr = hierarchy::start_offline_issuer(&ca, &name, Actor::cli()).await?;
                std::fs::write(&path, pem("CERTIFICATE REQUEST", &csr)).with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote the CSR of issuing CA {name:?} to {}; have the offline root sign it, then run kizuna ca import-issuer", path.display());
            }
            CaCommand::Init { root_csr_out: None, .. } => {
                let report = hierarchy::init(&ca, Actor::cli()).await?;
                if report.created.is_empty() {
                    println!("the CA hierarchy already exists (kizuna ca list)");
                }
                for c in report.created {
                    println!("created {} CA {}", c.kind, c.id);
                }
            }
            CaCommand::ImportIssuer { cert, root } => {
                let cert = std::fs::read(&cert).with_context(|| format!("cannot read {}", cert.display()))?;
                let root = std::fs::read(&root).with_context(|| format!("cannot read {}", root.display()))?;
                let record = hierarchy::import_issuer(&ca, &cert, &root, Actor::cli()).await?;
                println!("issuing CA {} is active (signed by {})", record.id, record.parent_id.unwrap_or_default());
            }
            CaCommand::ImportCross { cert } => {
                let cert = std::fs::read(&cert).with_context(|| format!("cannot read {}", cert.display()))?;
                let record = hierarchy::import_cross(&ca, &cert, Actor::cli()).await?;
                println!("published cross-certificate {} (signed by {}, valid until {})", record.id, record.parent_id.unwrap_or_default(), unix_to_rfc3339(record.not_after.unwrap_or(0)));
            }
            CaCommand::CreateIssuer { name } | CaCommand::Rollover { name } => {
                let record = hierarchy::create_issuer(&ca, &name, Actor::cli()).await?;
                println!("created issuing CA {} (valid until {})", record.id, unix_to_rfc3339(record.not_after.unwrap_or(0)));
            }
            CaCommand::RolloverRoot { yes: false, json } => {
                let plan = hierarchy::plan_root_rollover(&ca).await?;
                if json {
                    println!("{}", serde_json::to_string(&plan)?);
                } else {
                    println!(
                        "a root rollover would replace {} with a new root, cross-certify the two roots both ways, and make a new generation of these issuing CAs under the new root: {}",
                        plan.old_root.id,
                        if plan.issuers.is_empty() { "none".into() } else { plan.issuers.join(", ") }
                    );
                    println!("run again with --yes to do it");
                }
                return Ok(ExitCode::FAILURE);
            }
            CaCommand::RolloverRoot { yes: true, json } => {
                let done = hierarchy::rollover_root(&ca, Actor::cli()).await?;
                if json {
                    println!("{}", serde_json::to_string(&done)?);
                } else {
                    println!("created root CA {} (valid until {})", done.new_root.id, unix_to_rfc3339(done.new_root.not_after.unwrap_or(0)));
                    for c in &done.cross_certificates {
                        println!("created cross-certificate {} (signed by {})", c.id, c.parent_id.as_deref().unwrap_or("-"));
                    }
                    for c in &done.issuers {
                        println!("created issuing CA {} under {}", c.id, done.new_root.id);
                    }
                    println!(
                        "{} stays trusted beside {} until you run kizuna ca retire-root (at the latest until {}); have relying parties install {} from /pki/trust-bundle.pem now",
                        done.old_root, done.new_root.id, unix_to_rfc3339(done.overlap_until), done.new_root.id
                    );
                }
            }
            CaCommand::RetireRoot { id, force, json } => {
                let retired = hierarchy::retire_root(&ca, id.as_deref(), force, Actor::cli()).await?;
                if json {
                    println!("{}", serde_json::to_string(&retired)?);
                } else {
                    println!(
                        "retired root CA {} and cross-certificates {}",
                        retired.root,
                        if retired.cross_certificates.is_empty() { "(none)".into() } else { retired.cross_certificates.join(", ") }
                    );
                    if retired.still_valid > 0 {
                        println!("{} certificates issued under it are still valid", retired.still_valid);
                    }
                }
            }
            CaCommand::List { json } => {
                let list = hierarchy::list(&ca).await?;
                if json {
                    println!("{}", serde_json::to_string(&list)?);
                } else {
                    println!("{:<22}  {:<8}  {:<10}  {:<20}  {:<20}  PARENT", "ID", "KIND", "STATUS", "NOT BEFORE", "NOT AFTER");
                    for c in list {
                        println!(
                            "{:<22}  {:<8}  {:<10}  {:<20}  {:<20}  {}",
                            c.id,
                            c.kind,
                            c.status,
                            c.not_before.map(unix_to_rfc3339).unwrap_or_else(|| "-".into()),
                            c.not_after.map(unix_to_rfc3339).unwrap_or_else(|| "-".into()),
                            c.parent_id.unwrap_or_else(|| "-".into())
                        );
                    }
                }
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    }
    .await;
    drop(ca);
    close(idp, writer).await;
    result
}

pub async fn cert(cmd: CertCommand, config: &Config) -> Result<ExitCode> {
    let (idp, writer) = open_idp(config).await?;
    let ca = crate::serve::ca(config, &idp)?;
    let result = async {
        match cmd {
            CertCommand::Issue {
                csr,
                profile,
                org,
                sans,
                chain,
                json,
            } => {
                let csr = std::fs::read(&csr)
                    .with_context(|| format!("cannot read {}", csr.display()))?;
                let org_id = match org {
                    Some(o) => Some(orgs::find(&idp.core.db, &o).await?.id),
                    None => None,
                };
                let sans = if sans.is_empty() {
                    None
                } else {
                    Some(
                        sans.iter()
                            .map(|s| s.parse::<San>())
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(anyhow::Error::msg)?,
                    )
                };
                let issued = kizuna_ca::issue::issue(
                    &ca,
                    IssueRequest {
                        csr,
                        profile,
                        sans,
                        org_id,
                        actor: Actor::cli(),
                        internal: false,
                common_name: None,
                ca_id: None,
                    },
                )
                .await?;
                if json {
                    println!("{}", serde_json::to_string(&issued)?);
                } else {
                    print!("{}", issued.certificate_pem);
                    if chain {
                        print!("{}", issued.chain_pem);
                    }
                    if !issued.ignored_extensions.is_empty() {
                        eprintln!(
                            "note: requested extensions not copied: {}",
                            issued.ignored_extensions.join(", ")
                        );
                    }
                }
            }
            CertCommand::List {
                org,
                profile,
                status,
                device,
                expiring_days,
                name,
                limit,
                json,
            } => {
                let org_id = match org {
                    Some(o) => Some(orgs::find(&idp.core.db, &o).await?.id),
                    None => None,
                };
                let filter = Filter {
                    org_id,
                    profile,
                    status,
                    device_id: device,
                    expiring_before: expiring_days
                        .map(|d| kizuna_core::time::now_unix() + d * 86_400),
                    name,
                    limit,
                    ..Filter::default()
                };
                let list = store::list(&idp.core.db, &filter).await?;
                if json {
                    println!("{}", serde_json::to_string(&list)?);
                } else if list.is_empty() {
                    println!("no certificates");
                } else {
                    println!(
                        "{:<32}  {:<11}  {:<7}  {:<20}  NAMES",
                        "SERIAL", "PROFILE", "STATUS", "NOT AFTER"
                    );
                    for c in list {
                        let names: Vec<String> = c.sans.0.iter().map(ToString::to_string).collect();
                        println!(
                            "{:<32}  {:<11}  {:<7}  {:<20}  {}",
                            c.serial,
                            c.profile,
                            c.status,
                            unix_to_rfc3339(c.not_after),
                            names.join(", ")
                        );
                    }
                }
            }
            CertCommand::Revoke { serial, device, org, reason, yes, json } => {
                let reason: kizuna_ca::revoke::Reason = reason.parse().map_err(anyhow::Error::msg)?;
                let org = match org {
                    Some(o) => Some(orgs::find(&idp.core.db, &o).await?.id),
                    None => None,
                };
                let selector = match (serial, device, org) {
                    (Some(s), _, _) => kizuna_ca::revoke::Selector::Serial(s),
                    (None, Some(d), org) => kizuna_ca::revoke::device(&ca, &d, org.as_deref()).await?,
                    (None, None, Some(o)) => kizuna_ca::revoke::Selector::Organization(o),
                    (None, None, None) => bail!("give a serial, --device or --org"),
                };
                if !matches!(selector, kizuna_ca::revoke::Selector::Serial(_)) && !yes {
                    let n = kizuna_ca::revoke::count(&ca, &selector).await?;
                    let tokens = kizuna_ca::revoke::tokens_of(&ca, &selector).await?.recent;
                    println!("{n} certificates would be revoked ({reason}), ending {tokens} bound access tokens; run again with --yes to revoke them");
                    return Ok(ExitCode::FAILURE);
                }
                let report = kizuna_ca::revoke::revoke(&ca, &selector, reason, Actor::cli()).await?;
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else if report.revoked.is_empty() {
                    println!("nothing to revoke: {} already revoked", report.already);
                } else {
                    println!(
                        "revoked {} certificates ({reason}); {} bound access tokens ended",
                        report.revoked.len(),
                        report.tokens_ended
                    );
                }
            }
            CertCommand::Revocations(cmd) => {
                return crate::cli::revocations::revocations(cmd, &ca).await;
            }
            CertCommand::Unhold { serial } => {
                kizuna_ca::revoke::unhold(&ca, &serial, Actor::cli()).await?;
                println!("certificate {serial} is valid again");
            }
            CertCommand::Show {
                serial,
                pem: as_pem,
                json,
            } => {
                let Some(c) = store::get(&idp.core.db, &serial).await? else {
                    bail!("no certificate with serial {serial}");
                };
                if as_pem {
                    print!("{}", pem("CERTIFICATE", &c.der));
                } else if json {
                    println!("{}", serde_json::to_string(&c)?);
                } else {
                    println!("serial:      {}", c.serial);
                    println!("issuer:      {}", c.ca_id);
                    println!("subject:     {}", c.subject);
                    println!(
                        "names:       {}",
                        c.sans
                            .0
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    println!("profile:     {}", c.profile);
                    println!("status:      {}", c.status);
                    println!("not before:  {}", unix_to_rfc3339(c.not_before));
                    println!("not after:   {}", unix_to_rfc3339(c.not_after));
                    println!("org:         {}", c.org_id.unwrap_or_else(|| "-".into()));
                    println!("device:      {}", c.device_id.unwrap_or_else(|| "-".into()));
                    println!("key sha256:  {}", c.key_sha256);
                }
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    }
    .await;
    drop(ca);
    close(idp, writer).await;
    result
}
