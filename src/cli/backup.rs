//! `kizuna backup`, `kizuna restore` and `kizuna cert revocations …`: a consistent copy of
//! the database, putting a copy back, and carrying the revocations made after a backup over
//! to a database restored from it. The key-encryption key is never in a backup; see
//! docs/operations.md, "Backup and restore".

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use kizuna_core::audit;
use kizuna_core::custody::{self, KekSource};
use kizuna_core::db::{self, Backend, Db, DbOptions};
use kizuna_core::time::{now_unix, unix_to_rfc3339};

use crate::config::Config;

mod postgres;

use postgres::{pg_commands, print_pg_commands, run_pg_dump};

#[derive(Args)]
pub struct BackupArgs {
    /// Where to write the backup; it must not exist. SQLite: a consistent snapshot of the
    /// database, taken while the server keeps running. PostgreSQL: the file the printed
    /// pg_dump command (or --run-pg-dump) writes.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// PostgreSQL only: run `pg_dump --format=custom` (found on PATH) instead of printing
    /// the command.
    #[arg(long)]
    run_pg_dump: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// A snapshot written by `kizuna backup` (SQLite). It is checked whole before anything
    /// changes.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Replace the database that is there (it is kept beside it, renamed
    /// `kizuna.db.replaced-<time>`). Stop the server first: a database in use is refused.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

/// What the operator must keep besides a backup: the KEK, and keys in an HSM.
fn kek_notice(config: &Config) -> String {
    let source = match config.kek_source() {
        KekSource::Inline(_) => "the `kek` setting (KIZUNA_KEK)".to_string(),
        KekSource::File { path, .. } => format!("the KEK file {}", path.display()),
    };
    let mut notice = format!(
        "The key-encryption key (KEK) is NOT in this backup, and every private key in it is \
         encrypted under the KEK: back up {source} separately, and keep it apart from the backup."
    );
    if config.pkcs11.module.is_some() {
        notice.push_str(
            " Keys held in the HSM (pkcs11) are not in it either: back them up with the HSM's tools.",
        );
    }
    notice
}

fn kek_source_name(config: &Config) -> String {
    match config.kek_source() {
        KekSource::Inline(_) => "kek setting (KIZUNA_KEK)".into(),
        KekSource::File { path, .. } => path.display().to_string(),
    }
}

/// Refuses to write over anything, a dangling link included.
fn refuse_existing(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        bail!(
            "{} already exists: kizuna backup never overwrites a file; choose a new name",
            path.display()
        );
    }
    Ok(())
}

/// The directory a path's file is in (`.` for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kizuna".into())
}

/// A file written under a temporary name beside its destination, so the destination only
/// ever holds a complete file. Removed when dropped unless it was put in place.
struct Partial {
    path: PathBuf,
    placed: bool,
}

impl Partial {
    fn beside(destination: &Path, what: &str) -> Partial {
        let random = kizuna_core::secret::hex(&kizuna_core::secret::random_bytes::<6>());
        Partial {
            path: parent_dir(destination)
                .join(format!(".{}.{what}-{random}", file_name(destination))),
            placed: false,
        }
    }

    /// Owner-only (it holds personal data and sealed keys) and on disk.
    fn seal(&self) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict {}", self.path.display()))?;
        }
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {} to disk", self.path.display()))
    }

    /// Puts the file at `destination`, never over an existing file.
    fn publish(mut self, destination: &Path) -> Result<()> {
        match std::fs::hard_link(&self.path, destination) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                refuse_existing(destination)?;
            }
            // A file system without hard links: check, then rename.
            Err(_) => {
                refuse_existing(destination)?;
                std::fs::rename(&self.path, destination)
                    .with_context(|| format!("cannot write {}", destination.display()))?;
            }
        }
        self.placed = true;
        sync_dir(&parent_dir(destination));
        Ok(())
    }

    /// Puts the file at `destination`, replacing what is there.
    fn replace(mut self, destination: &Path) -> Result<()> {
        std::fs::rename(&self.path, destination).with_context(|| {
            format!(
                "cannot move the restored database to {}",
                destination.display()
            )
        })?;
        self.placed = true;
        sync_dir(&parent_dir(destination));
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
            for suffix in ["-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(with_suffix(&self.path, suffix));
            }
        }
    }
}

/// Makes a rename durable (best effort: not every platform syncs a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

