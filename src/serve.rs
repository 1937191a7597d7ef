//! `kizuna serve`: opens storage and key custody, mounts every feature crate's router, and
//! serves plain HTTP (and HTTPS when configured) until SIGINT/SIGTERM.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use kizuna_ca::Ca;
use kizuna_core::Core;
use kizuna_core::audit::AuditLog;
use kizuna_core::custody::{self, KeyCustody, SoftwareBackend};
use kizuna_core::db::Db;
use kizuna_core::metrics::{self, Metrics};
use kizuna_core::web::{self, ErrorPage, tls::TlsConnectInfo, tls::TlsListener};
use kizuna_idp::Idp;
use kizuna_ocsp::Responder;

use crate::config::{Config, HttpSection};

/// Creates the data directory if needed and proves it is writable.
pub fn prepare_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    // A name of our own: another process (a CLI command beside the server) may be probing too.
    let probe = dir.join(format!(
        ".kizuna-write-test-{}-{}",
        std::process::id(),
        kizuna_core::secret::hex(&kizuna_core::secret::random_bytes::<4>())
    ));
    std::fs::write(&probe, b"ok")
        .and_then(|_| std::fs::remove_file(&probe))
        .with_context(|| {
            format!(
                "the data directory {} is not writable (set data_dir, --data-dir or KIZUNA_DATA_DIR to a writable directory)",
                dir.display()
            )
        })
}

/// Connects (retrying while the database is unreachable) and migrates.
pub async fn open_db(config: &Config) -> Result<Db> {
    prepare_data_dir(&config.data_dir)?;
    let db = Db::connect(&config.database_url(), &config.db_options()).await?;
    db.migrate().await?;
    Ok(db)
}

/// Everything a running server (or a CLI command that needs keys) uses. Without a
/// `public_url`, the one the server recorded at its last start applies, so certificates a
/// command issues name the same URLs as the server's.
pub async fn open_core(
    config: &Config,
    public_url: Option<String>,
) -> Result<(Core, tokio::task::JoinHandle<()>)> {
    let db = open_db(config).await?;
    let public_url = match public_url {
        Some(url) => url,
        None => kizuna_core::settings::get(&db, kizuna_core::settings::PUBLIC_URL)
            .await?
            .unwrap_or_else(|| config.public_url()),
    };
    let kek = custody::open_keyring(&db, &config.kek_source(), &config.kek_open_only_files).await?;
    let mut others: Vec<Arc<dyn custody::KeyBackend>> = Vec::new();
    if let Some(settings) = config.pkcs11.settings().map_err(anyhow::Error::msg)? {
        let backend =
            tokio::task::spawn_blocking(move || custody::pkcs11::Pkcs11Backend::open(&settings))
                .await??;
        others.push(Arc::new(backend));
    }
    let custody =
        KeyCustody::with_backends(db.clone(), Arc::new(SoftwareBackend::new(kek)), others);
    let (audit, writer) = AuditLog::start(db.clone());
    let core = Core {
        db,
        custody,
        audit,
        metrics: Metrics::default(),
        secure_cookies: public_url.starts_with("https://"),
        public_url: public_url.into(),
        changes: kizuna_core::events::ChangeBus::default(),
        levels: config.console.levels(),
        token_ttl_secs: config.oidc.access_token_ttl_secs,
    };
    Ok((core, writer))
}

/// The identity provider over a freshly opened core, for CLI commands; pass both to
/// [`close`] when done so queued audit entries are committed.
pub async fn open_idp(config: &Config) -> Result<(Idp, tokio::task::JoinHandle<()>)> {
    let (core, writer) = open_core(config, config.explicit_public_url()).await?;
    Ok((idp(config, core)?, writer))
}

/// The identity provider over `core` with the configured OIDC, MFA and mail settings.
pub fn idp(config: &Config, core: Core) -> Result<Idp> {
    let certificates = Arc::new(kizuna_ca::book::Book::new(core.db.clone()));
    Idp::new(
        core,
        config.oidc.clone(),
        config.mfa.clone(),
        config.mail.clone(),
        config.assurance.clone(),
        certificates,
    )
    .map_err(anyhow::Error::msg)
}

/// The certificate authority over the identity provider's core; its API accepts Kizuna
/// access tokens.
pub fn ca(config: &Config, idp: &Idp) -> Result<Ca> {
    Ca::new(idp.core.clone(), config.ca.clone(), Arc::new(idp.clone())).map_err(anyhow::Error::msg)
}

/// Drops the handles and waits for the audit writer to commit what is queued.
pub async fn close(idp: Idp, writer: tokio::task::JoinHandle<()>) {
    let db = idp.core.db.clone();
    drop(idp);
    let _ = writer.await;
    db.close().await;
}

