//! The Helm chart (`deploy/helm/kizuna`), checked by helm itself (`helm lint --strict`,
//! `helm template`) and against the code: what it renders — the kizuna.toml in its ConfigMap
//! and the KIZUNA_* variables of its container — is accepted by `kizuna config show` as a
//! replica would read it, every variable it sets is in docs/configuration.md, the container
//! ports are the listen ports, and the probe paths answer 200 on a running server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Kizuna, TempDir};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/kizuna");
const CONFIGURATION_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");

/// helm, on PATH or in the project's tool directory (`scripts/test` puts it in .venv/bin).
/// In CI a missing helm is a failure; elsewhere the test says why it is skipped.
fn helm() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("helm"));
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/helm");
    if let Some(found) = on_path.chain([project]).find(|p| p.is_file()) {
        return Some(found);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("helm is required in CI (scripts/test installs it)");
    }
    eprintln!("note: skipped: helm is not installed (run scripts/test)");
    None
}

fn helm_ok(helm: &Path, args: &[&str]) -> String {
    let out = Command::new(helm).args(args).output().expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What the chart's Deployment and ConfigMap say, read from `helm template` output.
#[derive(Debug, Default)]
struct Rendered {
    /// The container's environment, in order.
    env: Vec<(String, String)>,
    /// kizuna.toml from the ConfigMap.
    config: String,
    /// Container ports by name.
    ports: Vec<(String, u16)>,
    /// Paths of the startup, liveness and readiness probes.
    probe_paths: Vec<String>,
    kinds: Vec<String>,
}

impl Rendered {
    fn parse(manifests: &str) -> Rendered {
        let mut r = Rendered::default();
        let lines: Vec<&str> = manifests.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let item = line.trim();
            if let Some(kind) = item.strip_prefix("kind: ")
                && !line.starts_with(' ')
            {
                r.kinds.push(kind.to_string());
            }
            if item == "kizuna.toml: |" {
                let indent = line.len() - line.trim_start().len() + 2;
                while i + 1 < lines.len()
                    && (lines[i + 1].trim().is_empty()
                        || lines[i + 1].len() - lines[i + 1].trim_start().len() >= indent)
                    && !lines[i + 1].starts_with("---")
                {
                    i += 1;
                    r.config
                        .push_str(lines[i].get(indent..).unwrap_or_default());
                    r.config.push('\n');
                }
            } else if let Some(name) = item.strip_prefix("- name: ")
                && let Some(next) = lines.get(i + 1).map(|l| l.trim())
            {
                if let Some(value) = next.strip_prefix("value: ") {
                    r.env
                        .push((name.to_string(), value.trim_matches('"').to_string()));
                } else if let Some(port) = next.strip_prefix("containerPort: ") {
                    r.ports.push((name.to_string(), port.parse().unwrap()));
                }
            } else if let Some(path) = item.strip_prefix("path: /") {
                r.probe_paths.push(format!("/{path}"));
            }
            i += 1;
        }
        r
    }

    fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn port(&self, name: &str) -> Option<u16> {
        self.ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
    }
}

