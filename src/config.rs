//! Configuration: defaults, then `kizuna.toml`, then `KIZUNA_…` environment variables (a
//! list also as `a,b`), then command-line flags. Unknown keys and bad values stop start-up
//! with a message naming the key. Every key is documented in `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use kizuna_core::custody::KekSource;
use kizuna_core::db::{DbOptions, redact_url};

mod env_lists;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Plain-HTTP listen address.
    pub listen: String,
    /// TLS listen address: with `tls.cert_file`/`tls.key_file`, or a certificate Kizuna
    /// issues itself for the public URL's host.
    pub tls_listen: Option<String>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub kek_file: Option<PathBuf>,
    #[serde(deserialize_with = "text")]
    pub kek: Option<String>,
    /// KEK files that open sealed values but never seal: set only while rotating the KEK.
    pub kek_open_only_files: Vec<PathBuf>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub database: DatabaseSection,
    pub tls: TlsSection,
    pub http: HttpSection,
    pub oidc: kizuna_idp::OidcConfig,
    pub mfa: kizuna_idp::MfaConfig,
    pub mail: kizuna_idp::MailConfig,
    pub assurance: kizuna_idp::AssuranceConfig,
    pub ca: kizuna_ca::CaConfig,
    pub ocsp: kizuna_ocsp::OcspConfig,
    pub pkcs11: Pkcs11Section,
    pub console: kizuna_admin::ConsoleConfig,
}

/// A PKCS#11 token (HSM) for CA keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pkcs11Section {
    /// The PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: Option<String>,
    #[serde(deserialize_with = "text")]
    pub token_label: Option<String>,
    /// The user PIN (secret); or `pin_file`.
    #[serde(deserialize_with = "text")]
    pub pin: Option<String>,
    pub pin_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Reverse proxies (IPs or CIDR ranges) whose forwarded client certificate header is
    /// believed, and whose requests count as TLS.
    pub trusted_proxies: Vec<String>,
    /// The header a trusted proxy puts the client certificate in (Envoy's
    /// `X-Forwarded-Client-Cert`, or nginx's `$ssl_client_escaped_cert` under any name).
    pub client_cert_header: String,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert_file: None,
            key_file: None,
            trusted_proxies: Vec::new(),
            client_cert_header: "x-forwarded-client-cert".into(),
        }
    }
}

