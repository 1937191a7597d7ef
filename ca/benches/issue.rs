//! Certificates issued and stored per second from PKCS#10 requests (P-256 and Ed25519 keys),
//! on SQLite and — when KIZUNA_TEST_POSTGRES_URL is set — PostgreSQL. Requests are made up
//! front; each issuance parses and verifies the CSR, checks the profile, signs, and commits the
//! certificate with its audit entry.
//!   KIZUNA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p kizuna-ca --bench issue

use std::sync::Arc;
use std::time::Instant;

use kizuna_ca::issue::{IssueRequest, issue};
use kizuna_ca::{Ca, CaConfig};
use kizuna_core::audit::Actor;
use kizuna_core::auth::{AuthFuture, Authenticator};
use kizuna_core::orgs::{self, NewOrganization, OrgKind};
use kizuna_core::testing;

const COUNT: usize = 6_000;
const CONCURRENCY: usize = 64;

/// The benchmark calls the domain directly; no tokens are presented.
struct NoTokens;

impl Authenticator for NoTokens {
    fn authenticate<'a>(&'a self, _token: &'a str) -> AuthFuture<'a> {
        Box::pin(async { Err(kizuna_core::auth::Refused::InvalidToken) })
    }
}

fn requests(org_id: &str, alg: &'static rcgen::SignatureAlgorithm) -> Vec<Vec<u8>> {
    (0..COUNT)
        .map(|i| {
            let key = rcgen::KeyPair::generate_for(alg).expect("key");
            let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
            params.subject_alt_names = vec![rcgen::SanType::URI(
                format!("spiffe://127.0.0.1/org/{org_id}/device/sensor-{i}")
                    .try_into()
                    .expect("ascii"),
            )];
            params.serialize_request(&key).expect("csr").der().to_vec()
        })
        .collect()
}

async fn run(label: &str, db: &kizuna_core::db::Db) {
    let core = testing::core(db).await;
    let ca = Ca::new(core.clone(), CaConfig::default(), Arc::new(NoTokens)).expect("ca");
    kizuna_ca::init(&ca).await.expect("hierarchy");
    let org = orgs::create(
        db,
        Actor::system("bench"),
        NewOrganization {
            name: "Bench".into(),
            name_ja: None,
            kind: OrgKind::DeviceVendor,
        },
    )
    .await
    .expect("org");
    for (name, alg) in [
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let csrs = Arc::new(requests(&org.id, alg));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..CONCURRENCY {
            let (ca, csrs, org_id) = (ca.clone(), csrs.clone(), org.id.clone());
            tasks.push(tokio::spawn(async move {
                for csr in csrs.iter().skip(t).step_by(CONCURRENCY) {
                    issue(
                        &ca,
                        IssueRequest {
                            csr: csr.clone(),
                            profile: "device".into(),
                            sans: None,
                            org_id: Some(org_id.clone()),
                            actor: Actor::system("bench"),
                            internal: false,
                            common_name: None,
                            ca_id: None,
                        },
                    )
                    .await
                    .expect("issue");
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let seconds = started.elapsed().as_secs_f64();
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM certificates")
            .fetch_one(db.pool())
            .await
            .expect("count");
        println!(
            "ca_issue backend={label} key={name} certificates={COUNT} seconds={seconds:.2} issued_per_sec={:.0} stored_total={stored}",
            COUNT as f64 / seconds
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sqlite = testing::connect_migrated(testing::fresh_sqlite()).await;
    run("sqlite", &sqlite.db).await;
    if let Some(url) = testing::postgres_url() {
        let pg = testing::connect_migrated(testing::fresh_postgres(&url).await).await;
        run("postgres", &pg.db).await;
    }
}