/// The port of an `IP:PORT` listen address.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Runs `kizuna config show --json` with the rendered kizuna.toml and environment, every file
/// the environment names put in a scratch directory with the content a Secret would hold.
fn config_show(rendered: &Rendered) -> serde_json::Value {
    let scratch = TempDir::new("kizuna-chart");
    let mut k = Kizuna::sqlite();
    for (name, value) in &rendered.env {
        let value = match name.as_str() {
            "KIZUNA_CONFIG" => file(&scratch, "kizuna.toml", &rendered.config),
            "KIZUNA_KEK_FILE" => file(
                &scratch,
                "kek",
                "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n",
            ),
            "KIZUNA_DATABASE_URL_FILE" => file(
                &scratch,
                "url",
                "postgres://kizuna@db.internal:5432/kizuna?sslmode=verify-full&sslrootcert=/run/secrets/kizuna-db-ca/ca.crt\n",
            ),
            "KIZUNA_TLS__CERT_FILE" => file(&scratch, "tls.crt", ""),
            "KIZUNA_TLS__KEY_FILE" => file(&scratch, "tls.key", ""),
            "KIZUNA_DATA_DIR" => scratch.path().display().to_string(),
            _ => value.clone(),
        };
        k.set_env(name, &value);
    }
    let out = k.run(&["config", "show", "--json"]);
    assert!(
        out.status.success(),
        "kizuna refuses the chart's configuration:\n{}\n--- kizuna.toml\n{}\n--- env\n{:?}",
        String::from_utf8_lossy(&out.stderr),
        rendered.config,
        rendered.env
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn file(dir: &TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

/// The chart's checks for one set of values.
fn check(rendered: &Rendered, documented: &str) {
    for kind in ["Deployment", "Service", "ConfigMap", "PodDisruptionBudget"] {
        assert!(
            rendered.kinds.iter().any(|k| k == kind),
            "{kind}: {:?}",
            rendered.kinds
        );
    }
    for (name, _) in &rendered.env {
        assert!(
            documented.contains(&format!("`{name}`")),
            "{name} is set by the chart but not in docs/configuration.md"
        );
    }
    let listen = rendered.env("KIZUNA_LISTEN").expect("KIZUNA_LISTEN");
    assert_eq!(rendered.port("http"), Some(port_of(listen)), "{listen}");
    if let Some(tls) = rendered.env("KIZUNA_TLS_LISTEN") {
        assert_eq!(rendered.port("https"), Some(port_of(tls)), "{tls}");
    }
    let shown = config_show(rendered);
    assert_eq!(shown["listen"], listen);
    assert_eq!(shown["public_url"], "https://id.city.example");
    assert!(
        shown["database_url"]
            .as_str()
            .unwrap()
            .starts_with("postgres://kizuna@db.internal:5432/kizuna?sslmode=verify-full"),
        "the database URL is read from the Secret's file: {}",
        shown["database_url"]
    );
    assert_eq!(
        shown["tls_listen"].as_str(),
        rendered.env("KIZUNA_TLS_LISTEN")
    );
    assert_eq!(
        rendered.probe_paths,
        ["/healthz", "/healthz", "/readyz"],
        "startup, liveness, readiness"
    );
}

#[tokio::test]
async fn the_helm_chart_lints_and_renders_what_kizuna_reads() {
    let Some(helm) = helm() else {
        return;
    };
    let documented = std::fs::read_to_string(CONFIGURATION_DOC).unwrap();
    let with_tls = [
        "--set",
        "tlsListener.enabled=true",
        "--set",
        "tlsListener.certSecret=kizuna-tls",
        "--set",
        "secrets.databaseCa.name=db-ca",
        "--set",
        "trustedProxies={10.42.0.0/16,10.0.0.5}",
    ];
    helm_ok(&helm, &["lint", "--strict", CHART]);
    let mut lint = vec!["lint", "--strict", CHART];
    lint.extend(with_tls);
    helm_ok(&helm, &lint);

    let plain = Rendered::parse(&helm_ok(&helm, &["template", "kizuna", CHART]));
    check(&plain, &documented);
    assert_eq!(plain.env("KIZUNA_TLS__TRUSTED_PROXIES"), Some(""));
    assert!(plain.port("https").is_none(), "no TLS listener by default");

    let mut args = vec!["template", "kizuna", CHART];
    args.extend(with_tls);
    let tls = Rendered::parse(&helm_ok(&helm, &args));
    check(&tls, &documented);
    let shown = config_show(&tls);
    assert_eq!(
        shown["tls"]["trusted_proxies"],
        serde_json::json!(["10.42.0.0/16", "10.0.0.5"])
    );

    // One replica gets no disruption budget (minAvailable 1 would block every drain).
    let single = helm_ok(
        &helm,
        &["template", "kizuna", CHART, "--set", "replicaCount=1"],
    );
    assert!(!single.contains("kind: PodDisruptionBudget"), "{single}");

    // The probe paths are the server's: each answers 200 on a running replica.
    let k = Kizuna::sqlite();
    let server = k.serve();
    for path in &plain.probe_paths {
        let status = reqwest::get(server.url(path)).await.unwrap().status();
        assert_eq!(status, 200, "{path}");
    }
}
