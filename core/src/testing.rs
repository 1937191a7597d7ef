//! Test kit: fresh databases for each test, on SQLite always and on PostgreSQL when
//! `KIZUNA_TEST_POSTGRES_URL` is set. In CI (`CI=true`) a missing PostgreSQL fails the test
//! instead of skipping it.

use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::db::{Backend, Db, DbOptions};

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}",
            crate::secret::hex(&crate::secret::random_bytes::<6>())
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL server URL for tests, if there is one.
pub fn postgres_url() -> Option<String> {
    static SKIP_NOTICE: Once = Once::new();
    match std::env::var("KIZUNA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!(
                "CI=true but KIZUNA_TEST_POSTGRES_URL is not set: storage tests must run on PostgreSQL in CI"
            )
        }
        _ => {
            SKIP_NOTICE.call_once(|| {
                eprintln!(
                    "note: PostgreSQL variants skipped: KIZUNA_TEST_POSTGRES_URL is not set (scripts/test sets it when PostgreSQL answers)"
                )
            });
            None
        }
    }
}

/// An empty database that exists for as long as this value does.
pub struct FreshDatabase {
    pub backend: Backend,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres { server_url: String, name: String },
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { server_url, name } = &self.cleanup {
            let (server_url, name) = (server_url.clone(), name.clone());
            // Drop runs outside any async context we can borrow; use a short-lived runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    if let Ok(db) = Db::connect(&server_url, &quick()).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(db.pool())
                                .await;
                        db.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn quick() -> DbOptions {
    DbOptions {
        max_connections: 4,
        connect_timeout: std::time::Duration::from_secs(5),
        ..DbOptions::default()
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A fresh, empty SQLite database file in its own temp dir.
pub fn fresh_sqlite() -> FreshDatabase {
    let dir = TempDir::new("kizuna-test");
    let url = format!("sqlite://{}/kizuna.db?mode=rwc", dir.path().display());
    FreshDatabase {
        backend: Backend::Sqlite,
        url,
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// A fresh, uniquely named PostgreSQL database, dropped with the returned value. The name
/// carries its creation time (`kizuna_test_<unix seconds>_<random>`) so `scripts/test` can
/// drop what an interrupted run left behind without touching a run still going.
pub async fn fresh_postgres(server_url: &str) -> FreshDatabase {
    let name = format!(
        "kizuna_test_{}_{}",
        crate::time::now_unix(),
        crate::secret::hex(&crate::secret::random_bytes::<6>())
    );
    let admin = Db::connect(server_url, &quick())
        .await
        .expect("connect to KIZUNA_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await
        .expect("create test database");
    admin.close().await;
    FreshDatabase {
        backend: Backend::Postgres,
        url: with_database(server_url, &name),
        cleanup: Cleanup::Postgres {
            server_url: server_url.to_string(),
            name,
        },
    }
}

/// Fresh empty databases: SQLite, and PostgreSQL when configured.
pub async fn fresh_databases() -> Vec<FreshDatabase> {
    let mut out = vec![fresh_sqlite()];
    if let Some(url) = postgres_url() {
        out.push(fresh_postgres(&url).await);
    }
    out
}

/// A migrated database for a storage test.
pub struct TestDb {
    pub db: Db,
    pub fresh: FreshDatabase,
}

impl TestDb {
    pub fn backend(&self) -> Backend {
        self.fresh.backend
    }
}

pub async fn connect_migrated(fresh: FreshDatabase) -> TestDb {
    let db = Db::connect(&fresh.url, &quick()).await.expect("connect");
    db.migrate().await.expect("migrate");
    TestDb { db, fresh }
}

/// Every backend's fresh, migrated database. A storage test loops over these.
pub async fn databases() -> Vec<TestDb> {
    let mut out = Vec::new();
    for fresh in fresh_databases().await {
        out.push(connect_migrated(fresh).await);
    }
    out
}

/// A [`Core`](crate::Core) over a test database, with a random inline KEK and the audit
/// writer running.
pub async fn core(db: &Db) -> crate::Core {
    use base64::Engine;
    let kek_text =
        base64::engine::general_purpose::STANDARD.encode(crate::secret::random_bytes::<32>());
    let kek = crate::custody::open_kek(db, &crate::custody::KekSource::Inline(kek_text))
        .await
        .expect("open KEK");
    let (audit, _writer) = crate::audit::AuditLog::start(db.clone());
    crate::Core {
        db: db.clone(),
        custody: crate::custody::KeyCustody::new(
            db.clone(),
            std::sync::Arc::new(crate::custody::SoftwareBackend::new(kek)),
        ),
        audit,
        metrics: crate::metrics::Metrics::default(),
        public_url: "http://127.0.0.1:8080".into(),
        secure_cookies: false,
        changes: crate::events::ChangeBus::default(),
        levels: crate::access::Levels::default(),
        token_ttl_secs: 600,
    }
}

/// A CA that issued nothing: for tests of the identity provider without one.
pub struct NoCertificates;

impl crate::pki::CertificateBook for NoCertificates {
    fn issuing_cas(&self, _now: i64) -> crate::pki::BookFuture<'_, Vec<crate::pki::IssuingCa>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn standing<'a>(
        &'a self,
        _ca_id: &'a str,
        _serial: &'a crate::pki::Serial,
    ) -> crate::pki::BookFuture<'a, Option<crate::pki::Standing>> {
        Box::pin(async { Ok(None) })
    }

    fn standings<'a>(
        &'a self,
        _ca_id: &'a str,
        _serials: &'a [crate::pki::Serial],
    ) -> crate::pki::BookFuture<'a, Vec<(crate::pki::Serial, crate::pki::Standing)>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn current_serials<'a>(
        &'a self,
        _ca_id: &'a str,
        _now: i64,
    ) -> crate::pki::BookFuture<'a, Vec<crate::pki::Serial>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn changes(
        &self,
        _after: i64,
        _since: i64,
        _limit: i64,
    ) -> crate::pki::BookFuture<'_, Vec<crate::pki::Change>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn change_bounds(&self) -> crate::pki::BookFuture<'_, (i64, i64)> {
        Box::pin(async { Ok((0, 0)) })
    }

    fn credential<'a>(
        &'a self,
        _der: &'a [u8],
    ) -> crate::pki::BookFuture<'a, Option<crate::pki::Credential>> {
        Box::pin(async { Ok(None) })
    }

    fn binding<'a>(
        &'a self,
        _serial: &'a crate::pki::Serial,
    ) -> crate::pki::BookFuture<'a, Option<crate::pki::Binding>> {
        Box::pin(async { Ok(None) })
    }
}

