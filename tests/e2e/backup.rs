//! Backup and restore: `kizuna backup` while the server runs, `kizuna restore` into a fresh
//! data directory with the same key-encryption key, what a restore to an earlier point
//! loses (later revocations), and `kizuna cert revocations export/import` putting them back,
//! as `openssl ocsp` and `openssl crl` see it. Then the refusals: an existing output file, a
//! database in use, and files that are not a whole Kizuna database.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::pki::{self, sh, sh_ok, text};
use crate::common::{Kizuna, Server, database};

/// What `openssl ocsp` says about `<cert>.pem`; waits (within a bound) for `want`.
fn ocsp_until(dir: &Path, base: &str, cert: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = text(&sh(
            dir,
            &format!(
                "openssl ocsp -no_nonce -issuer issuing.pem -cert {cert}.pem -url {base}/ocsp/issuing-1 -CAfile root.pem"
            ),
        ));
        if answer.contains(&format!("{cert}.pem: {want}")) || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CRL Number in `openssl crl -text` output.
fn crl_number(text: &str) -> u128 {
    let line = text
        .lines()
        .skip_while(|l| !l.contains("X509v3 CRL Number"))
        .nth(1)
        .unwrap_or_else(|| panic!("no CRL number: {text}"));
    let hex: String = line
        .trim()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    if line.contains(':') || line.trim().starts_with("0x") {
        u128::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
    } else {
        line.trim().parse().unwrap()
    }
}

/// The issuing CA's published CRL as `openssl crl -text` prints it.
async fn crl_text(dir: &Path, server: &Server) -> String {
    let der = reqwest::get(server.url("/pki/crl/issuing-1.crl"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(dir.join("current.crl"), der).unwrap();
    sh_ok(dir, "openssl crl -inform DER -in current.crl -noout -text")
}

/// The status the certificate table gives `serial`.
fn table_status(k: &Kizuna, serial: &str) -> String {
    k.json(&["cert", "show", serial, "--json"])["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_to_an_earlier_point_loses_later_revocations_until_they_are_imported() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let first = pki::device_certificate(&k, &server, "Water", "gate-1").await;
    let second = pki::device_certificate(&k, &server, "Water", "gate-2").await;
    k.ok(&["cert", "revoke", &first, "--reason", "keyCompromise"]);
    k.ok(&["crl", "generate"]);

    // Online: the server keeps running while the snapshot is taken.
    let taken = k.json(&["backup", "--out", "city.backup", "--json"]);
    assert_eq!(taken["backend"], "sqlite");
    assert_eq!(taken["kek_included"], false, "{taken}");
    let said = k.ok(&["backup", "--out", "city-2.backup"]);
    assert!(
        said.contains("NOT in this backup") && said.contains("kizuna-data/kek"),
        "the backup says the KEK must be kept separately: {said}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(k.dir.path().join("city.backup"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner reads a backup");
    }

    // After the backup: a second revocation, exported for the restored database.
    k.ok(&[
        "cert",
        "revoke",
        &second,
        "--reason",
        "cessationOfOperation",
    ]);
    // A CRL published after the backup: the restored CA must never number one below it.
    k.ok(&["crl", "generate"]);
    let published_after_backup = crl_number(&crl_text(k.dir.path(), &server).await);
    let since = taken["revocations_since"].as_str().unwrap();
    k.ok(&[
        "cert",
        "revocations",
        "export",
        "--since",
        since,
        "--out",
        "later.jsonl",
    ]);
    let later = std::fs::read_to_string(k.dir.path().join("later.jsonl")).unwrap();
    let line = later
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["serial"] == second.as_str())
        .unwrap_or_else(|| panic!("the later revocation is exported: {later}"));
    assert_eq!(line["reason"], "cessationOfOperation");
    assert!(line["revoked_at"].as_str().unwrap().ends_with('Z'));
    server.stop();

    // A fresh data directory holding only the same KEK.
    let r = Kizuna::sqlite();
    std::fs::create_dir_all(r.data_dir()).unwrap();
    std::fs::copy(k.data_dir().join("kek"), r.data_dir().join("kek")).unwrap();
    let backup = k.dir.path().join("city.backup");
    let restored = r.ok(&["restore", "--from", backup.to_str().unwrap()]);
    assert!(restored.contains("audit: ok:"), "{restored}");
    let server = r.serve();
    let r = r.env("KIZUNA_PUBLIC_URL", &server.public);
    assert!(r.ok(&["audit", "verify"]).starts_with("ok: "));

    let dir = r.dir.path();
    pki::download_ca_certificates(&r, &server).await;
    assert_eq!(
        std::fs::read(dir.join("issuing.pem")).unwrap(),
        std::fs::read(k.dir.path().join("issuing.pem")).unwrap(),
        "the same CA, from the same sealed key"
    );
    for name in ["gate-1", "gate-2"] {
        std::fs::copy(
            k.dir.path().join(format!("{name}.pem")),
            dir.join(format!("{name}.pem")),
        )
        .unwrap();
    }

    // The table, OCSP and the CRL agree: the first revocation is there, the second is not.
    assert_eq!(table_status(&r, &first), "revoked");
    assert_eq!(table_status(&r, &second), "valid");
    let answer = ocsp_until(dir, &server.base, "gate-1", "revoked");
    assert!(
        answer.contains("Response verify OK") && answer.contains("gate-1.pem: revoked"),
        "{answer}"
    );
    let answer = ocsp_until(dir, &server.base, "gate-2", "good");
    assert!(answer.contains("gate-2.pem: good"), "{answer}");
    let crl = crl_text(dir, &server).await;
    assert!(crl.contains(&first.to_ascii_uppercase()), "{crl}");
    assert!(!crl.contains(&second.to_ascii_uppercase()), "{crl}");

    // Importing the export puts the later revocation back, with its reason.
    let later_file = k.dir.path().join("later.jsonl");
    let imported = r.ok(&[
        "cert",
        "revocations",
        "import",
        later_file.to_str().unwrap(),
    ]);
    assert!(
        imported.contains(&format!("revoked: {second}")),
        "{imported}"
    );
    assert_eq!(table_status(&r, &second), "revoked");
    let answer = ocsp_until(dir, &server.base, "gate-2", "revoked");
    assert!(
        answer.contains("gate-2.pem: revoked") && answer.contains("Reason: cessationOfOperation"),
        "{answer}"
    );
    r.ok(&["crl", "generate"]);
    let crl = crl_text(dir, &server).await;
    assert!(
        crl.contains(&first.to_ascii_uppercase()) && crl.contains(&second.to_ascii_uppercase()),
        "{crl}"
    );
    assert!(
        crl_number(&crl) > published_after_backup,
        "CRL numbers only grow, across the restore too (RFC 5280 §5.2.3): {crl}"
    );

    // Importing again changes nothing; a serial this database never issued is reported.
    let again = r.json(&[
        "cert",
        "revocations",
        "import",
        later_file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(again["revoked"], serde_json::json!([]), "{again}");
    assert!(
        again["already"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(second)),
        "{again}"
    );
    std::fs::write(
        dir.join("unknown.jsonl"),
        "{\"serial\":\"7e57ab1e\",\"reason\":\"keyCompromise\",\"revoked_at\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let out = r.run(&["cert", "revocations", "import", "unknown.jsonl"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("unknown: 7e57ab1e"), "{}", text(&out));
    assert!(r.ok(&["audit", "verify"]).starts_with("ok: "));
}

/// The data directory's files and the database's bytes, to prove a refusal changed nothing.
fn snapshot_of(dir: &Path) -> (Vec<String>, Vec<u8>) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (names, std::fs::read(dir.join("kizuna.db")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_refuse_what_would_lose_data_and_change_nothing() {
    let k = Kizuna::sqlite();
    let server = k.serve();
    let dir = k.dir.path();
    k.ok(&["backup", "--out", "first.backup"]);

    // An existing output file is never overwritten.
    std::fs::write(dir.join("taken.backup"), "keep me").unwrap();
    let out = k.run(&["backup", "--out", "taken.backup"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("taken.backup")).unwrap(),
        "keep me"
    );

    // A database in use is not replaced, and an existing one only with --force.
    let out = k.run(&["restore", "--from", "first.backup", "--force"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("in use"), "{}", text(&out));
    server.stop();
    let out = k.run(&["restore", "--from", "first.backup"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("already a database") && text(&out).contains("--force"),
        "{}",
        text(&out)
    );

    // Files that are not a whole Kizuna database.
    let whole = std::fs::read(dir.join("first.backup")).unwrap();
    std::fs::write(dir.join("half.backup"), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(
        dir.join("notes.txt"),
        "these are not the rows you are looking for",
    )
    .unwrap();
    std::fs::write(dir.join("empty.backup"), "").unwrap();
    {
        let other = kizuna_core::db::Db::connect(
            &format!("sqlite://{}/other.db?mode=rwc", dir.display()),
            &Default::default(),
        )
        .await
        .unwrap();
        sqlx::query("CREATE TABLE readings (value INTEGER)")
            .execute(other.pool())
            .await
            .unwrap();
        other.close().await;
    }
    let before = snapshot_of(&k.data_dir());
    for (file, says) in [
        ("notes.txt", "is not a SQLite database"),
        ("empty.backup", "is not a SQLite database"),
        ("half.backup", "is truncated"),
        ("other.db", "not a Kizuna one"),
        ("missing.backup", "cannot read"),
    ] {
        let out = k.run(&["restore", "--from", file, "--force"]);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", text(&out));
        assert!(text(&out).contains(says), "{file}: {}", text(&out));
        assert_eq!(snapshot_of(&k.data_dir()), before, "{file} changed nothing");
        let out = k.run(&["--data-dir", "fresh", "restore", "--from", file]);
        assert!(!out.status.success());
        assert!(!dir.join("fresh").exists(), "{file} created nothing");
    }
    // A backup whose audit chain was altered is refused after the copy is checked.
    std::fs::copy(dir.join("first.backup"), dir.join("altered.backup")).unwrap();
    {
        let altered = kizuna_core::db::Db::connect(
            &format!("sqlite://{}/altered.backup", dir.display()),
            &Default::default(),
        )
        .await
        .unwrap();
        sqlx::query("UPDATE audit_log SET action = 'nothing.happened' WHERE seq = 2")
            .execute(altered.pool())
            .await
            .unwrap();
        altered.close().await;
    }
    let out = k.run(&["restore", "--from", "altered.backup", "--force"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("audit chain") && text(&out).contains("seq 2"),
        "{}",
        text(&out)
    );
    assert_eq!(
        snapshot_of(&k.data_dir()),
        before,
        "altered.backup changed nothing"
    );

    // Without its KEK a backup is not put in place either.
    let out = k.run(&["--data-dir", "fresh", "restore", "--from", "first.backup"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("key-encryption key"), "{}", text(&out));
    assert!(!dir.join("fresh").exists());

    // A good backup with --force replaces the stopped database and keeps the old one.
    let restored = k.ok(&["restore", "--from", "first.backup", "--force"]);
    assert!(
        restored.contains("audit: ok:") && restored.contains("kizuna.db.replaced-"),
        "{restored}"
    );
    assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
    let db = database(&k).await;
    assert!(db.schema_status().await.unwrap().is_current());
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_backup_prints_or_runs_pg_dump_and_pg_restore_brings_it_back() {
    let Some(server_url) = kizuna_core::testing::postgres_url() else {
        return;
    };
    let k = Kizuna::on(kizuna_core::testing::fresh_postgres(&server_url).await);
    let url = k.db.as_ref().unwrap().url.clone();
    let printed = k.ok(&["backup", "--out", "city.dump"]);
    assert!(
        printed.contains("pg_dump --format=custom --file='city.dump'")
            && printed.contains("pg_restore ")
            && printed.contains("NOT in this backup"),
        "{printed}"
    );
    assert!(
        !k.dir.path().join("city.dump").exists(),
        "printing writes nothing"
    );

    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let dir = k.dir.path();
    let serial = pki::device_certificate(&k, &server, "Water", "pump-1").await;
    k.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    if sh(dir, "pg_dump --version").status.success() {
        let taken = k.json(&["backup", "--out", "city.dump", "--run-pg-dump", "--json"]);
        assert_eq!(taken["kek_included"], false);
        let out = k.run(&["backup", "--out", "city.dump", "--run-pg-dump"]);
        assert!(text(&out).contains("already exists"), "{}", text(&out));
        server.stop();

        // The printed pg_restore command, pointed at a fresh database, with the same KEK.
        let target = kizuna_core::testing::fresh_postgres(&server_url).await;
        let restore = taken["pg_restore"]
            .as_str()
            .unwrap()
            .replace(&url, &target.url);
        assert!(restore.contains(&target.url), "{restore}");
        sh_ok(dir, &restore);
        let r = Kizuna::on(target);
        std::fs::create_dir_all(r.data_dir()).unwrap();
        std::fs::copy(k.data_dir().join("kek"), r.data_dir().join("kek")).unwrap();
        assert!(r.ok(&["audit", "verify"]).starts_with("ok: "));
        assert_eq!(table_status(&r, &serial), "revoked");
        let out = r.run(&["restore", "--from", "city.dump"]);
        assert!(
            !out.status.success() && text(&out).contains("pg_restore"),
            "{}",
            text(&out)
        );
    } else {
        eprintln!("note: skipped the pg_dump run: pg_dump is not installed");
    }
}
