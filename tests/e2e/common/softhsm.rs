//! SoftHSM2 (not written here) standing in for the city's HSM: a fresh token per test, and an
//! install configured to keep its CA keys in it.

use std::process::Command;

use super::{Kizuna, TempDir};

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A fresh SoftHSM2 token directory with one initialised token; returns the config path.
pub fn softhsm_token(dir: &TempDir) -> Option<std::path::PathBuf> {
    if !std::path::Path::new(MODULE).exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("SoftHSM2 ({MODULE}) is required in CI; scripts/test installs it");
        }
        eprintln!("note: skipped: SoftHSM2 is not installed (apt-get install softhsm2)");
        return None;
    }
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "kizuna-ca",
            "--pin",
            "246810",
            "--so-pin",
            "13579",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(conf)
}

/// The install with CA keys in the token of `conf` (user PIN 246810).
pub fn with_ca_keys_in(k: Kizuna, conf: &std::path::Path) -> Kizuna {
    k.env("SOFTHSM2_CONF", conf.to_str().unwrap())
        .env("KIZUNA_PKCS11__MODULE", MODULE)
        .env("KIZUNA_PKCS11__TOKEN_LABEL", "kizuna-ca")
        .env("KIZUNA_PKCS11__PIN", "246810")
        .env("KIZUNA_CA__KEY_BACKEND", "pkcs11")
}
