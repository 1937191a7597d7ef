//! How many SQL statements one resident sign-in costs, on each backend: the authorization
//! request, the sign-in page, the password, the way back to the client and the code exchange
//! (an ID token), with the audit entries they commit. The budget is 30 queries (issue #20)
//! in at most 3 transactions; the server logs each statement (`sqlx::query` at debug) inside
//! the span of the request or of the audit writer that ran it, so the count is exact and does
//! not depend on the machine's speed. The driver logs a PostgreSQL transaction's `COMMIT`
//! but not its `BEGIN`, and neither on SQLite: transactions are counted from the `COMMIT`s.

use reqwest::header::{ACCEPT_LANGUAGE, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::common::{Browser, Kizuna, Server, query_param};
use crate::oidc_flows::{CALLBACK, PASSWORD, authorize_url, web_client};

const QUERIES: usize = 30;
const TRANSACTIONS: usize = 3;

/// A browser and a token client whose every request carries `X-Request-Id: id`.
fn tagged(server: &Server, id: &str) -> (Browser, reqwest::Client) {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("en"));
    headers.insert("x-request-id", HeaderValue::from_str(id).unwrap());
    let build = |cookies: bool| {
        reqwest::Client::builder()
            .cookie_store(cookies)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers.clone())
            .build()
            .unwrap()
    };
    (
        Browser::with_client(build(true), &server.public),
        build(false),
    )
}

async fn sign_in(server: &Server, rp: &crate::oidc_flows::Rp, id: &str) {
    let (browser, api) = tagged(server, id);
    let url = authorize_url(
        server,
        &[
            ("response_type", "code"),
            ("client_id", &rp.id),
            ("redirect_uri", CALLBACK),
            ("scope", "openid profile email"),
            ("state", "st"),
            ("nonce", "n"),
        ],
    );
    let callback = browser.sign_in(&url, "mei", PASSWORD).await;
    let code = query_param(&callback, "code").expect("a code");
    let tokens: Value = api
        .post(format!("{}/token", server.base))
        .basic_auth(&rp.id, Some(&rp.secret))
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
}

/// The server's statement log lines from `from` (a line count) on, as JSON, once the log has
/// caught up: lines are written in order by a writer thread, so a statement of a later
/// request (`/readyz` reads the schema version) means every earlier one is in.
async fn statements(server: &Server, from: usize) -> Vec<Value> {
    let (_, api) = tagged(server, "log-caught-up");
    api.get(server.url("/readyz")).send().await.unwrap();
    for _ in 0..100 {
        let lines: Vec<Value> = server
            .stderr()
            .lines()
            .skip(from)
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "sqlx::query")
            .collect();
        if lines
            .iter()
            .any(|l| l["span"]["request_id"] == "log-caught-up")
        {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server's log did not catch up:\n{}", server.stderr());
}

#[tokio::test]
async fn a_sign_in_with_its_code_exchange_runs_at_most_30_queries_in_3_transactions() {
    let mut over = Vec::new();
    for k in Kizuna::each_backend().await {
        let backend = format!("{:?}", k.db.as_ref().expect("a fresh database").backend);
        let k = k.env("KIZUNA_LOG_FORMAT", "json").env(
            "KIZUNA_LOG_LEVEL",
            "warn,kizuna_core::web=info,kizuna_core::audit=info,sqlx::query=debug",
        );
        let server = k.serve();
        let rp = web_client(&k, "statement-budget", &["--no-consent"]);
        k.resident("mei", PASSWORD);
        // The first sign-in fills the caches a running server keeps (client record, keys).
        sign_in(&server, &rp, "warm-up-sign-in").await;
        let mark = server.stderr().lines().count();
        sign_in(&server, &rp, "measured-sign-in").await;

        let counted: Vec<String> = statements(&server, mark)
            .await
            .iter()
            .filter(|s| {
                s["span"]["request_id"] == "measured-sign-in" || s["span"]["name"] == "audit_writer"
            })
            .map(|s| s["summary"].as_str().unwrap_or_default().to_string())
            .collect();
        let commits = counted.iter().filter(|s| *s == "COMMIT").count();
        let queries = counted.len() - commits;
        println!(
            "{backend}: {queries} queries and {commits} logged COMMITs per sign-in\n{}",
            counted.join("\n")
        );
        assert!(queries > 0, "no statement was logged");
        if queries > QUERIES || commits > TRANSACTIONS {
            over.push(format!(
                "{backend}: {queries} queries, {commits} transactions"
            ));
        }
    }
    assert!(
        over.is_empty(),
        "over the budget of {QUERIES} queries in {TRANSACTIONS} transactions per sign-in: {over:?}"
    );
}
