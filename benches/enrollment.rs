//! Enrollment throughput against the release binary serving TLS with its own certificate:
//! - EST `simpleenroll`s per second over keep-alive TLS (HTTP/1.1), each with its own
//!   one-time batch token (consumed, device registered, certificate issued and audited);
//! - certificates issued per second through the CA's HTTP API (JSON, bearer token);
//! - ACME orders per second to certificate: newOrder → authorization → http-01 challenge
//!   (validated by Kizuna against a responder in this process) → finalize → download.
//!
//!
//! `cargo bench --bench enrollment` (SQLite, and PostgreSQL when `KIZUNA_TEST_POSTGRES_URL`
//! is set).
//!
//! Environment: BENCH_ONLY (est,http,acme: which to run; default all), BENCH_SECONDS (default 15), BENCH_CONCURRENCY (default 32 for EST, a quarter
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
use common::enroll::{Installation, api_issuer, csr, read_tokens, service_request};

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
    let run = drive(
        seconds,
        concurrency,
        tokens.len(),
        200,
        i.server.pid(),
        move |n| {
            http.post(&url)
                .basic_auth("device", Some(&tokens[n]))
                .header("content-type", "application/pkcs10")
                .body(body.clone())
        },
    )
    .await;
    run.print("EST", label, "simpleenrolls", &i.k.ok(&["audit", "verify"]));
}

/// What one measured run did, and the CPU the server and this process spent on it.
struct Run {
    done: u64,
    failed: u64,
    concurrency: usize,
    elapsed: f64,
    server_cpu: f64,
    bench_cpu: f64,
}

impl Run {
    fn print(&self, what: &str, label: &str, unit: &str, audit: &str) {
        let Run {
            done,
            failed,
            concurrency,
            elapsed,
            server_cpu,
            bench_cpu,
        } = self;
        println!(
            "{what} {label}: {:.0} {unit}/s ({done} in {elapsed:.1}s, {failed} failed, concurrency {concurrency}; audit verify: {})",
            *done as f64 / elapsed,
            audit.trim()
        );
        println!(
            "{what} {label}: CPU per request: server {:.0} µs, load generator {:.0} µs (so {:.0}/s per core of server CPU)",
            server_cpu * 1e6 / *done as f64,
            bench_cpu * 1e6 / *done as f64,
            *done as f64 / server_cpu
        );
    }
}

/// Runs `concurrency` workers for `seconds`, each sending the next of `count` requests that
/// `request(n)` builds, and counts the answers with status `expected` and the others.
async fn drive(
    seconds: u64,
    concurrency: usize,
    count: usize,
    expected: u16,
    server_pid: u32,
    request: impl Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Run {
    let server_pid = server_pid.to_string();
    let (server_cpu, bench_cpu) = (cpu_seconds(&server_pid), cpu_seconds("self"));
    let started = Instant::now();
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (request, next, done, failed) =
                (request.clone(), next.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    match request(n).send().await {
                        Ok(r) if r.status() == expected => {
                            let _ = r.bytes().await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                let status = r.status();
                                eprintln!(
                                    "first failure: {status} {}",
                                    r.text().await.unwrap_or_default()
                                );
                            }
                        }
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first failure: {e}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    Run {
        done: done.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        concurrency,
        elapsed: started.elapsed().as_secs_f64(),
        server_cpu: cpu_seconds(&server_pid) - server_cpu,
        bench_cpu: cpu_seconds("self") - bench_cpu,
    }
}

/// Certificates issued through the CA's HTTP API (`POST /ca/api/v1/certificates`, JSON with
/// a base64 PKCS#10, a bearer token), each request with its own P-256 key, over plain-HTTP
/// keep-alive connections: the path another CA's HTTP figure measures.
async fn http_api(label: &str, k: Kizuna) {
    let seconds = env_number("BENCH_SECONDS", 15);
    let concurrency = env_number("BENCH_CONCURRENCY", 32) as usize;
    let count = env_number("BENCH_TOKENS", 40_000) as usize;
    let k = k.env("KIZUNA_LOG_LEVEL", "warn");
    let server = k.serve();
    let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
    let (org, token) = api_issuer(&k, &server).await;
    let made = Instant::now();
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..count)
            .map(|n| service_request(&format!("pump-{n}.water.city.example"), &org).to_string())
            .collect(),
    );
    eprintln!(
        "{label}: {count} requests made in {:.1}s",
        made.elapsed().as_secs_f64()
    );
    let http = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let url = server.url("/ca/api/v1/certificates");
    let run = drive(
        seconds,
        concurrency,
        bodies.len(),
        201,
        server.pid(),
        move |n| {
            http.post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(bodies[n].clone())
        },
    )
    .await;
    run.print(
        "HTTP API",
        label,
        "certificates",
        &k.ok(&["audit", "verify"]),
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
    // The benchmark's accounts share one address, where a city's ACME clients each have
    // their own: the per-address request budget would measure the limit, not the server.
    let k = k
        .env("KIZUNA_LOG_LEVEL", "warn")
        .env("KIZUNA_CA__ACME__REQUESTS_PER_ADDRESS_PER_MINUTE", "0");
    let i = install(k, http_port, common::free_port()).await;
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

/// One install per backend, on the system's clock as in production.
async fn installs() -> Vec<Kizuna> {
    Kizuna::each_backend()
        .await
        .into_iter()
        .map(Kizuna::system_clock)
        .collect()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    for k in installs().await {
        let label = k.db.as_ref().map(|d| d.backend.name()).unwrap_or("sqlite");
        if wanted("est") {
            est(label, k).await;
        }
    }
    for k in installs().await {
        let label = k.db.as_ref().map(|d| d.backend.name()).unwrap_or("sqlite");
        if wanted("http") {
            http_api(label, k).await;
        }
    }
    for k in installs().await {
        let label = k.db.as_ref().map(|d| d.backend.name()).unwrap_or("sqlite");
        if wanted("acme") {
            acme(label, k).await;
        }
    }
}
