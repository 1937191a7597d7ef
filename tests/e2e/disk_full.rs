//! The SQLite disk fills up (issue #19): writes are refused clearly (503
//! `temporarily_unavailable` with `Retry-After`, and a log line that names the full disk),
//! reads go on, nothing is corrupted, and writes succeed again once space is freed. The data
//! directory is a small tmpfs of the test's own, so only this test runs out of space.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Kizuna, database};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A tmpfs of `megabytes` mounted for this test; unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: PathBuf, megabytes: u32) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !mounted.status.success() {
            return Err(String::from_utf8_lossy(&mounted.stderr).trim().to_string());
        }
        Ok(SmallDisk { path })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes a file of zeros until the disk has no room left; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_keeps_serving_reads_and_corrupts_nothing() {
    // The install's data directory is the small disk.
    let k = Kizuna::sqlite();
    let disk = match SmallDisk::mount(k.data_dir(), 16) {
        Ok(d) => d,
        Err(why) if !in_ci() => {
            eprintln!("skipped: a small tmpfs cannot be mounted here (needs root): {why}");
            return;
        }
        Err(why) => panic!("CI=true: a small tmpfs must mount: {why}"),
    };
    let server = k.serve();
    let client = k.json(&[
        "client",
        "create",
        "--name",
        "meter reader",
        "--grant-type",
        "client_credentials",
        "--scope",
        "meters:read",
        "--json",
    ]);
    let (id, secret) = (
        client["client_id"].as_str().unwrap().to_string(),
        client["client_secret"].as_str().unwrap().to_string(),
    );
    let http = reqwest::Client::new();
    let grant = || {
        http.post(server.url("/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(grant().await.unwrap().status(), 200, "a grant before");
    let mut granted = 1;

    let filler = fill(&disk.path);
    // Every grant commits its audit entry; once the database must grow, it cannot.
    let mut granted_while_full = 0;
    let refused = loop {
        let response = grant().await.unwrap();
        match response.status().as_u16() {
            200 => {
                granted_while_full += 1;
                granted += 1;
            }
            503 => break response,
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
        assert!(
            granted_while_full < 20_000,
            "the database never ran out of room"
        );
    };
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // Reads go on: discovery, the signing keys and liveness need no write.
    for path in ["/.well-known/openid-configuration", "/jwks", "/healthz"] {
        let status = http.get(server.url(path)).send().await.unwrap().status();
        assert_eq!(status, 200, "{path} while the disk is full");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("disk is full") {
        assert!(
            Instant::now() < deadline,
            "no log line names the full disk:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Space comes back: writes succeed again without a restart.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if grant().await.unwrap().status() == 200 {
            granted += 1;
            break;
        }
        assert!(Instant::now() < deadline, "grants never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing is corrupted, and every granted token has its audit entry.
    let db = database(&k).await;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(db);
    drop(server);
    let issued = k
        .ok(&["audit", "export"])
        .lines()
        .filter(|l| l.contains("\"token.issue\"") && l.contains(&format!("client:{id}")))
        .count();
    assert_eq!(
        issued, granted,
        "each granted token has its audit entry, and no other"
    );
    assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
}
