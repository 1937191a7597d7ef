//! `kizuna backup` on PostgreSQL: the pg_dump and pg_restore commands for the configured
//! database (printed, or pg_dump run with `--run-pg-dump`), the password never on a command
//! line or in what is printed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;

use kizuna_core::time::{now_unix, unix_to_rfc3339};

use super::{BackupArgs, Partial, kek_notice, kek_source_name, parent_dir};
use crate::config::Config;

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
pub(super) fn pg_commands(url: &str, file: &Path) -> (String, String) {
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

pub(super) fn print_pg_commands(args: &BackupArgs, config: &Config, url: &str) -> Result<()> {
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

pub(super) async fn run_pg_dump(args: &BackupArgs, config: &Config, url: &str) -> Result<ExitCode> {
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
