//! `kizuna backup`, `kizuna restore` and `kizuna cert revocations …`: a consistent copy of
//! the database, putting a copy back, and carrying the revocations made after a backup over
//! to a database restored from it. The key-encryption key is never in a backup; see
//! docs/operations.md, "Backup and restore".

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;

use kizuna_ca::Ca;
use kizuna_ca::revoke::{Reason, Selector};
use kizuna_core::audit::{self, Actor};
use kizuna_core::custody::{self, KekSource};
use kizuna_core::db::{self, Backend, Db, DbOptions};
use kizuna_core::time::{now_unix, unix_to_rfc3339};

use crate::config::Config;

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

/// A PostgreSQL URL for libpq's tools: without the password (given to them in PGPASSWORD,
/// never on a command line where `ps` shows it) and without sqlx's own parameters.
fn libpq_url(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let (main, query) = match rest.split_once('?') {
        Some((main, query)) => (main, query),
        None => (rest, ""),
    };
    let (authority, path) = match main.find('/') {
        Some(i) => main.split_at(i),
        None => (main, ""),
    };
    let mut password = None;
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, secret)) => {
                password = Some(percent_decode(secret));
                format!("{user}@{host}")
            }
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if key.eq_ignore_ascii_case("password") {
            password = Some(percent_decode(pair.split_once('=').map_or("", |(_, v)| v)));
        } else if key != "statement-cache-capacity" {
            kept.push(pair);
        }
    }
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    (format!("{scheme}://{authority}{path}{query}"), password)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A word for a POSIX shell, in single quotes.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The pg_dump and pg_restore commands for the configured database.
fn pg_commands(url: &str, file: &Path) -> (String, String) {
    let (url, _) = libpq_url(url);
    let file = shell_quote(&file.display().to_string());
    let url = shell_quote(&url);
    (
        format!("pg_dump --format=custom --file={file} --dbname={url}"),
        format!(
            "pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --dbname={url} {file}"
        ),
    )
}

fn print_pg_commands(args: &BackupArgs, config: &Config, url: &str) -> Result<()> {
    let (dump, restore) = pg_commands(url, &args.out);
    if args.json {
        println!(
            "{}",
            json!({
                "backend": "postgres",
                "pg_dump": dump,
                "pg_restore": restore,
                "kek_included": false,
                "kek": kek_source_name(config),
            })
        );
        return Ok(());
    }
    println!(
        "This installation uses PostgreSQL: back it up with pg_dump (kizuna does not copy a PostgreSQL database itself)."
    );
    println!();
    println!("Back up (one consistent snapshot; the servers keep running):");
    println!("  {dump}");
    println!();
    println!("Restore it over the configured database (stop every kizuna process first):");
    println!("  {restore}");
    println!();
    println!(
        "The password is not shown: pg_dump and pg_restore read it from PGPASSWORD or ~/.pgpass. \
         Or let kizuna run pg_dump: kizuna backup --run-pg-dump --out {}",
        shell_quote(&args.out.display().to_string())
    );
    println!("{}", kek_notice(config));
    Ok(())
}

async fn run_pg_dump(args: &BackupArgs, config: &Config, url: &str) -> Result<ExitCode> {
    if !parent_dir(&args.out).is_dir() {
        bail!(
            "the directory {} does not exist",
            parent_dir(&args.out).display()
        );
    }
    let (libpq, password) = libpq_url(url);
    let partial = Partial::beside(&args.out, "partial");
    let mut command = std::process::Command::new("pg_dump");
    command
        .arg("--format=custom")
        .arg("--file")
        .arg(&partial.path)
        .arg("--dbname")
        .arg(&libpq)
        .stdin(std::process::Stdio::null());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let taken_at = now_unix();
    let status = tokio::task::spawn_blocking(move || command.status()).await?;
    let status = match status {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "pg_dump is not on PATH: install the PostgreSQL client tools (the server's major version or newer), or run kizuna backup without --run-pg-dump for the command to run elsewhere"
        ),
        Err(e) => return Err(e).context("cannot run pg_dump"),
    };
    if !status.success() {
        bail!(
            "pg_dump failed ({status}); its message is above. Nothing was written to {}",
            args.out.display()
        );
    }
    partial.seal()?;
    let bytes = std::fs::metadata(&partial.path)?.len();
    partial.publish(&args.out)?;
    let (_, restore) = pg_commands(url, &args.out);
    let since = unix_to_rfc3339(taken_at - 60);
    if args.json {
        println!(
            "{}",
            json!({
                "backend": "postgres",
                "file": args.out.display().to_string(),
                "bytes": bytes,
                "taken_at": unix_to_rfc3339(taken_at),
                "revocations_since": since,
                "pg_restore": restore,
                "kek_included": false,
                "kek": kek_source_name(config),
            })
        );
    } else {
        println!(
            "pg_dump wrote {} ({bytes} bytes), taken at {}",
            args.out.display(),
            unix_to_rfc3339(taken_at)
        );
        println!("Restore it with (stop every kizuna process first):\n  {restore}");
        println!("{}", kek_notice(config));
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// kizuna restore

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
            "the audit chain in {} is broken at entry {} (seq {}): {}. Refusing to restore it; nothing was changed",
            args.from.display(),
            if broken.id.is_empty() {
                "-"
            } else {
                &broken.id
            },
            broken.seq,
            broken.reason
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
            custody::open_kek(&db, &source).await.map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_urls_carry_no_password_and_no_sqlx_parameters() {
        let (url, password) = libpq_url(
            "postgres://kizuna:p%40ss@db.internal:5432/kizuna?sslmode=verify-full&statement-cache-capacity=10",
        );
        assert_eq!(
            url,
            "postgres://kizuna@db.internal:5432/kizuna?sslmode=verify-full"
        );
        assert_eq!(password.as_deref(), Some("p@ss"));
        let (url, password) = libpq_url("postgresql://kizuna@db/kizuna?password=x%20y");
        assert_eq!(url, "postgresql://kizuna@db/kizuna");
        assert_eq!(password.as_deref(), Some("x y"));
    }

    #[test]
    fn printed_commands_quote_for_the_shell_and_hide_the_password() {
        let (dump, restore) = pg_commands("postgres://k:secret@db/kizuna", Path::new("it's.dump"));
        assert_eq!(
            dump,
            r"pg_dump --format=custom --file='it'\''s.dump' --dbname='postgres://k@db/kizuna'"
        );
        assert!(!restore.contains("secret") && restore.contains("pg_restore"));
    }
}
