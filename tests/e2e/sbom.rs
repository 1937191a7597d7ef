//! `scripts/sbom`: the CycloneDX bill of materials lists what the binary is built from, with
//! the checksums `Cargo.lock` pins, and leaves out what only tests and benchmarks use.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_sbom_lists_the_shipped_crates_with_their_locked_checksums() {
    let dir = kizuna_core::testing::TempDir::new("kizuna-sbom");
    let out = dir.path().join("kizuna.cdx.json");
    let run = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sbom"))
        .arg(&out)
        .output()
        .expect("python3 runs scripts/sbom");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bom: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    assert_eq!(bom["metadata"]["component"]["name"], "kizuna");
    let components = bom["components"].as_array().unwrap();
    let find = |name: &str| components.iter().find(|c| c["name"] == name);

    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    for name in ["ring", "rustls", "sqlx-core", "axum", "rcgen"] {
        let component = find(name).unwrap_or_else(|| panic!("{name} is in the binary"));
        let version = component["version"].as_str().unwrap();
        assert_eq!(
            component["purl"],
            format!("pkg:cargo/{name}@{version}"),
            "{component}"
        );
        let checksum = component["hashes"][0]["content"].as_str().unwrap();
        let entry = format!("name = \"{name}\"\nversion = \"{version}\"\n");
        let at = lock.find(&entry).expect("in Cargo.lock");
        assert!(
            lock[at..].lines().take(6).any(|l| l.contains(checksum)),
            "{name}: the checksum Cargo.lock pins"
        );
        assert!(
            component["licenses"][0]["expression"].is_string(),
            "{component}"
        );
    }
    for workspace_crate in [
        "kizuna-core",
        "kizuna-idp",
        "kizuna-ca",
        "kizuna-ocsp",
        "kizuna-admin",
    ] {
        assert!(find(workspace_crate).is_some(), "{workspace_crate}");
    }
    assert!(
        find("criterion").is_none(),
        "criterion is a benchmark dependency only"
    );
    let refs: Vec<&str> = components
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    for dependency in bom["dependencies"].as_array().unwrap() {
        for on in dependency["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(&on.as_str().unwrap()), "{on} is listed");
        }
    }
}
