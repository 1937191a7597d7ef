//! Full authorization-code sign-ins per second against the release binary, password
//! verification (argon2id) included, with the server's peak RSS. Each sign-in is a fresh
//! browser: authorize → sign-in page → password → code → token exchange (ID token).
//!   cargo bench --bench code_flow            (SQLite, and PostgreSQL when
//!                                             KIZUNA_TEST_POSTGRES_URL is set)
//! Environment: BENCH_SECONDS (default 20), BENCH_CONCURRENCY (default 16).

// The end-to-end kit, of which a benchmark uses a part.
#[allow(dead_code)]
#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Browser, Kizuna, query_param};

const PASSWORD: &str = "benchmark passphrase 123";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

async fn run(label: &str, k: Kizuna) {
    let seconds = env_number("BENCH_SECONDS", 20);
    let concurrency = env_number("BENCH_CONCURRENCY", 16);
    let k = k.system_clock().env("KIZUNA_LOG_LEVEL", "warn");
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let client = k.json(&[
        "client",
        "create",
        "--name",
        "bench",
        "--redirect-uri",
        CALLBACK,
        "--no-consent",
        "--json",
    ]);
    k.resident("bench", PASSWORD);
    let id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={id}&redirect_uri={CALLBACK}&scope=openid%20profile&state=s&nonce=n",
        server.public
    );
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (authorize, base, id, secret, done) = (
            authorize.clone(),
            server.public.clone(),
            id.clone(),
            secret.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while Instant::now() < deadline {
                let browser = Browser::new(&base);
                let callback = browser.sign_in(&authorize, "bench", PASSWORD).await;
                let code = query_param(&callback, "code").expect("code");
                let tokens: serde_json::Value = http
                    .post(format!("{base}/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", CALLBACK),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(tokens["id_token"].is_string(), "{tokens}");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let pid = server.pid();
    println!(
        "code_flow {label}: {n} sign-ins in {elapsed:.1} s = {:.1} sign-ins/s (concurrency {concurrency}); server peak RSS {} MB",
        n as f64 / elapsed,
        peak_rss_mb(pid)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run("sqlite", Kizuna::sqlite()).await;
    if let Some(pg) = kizuna_core::testing::postgres_url() {
        run(
            "postgres",
            Kizuna::on(kizuna_core::testing::fresh_postgres(&pg).await),
        )
        .await;
    }
}