// ---------------------------------------------------------------------------------------------
// kizuna backup

pub async fn backup(args: BackupArgs, config: &Config) -> Result<ExitCode> {
    refuse_existing(&args.out)?;
    let url = config.database_url();
    match Backend::from_url(&url)? {
        Backend::Sqlite => sqlite_backup(&args, config, &url).await,
        Backend::Postgres if args.run_pg_dump => run_pg_dump(&args, config, &url).await,
        Backend::Postgres => {
            print_pg_commands(&args, config, &url)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn sqlite_backup(args: &BackupArgs, config: &Config, url: &str) -> Result<ExitCode> {
    if args.run_pg_dump {
        bail!("--run-pg-dump is for PostgreSQL; this installation uses SQLite ({url})");
    }
    let file = db::sqlite_file(url).context("the database URL names no SQLite file")?;
    if !file.is_file() {
        bail!("there is no database at {} to back up", file.display());
    }
    if !parent_dir(&args.out).is_dir() {
        bail!(
            "the directory {} does not exist",
            parent_dir(&args.out).display()
        );
    }
    // No migrations: a backup taken before an upgrade must be of the old schema.
    let options = DbOptions {
        max_connections: 1,
        ..config.db_options()
    };
    let db = Db::connect(url, &options).await?;
    let partial = Partial::beside(&args.out, "partial");
    let taken_at = now_unix();
    let written = db.vacuum_into(&partial.path).await;
    db.close().await;
    written.with_context(|| format!("snapshot of {} failed", file.display()))?;
    partial.seal()?;
    let info = db::check_sqlite_file(&partial.path)
        .await
        .context("the snapshot just written does not check out")?;
    partial.publish(&args.out)?;

    // A revocation committed while the snapshot began may carry a time a moment before it:
    // the suggested export starts a minute earlier (re-applying one is harmless).
    let since = unix_to_rfc3339(taken_at - 60);
    if args.json {
        println!(
            "{}",
            json!({
                "backend": "sqlite",
                "file": args.out.display().to_string(),
                "bytes": info.bytes,
                "schema_version": info.schema_version,
                "taken_at": unix_to_rfc3339(taken_at),
                "revocations_since": since,
                "kek_included": false,
                "kek": kek_source_name(config),
            })
        );
    } else {
        println!(
            "wrote a consistent snapshot of {} to {} ({} bytes, schema version {}), taken at {}",
            file.display(),
            args.out.display(),
            info.bytes,
            info.schema_version,
            unix_to_rfc3339(taken_at)
        );
        println!("{}", kek_notice(config));
        println!(
            "After a restore from it, re-apply later revocations: kizuna cert revocations export --since {since} (on this database), then import (on the restored one)."
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(args: RestoreArgs, config: &Config) -> Result<ExitCode> {
    let url = config.database_url();
    if Backend::from_url(&url)? == Backend::Postgres {
        let (_, restore) = pg_commands(&url, &args.from);
        bail!(
            "kizuna restore puts back SQLite snapshots only. This installation uses PostgreSQL: stop every kizuna process and run\n  {restore}\nthen start kizuna and run kizuna audit verify"
        );
    }
    let target = db::sqlite_file(&url).context("the database URL names no SQLite file")?;

    // Nothing changes until the snapshot has proved whole and sound.
    let info = db::check_sqlite_file(&args.from).await?;
    let present: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| with_suffix(&target, suffix))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    if !present.is_empty() {
        if !args.force {
            bail!(
                "there is already a database at {}: restore into an empty data directory, or stop the server and pass --force to replace it (it is kept as {}.replaced-<time>)",
                target.display(),
                target.display()
            );
        }
        if target.exists() && db::sqlite_in_use(&target).await? {
            bail!(
                "the database {} is in use: stop kizuna serve (and any other kizuna command on it) before restoring over it",
                target.display()
            );
        }
    }

    // The keys in the backup are sealed under the KEK: it must be in place first.
    if let KekSource::File { path, .. } = config.kek_source()
        && !path.exists()
    {
        bail!(
            "the key-encryption key file {} is missing: put the KEK that belongs to this backup there (or set kek_file / KIZUNA_KEK_FILE, or KIZUNA_KEK) before restoring; nothing was changed",
            path.display()
        );
    }
    let dir = parent_dir(&target);
    crate::serve::prepare_data_dir(&dir)?;
    let partial = Partial::beside(&target, "restore");
    std::fs::copy(&args.from, &partial.path).with_context(|| {
        format!(
            "cannot copy {} to {}",
            args.from.display(),
            partial.path.display()
        )
    })?;
    partial.seal()?;
    let checked = bring_up_to_date(&partial.path, config).await?;
    if let Some(broken) = &checked.audit.broken {
        bail!(
            "the audit chain in {} is broken at {broken}. Refusing to restore it; nothing was changed",
            args.from.display(),
        );
    }

    let kept = if present.is_empty() {
        None
    } else {
        let stamp = kizuna_core::time::now()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap_or_else(|_| now_unix().to_string());
        let aside = with_suffix(&target, &format!(".replaced-{stamp}"));
        // The old database's -wal and -shm go with it, so it still opens as it was, and so
        // they are never read as the restored database's.
        for suffix in ["", "-wal", "-shm"] {
            let from = with_suffix(&target, suffix);
            if from.symlink_metadata().is_ok() {
                std::fs::rename(&from, with_suffix(&aside, suffix))
                    .with_context(|| format!("cannot move {} aside", from.display()))?;
            }
        }
        Some(aside)
    };
    partial.replace(&target)?;

    if args.json {
        println!(
            "{}",
            json!({
                "restored": target.display().to_string(),
                "from": args.from.display().to_string(),
                "bytes": info.bytes,
                "schema_version": {"backup": info.schema_version, "now": checked.schema},
                "kek_checked": checked.kek_checked,
                "audit": checked.audit,
                "replaced": kept.as_ref().map(|p| p.display().to_string()),
            })
        );
    } else {
        println!(
            "restored {} into {} ({} bytes; schema version {}{})",
            args.from.display(),
            target.display(),
            info.bytes,
            info.schema_version,
            if checked.schema != info.schema_version {
                format!(", migrated to {}", checked.schema)
            } else {
                String::new()
            }
        );
        println!("audit: ok: {} entries", checked.audit.entries);
        if checked.kek_checked {
            println!("key-encryption key: {} opens it", kek_source_name(config));
        }
        if let Some(kept) = kept {
            println!("the database it replaced is kept as {}", kept.display());
        }
        println!(
            "This database is as it was when the backup was taken: revocations, certificates, consents and withdrawals made since are not in it. \
             Re-apply revocations with kizuna cert revocations import FILE (exported from the newer database with kizuna cert revocations export --since TIME), then start kizuna serve."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What restoring found in the copy before putting it in place.
struct Checked {
    schema: i64,
    kek_checked: bool,
    audit: audit::VerifyReport,
}

/// Migrates the copy at `path` to this binary's schema, checks it opens with the configured
/// KEK, and verifies its audit chain.
async fn bring_up_to_date(path: &Path, config: &Config) -> Result<Checked> {
    let options = DbOptions {
        max_connections: 1,
        ..config.db_options()
    };
    let db = Db::connect(&db::sqlite_url(path), &options).await?;
    let result = async {
        db.migrate().await?;
        let kek_checked = custody::meta_value(&db, "kek_check").await?.is_some();
        if kek_checked {
            // An explicit source: restoring never creates a KEK.
            let source = match config.kek_source() {
                KekSource::File { path, .. } => KekSource::File {
                    path,
                    explicit: true,
                },
                inline => inline,
            };
            custody::open_keyring(&db, &source, &config.kek_open_only_files).await.map_err(|e| {
                anyhow::anyhow!(
                    "the backup does not open with the configured key-encryption key: {e}. \
                     Put the KEK that belongs to this backup in place (kek_file, KIZUNA_KEK_FILE or KIZUNA_KEK) and run again; nothing was changed"
                )
            })?;
        }
        let schema = db.schema_status().await?.applied;
        let audit = audit::verify(&db).await?;
        anyhow::Ok(Checked {
            schema,
            kek_checked,
            audit,
        })
    }
    .await;
    db.close().await;
    let checked = result?;
    // A clean close folds the write-ahead log back into the file; the copy must stand alone.
    if with_suffix(path, "-wal")
        .metadata()
        .is_ok_and(|m| m.len() > 0)
    {
        bail!(
            "the restored copy {} still has a write-ahead log after closing; nothing was changed",
            path.display()
        );
    }
    Ok(checked)
}

// ---------------------------------------------------------------------------------------------
// kizuna cert revocations
