//! PKI helpers for end-to-end tests: keys and requests made with `openssl`, shell steps in an
//! install's directory, pkilint runs whose verdict is checked, and service tokens for the APIs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Kizuna, Server};

/// Runs a shell script in `dir`.
pub fn sh(dir: &Path, script: &str) -> Output {
    Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh")
}

/// What a command printed, standard output then standard error.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a shell script in `dir` that must succeed; returns what it printed.
pub fn sh_ok(dir: &Path, script: &str) -> String {
    let out = sh(dir, script);
    assert!(out.status.success(), "{script}:\n{}", text(&out));
    text(&out)
}

/// The `openssl req -newkey` argument for a key type: `p256`, `p384`, `p521`, `ed25519`,
/// `rsa2048`, `rsa1024`.
fn newkey(key: &str) -> &'static str {
    match key {
        "p256" => "ec -pkeyopt ec_paramgen_curve:P-256",
        "p384" => "ec -pkeyopt ec_paramgen_curve:P-384",
        "p521" => "ec -pkeyopt ec_paramgen_curve:P-521",
        "ed25519" => "ed25519",
        "rsa2048" => "rsa:2048",
        "rsa1024" => "rsa:1024",
        other => panic!("no key type {other}"),
    }
}

/// Makes `<name>.key` and `<name>.csr` in `dir` with openssl: a key of type `key`, subject
/// `subject` (e.g. `/CN=x`), and the extensions in `addext` (each an `-addext` value, such
/// as `subjectAltName=DNS:a.example`). Returns the CSR's path.
pub fn csr(dir: &Path, name: &str, key: &str, subject: &str, addext: &[&str]) -> PathBuf {
    let exts: String = addext.iter().map(|e| format!(" -addext '{e}'")).collect();
    sh_ok(
        dir,
        &format!(
            "openssl req -new -newkey {} -nodes -keyout {name}.key -subj '{subject}'{exts} -out {name}.csr",
            newkey(key)
        ),
    );
    dir.join(format!("{name}.csr"))
}

/// pkilint (0.13, through `validators` 0.22) checks every URI against a fixed list of web
/// schemes (ftp, git, http(s), rtsp, sftp, ssh, telnet), so it reports any other scheme as
/// `pkix.invalid_uri_syntax`, whatever the URI. RFC 5280 §4.2.1.6 asks for RFC 3986 syntax
/// and a host that is a domain name or address, which a SPIFFE ID
/// (`spiffe://<trust domain>/org/<org>/device/<id>`) has. That one finding, on a SPIFFE ID
/// only, is the linter's list and not a defect; see docs/ca.md.
const KNOWN_SPIFFE_FINDING: &str =
    "pkix.invalid_uri_syntax (ERROR): Invalid URI syntax: \"spiffe://";

/// Runs a pkilint command (`lint_pkix_cert lint -s ERROR file`, …) in `dir` and asserts it
/// found nothing at ERROR or FATAL but the scheme finding on a SPIFFE ID. pkilint exits
/// non-zero when it reports a finding at or above the threshold, and when it cannot read the
/// document.
pub fn pkilint_clean(dir: &Path, command: &str) {
    let out = sh(dir, command);
    let printed = text(&out);
    let findings: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("(ERROR)") || l.contains("(FATAL)"))
        .collect();
    let unexpected: Vec<&&str> = findings
        .iter()
        .filter(|l| !l.trim_start().starts_with(KNOWN_SPIFFE_FINDING))
        .collect();
    assert!(unexpected.is_empty(), "{command}:\n{printed}");
    assert!(
        out.status.success() || !findings.is_empty(),
        "{command} failed without a finding:\n{printed}"
    );
}

/// Downloads the root and issuing CA certificates (PEM) of a fresh install into `root.pem`
/// and `issuing.pem` in its directory.
pub async fn download_ca_certificates(k: &Kizuna, server: &Server) {
    for (id, file) in [("root-1", "root.pem"), ("issuing-1", "issuing.pem")] {
        download_ca(k, server, id, file).await;
    }
}

/// Downloads `/pki/ca/<id>.pem` into `file` in the install's directory.
pub async fn download_ca(k: &Kizuna, server: &Server, id: &str, file: &str) {
    let body = reqwest::get(format!("{}/pki/ca/{id}.pem", server.base))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(k.dir.path().join(file), body).unwrap();
}

/// A device certificate `<name>.pem` (key `<name>.key`) of the install's first organization,
/// or of a new one named `org_name` when it has none, and root.pem and issuing.pem, in the
/// install's directory. Returns the serial (lower-case hex).
pub async fn device_certificate(k: &Kizuna, server: &Server, org_name: &str, name: &str) -> String {
    let org = match k
        .json(&["org", "list", "--json"])
        .as_array()
        .and_then(|a| a.first().cloned())
    {
        Some(org) => org,
        None => k.json(&["org", "create", "--name", org_name, "--json"]),
    };
    let serial = issue_device_certificate(k, org["id"].as_str().unwrap(), name);
    download_ca_certificates(k, server).await;
    serial
}

/// A device certificate `<name>.pem` (key `<name>.key`) of organization `org_id` in the
/// install's directory, issued with `kizuna cert issue`. Returns the serial (lower-case hex).
pub fn issue_device_certificate(k: &Kizuna, org_id: &str, name: &str) -> String {
    let dir = k.dir.path();
    csr(
        dir,
        name,
        "p256",
        &format!("/CN={name}"),
        &[&format!(
            "subjectAltName=URI:urn:kizuna:device:{org_id}:{name}"
        )],
    );
    let pem = k.ok(&[
        "cert",
        "issue",
        "--csr",
        &format!("{name}.csr"),
        "--profile",
        "device",
        "--org",
        org_id,
    ]);
    std::fs::write(dir.join(format!("{name}.pem")), &pem).unwrap();
    sh_ok(dir, &format!("openssl x509 -in {name}.pem -noout -serial"))
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}