impl TlsSection {
    /// The trusted proxy ranges (checked by validation).
    pub fn proxies(&self) -> Vec<kizuna_core::net::Cidr> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub request_timeout_secs: u64,
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            tls_listen: None,
            data_dir: PathBuf::from("./kizuna-data"),
            database_url: None,
            public_url: None,
            kek_file: None,
            kek: None,
            kek_open_only_files: Vec::new(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            database: DatabaseSection::default(),
            tls: TlsSection::default(),
            http: HttpSection::default(),
            oidc: kizuna_idp::OidcConfig::default(),
            mfa: kizuna_idp::MfaConfig::default(),
            mail: kizuna_idp::MailConfig::default(),
            assurance: kizuna_idp::AssuranceConfig::default(),
            ca: kizuna_ca::CaConfig::default(),
            ocsp: kizuna_ocsp::OcspConfig::default(),
            pkcs11: Pkcs11Section::default(),
            console: kizuna_admin::ConsoleConfig::default(),
        }
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            max_connections: 16,
            connect_timeout_secs: 30,
            acquire_timeout_secs: 5,
        }
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            request_timeout_secs: 30,
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    FileMissing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("configuration key `{key}`: {message}")]
    BadValue { key: &'static str, message: String },
    #[error("cannot read {var} ({path}): {source}")]
    SecretFile {
        var: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// What the command line says, applied over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

/// Text settings read verbatim from the environment: the general environment provider
/// would turn `KIZUNA_PKCS11__PIN=012345` into the number 12345.
const TEXT_VARIABLES: [(&str, &str); 7] = [
    ("KIZUNA_MAIL__PASSWORD", "mail.password"),
    ("KIZUNA_MAIL__USERNAME", "mail.username"),
    ("KIZUNA_PKCS11__PIN", "pkcs11.pin"),
    ("KIZUNA_PKCS11__TOKEN_LABEL", "pkcs11.token_label"),
    ("KIZUNA_KEK", "kek"),
    ("KIZUNA_CA__ORGANIZATION", "ca.organization"),
    ("KIZUNA_CA__COUNTRY", "ca.country"),
];

/// Environment variables that are not configuration keys, or that are read verbatim
/// (figment hands the key over in the case it was written in).
fn ignored_env_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "config"
        || key.starts_with("test_")
        || key == "database_url_file"
        || TEXT_VARIABLES
            .iter()
            .any(|(var, _)| var["KIZUNA_".len()..].eq_ignore_ascii_case(&key))
}

/// Which configuration file applies, if any.
pub fn config_path(overrides: &Overrides) -> Result<Option<PathBuf>, ConfigError> {
    let explicit = overrides
        .config
        .clone()
        .or_else(|| std::env::var_os("KIZUNA_CONFIG").map(PathBuf::from));
    match explicit {
        Some(path) if path.is_file() => Ok(Some(path)),
        Some(path) => Err(ConfigError::FileMissing(path)),
        None => {
            let default = PathBuf::from("kizuna.toml");
            Ok(default.is_file().then_some(default))
        }
    }
}

impl Config {
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = config_path(overrides)? {
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = Env::prefixed("KIZUNA_")
            .split("__")
            .filter(|key| !ignored_env_key(key.as_str()));
        figment = figment.merge(env.clone());
        for (var, key) in TEXT_VARIABLES {
            if let Ok(value) = std::env::var(var) {
                figment = figment.merge(Serialized::default(key, value));
            }
        }
        if let Some(path) = std::env::var_os("KIZUNA_DATABASE_URL_FILE") {
            let path = PathBuf::from(path);
            let url = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                var: "KIZUNA_DATABASE_URL_FILE",
                path: path.display().to_string(),
                source,
            })?;
            figment = figment.merge(Serialized::default("database_url", url.trim()));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        if let Some(listen) = &overrides.listen {
            figment = figment.merge(Serialized::default("listen", listen));
        }
        // A list-typed key also takes a comma-separated value from the environment.
        let raw = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, value)| value);
        let config: Config = env_lists::extract(figment, raw).map_err(|e| {
            ConfigError::Invalid(
                (*e).into_iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        parse_addr("listen", &self.listen)?;
        if let Some(addr) = &self.tls_listen {
            parse_addr("tls_listen", addr)?;
        }
        for proxy in &self.tls.trusted_proxies {
            proxy
                .parse::<kizuna_core::net::Cidr>()
                .map_err(|message| ConfigError::BadValue {
                    key: "tls.trusted_proxies",
                    message,
                })?;
        }
        axum::http::HeaderName::from_bytes(self.tls.client_cert_header.as_bytes()).map_err(
            |_| ConfigError::BadValue {
                key: "tls.client_cert_header",
                message: format!("{:?} is not a header name", self.tls.client_cert_header),
            },
        )?;
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(ConfigError::BadValue {
                key: "tls",
                message: "set both tls.cert_file and tls.key_file, or neither".into(),
            });
        }
        if let Some(url) = &self.public_url {
            check_public_url(url)?;
        }
        if let Some(url) = &self.database_url {
            kizuna_core::db::Backend::from_url(url).map_err(|e| ConfigError::BadValue {
                key: "database_url",
                message: e.to_string(),
            })?;
        }
        if self.kek.is_some() && self.kek_file.is_some() {
            return Err(ConfigError::BadValue {
                key: "kek",
                message: "set kek or kek_file, not both".into(),
            });
        }
        if !(1..=1000).contains(&self.database.max_connections) {
            return Err(ConfigError::BadValue {
                key: "database.max_connections",
                message: format!(
                    "{} is out of range: allowed 1 to 1000",
                    self.database.max_connections
                ),
            });
        }
        if self.http.max_body_bytes < 1024 {
            return Err(ConfigError::BadValue {
                key: "http.max_body_bytes",
                message: "must be at least 1024".into(),
            });
        }
        self.oidc
            .validate()
            .map_err(|(key, message)| ConfigError::BadValue { key, message })?;
        self.mfa
            .validate()
            .map_err(|(key, message)| ConfigError::BadValue { key, message })?;
        self.mail
            .validate()
            .map_err(|(key, message)| ConfigError::BadValue { key, message })?;
        self.assurance
            .validate()
            .map_err(|(key, message)| ConfigError::BadValue { key, message })?;
        self.ca
            .validate()
            .map_err(|(key, message)| ConfigError::BadValue { key, message })?;
        self.ocsp
            .validate()
            .map_err(|(key, message)| ConfigError::BadValue { key, message })?;
        self.console
            .validate()
            .map_err(|(key, message)| ConfigError::BadValue { key, message })?;
        if let Some(module) = &self.pkcs11.module {
            if self.pkcs11.token_label.is_none() {
                return Err(ConfigError::BadValue {
                    key: "pkcs11.token_label",
                    message: format!("required with pkcs11.module ({module})"),
                });
            }
            if self.pkcs11.pin.is_some() == self.pkcs11.pin_file.is_some() {
                return Err(ConfigError::BadValue {
                    key: "pkcs11.pin",
                    message: "set pkcs11.pin or pkcs11.pin_file (one of them)".into(),
                });
            }
        }
        if self.ca.key_backend == "pkcs11" && self.pkcs11.module.is_none() {
            return Err(ConfigError::BadValue {
                key: "ca.key_backend",
                message: "pkcs11 needs the [pkcs11] section (module, token_label, pin)".into(),
            });
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level).map_err(|e| ConfigError::BadValue {
            key: "log_level",
            message: format!("{e}: use a level (error, warn, info, debug, trace) or a filter such as info,kizuna=debug"),
        })?;
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // Checked by validate().
        self.listen.parse().expect("validated listen address")
    }

    pub fn tls_listen_addr(&self) -> Option<SocketAddr> {
        self.tls_listen.as_ref().and_then(|a| a.parse().ok())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("kizuna.db").display()
            )
        })
    }

    /// The external base URL, without a trailing slash.
    /// The public URL when it is configured (file, environment), without a trailing slash.
    pub fn explicit_public_url(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|url| url.trim_end_matches('/').to_string())
    }

    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    pub fn kek_source(&self) -> KekSource {
        match (&self.kek, &self.kek_file) {
            (Some(kek), _) => KekSource::Inline(kek.clone()),
            (None, Some(path)) => KekSource::File {
                path: path.clone(),
                explicit: true,
            },
            (None, None) => KekSource::File {
                path: self.data_dir.join("kek"),
                explicit: false,
            },
        }
    }

    pub fn db_options(&self) -> DbOptions {
        DbOptions {
            max_connections: self.database.max_connections,
            connect_timeout: std::time::Duration::from_secs(self.database.connect_timeout_secs),
            acquire_timeout: std::time::Duration::from_secs(self.database.acquire_timeout_secs),
        }
    }

    /// The effective configuration with defaults filled in and secrets redacted.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        shown.database_url = Some(redact_url(&self.database_url()));
        shown.public_url = Some(self.public_url());
        if shown.pkcs11.pin.is_some() {
            shown.pkcs11.pin = Some("<redacted>".into());
        }
        if shown.mail.password.is_some() {
            shown.mail.password = Some("<redacted>".into());
        }
        if shown.kek.is_some() {
            shown.kek = Some("<redacted>".into());
        } else if shown.kek_file.is_none() {
            shown.kek_file = Some(self.data_dir.join("kek"));
        }
        shown
    }
}

