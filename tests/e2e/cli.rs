//! The operator's command line: configuration, organizations, the audit log.

use crate::common::{Kizuna, database};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_show_prints_the_effective_configuration_with_secrets_redacted() {
    let k = Kizuna::sqlite()
        .env(
            "KIZUNA_DATABASE_URL",
            "postgres://kizuna:s3cr3t-pw@db.city.example/kizuna",
        )
        .env("KIZUNA_KEK", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
        .env("KIZUNA_HTTP__MAX_BODY_BYTES", "65536")
        .env("KIZUNA_PKCS11__MODULE", "/usr/lib/softhsm/libsofthsm2.so")
        .env("KIZUNA_PKCS11__TOKEN_LABEL", "0099")
        .env("KIZUNA_PKCS11__PIN", "012345");
    std::fs::write(
        k.dir.path().join("kizuna.toml"),
        "listen = \"127.0.0.1:9090\"\n[database]\nmax_connections = 8\n",
    )
    .unwrap();
    let shown = k.ok(&["config", "show"]);
    assert!(
        shown.contains("listen = \"127.0.0.1:9090\""),
        "file value: {shown}"
    );
    assert!(shown.contains("max_connections = 8"), "{shown}");
    assert!(
        shown.contains("max_body_bytes = 65536"),
        "environment value: {shown}"
    );
    assert!(
        shown.contains("public_url = \"http://127.0.0.1:9090\""),
        "derived default: {shown}"
    );
    assert!(
        shown.contains("postgres://kizuna:***@db.city.example/kizuna"),
        "{shown}"
    );
    assert!(!shown.contains("s3cr3t"), "password leaked: {shown}");
    assert!(!shown.contains("MDEyMzQ1"), "KEK leaked: {shown}");
    assert!(shown.contains("<redacted>"));
    assert!(
        shown.contains("token_label = \"0099\""),
        "digits stay text: {shown}"
    );
    assert!(!shown.contains("012345"), "PIN leaked: {shown}");

    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["config", "show", "--json"])).unwrap();
    assert_eq!(json["database"]["max_connections"], 8);
    // Flags win over file and environment.
    let flagged = k.ok(&["--data-dir", "/srv/kizuna", "config", "show"]);
    assert!(flagged.contains("data_dir = \"/srv/kizuna\""), "{flagged}");
    assert!(flagged.contains("file (kizuna.toml)"), "{flagged}");
    // The header names the file that applied.
    std::fs::write(
        k.dir.path().join("other.toml"),
        "listen = \"127.0.0.1:7070\"\n",
    )
    .unwrap();
    let other = k.ok(&["--config", "other.toml", "config", "show"]);
    assert!(
        other.contains("file (other.toml)") && other.contains("listen = \"127.0.0.1:7070\""),
        "{other}"
    );
}