/// What a process serves.
pub enum Mode {
    /// Everything (`kizuna serve`).
    Full,
    /// Only the OCSP responder and health endpoints (`kizuna ocsp serve`).
    OcspOnly,
}

/// The whole application: the feature crates' routes and the shared middleware.
pub fn app(
    core: Core,
    features: Router,
    http: &HttpSection,
    channel: Arc<web::client_cert::ChannelConfig>,
) -> Router {
    Router::new()
        .merge(kizuna_core::router(core.clone()))
        .merge(features)
        .fallback(|| async { ErrorPage::not_found() })
        .layer(from_fn(web::error_page_for_plain_errors))
        .layer(from_fn_with_state(core.metrics.clone(), metrics::track))
        .layer(from_fn(web::security_headers))
        .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(http.request_timeout_secs),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ErrorPage::internal().into_response()
        }))
        .layer(from_fn(web::request_context))
        .layer(from_fn_with_state(channel, web::client_cert::channel))
}

async fn bind(addr: SocketAddr, key: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the address is already in use (is another kizuna or service running there?)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)"
            }
            _ => "",
        };
        anyhow!(
            "cannot listen on {addr} ({key}): {e} {hint}; choose another with {key} / KIZUNA_{}",
            key.to_uppercase()
        )
    })
}

pub async fn run(config: Config, mode: Mode) -> Result<()> {
    if kizuna_core::time::test_clock_in_use() {
        tracing::warn!(
            "{} is set: this server's clock follows a test file; never use it in production",
            kizuna_core::time::TEST_CLOCK_FILE
        );
    }
    // Bind first: a taken port is reported before any state is touched, and with port 0 the
    // default public URL names the port actually bound.
    let plain = bind(config.listen_addr(), "listen").await?;
    let plain_addr = plain.local_addr()?;
    let tls_tcp = match config.tls_listen_addr() {
        Some(addr) => Some(bind(addr, "tls_listen").await?),
        None => None,
    };
    // The full server serves under the configured URL or the address it bound, and records
    // it; the standalone OCSP responder builds no URLs and follows the recorded one.
    let public_url = match (&mode, config.explicit_public_url()) {
        (_, Some(url)) => Some(url),
        (Mode::Full, None) => Some(format!("http://{plain_addr}")),
        (Mode::OcspOnly, None) => None,
    };
    let (core, audit_writer) = open_core(&config, public_url).await?;
    if matches!(mode, Mode::Full) {
        kizuna_core::settings::set(
            &core.db,
            kizuna_core::settings::PUBLIC_URL,
            &core.public_url,
        )
        .await?;
    }
    if !config.listen_addr().ip().is_loopback() && tls_tcp.is_none() {
        tracing::warn!(listen = %config.listen, "serving plain HTTP on a non-loopback address: put a TLS-terminating proxy in front or configure tls_listen");
    }

    let responder = Responder::new(
        core.clone(),
        config.ocsp.clone(),
        Arc::new(kizuna_ca::book::Book::new(core.db.clone())),
    );
    let mut background = Vec::new();
    let client_auth = web::tls::ClientAuth::new();
    let mut tls_identity: Option<Arc<web::tls::CertSlot>> =
        match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(cert), Some(key)) if tls_tcp.is_some() => {
                Some(web::tls::CertSlot::from_files(cert, key)?)
            }
            _ => None,
        };
    let (features, bootstrap) = match mode {
        Mode::Full => {
            let idp = idp(&config, core.clone())?;
            kizuna_idp::init(&idp).await?;
            let ca = ca(&config, &idp)?;
            kizuna_ca::init(&ca).await?;
            background.push(kizuna_idp::spawn_background(idp.clone()));
            background.push(kizuna_ca::spawn_background(ca.clone()));
            if tls_tcp.is_some() {
                let (slot, own) = match tls_identity.take() {
                    Some(slot) => (slot, None),
                    None => {
                        let (slot, serial) = self_issued_identity(&ca).await?;
                        (slot.clone(), Some((slot, serial)))
                    }
                };
                background.push(tls_upkeep(ca.clone(), own));
                tls_identity = Some(slot);
            }
            let bootstrap = kizuna_admin::bootstrap::issue_if_needed(&core).await?;
            let console =
                kizuna_admin::Console::new(idp.clone(), ca.clone(), config.console.clone());
            kizuna_admin::init(&console).await?;
            let routes = Router::new()
                .merge(kizuna_idp::router(idp))
                .merge(kizuna_ca::router(ca))
                .merge(kizuna_ocsp::router(responder.clone()))
                .merge(kizuna_admin::router(console));
            (routes, bootstrap)
        }
        Mode::OcspOnly => {
            if tls_tcp.is_some() && tls_identity.is_none() {
                return Err(anyhow!(
                    "kizuna ocsp serve with tls_listen needs tls.cert_file and tls.key_file (only the full server issues itself a certificate)"
                ));
            }
            (kizuna_ocsp::router(responder.clone()), None)
        }
    };
    let tls = match (tls_tcp, tls_identity) {
        (Some(tcp), Some(slot)) => Some(TlsListener::new(
            tcp,
            web::tls::server_config(slot, client_auth.clone())?,
        )?),
        _ => None,
    };
    let tls_base_url = match &tls {
        Some(_) if core.public_url.starts_with("https://") => Some(core.public_url.to_string()),
        Some(listener) => Some(format!(
            "https://{}",
            axum::serve::Listener::local_addr(listener)?
        )),
        None => None,
    };
    let channel = Arc::new(web::client_cert::ChannelConfig {
        trusted_proxies: config.tls.proxies(),
        header: axum::http::HeaderName::from_bytes(config.tls.client_cert_header.as_bytes())?,
        tls_base_url,
    });
    background.push(responder.start().await?);
    drop(responder);
    let app = app(core.clone(), features, &config.http, channel);
    let (stop, stopped) = watch::channel(false);

    // The banner goes out in one write, so that whoever reads it (an operator's terminal,
    // a supervisor, a test) sees it whole: the bootstrap link never trails the address.
    let mut banner = format!(
        "Kizuna {} is ready.\n  listening:  http://{plain_addr}\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(tls) = &tls {
        writeln!(
            banner,
            "  listening:  https://{}",
            axum::serve::Listener::local_addr(tls)?
        )?;
    }
    writeln!(banner, "  public URL: {}", core.public_url)?;
    writeln!(
        banner,
        "  database:   {}",
        kizuna_core::db::redact_url(&config.database_url())
    )?;
    writeln!(banner, "  data dir:   {}", config.data_dir.display())?;
    if let Some(token) = bootstrap {
        writeln!(
            banner,
            "\nNo administrator exists yet. Within one hour, open this one-time link to create the first city administrator:"
        )?;
        writeln!(
            banner,
            "  {}/admin/bootstrap?token={token}",
            core.public_url
        )?;
    }
    {
        let mut out = std::io::stdout().lock();
        out.write_all(banner.as_bytes())?;
        out.flush()?;
    }
    tracing::info!(listen = %plain_addr, public_url = %core.public_url, database = core.db.backend().name(), "kizuna started");

    let plain_server = {
        let app = app.clone().layer(from_fn(web::plain_peer));
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            axum::serve(
                plain,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
        })
    };
    let tls_server = tls.map(|listener| {
        let app = app.clone().layer(from_fn(web::tls_peer));
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<TlsConnectInfo>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
        })
    });
    drop(app);

    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop.send(true);
    // Requests in flight get as long as any request may take; a client that keeps an idle
    // connection open does not hold the shutdown beyond that.
    let grace = Duration::from_secs(config.http.request_timeout_secs);
    for server in std::iter::once(plain_server).chain(tls_server) {
        match tokio::time::timeout(grace, server).await {
            Ok(result) => result??,
            Err(_) => tracing::warn!("connections still open after the grace period; closing them"),
        }
    }
    for task in background {
        task.abort();
        let _ = task.await;
    }
    let db = core.db.clone();
    drop(core);
    // The audit writer commits what is queued once the last handle is gone.
    let _ = tokio::time::timeout(Duration::from_secs(10), audit_writer).await;
    db.close().await;
    Ok(())
}