/// The public keys (P-256 `ec`, P-384 `ec384`, Ed25519 `ed`, RSA-2048 `rsa`) and the HMAC key
/// the committed JOSE fuzz seeds are signed with: the fixed set in `fuzz/fuzz_targets/jws.rs`.
pub const FUZZ_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"Z0tB0asAzFhuDXo3vtT1ANW2kHlYoRa3cfAvTxqScOY","y":"7pxglE5Nlg-ItK28R5gxcUhKaueazT6fSgAZhjrtCrI","kid":"ec","use":"sig"},{"kty":"EC","crv":"P-384","x":"Ki_EBUPfCeEenRR_96FIdjunbKkFbl1A7M4APHFPLgxPQ98GlVhZ5z2opF2lT6z3","y":"8q0liB9Aj0kZWouOeFEuM6QOTTHqZptuMpmaPS8DL9SFUDEreb-NhS2kOoaJ5_5p","kid":"ec384","use":"sig"},{"kty":"OKP","crv":"Ed25519","x":"05qskDPqLIa2c3sARgcXBE8MQ8idgOFoL5_7FP0xbJE","kid":"ed","use":"sig"},{"kty":"RSA","n":"q9zx8Hme-Bb0oItF77JEmApz45JUkzkgzudg48W9059qJKjOmm8BTsx0AA-u6ajDElgQCu-2KKncQOQxd6Az5JWHTNv-ngxecIdR45pnoQMAs4V0Qb_32CzIJXNX27wpYfcQJN_lznc4vFlLPZhXtmRe1UVXnEbrMdjWCCh_og6n4fHiWIPqX1tP40YhoTJIy34ME4lvB2CFAp2ZVe84V1smqQR2Z2UAe6wi2SjNh34-X4l8Fcwsm16IMfAgh8GFhcgsjpk2dFuwJ3u7Soty0Fcd7Rdq82LhU2h7ZDYRANCI080BjEKOeaQQ_mdKijriI2NEe2cCFNdMz-jdR2UsNw","e":"AQAB","kid":"rsa","use":"sig"}]}"#;
/// See [`FUZZ_JWKS`].
pub const FUZZ_HMAC_KEY: &[u8] = b"fuzzing-hmac-key";

/// Runs every committed seed of a fuzz target (the files of `dir`, a `fuzz/corpus/<target>/`)
/// through `outcome` and compares the result with the table's row for its file name. Every
/// file needs a row and every row a file, so a new seed must be classified before the suite
/// passes; all mismatches are reported together.
pub fn check_fuzz_seeds<T: PartialEq + std::fmt::Debug>(
    dir: &str,
    expected: &[(&str, T)],
    outcome: impl Fn(&[u8]) -> T,
) {
    let dir = Path::new(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read the fuzz seeds in {}: {e}", dir.display()))
        .map(|entry| entry.expect("read a corpus entry").path())
        .collect();
    files.sort();
    let mut problems = Vec::new();
    let mut names = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let got = match std::fs::read(path) {
            Ok(bytes) => outcome(&bytes),
            Err(e) => {
                problems.push(format!("{name}: cannot be read as a seed file: {e}"));
                continue;
            }
        };
        match expected
            .iter()
            .filter(|(n, _)| *n == name)
            .collect::<Vec<_>>()[..]
        {
            [] => problems.push(format!(
                "{name}: no expected outcome in the table (it gives {got:?})"
            )),
            [(_, want)] if *want == got => {}
            [(_, want)] => problems.push(format!("{name}: expected {want:?}, got {got:?}")),
            _ => problems.push(format!("{name}: more than one row in the table")),
        }
        names.push(name);
    }
    for (name, _) in expected {
        if !names.iter().any(|n| n == name) {
            problems.push(format!("{name}: in the table but not a file in the corpus"));
        }
    }
    assert!(
        problems.is_empty(),
        "fuzz seeds in {}:\n  {}",
        dir.display(),
        problems.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_keeping_the_query() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }
}