#[test]
fn a_list_key_takes_a_comma_separated_environment_value() {
    let k = Kizuna::sqlite()
        .env("KIZUNA_ASSURANCE__JPKI_OIDC__UPSTREAMS", "jpki,jpki2")
        .env("KIZUNA_TLS__TRUSTED_PROXIES", "10.0.0.1, 10.1.0.0/16,")
        .env("KIZUNA_LOG_LEVEL", "info,kizuna=debug");
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["config", "show", "--json"])).unwrap();
    assert_eq!(
        json["assurance"]["jpki_oidc"]["upstreams"],
        serde_json::json!(["jpki", "jpki2"])
    );
    assert_eq!(
        json["tls"]["trusted_proxies"],
        serde_json::json!(["10.0.0.1", "10.1.0.0/16"]),
        "items trimmed, the empty one dropped"
    );
    assert_eq!(
        json["log_level"], "info,kizuna=debug",
        "a key that is not a list keeps its commas"
    );
    let shown = k.ok(&["config", "show"]);
    assert!(
        shown.contains("\"jpki2\"") && shown.contains("\"10.1.0.0/16\""),
        "{shown}"
    );

    // The array form keeps working.
    let array = Kizuna::sqlite().env("KIZUNA_TLS__TRUSTED_PROXIES", r#"["10.0.0.1", "10.0.0.2"]"#);
    let json: serde_json::Value =
        serde_json::from_str(&array.ok(&["config", "show", "--json"])).unwrap();
    assert_eq!(
        json["tls"]["trusted_proxies"],
        serde_json::json!(["10.0.0.1", "10.0.0.2"])
    );

    // Each item is checked like a list written in the file.
    let bad = Kizuna::sqlite().env("KIZUNA_TLS__TRUSTED_PROXIES", "10.0.0.1,proxy.example");
    let out = bad.run(&["config", "show"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("tls.trusted_proxies") && err.contains("proxy.example"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_stops_start_up_and_names_it() {
    let k = Kizuna::sqlite();
    std::fs::write(
        k.dir.path().join("kizuna.toml"),
        "lisen = \"127.0.0.1:8080\"\n",
    )
    .unwrap();
    let out = k.run(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("lisen"), "{err}");
    assert!(err.contains("listen"), "lists what is allowed: {err}");

    let nested = Kizuna::sqlite();
    std::fs::write(
        nested.dir.path().join("kizuna.toml"),
        "[database]\nmax_conns = 3\n",
    )
    .unwrap();
    let err = stderr(&nested.run(&["config", "show"]));
    assert!(
        err.contains("max_conns") && err.contains("database"),
        "{err}"
    );

    let ignored = Kizuna::sqlite()
        .env("KIZUNA_TEST_POSTGRES_URL", "postgres://elsewhere/x")
        .env("KIZUNA_CONFIG", "kizuna.toml");
    std::fs::write(ignored.dir.path().join("kizuna.toml"), "").unwrap();
    ignored.ok(&["config", "show"]);

    let env = Kizuna::sqlite().env("KIZUNA_LISTN", "127.0.0.1:1");
    let out = env.run(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("listn"), "{}", stderr(&out));
}

#[test]
fn bad_values_name_the_key_and_what_is_allowed() {
    let cases = [
        ("KIZUNA_LISTEN", "localhost-8080", "listen", "IP:PORT"),
        ("KIZUNA_LOG_FORMAT", "xml", "log_format", "json"),
        (
            "KIZUNA_DATABASE__MAX_CONNECTIONS",
            "many",
            "max_connections",
            "u32",
        ),
        (
            "KIZUNA_DATABASE__MAX_CONNECTIONS",
            "0",
            "max_connections",
            "1 to 1000",
        ),
        (
            "KIZUNA_PUBLIC_URL",
            "id.city.example",
            "public_url",
            "https://",
        ),
        (
            "KIZUNA_DATABASE_URL",
            "mysql://root@db/kizuna",
            "database_url",
            "postgres://",
        ),
        ("KIZUNA_LOG_LEVEL", "loud=[", "log_level", "info"),
    ];
    for (var, value, key, allowed) in cases {
        let out = Kizuna::sqlite().env(var, value).run(&["serve"]);
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = stderr(&out);
        assert!(err.contains(key), "{var}={value}: {err}");
        assert!(err.contains(allowed), "{var}={value}: {err}");
    }
}

#[test]
fn a_corrupt_truncated_or_missing_config_file_is_reported() {
    let k = Kizuna::sqlite();
    let path = k.dir.path().join("kizuna.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:80").unwrap();
    let err = stderr(&k.run(&["config", "show"]));
    assert!(err.contains("kizuna.toml"), "names the file: {err}");
    assert!(
        err.to_lowercase().contains("line 1"),
        "names the place: {err}"
    );

    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x01, 0x80]).unwrap();
    let out = k.run(&["serve"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let out = Kizuna::sqlite().run(&["--config", "/nonexistent/kizuna.toml", "serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/kizuna.toml does not exist"));
}

#[tokio::test]
async fn organizations_are_created_and_listed_from_the_command_line() {
    for k in Kizuna::each_backend().await {
        let created: serde_json::Value = serde_json::from_str(&k.ok(&[
            "org",
            "create",
            "--name",
            "Kizuna Transit",
            "--name-ja",
            "絆交通",
            "--kind",
            "service-provider",
            "--json",
        ]))
        .unwrap();
        let id = created["id"].as_str().expect("id in JSON").to_string();
        assert_eq!(created["kind"], "service-provider");
        let listed = k.ok(&["org", "list"]);
        assert!(
            listed.contains(&id) && listed.contains("絆交通"),
            "{listed}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&k.ok(&["org", "list", "--json"])).unwrap();
        assert_eq!(json[0]["name"], "Kizuna Transit");

        let dup = k.run(&["org", "create", "--name", "Kizuna Transit"]);
        assert_eq!(dup.status.code(), Some(1));
        assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
        let bad_kind = k.run(&["org", "create", "--name", "X", "--kind", "bank"]);
        assert!(
            stderr(&bad_kind).contains("device-vendor"),
            "lists the kinds: {}",
            stderr(&bad_kind)
        );
    }
}

#[tokio::test]
async fn two_processes_appending_at_once_keep_the_chain_linear() {
    for k in Kizuna::each_backend().await {
        k.ok(&["org", "list"]);
        let k = std::sync::Arc::new(k);
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let k = k.clone();
                std::thread::spawn(move || {
                    for i in 0..12 {
                        k.ok(&["org", "create", "--name", &format!("org-{w}-{i}")]);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(k.ok(&["audit", "verify"]).trim(), "ok: 24 entries");
    }
}

#[tokio::test]
async fn audit_verify_names_the_tampered_entry_and_fails() {
    for k in Kizuna::each_backend().await {
        for name in ["a", "b", "c"] {
            k.ok(&["org", "create", "--name", name]);
        }
        assert_eq!(k.ok(&["audit", "verify"]).trim(), "ok: 3 entries");
        let db = database(&k).await;
        let id: String = sqlx::query_scalar("SELECT id FROM audit_log WHERE seq = 2")
            .fetch_one(db.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET actor_id = 'someone-else' WHERE seq = 2")
            .execute(db.pool())
            .await
            .unwrap();
        db.close().await;
        let out = k.run(&["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            printed.starts_with(&format!("broken: entry {id} (seq 2)")),
            "{printed}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&k.run(&["audit", "verify", "--json"]).stdout).unwrap();
        assert_eq!(json["broken"]["id"], id.as_str());
        assert_eq!(json["entries"], 1);
    }
}

#[test]
fn audit_export_writes_json_lines_since_a_time() {
    let k = Kizuna::sqlite();
    k.ok(&[
        "org",
        "create",
        "--name",
        "Kizuna Hospital",
        "--kind",
        "data-provider",
    ]);
    let all = k.ok(&["audit", "export", "--format", "jsonl"]);
    let entry: serde_json::Value = serde_json::from_str(all.lines().next().unwrap()).unwrap();
    assert_eq!(entry["action"], "org.create");
    assert_eq!(entry["details"]["kind"], "data-provider");
    assert!(entry["actor_id"].as_str().unwrap().starts_with("cli:"));
    assert_eq!(k.ok(&["audit", "export", "--since", "2999-01-01"]), "");
    let file = k.dir.path().join("audit.jsonl");
    k.ok(&[
        "audit",
        "export",
        "--since",
        "2000-01-01T00:00:00Z",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), all);
    let bad = k.run(&["audit", "export", "--since", "yesterday"]);
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
}

#[test]
fn the_example_configuration_in_deploy_is_accepted_as_written() {
    let k = Kizuna::sqlite();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kizuna.example.toml");
    let shown = k.ok(&["config", "show", "--config", example]);
    for expected in [
        "public_url = \"https://id.city.example\"",
        "organization = \"Example City\"",
        "response_validity_secs = 14400",
        "staff_min_aal = 2",
    ] {
        assert!(shown.contains(expected), "{expected}: {shown}");
    }
}
