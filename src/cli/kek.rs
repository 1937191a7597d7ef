//! `kizuna kek create|rotate`: a fresh key-encryption key, and every sealed value in the
//! database sealed again under it (docs/operations.md, "Rotate the key-encryption key").

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::custody::{self, CustodyError, Kek, Rotation};
use kizuna_core::db::Db;

use crate::config::Config;
use crate::serve::open_db;

#[derive(Subcommand)]
pub enum KekCommand {
    /// Write a fresh random key-encryption key to a new file (mode 0600).
    ///
    /// 32 random bytes, base64. Prints the file and the KEK's id, never the key (unless
    /// --stdout asks for it).
    Create {
        /// The file to write; refused when it exists (a KEK file is never replaced).
        #[arg(long, value_name = "FILE", required_unless_present = "stdout")]
        out: Option<PathBuf>,
        /// Print the key itself on standard output instead of writing a file, to pipe into a
        /// secret manager. Its id goes to standard error.
        #[arg(long, conflicts_with_all = ["out", "json"])]
        stdout: bool,
        /// Print the file and the KEK id as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal everything in the database under a new KEK, in one audited transaction.
    ///
    /// Seals every KEK-sealed value (software keys, TOTP seeds, upstream client secrets, the
    /// assurance binding key, the KEK check value) again under the new KEK, all or nothing,
    /// audited as kek.rotate. The KEKs that open them come from the configuration (kek_file
    /// or kek, and kek_open_only_files). Keys in an HSM are not touched. With replicas, see
    /// docs/operations.md, "Rotate the key-encryption key", first.
    Rotate {
        /// The new KEK (made with `kizuna kek create`).
        #[arg(long, value_name = "FILE")]
        new_kek_file: PathBuf,
        /// Re-seal and count, then roll back: changes nothing. Shows whether anything is left
        /// under an old KEK.
        #[arg(long)]
        dry_run: bool,
        /// Print the KEK ids and the counts per kind as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: KekCommand, config: &Config) -> Result<ExitCode> {
    match cmd {
        KekCommand::Create { out, stdout, json } => create(out.as_deref(), stdout, json),
        KekCommand::Rotate {
            new_kek_file,
            dry_run,
            json,
        } => {
            let new = custody::read_kek_file(&new_kek_file)
                .map_err(|e| anyhow!("the new KEK: {e}. Nothing was changed"))?;
            let db = open_db(config).await?;
            let result = rotate(&db, config, new, &new_kek_file, dry_run, json).await;
            db.close().await;
            result
        }
    }
}

fn create(out: Option<&Path>, stdout: bool, json: bool) -> Result<ExitCode> {
    if stdout {
        let (kek, text) = custody::new_kek();
        println!("{text}");
        eprintln!(
            "new key-encryption key, id {} (the key itself is on standard output)",
            kek.id()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let out = out.ok_or_else(|| anyhow!("give --out FILE (or --stdout)"))?;
    let kek = custody::write_new_kek_file(out)?;
    if json {
        println!(
            "{}",
            json!({"file": out.display().to_string(), "kek_id": kek.id()})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "wrote a new key-encryption key to {} (mode 0600), KEK id {}",
        out.display(),
        kek.id()
    );
    println!(
        "Keep a copy apart from the database backups: without it nothing sealed under it opens."
    );
    println!(
        "A new install: point kek_file (KIZUNA_KEK_FILE) at it before the first start.\n\
         An existing install: follow docs/operations.md, \"Rotate the key-encryption key\" \
         (kek_open_only_files on every replica, then kek_file, then \
         kizuna kek rotate --new-kek-file {}).",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn rotate(
    db: &Db,
    config: &Config,
    new: Kek,
    new_file: &Path,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode> {
    if !custody::has_kek_check(db).await? {
        bail!(
            "this database has nothing sealed yet (no KEK check value): nothing to rotate. \
             Start the server with kek_file = {} instead",
            new_file.display()
        );
    }
    let keyring =
        match custody::open_keyring(db, &config.kek_source(), &config.kek_open_only_files).await {
            Ok(keyring) => keyring,
            Err(CustodyError::WrongKek) if custody::kek_opens_check(db, &new).await? => bail!(
                "the configured KEK does not open this database, but the new KEK does: the \
                 rotation was done already. Configure the new KEK as kek_file; nothing was changed"
            ),
            Err(e) => bail!("the configured KEK: {e}. Nothing was changed"),
        };
    let new_id = new.id();
    let mut rotation = Rotation::new(keyring, new);
    let mut tx = db.begin().await?;
    custody::reseal_keys(tx.conn(), &mut rotation).await?;
    kizuna_idp::reseal::reseal(tx.conn(), &mut rotation).await?;
    kizuna_ca::acme::eab::reseal(tx.conn(), &mut rotation).await?;
    let report = report(&rotation, dry_run);
    if rotation.resealed() == 0 && !dry_run {
        bail!(
            "nothing to re-seal: every sealed value is already under KEK {new_id}. Nothing was \
             changed (to rotate, make a new KEK with kizuna kek create)"
        );
    }
    if !dry_run {
        let event = AuditEvent::new(Actor::cli(), "kek.rotate", format!("kek:{new_id}"))
            .details(report.clone());
        let entries = audit::append_in(tx.conn(), &[event]).await?;
        tx.commit().await?;
        audit::publish(&entries);
    }
    if json {
        println!("{report}");
    } else {
        print_report(&rotation, dry_run);
    }
    Ok(ExitCode::SUCCESS)
}

/// The rotation as JSON: the audit entry's details and `--json`'s output. KEK ids and counts
/// only, never key material.
fn report(rotation: &Rotation, dry_run: bool) -> serde_json::Value {
    json!({
        "dry_run": dry_run,
        "new_kek": rotation.new_kek_id(),
        "configured_keks": rotation.from_kek_ids(),
        "resealed": rotation.resealed(),
        "kinds": rotation.counts(),
        "held_elsewhere": rotation.held_elsewhere(),
    })
}

fn print_report(rotation: &Rotation, dry_run: bool) {
    let from: Vec<String> = rotation
        .from_kek_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "{} {} values under KEK {} (configured KEKs: {}){}",
        if dry_run {
            "would re-seal"
        } else {
            "re-sealed"
        },
        rotation.resealed(),
        rotation.new_kek_id(),
        from.join(", "),
        if dry_run {
            "; dry run: nothing was changed"
        } else {
            ", in one transaction"
        }
    );
    println!(
        "{:<24}  {:>9}  {:>8}  {:>16}",
        "KIND", "RE-SEALED", "ALREADY", "CHANGED MEANWHILE"
    );
    for (kind, count) in rotation.counts() {
        println!(
            "{kind:<24}  {:>9}  {:>8}  {:>16}",
            count.resealed, count.already, count.changed_meanwhile
        );
    }
    for (backend, keys) in rotation.held_elsewhere() {
        println!(
            "{backend}: {keys} keys held in the HSM, not re-sealed (only a reference to them is \
             stored; the KEK does not protect them)"
        );
    }
}
