//! How many SQL statements one resident sign-in costs, on each backend: the authorization
//! request, the sign-in page, the password, the way back to the client and the code exchange
//! (an ID token), with the audit entries they commit. The budget is 30 queries (issue #20)
//! in at most 3 transactions; the server logs each statement (`sqlx::query` at debug) inside
//! the span of the request or of the audit writer that ran it, so the count is exact and does
//! not depend on the machine's speed. The driver logs a PostgreSQL transaction's `COMMIT`
//! but not its `BEGIN`, and neither on SQLite: transactions are counted from the `COMMIT`s
//! (a write that is one statement commits by itself and counts as a query only).

use reqwest::header::{ACCEPT_LANGUAGE, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::common::rp::Rp;
use crate::common::{Browser, Kizuna, Server};
use crate::oidc_flows::PASSWORD;

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

async fn sign_in(server: &Server, rp: &Rp, id: &str) {
    let (browser, api) = tagged(server, id);
    let url = rp.authorize_url(server, "openid profile email", &[]);
    let callback = browser.sign_in(&url, "mei", PASSWORD).await;
    let tokens = rp.redeem_with(&api, server, &callback).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
}

/// The install, logging every statement as JSON, and the name of its backend.
fn logging_statements(k: Kizuna) -> (String, Kizuna) {
    let backend = format!("{:?}", k.db.as_ref().expect("a fresh database").backend);
    let k = k.env("KIZUNA_LOG_FORMAT", "json").env(
        "KIZUNA_LOG_LEVEL",
        "warn,kizuna_core::web=info,kizuna_core::audit=info,sqlx::query=debug",
    );
    (backend, k)
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
        let (backend, k) = logging_statements(k);
        let server = k.serve();
        let rp = Rp::register(&k, "statement-budget", &[]);
        k.resident("mei", PASSWORD);
        // The first sign-in fills the caches a running server keeps (client record, keys).
        sign_in(&server, &rp, "warm-up-sign-in").await;
        let mark = server.stderr().lines().count();
        sign_in(&server, &rp, "measured-sign-in").await;

        let counted: Vec<(String, String)> = statements(&server, mark)
            .await
            .iter()
            .filter(|s| {
                s["span"]["request_id"] == "measured-sign-in" || s["span"]["name"] == "audit_writer"
            })
            .flat_map(|s| {
                let text = |key: &str| s[key].as_str().unwrap_or_default().to_string();
                let sql = text("db.statement");
                if !sql.contains(';') {
                    return vec![(text("summary"), sql)];
                }
                // One text of several statements (the audit writer's group commit on
                // SQLite): each counts, its BEGIN aside as everywhere.
                sql.split(';')
                    .map(str::trim)
                    .filter(|part| !part.is_empty() && !part.starts_with("BEGIN"))
                    .map(|part| (part.to_string(), part.to_string()))
                    .collect()
            })
            .collect();
        let commits = counted.iter().filter(|(s, _)| s == "COMMIT").count();
        // A client's record and assurance settings are kept 2 s: a sign-in slower than that
        // (a loaded machine, argon2 in a debug build) reads them again. Those refills are the
        // cache at work, not the sign-in's own cost, so they are not counted.
        let reads = |table: &str| {
            counted
                .iter()
                .filter(|(_, sql)| sql.contains(&format!("FROM {table} WHERE")))
                .count()
        };
        let refills =
            reads("clients").saturating_sub(1) + reads("client_assurance").saturating_sub(1);
        // A connection the pool opens during the sign-in (under load) first runs its PRAGMAs
        // on SQLite: connection set-up, not the sign-in's work.
        let setup = counted
            .iter()
            .filter(|(s, _)| s.starts_with("PRAGMA "))
            .count();
        let queries = counted.len() - commits - refills - setup;
        let listing: Vec<&str> = counted.iter().map(|(s, _)| s.as_str()).collect();
        println!(
            "{backend}: {queries} queries ({refills} cache refills and {setup} connection set-up statements not counted) and {commits} logged COMMITs per sign-in\n{}",
            listing.join("\n")
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

/// An issuance through the CA's HTTP API (issue #20's PostgreSQL target): the request checks
/// its bearer token (revocation and client status in one read), the certificate writer stores the certificate, its change
/// and its audit entry in one call to the database (several certificates share it and the
/// audit head's move under load), and nothing reads the new certificate back one at a time: OCSP responders
/// learn about it from the change feed, a poll's worth at a time.
#[tokio::test]
async fn an_issuance_through_the_http_api_reads_once_and_writes_once_per_table_in_one_call() {
    for k in Kizuna::each_backend().await {
        let (backend, k) = logging_statements(k);
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        let (org, token) = crate::common::enroll::api_issuer(&k, &server).await;
        let issue = |id: &'static str, name: &str| {
            let (_, api) = tagged(&server, id);
            let body = crate::common::enroll::service_request(name, &org);
            let url = server.url("/ca/api/v1/certificates");
            let token = token.clone();
            async move {
                let r = api
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            }
        };
        issue("warm-up", "pump-1.water.city.example").await;
        // A new server's own start-up work (OCSP signers, keys, pre-signing) writes too; on a
        // loaded machine it can still be running: wait until only the feed's polls are left.
        let busy = |line: &&str| {
            line.contains("\"target\":\"sqlx::query\"")
                && !line.contains("FROM cert_changes")
                && !line.contains("serial IN (")
        };
        let mut mark = server.stderr().lines().count();
        for _ in 0..40 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let log = server.stderr();
            let now = log.lines().count();
            let quiet = !log.lines().skip(mark).any(|l| busy(&l));
            mark = now;
            if quiet {
                break;
            }
        }
        issue("measured", "pump-2.water.city.example").await;
        // Past the next change-feed poll, so that its reads are in the window too.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let all: Vec<(Value, String)> = statements(&server, mark)
            .await
            .into_iter()
            .filter(|s| s["span"]["request_id"] != "log-caught-up")
            .map(|s| {
                let sql = s["db.statement"]
                    .as_str()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                (s["span"]["request_id"].clone(), sql)
            })
            .collect();
        let listing: Vec<&str> = all.iter().map(|(_, sql)| sql.as_str()).collect();
        println!("{backend}:\n{}", listing.join("\n"));
        // A signing key read again (the cache at work) is not the request's own cost.
        let request = all
            .iter()
            .filter(|(id, sql)| *id == "measured" && !sql.contains("FROM signing_keys"))
            .count();
        assert_eq!(
            request, 1,
            "{backend}: the bearer token's checks, in one read"
        );
        let written = |table: &str| {
            all.iter()
                .map(|(_, sql)| {
                    sql.matches(&format!("INSERT INTO {table} ")).count()
                        + sql.matches(&format!("UPDATE {table} ")).count()
                })
                .sum::<usize>()
        };
        for table in ["certificates", "cert_changes", "audit_log", "audit_head"] {
            assert_eq!(written(table), 1, "{backend}: {table}");
        }
        let calls = all
            .iter()
            .filter(|(_, sql)| sql.contains("INSERT INTO "))
            .count();
        assert_eq!(
            calls, 1,
            "{backend}: the writer's rows reach the database in one call"
        );
        assert!(
            !listing
                .iter()
                .any(|sql| sql.contains("FROM certificates WHERE ca_id = $1 AND serial = $2")),
            "{backend}: the new certificate is read back one at a time"
        );
    }
}
