//! Enrollment throughput against the release binary serving TLS with its own certificate:
//! - EST `simpleenroll`s per second over keep-alive TLS (HTTP/1.1), each with its own
//!   one-time batch token (consumed, device registered, certificate issued and audited);
//! - ACME orders per second to certificate: newOrder → authorization → http-01 challenge
//!   (validated by Kizuna against a responder in this process) → finalize → download.
//!
//!
//! `cargo bench --bench enrollment` (SQLite, and PostgreSQL when `KIZUNA_TEST_POSTGRES_URL`
//! is set).
//!
//! Environment: BENCH_SECONDS (default 15), BENCH_CONCURRENCY (default 32 for EST, a quarter
//! of it for ACME), BENCH_TOKENS (default 40000).

// The end-to-end kit, of which a benchmark uses a part.
#[allow(dead_code)]
#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use common::Kizuna;
use common::acme::{Client, NAME, b64, install};
use common::enroll::{Installation, csr, read_tokens};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn est(label: &str, k: Kizuna) {
    let seconds = env_number("BENCH_SECONDS", 15);
    let concurrency = env_number("BENCH_CONCURRENCY", 32) as usize;
    let count = env_number("BENCH_TOKENS", 40_000);
    let i = Installation::start(k.env("KIZUNA_LOG_LEVEL", "warn")).await;
    let csv = i.path("tokens.csv");
    let made = Instant::now();
    i.k.ok(&[
        "enroll",
        "tokens",
        "--org",
        "Streetlights",
        "--profile",
        "device",
        "--model",
        "bench",
        "--count",
        &count.to_string(),
        "--out",
        csv.to_str().unwrap(),
    ]);
    let tokens: Arc<Vec<String>> = Arc::new(read_tokens(&csv));
    eprintln!(
        "{label}: {count} tokens created in {:.1}s",
        made.elapsed().as_secs_f64()
    );
    let body = STANDARD.encode(csr(i.k.dir.path(), "bench", "/CN=bench", &[]));
    let root = reqwest::Certificate::from_pem(&std::fs::read(&i.root).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(root)
        .http1_only()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let url = format!("{}/simpleenroll", i.est);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let server_pid = i.server.pid().to_string();
    let (server_cpu, bench_cpu) = (cpu_seconds(&server_pid), cpu_seconds("self"));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, body, tokens) =
                (http.clone(), url.clone(), body.clone(), tokens.clone());
            let (next, done, failed) = (next.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(n) else { break };
                    let response = http
                        .post(&url)
                        .basic_auth("device", Some(token))
                        .header("content-type", "application/pkcs10")
                        .body(body.clone())
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = done.load(Ordering::Relaxed);
    let server_cpu = cpu_seconds(&server_pid) - server_cpu;
    let bench_cpu = cpu_seconds("self") - bench_cpu;
    drop(http);
    let chain = i.k.ok(&["audit", "verify"]);
    println!(
        "EST {label}: {:.0} simpleenrolls/s ({done} in {elapsed:.1}s, {} failed, concurrency {concurrency}; audit verify: {})",
        done as f64 / elapsed,
        failed.load(Ordering::Relaxed),
        chain.trim()
    );
    println!(
        "EST {label}: CPU per enrollment: server {:.0} µs, load generator {:.0} µs (so {:.0}/s per core of server CPU)",
        server_cpu * 1e6 / done as f64,
        bench_cpu * 1e6 / done as f64,
        done as f64 / server_cpu
    );
}

/// CPU time (user + system) a process has used, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Answers http-01 challenges from a shared table (token → key authorization).
async fn responder(port: u16, answers: Arc<Mutex<HashMap<String, String>>>) {
    use axum::extract::{Path, State};
    let app = axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(
                |State(answers): State<Arc<Mutex<HashMap<String, String>>>>,
                 Path(token): Path<String>| async move {
                    answers
                        .lock()
                        .unwrap()
                        .get(&token)
                        .cloned()
                        .unwrap_or_default()
                },
            ),
        )
        .with_state(answers);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}

/// One order through to its certificate.
async fn one_order(
    client: &Client,
    csr_b64: &str,
    answers: &Mutex<HashMap<String, String>>,
) -> bool {
    let order = client.order(&[NAME]).await;
    if order.status != 201 {
        return false;
    }
    let (url, token) = client.challenge(&order.body, "http-01").await;
    answers.lock().unwrap().insert(
        token.clone(),
        format!("{token}.{}", client.key.thumbprint()),
    );
    client.post(&url, Some(&json!({}))).await;
    let order_url = order.location.clone().unwrap_or_default();
    let mut ready = false;
    for _ in 0..500 {
        let state = client.post(&order_url, None).await;
        match state.body["status"].as_str() {
            Some("ready") => {
                ready = true;
                break;
            }
            Some("pending") => tokio::time::sleep(Duration::from_millis(5)).await,
            _ => break,
        }
    }
    answers.lock().unwrap().remove(&token);
    if !ready {
        return false;
    }
    let finalized = client
        .post(
            order.body["finalize"].as_str().unwrap(),
            Some(&json!({"csr": csr_b64})),
        )
        .await;
    let Some(cert) = finalized.body["certificate"].as_str() else {
        return false;
    };
    let chain = client.post(cert, None).await;
    chain.status == 200
}

async fn acme(label: &str, k: Kizuna) {
    let seconds = env_number("BENCH_SECONDS", 15);
    let concurrency = (env_number("BENCH_CONCURRENCY", 32) / 4).max(1) as usize;
    let http_port = common::free_port();
    let i = install(
        k.env("KIZUNA_LOG_LEVEL", "warn"),
        http_port,
        common::free_port(),
    )
    .await;
    let answers = Arc::new(Mutex::new(HashMap::new()));
    let server = tokio::spawn(responder(http_port, answers.clone()));
    let csr_b64 = b64(&csr(
        i.k.dir.path(),
        "bench",
        &format!("/CN={NAME}"),
        &[&format!("subjectAltName=DNS:{NAME}")],
    ));
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let eab =
            i.k.json(&["acme", "eab", "create", "--org", "Streetlights", "--json"]);
        let mut client = Client::new(&i).await;
        let registered = client
            .register(Some((
                eab["kid"].as_str().unwrap(),
                eab["hmac_key"].as_str().unwrap(),
            )))
            .await;
        assert_eq!(registered.status, 201);
        clients.push(Arc::new(client));
    }
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = clients
        .iter()
        .map(|client| {
            let (client, csr_b64, answers) = (client.clone(), csr_b64.clone(), answers.clone());
            let (done, failed) = (done.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if one_order(&client, &csr_b64, &answers).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    server.abort();
    drop(clients);
    let done = done.load(Ordering::Relaxed);
    println!(
        "ACME {label}: {:.0} orders/s to certificate ({done} in {elapsed:.1}s, {} failed, {concurrency} accounts in parallel)",
        done as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for k in Kizuna::each_backend().await {
        let label = k.db.as_ref().map(|d| d.backend.name()).unwrap_or("sqlite");
        est(label, k).await;
    }
    for k in Kizuna::each_backend().await {
        let label = k.db.as_ref().map(|d| d.backend.name()).unwrap_or("sqlite");
        acme(label, k).await;
    }
}