/// Words a figment error for an operator: the key in TOML form, where its value came from
/// (file or environment variable), and what was wrong.
fn describe(e: figment::Error) -> String {
    // Figment prefixes the profile name ("default"); operators never see profiles.
    let path: Vec<String> = match e.path.first().map(String::as_str) {
        Some("default" | "global") if e.path.len() > 1 => e.path[1..].to_vec(),
        _ => e.path.clone(),
    };
    let key = path.join(".").to_lowercase();
    let origin = e.metadata.as_ref().map(|m| match &m.source {
        Some(figment::Source::File(path)) => format!("in {}", path.display()),
        _ if m.name.contains("environment") => {
            format!("from KIZUNA_{}", path.join("__").to_uppercase())
        }
        _ => String::new(),
    });
    match (key.is_empty(), origin) {
        (true, Some(origin)) => format!("{} {origin}", e.kind),
        (true, None) => e.kind.to_string(),
        (false, Some(origin)) => format!("key `{key}` {origin}: {}", e.kind),
        (false, None) => format!("key `{key}`: {}", e.kind),
    }
}

fn parse_addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadValue {
        key,
        message: format!(
            "{value:?} is not an address: use IP:PORT, such as 127.0.0.1:8080 or [::]:8443"
        ),
    })
}

fn check_public_url(url: &str) -> Result<(), ConfigError> {
    let bad = |message: &str| ConfigError::BadValue {
        key: "public_url",
        message: format!("{url:?} {message}"),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with https:// (or http:// for development)"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace()) {
        return Err(bad("must not contain a query, fragment or spaces"));
    }
    Ok(())
}

