//! The release history (issue #18): every ID token with claims about the resident, UserInfo
//! answer and introspection answer naming them is a row of `releases`, written with the
//! release or not at all; `/account/services` lists them (paged, filtered by service and
//! period), exports them as CSV and JSON to the resident alone, and the sweep deletes them
//! after `oidc.release_retention_days`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::rp::Rp;
use crate::common::{Browser, Kizuna, Server, database};
use crate::oidc_flows::browser;

const PASSWORD: &str = "a resident's long passphrase";

/// A service name a CSV writer must quote (a comma) and escape (quotes).
const HOIKU: &str = "Childcare \"Hoiku\", Ward 3";

/// Signs `b` in to `rp` for `scope` and redeems the code: the token response.
async fn sign_in(b: &Browser, server: &Server, rp: &Rp, user: &str, scope: &str) -> Value {
    let callback = b
        .sign_in(&rp.authorize_url(server, scope, &[]), user, PASSWORD)
        .await;
    let tokens = rp.redeem(server, &callback).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    tokens
}

async fn userinfo(server: &Server, access_token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

async fn introspect(server: &Server, rs: &Rp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url("/introspect"))
        .basic_auth(&rs.id, Some(&rs.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn scalar(k: &Kizuna, sql: &str, bind: &str) -> i64 {
    let db = database(k).await;
    let n = sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    n
}

async fn user_id(k: &Kizuna, username: &str) -> String {
    let db = database(k).await;
    let id = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    id
}

/// Text of HTML as a reader sees it (the entities askama writes).
fn unescape(html: &str) -> String {
    html.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The rows of the history table (`<tr>` of its body), as text.
fn history_rows(html: &str) -> Vec<String> {
    let Some(start) = html.find("<table id=\"releases\">") else {
        return Vec::new();
    };
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr>")
        .skip(1)
        .map(|row| unescape(row.split("</tr>").next().unwrap()))
        .collect()
}

/// The `href` of the link marked `rel="…"`.
fn link(html: &str, rel: &str) -> Option<String> {
    let at = html.find(&format!("rel=\"{rel}\""))?;
    let before = &html[..at];
    let start = before.rfind("href=\"")? + "href=\"".len();
    let end = start + html[start..].find('"')?;
    Some(unescape(&html[start..end]))
}

/// Parses CSV with Python's `csv` module (a reader this project did not write).
fn parse_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import csv, io, json, sys\n\
             text = sys.stdin.buffer.read().decode('utf-8-sig')\n\
             print(json.dumps(list(csv.reader(io.StringIO(text, newline='')))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn day(unix: i64) -> String {
    kizuna_core::time::unix_to_rfc3339(unix)[..10].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_history_pages_filters_and_exports_the_residents_own_releases() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let hoiku = Rp::register(&k, HOIKU, &[]);
        let library = Rp::register(&k, "City Library", &[]);
        let api = Rp::register(&k, "City API", &["--scope", "openid"]);
        k.resident("taro", PASSWORD);
        k.resident("hanako", PASSWORD);
        let taro = user_id(&k, "taro").await;
        let hanako = user_id(&k, "hanako").await;

        let b = browser(&server);
        let at_hoiku = sign_in(&b, &server, &hoiku, "taro", "openid profile email").await;
        let at_library = sign_in(&b, &server, &library, "taro", "openid profile").await;
        let hoiku_token = at_hoiku["access_token"].as_str().unwrap();
        let library_token = at_library["access_token"].as_str().unwrap();
        assert_eq!(userinfo(&server, hoiku_token).await.status(), 200);
        // The city's API learns who the token is about: once per token, however often it asks.
        for _ in 0..3 {
            let answer: Value = introspect(&server, &api, library_token)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(answer["active"], true);
        }
        // Another resident's releases, to the same service.
        let other = browser(&server);
        let hers = sign_in(&other, &server, &hoiku, "hanako", "openid profile email").await;
        assert_eq!(
            userinfo(&server, hers["access_token"].as_str().unwrap())
                .await
                .status(),
            200
        );
        // A sign-in with no claims about the person beyond `sub` is no row: nothing but the
        // identifier left, and the token endpoint's audit entry still records it.
        let bare = browser(&server);
        sign_in(&bare, &server, &library, "hanako", "openid").await;

        let (status, html) = b.page("/account/services").await;
        assert_eq!(status, 200, "{html}\n{}", server.stderr());
        let rows = history_rows(&html);
        assert_eq!(rows.len(), 4, "{rows:#?}");
        let row_of = |service: &str, how: &str| {
            rows.iter()
                .find(|r| r.contains(service) && r.contains(how))
                .unwrap_or_else(|| panic!("no {how} row for {service}: {rows:#?}"))
                .clone()
        };
        let signed_in = row_of(HOIKU, "sign-in (tokens issued)");
        assert!(
            signed_in.contains("sub, ")
                && signed_in.contains("preferred_username")
                && signed_in.contains("email"),
            "{signed_in}"
        );
        let library_row = row_of("City Library", "sign-in (tokens issued)");
        assert!(!library_row.contains("email"), "{library_row}");
        let asked = row_of(HOIKU, "asked for your details");
        assert!(asked.contains("email"), "{asked}");
        let checked = row_of("City API", "a service's API checked your token");
        assert!(checked.contains("your identifier only (sub)"), "{checked}");
        assert!(
            html.contains("<label for=\"history-service\">"),
            "labelled filter"
        );
        assert!(html.contains("<label for=\"history-from\">"));
        assert!(html.contains("<label for=\"history-to\">"));
        assert_eq!(
            scalar(
                &k,
                "SELECT COUNT(*) FROM releases WHERE user_id = $1",
                &hanako
            )
            .await,
            2,
            "hanako's ID token and UserInfo answer; her openid-only sign-in is none"
        );

        // More than a page: the history pages by 50, newest first.
        for _ in 0..60 {
            assert_eq!(userinfo(&server, library_token).await.status(), 200);
        }
        let (_, first) = b.page("/account/services").await;
        assert_eq!(history_rows(&first).len(), 50);
        assert!(first.contains("Records: 64 — page 1 / 2"), "{first}");
        assert!(link(&first, "prev").is_none());
        let older = link(&first, "next").expect("a link to the older page");
        let (status, second) = b.page(&older).await;
        assert_eq!(status, 200);
        let second_rows = history_rows(&second);
        assert_eq!(second_rows.len(), 14);
        assert!(
            second_rows.iter().any(|r| r.contains(HOIKU)),
            "the oldest releases are on the last page"
        );
        assert_eq!(
            link(&second, "prev").as_deref(),
            Some("/account/services?page=1")
        );

        // Filtered by service, and by period (days, UTC, both ends included).
        let only = format!("/account/services?service={}", hoiku.id);
        let (_, html) = b.page(&only).await;
        let rows = history_rows(&html);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert!(rows.iter().all(|r| r.contains(HOIKU)), "{rows:#?}");
        let today = day(k.clock().now_unix());
        let tomorrow = day(k.clock().now_unix() + 86_400);
        let (_, html) = b.page(&format!("{only}&from={today}&to={today}")).await;
        assert_eq!(history_rows(&html).len(), 2);
        let (_, html) = b.page(&format!("/account/services?from={tomorrow}")).await;
        assert!(history_rows(&html).is_empty() && html.contains("Nothing yet."));
        let (status, _) = b.page("/account/services?from=23%2F11%2F2026").await;
        assert_eq!(status, 400, "a day that is not a date");

        // The CSV export: a header, then exactly taro's rows; values round-trip.
        let response = b
            .http
            .get(server.url("/account/services/releases.csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/csv; charset=utf-8"
        );
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            disposition.starts_with("attachment; filename=\"kizuna-releases-")
                && disposition.ends_with(".csv\""),
            "{disposition}"
        );
        let csv = parse_csv(&response.bytes().await.unwrap());
        assert_eq!(
            csv[0],
            [
                "time",
                "service",
                "client_id",
                "how",
                "claims",
                "scopes",
                "purpose"
            ]
        );
        let rows = &csv[1..];
        assert_eq!(rows.len(), 64);
        assert_eq!(
            rows.len() as i64,
            scalar(
                &k,
                "SELECT COUNT(*) FROM releases WHERE user_id = $1",
                &taro
            )
            .await
        );
        let hoiku_id_token = rows
            .iter()
            .find(|r| r[2] == hoiku.id && r[3] == "id_token")
            .expect("the ID token release to the childcare service");
        assert_eq!(hoiku_id_token[1], HOIKU, "commas and quotes round-trip");
        let claims: Vec<&str> = hoiku_id_token[4].split(' ').collect();
        assert_eq!(claims[0], "sub");
        assert!(claims.contains(&"email") && claims.contains(&"preferred_username"));
        assert_eq!(hoiku_id_token[5], "openid profile email");
        assert!(rows.iter().all(|r| r.len() == 7));
        assert!(
            rows.iter()
                .any(|r| r[2] == api.id && r[3] == "introspection" && r[4] == "sub")
        );
        assert_eq!(rows.iter().filter(|r| r[3] == "introspection").count(), 1);

        // The JSON export: the same rows, with taro's `sub` and no one else's.
        let response = b
            .http
            .get(server.url("/account/services/releases.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .ends_with(".json\"")
        );
        let text = response.text().await.unwrap();
        assert!(!text.contains(&hanako), "never another resident's data");
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["sub"], taro.as_str());
        let releases = json["releases"].as_array().unwrap();
        assert_eq!(releases.len(), 64);
        let services: Vec<&str> = releases
            .iter()
            .map(|r| r["service"].as_str().unwrap())
            .collect();
        assert!(services.contains(&HOIKU));
        assert!(releases.iter().all(|r| r["purpose"].is_null()));

        // The export follows the filter, and hanako's export is hers alone.
        let filtered = b
            .http
            .get(server.url(&format!(
                "/account/services/releases.csv?service={}",
                hoiku.id
            )))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(parse_csv(&filtered).len(), 1 + 2);
        let hers: Value = other
            .http
            .get(server.url("/account/services/releases.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(hers["sub"], hanako.as_str());
        assert_eq!(hers["releases"].as_array().unwrap().len(), 2);

        // Without a session: the sign-in page, not data.
        let stranger = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for path in [
            "/account/services/releases.csv",
            "/account/services/releases.json",
        ] {
            let response = stranger.get(server.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 303, "{path}");
            assert!(
                response.headers()["location"]
                    .to_str()
                    .unwrap()
                    .starts_with("/login"),
                "{path}"
            );
            let body = response.text().await.unwrap();
            assert!(!body.contains("Library") && !body.contains(&taro), "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_older_than_the_retention_period_are_purged() {
    for k in Kizuna::each_backend().await {
        // The range is checked at start-up.
        let mut k = k.env("KIZUNA_OIDC__RELEASE_RETENTION_DAYS", "10");
        match k.try_serve(&[]) {
            Ok(_) => panic!("a retention of 10 days was accepted"),
            Err(failed) => assert!(
                failed.stderr.contains("oidc.release_retention_days"),
                "{failed}"
            ),
        }
        k.set_env("KIZUNA_OIDC__RELEASE_RETENTION_DAYS", "30");
        let server = k.serve();
        let rp = Rp::register(&k, "City Library", &[]);
        k.resident("taro", PASSWORD);
        let taro = user_id(&k, "taro").await;
        let b = browser(&server);
        let old = sign_in(&b, &server, &rp, "taro", "openid profile").await;
        assert_eq!(
            userinfo(&server, old["access_token"].as_str().unwrap())
                .await
                .status(),
            200
        );
        let count = "SELECT COUNT(*) FROM releases WHERE user_id = $1";
        assert_eq!(scalar(&k, count, &taro).await, 2);
        server.stop();

        // 31 days on, the sweep (it runs as the server starts, then every few minutes)
        // deletes them; a release made now stays.
        k.clock().advance(31 * 86_400);
        let server = k.serve();
        let b = browser(&server);
        sign_in(&b, &server, &rp, "taro", "openid profile").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while scalar(&k, count, &taro).await != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the old releases were not purged: {}",
                server.stderr()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (_, html) = b.page("/account/services").await;
        assert_eq!(history_rows(&html).len(), 1);
        assert!(html.contains("Records are kept for 30 days"), "{html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_cannot_be_recorded_is_not_made() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let rp = Rp::register(&k, "City Library", &[]);
        let api = Rp::register(&k, "City API", &["--scope", "openid"]);
        k.resident("taro", PASSWORD);
        let b = browser(&server);
        let tokens = sign_in(&b, &server, &rp, "taro", "openid profile").await;
        let access = tokens["access_token"].as_str().unwrap();
        let callback = b
            .sign_in(
                &rp.authorize_url(&server, "openid profile", &[]),
                "taro",
                PASSWORD,
            )
            .await;

        // The release history refuses every new row.
        let db = database(&k).await;
        let postgres = k.db.as_ref().is_some_and(|d| d.url.starts_with("postgres"));
        let refuse: &[&str] = if postgres {
            &[
                "CREATE FUNCTION refuse_release() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'no release history'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_release BEFORE INSERT ON releases \
                 FOR EACH ROW EXECUTE FUNCTION refuse_release()",
            ]
        } else {
            &["CREATE TRIGGER refuse_release BEFORE INSERT ON releases \
               BEGIN SELECT RAISE(ABORT, 'no release history'); END"]
        };
        for sql in refuse {
            sqlx::raw_sql(sql).execute(db.pool()).await.unwrap();
        }
        let audited = "SELECT COUNT(*) FROM audit_log WHERE action = $1";
        let issued = scalar(&k, audited, "token.issue").await;

        let redeemed = rp.redeem(&server, &callback).await;
        assert_eq!(redeemed["error"], "server_error", "{redeemed}");
        assert!(redeemed.get("id_token").is_none() && redeemed.get("access_token").is_none());
        assert_eq!(
            scalar(&k, audited, "token.issue").await,
            issued,
            "the issuance rolled back"
        );
        let answer = userinfo(&server, access).await;
        assert_eq!(answer.status(), 500);
        assert!(!answer.text().await.unwrap().contains("preferred_username"));
        assert_eq!(scalar(&k, audited, "userinfo.release").await, 0);
        let answer = introspect(&server, &api, access).await;
        assert_eq!(answer.status(), 500);
        assert!(!answer.text().await.unwrap().contains("\"active\":true"));

        // With the history writable again, the same token works.
        let allow = if postgres {
            "DROP TRIGGER refuse_release ON releases"
        } else {
            "DROP TRIGGER refuse_release"
        };
        sqlx::raw_sql(allow).execute(db.pool()).await.unwrap();
        db.close().await;
        assert_eq!(userinfo(&server, access).await.status(), 200);
        assert_eq!(scalar(&k, audited, "userinfo.release").await, 1);
    }
}