/// The TLS listener's certificate when none is configured: Kizuna's own, for the public
/// URL's host.
async fn self_issued_identity(ca: &Ca) -> Result<(Arc<web::tls::CertSlot>, String)> {
    let host = kizuna_ca::tls_identity::url_host(&ca.core.public_url)
        .ok_or_else(|| anyhow!("public_url {} has no host to certify", ca.core.public_url))?;
    let own = kizuna_ca::tls_identity::self_certificate(ca, &host).await?;
    let slot = web::tls::CertSlot::new(web::tls::CertSlot::custody(own.chain, own.key));
    Ok((slot, own.serial))
}

/// Keeps the TLS listener's own certificate, when it serves Kizuna's, renewed.
fn tls_upkeep(
    ca: Ca,
    mut own: Option<(Arc<web::tls::CertSlot>, String)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some((slot, serial)) = &mut own else {
                continue;
            };
            let Some(host) = kizuna_ca::tls_identity::url_host(&ca.core.public_url) else {
                continue;
            };
            match kizuna_ca::tls_identity::self_certificate(&ca, &host).await {
                Ok(current) if current.serial != *serial => {
                    *serial = current.serial.clone();
                    slot.replace(web::tls::CertSlot::custody(current.chain, current.key));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "renewing the TLS listener's certificate"),
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