impl Pkcs11Section {
    /// The token settings, reading the PIN file if that is how the PIN is given.
    pub fn settings(&self) -> Result<Option<kizuna_core::custody::pkcs11::Pkcs11Settings>, String> {
        let Some(module) = &self.module else {
            return Ok(None);
        };
        let pin = match (&self.pin, &self.pin_file) {
            (Some(pin), _) => pin.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read pkcs11.pin_file {}: {e}", path.display()))?
                .trim()
                .to_string(),
            (None, None) => return Err("pkcs11.pin is missing".into()),
        };
        Ok(Some(kizuna_core::custody::pkcs11::Pkcs11Settings {
            module: module.clone(),
            token_label: self.token_label.clone().unwrap_or_default(),
            pin,
        }))
    }
}

/// A text value that an environment variable may have spelled as a number (`KIZUNA_PKCS11__PIN=1234`
/// arrives as an integer).
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Unsigned(u64),
        Signed(i64),
    }
    Ok(Option::<Text>::deserialize(deserializer)?.map(|t| match t {
        Text::String(s) => s,
        Text::Unsigned(n) => n.to_string(),
        Text::Signed(n) => n.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_that_are_not_keys_are_ignored_in_any_case() {
        assert!(ignored_env_key("CONFIG"));
        assert!(ignored_env_key("TEST_POSTGRES_URL"));
        assert!(ignored_env_key("DATABASE_URL_FILE"));
        assert!(ignored_env_key("PKCS11__PIN"), "read verbatim instead");
        assert!(!ignored_env_key("LISTEN"));
    }

    #[test]
    fn public_urls_are_checked() {
        assert!(check_public_url("https://id.city.example").is_ok());
        assert!(check_public_url("http://127.0.0.1:8080/").is_ok());
        assert!(check_public_url("ftp://x").is_err());
        assert!(check_public_url("https://").is_err());
        assert!(check_public_url("https://id.example/?a=b").is_err());
    }

    #[test]
    fn redaction_hides_database_password_and_inline_kek() {
        let config = Config {
            database_url: Some("postgres://k:pw@db/kizuna".into()),
            kek: Some("c2VjcmV0".into()),
            ..Config::default()
        };
        let shown = config.redacted();
        assert_eq!(
            shown.database_url.as_deref(),
            Some("postgres://k:***@db/kizuna")
        );
        assert_eq!(shown.kek.as_deref(), Some("<redacted>"));
    }

    #[test]
    fn defaults_derive_from_listen_and_data_dir() {
        let config = Config::default();
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        assert_eq!(
            config.database_url(),
            "sqlite://./kizuna-data/kizuna.db?mode=rwc"
        );
    }
}
