//! Structured logs with `tracing`: human-readable text, or one JSON object per line with
//! `log_format = "json"`. Request-scoped lines carry the request id from their span.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Logs go to stderr; stdout is for what a command prints as its result. Lines are handed
/// to a writer thread so a request never waits on the terminal or pipe; keep the returned
/// guard alive until exit, when it flushes what is queued.
pub fn init(config: &Config, serving: bool) -> tracing_appender::non_blocking::WorkerGuard {
    // One-shot commands stay quiet unless something is wrong, or the operator asks.
    let level = if serving
        || std::env::var_os("KIZUNA_LOG_LEVEL").is_some()
        || config.log_level != "info"
    {
        config.log_level.as_str()
    } else {
        "warn"
    };
    // Validated when the configuration was loaded.
    let filter = EnvFilter::try_new(level)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("sqlx=warn".parse().expect("static directive"))
        .add_directive("hyper=warn".parse().expect("static directive"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Under overload a log line waits rather than disappears.
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    guard
}
