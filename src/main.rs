//! The `kizuna` command: the server and the operator's command line.

mod cli;
mod config;
mod logging;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

/// mimalloc instead of glibc's malloc: under the `client_credentials` load glibc's allocator
/// took about an eighth of the server's CPU (docs/performance.md). Built without transparent
/// huge pages (`no_thp`): with them, every thread's first small allocations pinned whole
/// 2 MiB pages and the idle server grew from 32 to about 60 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kizuna",
    version,
    about = "Kizuna: federated identity (OpenID Connect) and PKI for a smart city",
    long_about = "Kizuna: federated identity (OpenID Connect) and PKI for a smart city.\n\n\
        Every command finds its configuration the same way: defaults, then the config file \
        (--config, KIZUNA_CONFIG, or ./kizuna.toml if present), then KIZUNA_* environment \
        variables, then flags. With no configuration at all, state lives in ./kizuna-data/."
)]
struct Cli {
    /// Configuration file (TOML). Default: ./kizuna.toml if it exists. Env: KIZUNA_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and the key-encryption key. Env: KIZUNA_DATA_DIR.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates the database and keys on first start).
    Serve {
        /// Address for plain HTTP, e.g. 127.0.0.1:8080. Env: KIZUNA_LISTEN.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(cli::ConfigCommand),
    /// Check and export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(cli::AuditCommand),
    /// Manage organizations (the city's stakeholders).
    #[command(subcommand)]
    Org(cli::OrgCommand),
    /// Manage relying parties (OAuth / OpenID Connect clients).
    #[command(subcommand)]
    Client(cli::clients::ClientCommand),
    /// Manage accounts.
    #[command(subcommand)]
    User(cli::users::UserCommand),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Create a key-encryption key, and re-seal the database under a new one.
    #[command(subcommand)]
    Kek(cli::kek::KekCommand),
    /// Manage the certificate authorities.
    #[command(subcommand)]
    Ca(cli::ca::CaCommand),
    /// Issue, inspect and revoke certificates.
    #[command(subcommand)]
    Cert(cli::ca::CertCommand),
    /// Generate certificate revocation lists.
    #[command(subcommand)]
    Crl(cli::ca::CrlCommand),
    /// Run the OCSP responder alone, on the same database as the servers.
    #[command(subcommand)]
    Ocsp(cli::ca::OcspCommand),
    /// The device registry: register, list, suspend, resume and retire devices.
    #[command(subcommand)]
    Device(cli::devices::DeviceCommand),
    /// One-time enrollment tokens for installers.
    #[command(subcommand)]
    Enroll(cli::devices::EnrollCommand),
    /// The ACME server: external account binding keys for organizations.
    #[command(subcommand)]
    Acme(cli::devices::AcmeCommand),
    /// Upstream identity providers Kizuna brokers (federation).
    #[command(subcommand)]
    Upstream(cli::upstreams::UpstreamCommand),
    /// Identity assurance: renewed My Number cards.
    #[command(subcommand)]
    Assurance(cli::assurance::AssuranceCommand),
    /// Write a consistent backup of the database (SQLite), or print the pg_dump commands
    /// (PostgreSQL). The key-encryption key is not in it: back it up separately.
    Backup(cli::backup::BackupArgs),
    /// Put a SQLite backup in place: checks it, migrates it, verifies its audit chain.
    Restore(cli::backup::RestoreArgs),
    /// Exit 0 when the server on this configuration's listen address answers GET /readyz
    /// with 200 (the container's HEALTHCHECK; 0.0.0.0 and :: are asked on loopback).
    Healthcheck {
        /// The server's plain-HTTP address, if not the configured one. Env: KIZUNA_LISTEN.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 3)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve { listen }
        | Command::Ocsp(cli::ca::OcspCommand::Serve { listen })
        | Command::Healthcheck { listen, .. } => listen.clone(),
        _ => None,
    };
    let overrides = Overrides {
        config: cli.config,
        data_dir: cli.data_dir,
        listen,
    };
    let config = match Config::load(&overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kizuna: {e}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, Command::Serve { .. } | Command::Ocsp(_));
    let _log_guard = logging::init(&config, serving);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kizuna: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { .. } => serve::run(config, serve::Mode::Full)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Ocsp(cli::ca::OcspCommand::Serve { .. }) => {
                serve::run(config, serve::Mode::OcspOnly)
                    .await
                    .map(|_| ExitCode::SUCCESS)
            }
            Command::Crl(cmd) => cli::ca::crl(cmd, &config).await,
            Command::Config(cmd) => cli::config(cmd, &config, &overrides),
            Command::Audit(cmd) => cli::audit(cmd, &config).await,
            Command::Org(cmd) => cli::org(cmd, &config).await,
            Command::Client(cmd) => cli::clients::run(cmd, &config).await,
            Command::User(cmd) => cli::users::run(cmd, &config).await,
            Command::Keys(cmd) => cli::keys::run(cmd, &config).await,
            Command::Kek(cmd) => cli::kek::run(cmd, &config).await,
            Command::Ca(cmd) => cli::ca::ca(cmd, &config).await,
            Command::Cert(cmd) => cli::ca::cert(cmd, &config).await,
            Command::Device(cmd) => {
                cli::devices::run(cli::devices::Registry::Device(cmd), &config).await
            }
            Command::Enroll(cmd) => {
                cli::devices::run(cli::devices::Registry::Enroll(cmd), &config).await
            }
            Command::Acme(cmd) => {
                cli::devices::run(cli::devices::Registry::Acme(cmd), &config).await
            }
            Command::Upstream(cmd) => cli::upstreams::run(cmd, &config).await,
            Command::Assurance(cmd) => cli::assurance::run(cmd, &config).await,
            Command::Backup(args) => cli::backup::backup(args, &config).await,
            Command::Restore(args) => cli::backup::restore(args, &config).await,
            Command::Healthcheck { timeout, .. } => cli::health::run(&config, timeout).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kizuna: {e:#}");
            ExitCode::FAILURE
        }
    }
}
