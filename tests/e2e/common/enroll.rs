//! Enrollment fixtures: an install serving TLS with its own certificate, an organization,
//! and the device-side EST script (`tests/est/device.sh`, curl + openssl) to drive it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Kizuna, Server, root_pem};

pub struct Installation {
    pub k: Kizuna,
    pub server: Server,
    /// The Kizuna root (PEM file), as a device would have it from the factory.
    pub root: PathBuf,
    /// `https://127.0.0.1:PORT/.well-known/est`
    pub est: String,
    pub org_id: String,
}

pub const DEVICE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/est/device.sh");

impl Installation {
    /// Starts `k` with TLS (Kizuna's own certificate) and creates the organization "Streetlights".
    pub async fn start(k: Kizuna) -> Installation {
        let k = k.tls_self();
        let server = k.serve();
        let root = k.dir.path().join("root.pem");
        std::fs::write(&root, root_pem(&server).await).unwrap();
        let org: serde_json::Value = k.json(&["org", "create", "--name", "Streetlights", "--json"]);
        let est = format!("{}/.well-known/est", server.public);
        Installation {
            org_id: org["id"].as_str().unwrap().to_string(),
            k,
            server,
            root,
            est,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.k.dir.path().join(name)
    }

    /// Registers a device; returns its JSON.
    pub fn add_device(&self, id: &str, serial: &str) -> serde_json::Value {
        self.k.json(&[
            "device",
            "add",
            "--org",
            "Streetlights",
            "--id",
            id,
            "--serial",
            serial,
            "--model",
            "LED-9",
            "--location",
            "Ekimae-dori lamp 12",
            "--lat",
            "35.68",
            "--lon",
            "139.76",
            "--installer",
            "Kizuna Denki",
            "--json",
        ])
    }

    /// Creates one token (extra arguments added) and returns it, read from the CSV.
    pub fn token(&self, extra: &[&str]) -> String {
        let csv = self.path(&format!("tokens-{}.csv", super::free_port()));
        let mut args = vec![
            "enroll",
            "tokens",
            "--org",
            "Streetlights",
            "--profile",
            "device",
            "--out",
            csv.to_str().unwrap(),
        ];
        args.extend(extra);
        self.k.ok(&args);
        read_tokens(&csv).remove(0)
    }

    /// Runs the device script: `device.sh CMD EST ROOT DIR ARGS…`.
    pub fn device_script(&self, cmd: &str, dir: &Path, args: &[&str]) -> Output {
        self.device_script_at(&self.est, cmd, dir, args)
    }

    pub fn device_script_at(&self, est: &str, cmd: &str, dir: &Path, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(DEVICE_SCRIPT)
            .args([cmd, est, self.root.to_str().unwrap(), dir.to_str().unwrap()])
            .args(args)
            .output()
            .expect("run the device script")
    }

    /// Enrolls a device with a token; panics unless it succeeds. Returns its directory.
    pub fn enroll(&self, name: &str, token: &str, subject: &str) -> PathBuf {
        let dir = self.path(name);
        let out = self.device_script("enroll", &dir, &[token, subject]);
        assert!(
            out.status.success(),
            "enrollment failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    }
}

/// The `token` column of an enrollment CSV (header row first).
pub fn read_tokens(csv: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header
        .iter()
        .position(|h| *h == "token")
        .expect("a token column");
    lines
        .map(|l| l.split(',').nth(column).unwrap().to_string())
        .collect()
}

/// The stderr of a failed command, for assertions on the server's reason.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `openssl verify` of a certificate under the root with the chain as untrusted intermediates.
pub fn openssl_verify(root: &Path, chain: &Path, cert: &Path) -> Output {
    Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(chain)
        .arg(cert)
        .output()
        .unwrap()
}

/// A field of a certificate as `openssl x509 -noout -FIELD` prints it.
pub fn x509_field(cert: &Path, field: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-nameopt", "compat", field, "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs openssl in `dir`; panics with its message unless it succeeds; returns its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    out.stdout
}

const NEW_P256: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A new P-256 key (`<dir>/<name>.key`) and a CSR for it (DER, also written to
/// `<dir>/<name>.der`), with `-addext` values such as `subjectAltName=DNS:x`.
pub fn csr(dir: &Path, name: &str, subject: &str, extensions: &[&str]) -> Vec<u8> {
    let (key, out) = (format!("{name}.key"), format!("{name}.der"));
    let mut args = vec!["req", "-new"];
    args.extend(NEW_P256);
    args.extend([
        "-subj", subject, "-keyout", &key, "-outform", "DER", "-out", &out,
    ]);
    for e in extensions {
        args.extend(["-addext", e]);
    }
    openssl(dir, &args);
    std::fs::read(dir.join(out)).unwrap()
}

/// A self-signed P-256 certificate `<dir>/<name>.pem` with its key `<dir>/<name>.key`.
pub fn self_signed(dir: &Path, name: &str, subject: &str, extensions: &[&str]) {
    let (key, out) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec!["req", "-x509", "-days", "2"];
    args.extend(NEW_P256);
    args.extend(["-subj", subject, "-keyout", &key, "-out", &out]);
    for e in extensions {
        args.extend(["-addext", e]);
    }
    openssl(dir, &args);
}

/// What a client of the CA's HTTP API needs on a running install: the organization Water
/// (allowed `water.city.example` names) and an administrator's bearer token.
pub async fn api_issuer(k: &Kizuna, server: &Server) -> (String, String) {
    let org = k.json(&["org", "create", "--name", "Water", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    k.ok(&["org", "allow", &org, "--dns", "water.city.example"]);
    let token = super::service_token(k, &server.public, "kizuna:admin", None).await;
    (org, token)
}

/// A body for `POST /ca/api/v1/certificates`: a PKCS#10 for `name` with its own P-256 key, in
/// the service profile of organization `org`.
pub fn service_request(name: &str, org: &str) -> serde_json::Value {
    use base64::Engine;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let der = params.serialize_request(&key).unwrap().der().to_vec();
    serde_json::json!({
        "csr": base64::engine::general_purpose::STANDARD.encode(der),
        "profile": "service",
        "org_id": org,
    })
}
