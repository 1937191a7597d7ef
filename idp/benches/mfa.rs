//! Second-factor verification speed on the release profile:
//!   cargo bench -p kizuna-idp --bench mfa
//! - passkey assertions verified by webauthn-rs (ES256 signature, client data, flags), and
//!   the whole second-factor check Kizuna runs (ceremony taken from and passkey updated in
//!   SQLite);
//! - TOTP codes checked (three HMAC-SHA-1 steps), and the whole check (seed opened through
//!   key custody, replay guard updated in SQLite).

#[path = "../tests/support/soft_authenticator.rs"]
mod soft_authenticator;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use webauthn_rs::prelude::*;

use kizuna_idp::mfa::{totp, webauthn};
use kizuna_idp::users::{self, NewUser};
use kizuna_idp::{Idp, MailConfig, MfaConfig, OidcConfig};
use soft_authenticator::SoftAuthenticator;

const ORIGIN: &str = "https://id.city.example";
const RP_ID: &str = "id.city.example";

fn passkey_verification(c: &mut Criterion) {
    let origin = Url::parse(ORIGIN).unwrap();
    let rp = WebauthnBuilder::new(RP_ID, &origin)
        .unwrap()
        .build()
        .unwrap();
    let mut authenticator = SoftAuthenticator::new(RP_ID, ORIGIN);
    let (options, registration) = rp
        .start_passkey_registration(Uuid::new_v4(), "taro", "Taro", None)
        .unwrap();
    let response: RegisterPublicKeyCredential =
        serde_json::from_str(&authenticator.register(&serde_json::to_string(&options).unwrap()))
            .unwrap();
    let passkey = rp
        .finish_passkey_registration(&response, &registration)
        .unwrap();
    let (options, state) = rp.start_passkey_authentication(&[passkey]).unwrap();
    // Counter 0 (as synced passkeys send): the same assertion verifies on every iteration.
    let assertion: PublicKeyCredential = serde_json::from_str(
        &authenticator.assert_with_counter(&serde_json::to_string(&options).unwrap(), 0),
    )
    .unwrap();
    let mut group = c.benchmark_group("passkey");
    group.throughput(Throughput::Elements(1));
    group.bench_function("webauthn-rs assertion verification", |b| {
        b.iter(|| {
            rp.finish_passkey_authentication(&assertion, &state)
                .unwrap()
        })
    });
    group.finish();
}

fn totp_verification(c: &mut Criterion) {
    let seed = [7u8; 20];
    let now = 1_800_000_000;
    let code = totp::hotp(&seed, totp::step_at(now) as u64);
    let mut group = c.benchmark_group("totp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("code check (RFC 6238, 3 steps)", |b| {
        b.iter(|| totp::matching_step(&seed, code, now, 0).unwrap())
    });
    group.finish();
}

/// The second-factor checks as a sign-in runs them, over SQLite.
fn stored_checks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fresh = kizuna_core::testing::fresh_sqlite();
    let (idp, user, mut authenticator, seed) = runtime.block_on(async {
        let t = kizuna_core::testing::connect_migrated(fresh).await;
        let mut core = kizuna_core::testing::core(&t.db).await;
        core.public_url = ORIGIN.into();
        let idp = Idp::new(
            core,
            OidcConfig::default(),
            MfaConfig::default(),
            MailConfig::default(),
            Default::default(),
            std::sync::Arc::new(kizuna_core::testing::NoCertificates),
        )
        .unwrap();
        let mut conn = idp.core.db.conn().await.unwrap();
        let user = users::insert(
            &mut conn,
            NewUser {
                username: "taro".into(),
                email: None,
                name: None,
                password_hash: None,
                org_id: None,
            },
        )
        .await
        .unwrap()
        .id;
        drop(conn);
        let mut authenticator = SoftAuthenticator::new(RP_ID, ORIGIN);
        let (ceremony, options) = webauthn::start_registration(&idp, &user, "taro", "Taro", false)
            .await
            .unwrap();
        webauthn::finish_registration(
            &idp,
            &user,
            &ceremony,
            "key",
            &authenticator.register(&options),
        )
        .await
        .unwrap();
        let enrollment = totp::begin(&idp, &user, "taro").await.unwrap();
        let seed = totp::decode_base32(&enrollment.secret_text).unwrap();
        totp::confirm(
            &idp,
            &user,
            &format!(
                "{:06}",
                totp::hotp(&seed, totp::step_at(kizuna_core::time::now_unix()) as u64)
            ),
        )
        .await
        .unwrap();
        std::mem::forget(t);
        (idp, user, authenticator, seed)
    });
    let mut group = c.benchmark_group("stored");
    group.throughput(Throughput::Elements(1));
    group.bench_function("passkey second factor (start + finish, SQLite)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let (ceremony, options) = webauthn::start_authentication(&idp, &user, false)
                    .await
                    .unwrap();
                webauthn::finish_authentication(
                    &idp,
                    &user,
                    &ceremony,
                    &authenticator.assert(&options),
                )
                .await
                .unwrap();
            })
        })
    });
    // Each check must use a later time step than the last (the replay guard), so the clock
    // the check is given moves on by one step per iteration.
    let mut now = kizuna_core::time::now_unix() + 3600;
    group.bench_function(
        "totp second factor (custody open + replay guard, SQLite)",
        |b| {
            b.iter(|| {
                now += totp::STEP_SECS;
                let code = format!("{:06}", totp::hotp(&seed, totp::step_at(now) as u64));
                runtime
                    .block_on(totp::verify_at(&idp, &user, &code, now))
                    .unwrap();
            })
        },
    );
    group.finish();
}

criterion_group!(
    benches,
    passkey_verification,
    totp_verification,
    stored_checks
);
criterion_main!(benches);
