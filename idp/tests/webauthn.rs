//! Passkeys against webauthn-rs over a real database (SQLite, and PostgreSQL when
//! configured), answered by a software authenticator: registration, passwordless and
//! second-factor sign-in, and every bad response the issue names — a wrong challenge, a
//! wrong origin or RP ID, a counter that went backwards (blocked, audited), another
//! account's credential — plus a missing user verification and a replayed ceremony.

#[path = "support/soft_authenticator.rs"]
mod soft_authenticator;

use kizuna_core::db::Db;
use kizuna_core::testing;
use kizuna_idp::mfa::policy::Factor;
use kizuna_idp::mfa::{MfaError, webauthn};
use kizuna_idp::users::{self, NewUser};
use kizuna_idp::{Idp, MailConfig, MfaConfig, OidcConfig};
use soft_authenticator::SoftAuthenticator;

const ORIGIN: &str = "https://id.city.example";
const RP_ID: &str = "id.city.example";

async fn idp(db: &Db, mfa: MfaConfig) -> Idp {
    let mut core = testing::core(db).await;
    core.public_url = ORIGIN.into();
    Idp::new(
        core,
        OidcConfig::default(),
        mfa,
        MailConfig::default(),
        Default::default(),
        std::sync::Arc::new(testing::NoCertificates),
    )
    .unwrap()
}

async fn account(idp: &Idp, name: &str) -> String {
    let mut conn = idp.core.db.conn().await.unwrap();
    users::insert(
        &mut conn,
        NewUser {
            username: name.into(),
            email: Some(format!("{name}@city.example.jp")),
            name: None,
            password_hash: None,
            org_id: None,
        },
    )
    .await
    .unwrap()
    .id
}

/// A registered passkey: the account and its authenticator.
async fn enrolled(idp: &Idp, name: &str, synced: bool) -> (String, SoftAuthenticator) {
    let user = account(idp, name).await;
    let mut authenticator = SoftAuthenticator::new(RP_ID, ORIGIN);
    authenticator.synced = synced;
    let (ceremony, options) = webauthn::start_registration(idp, &user, name, name, false)
        .await
        .unwrap();
    let options_json: serde_json::Value = serde_json::from_str(&options).unwrap();
    assert_eq!(
        options_json["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        options_json["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let response = authenticator.register(&options);
    let info = webauthn::finish_registration(idp, &user, &ceremony, "My phone", &response)
        .await
        .unwrap();
    assert_eq!(info.hardware_bound, i64::from(!synced));
    (user, authenticator)
}

async fn audit_count(idp: &Idp, action: &str, target: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1 AND target = $2")
        .bind(action)
        .bind(format!("user:{target}"))
        .fetch_one(idp.core.db.pool())
        .await
        .unwrap()
}

async fn settle(idp: &Idp) {
    // Failures are audited through the group-commit writer; let it commit.
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if idp
            .core
            .audit
            .record(kizuna_core::audit::AuditEvent::new(
                kizuna_core::audit::Actor::system("test"),
                "test.flush",
                "test",
            ))
            .await
            .is_ok()
        {
            return;
        }
    }
}

#[tokio::test]
async fn a_passkey_registers_and_signs_in_passwordless_and_as_a_second_factor() {
    for t in testing::databases().await {
        let idp = idp(&t.db, MfaConfig::default()).await;
        let (user, mut authenticator) = enrolled(&idp, "taro", false).await;

        let (ceremony, options) = webauthn::start_discoverable(&idp).await.unwrap();
        let (found, factor) =
            webauthn::finish_discoverable(&idp, &ceremony, &authenticator.assert(&options))
                .await
                .unwrap();
        assert_eq!(found, user);
        assert_eq!(factor, Factor::Passkey { hardware: true });

        let (ceremony, options) = webauthn::start_authentication(&idp, &user, false)
            .await
            .unwrap();
        let factor = webauthn::finish_authentication(
            &idp,
            &user,
            &ceremony,
            &authenticator.assert(&options),
        )
        .await
        .unwrap();
        assert_eq!(factor, Factor::Passkey { hardware: true });
        let listed = webauthn::list(&idp, &user).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_at.is_some(), "the last use is recorded");

        // A synced passkey is not hardware-bound (AAL2, not AAL3).
        let (_, mut synced) = enrolled(&idp, "hanako", true).await;
        let (ceremony, options) = webauthn::start_discoverable(&idp).await.unwrap();
        let (_, factor) = webauthn::finish_discoverable(&idp, &ceremony, &synced.assert(&options))
            .await
            .unwrap();
        assert_eq!(factor, Factor::Passkey { hardware: false });
        assert_eq!(audit_count(&idp, "mfa.passkey.register", &user).await, 1);
    }
}

#[tokio::test]
async fn a_response_to_another_challenge_is_refused() {
    for t in testing::databases().await {
        let idp = idp(&t.db, MfaConfig::default()).await;
        let (_, mut authenticator) = enrolled(&idp, "taro", false).await;
        let (_, first_options) = webauthn::start_discoverable(&idp).await.unwrap();
        let (second, _) = webauthn::start_discoverable(&idp).await.unwrap();
        let answer = authenticator.assert(&first_options);
        match webauthn::finish_discoverable(&idp, &second, &answer).await {
            Err(MfaError::Rejected(why)) => {
                assert!(why.to_lowercase().contains("challenge"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // A ceremony works once: the second finish finds nothing.
        assert!(matches!(
            webauthn::finish_discoverable(&idp, &second, &answer).await,
            Err(MfaError::Expired)
        ));
    }
}

#[tokio::test]
async fn a_wrong_origin_or_rp_id_is_refused() {
    for t in testing::databases().await {
        let idp = idp(&t.db, MfaConfig::default()).await;
        let (user, mut authenticator) = enrolled(&idp, "taro", false).await;
        authenticator.origin = "https://id.city.example.evil.test".into();
        let (ceremony, options) = webauthn::start_authentication(&idp, &user, false)
            .await
            .unwrap();
        match webauthn::finish_authentication(
            &idp,
            &user,
            &ceremony,
            &authenticator.assert(&options),
        )
        .await
        {
            Err(MfaError::Rejected(why)) => assert!(why.contains("origin"), "{why}"),
            other => panic!("{other:?}"),
        }
        authenticator.origin = ORIGIN.into();
        authenticator.rp_id = "evil.test".into();
        let (ceremony, options) = webauthn::start_authentication(&idp, &user, false)
            .await
            .unwrap();
        match webauthn::finish_authentication(
            &idp,
            &user,
            &ceremony,
            &authenticator.assert(&options),
        )
        .await
        {
            Err(MfaError::Rejected(why)) => {
                assert!(why.to_lowercase().contains("relying party id"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // Registration checks them too.
        let other = account(&idp, "jiro").await;
        let mut evil = SoftAuthenticator::new("evil.test", ORIGIN);
        let (ceremony, options) = webauthn::start_registration(&idp, &other, "jiro", "jiro", false)
            .await
            .unwrap();
        assert!(matches!(
            webauthn::finish_registration(&idp, &other, &ceremony, "key", &evil.register(&options))
                .await,
            Err(MfaError::Rejected(_))
        ));
        assert!(webauthn::list(&idp, &other).await.unwrap().is_empty());
        settle(&idp).await;
        assert!(
            audit_count(&idp, "mfa.passkey.verify", &user).await >= 2,
            "refusals are audited"
        );
    }
}

#[tokio::test]
async fn a_counter_that_goes_backwards_blocks_the_passkey() {
    for t in testing::databases().await {
        let idp = idp(&t.db, MfaConfig::default()).await;
        let (user, mut authenticator) = enrolled(&idp, "taro", false).await;
        for _ in 0..3 {
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
        }
        // A clone that was copied at counter 1.
        let (ceremony, options) = webauthn::start_authentication(&idp, &user, false)
            .await
            .unwrap();
        let cloned = authenticator.assert_with_counter(&options, 1);
        assert!(matches!(
            webauthn::finish_authentication(&idp, &user, &ceremony, &cloned).await,
            Err(MfaError::PossiblyCloned)
        ));
        let listed = webauthn::list(&idp, &user).await.unwrap();
        assert_eq!(listed[0].possibly_cloned, 1, "flagged");
        assert_eq!(
            audit_count(&idp, "mfa.passkey.clone_suspected", &user).await,
            1
        );
        // Blocked: even the real authenticator's next assertion is refused now.
        assert!(matches!(
            webauthn::start_authentication(&idp, &user, false).await,
            Err(MfaError::NotEnrolled)
        ));
        let (ceremony, options) = webauthn::start_discoverable(&idp).await.unwrap();
        assert!(matches!(
            webauthn::finish_discoverable(&idp, &ceremony, &authenticator.assert(&options)).await,
            Err(MfaError::PossiblyCloned)
        ));
    }
}

#[tokio::test]
async fn another_accounts_credential_is_refused() {
    for t in testing::databases().await {
        let idp = idp(&t.db, MfaConfig::default()).await;
        let (alice, mut alices) = enrolled(&idp, "alice", false).await;
        let (bob, _) = enrolled(&idp, "bob", false).await;
        // Bob's second factor answered with Alice's passkey.
        let (ceremony, options) = webauthn::start_authentication(&idp, &bob, false)
            .await
            .unwrap();
        assert!(matches!(
            webauthn::finish_authentication(&idp, &bob, &ceremony, &alices.assert(&options)).await,
            Err(MfaError::ForeignCredential)
        ));
        // Alice's credential claiming to be Bob's account (user handle) in a passwordless sign-in.
        let (ceremony, options) = webauthn::start_discoverable(&idp).await.unwrap();
        alices.user_handle = webauthn::user_handle(&bob).as_bytes().to_vec();
        assert!(matches!(
            webauthn::finish_discoverable(&idp, &ceremony, &alices.assert(&options)).await,
            Err(MfaError::ForeignCredential)
        ));
        settle(&idp).await;
        assert_eq!(audit_count(&idp, "mfa.passkey.verify", &bob).await, 2);
        let _ = alice;
    }
}

#[tokio::test]
async fn user_verification_is_required() {
    for t in testing::databases().await {
        let idp = idp(&t.db, MfaConfig::default()).await;
        let (user, mut authenticator) = enrolled(&idp, "taro", false).await;
        authenticator.user_verified = false;
        let (ceremony, options) = webauthn::start_authentication(&idp, &user, false)
            .await
            .unwrap();
        assert!(matches!(
            webauthn::finish_authentication(
                &idp,
                &user,
                &ceremony,
                &authenticator.assert(&options)
            )
            .await,
            Err(MfaError::Rejected(_))
        ));
        let (ceremony, options) = webauthn::start_discoverable(&idp).await.unwrap();
        assert!(
            webauthn::finish_discoverable(&idp, &ceremony, &authenticator.assert(&options))
                .await
                .is_err()
        );
        // Malformed JSON is refused, not a panic.
        let (ceremony, _) = webauthn::start_discoverable(&idp).await.unwrap();
        assert!(matches!(
            webauthn::finish_discoverable(&idp, &ceremony, "{not json").await,
            Err(MfaError::Rejected(_))
        ));
    }
}

#[tokio::test]
async fn staff_accounts_must_register_an_allowed_attested_model() {
    let dir = testing::TempDir::new("kizuna-attestation");
    let ca = dir.path().join("vendor-root.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Vendor Attestation Root",
        ])
        .arg("-keyout")
        .arg(dir.path().join("vendor-root.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl");
    assert!(made.status.success());
    let mfa = MfaConfig {
        staff_authenticators: vec![kizuna_idp::mfa::config::StaffAuthenticator {
            aaguid: "2fc0579f-8113-47ea-b116-bb5a8db9202a".into(),
            ca_file: ca.clone(),
            name: "Vendor key".into(),
        }],
        ..MfaConfig::default()
    };
    mfa.validate().unwrap();
    for t in testing::databases().await {
        let idp = idp(&t.db, mfa.clone()).await;
        let staff = account(&idp, "clerk").await;
        let mut authenticator = SoftAuthenticator::new(RP_ID, ORIGIN);
        let (ceremony, options) =
            webauthn::start_registration(&idp, &staff, "clerk", "clerk", true)
                .await
                .unwrap();
        let asked: serde_json::Value = serde_json::from_str(&options).unwrap();
        assert_eq!(asked["publicKey"]["attestation"], "direct");
        // A self-made authenticator without attestation is not on the list.
        assert!(
            webauthn::finish_registration(
                &idp,
                &staff,
                &ceremony,
                "key",
                &authenticator.register(&options)
            )
            .await
            .is_err()
        );
        assert!(webauthn::list(&idp, &staff).await.unwrap().is_empty());
        // Residents are not bound by the staff list.
        let resident = account(&idp, "resident").await;
        let (ceremony, options) =
            webauthn::start_registration(&idp, &resident, "resident", "resident", false)
                .await
                .unwrap();
        let mut theirs = SoftAuthenticator::new(RP_ID, ORIGIN);
        webauthn::finish_registration(
            &idp,
            &resident,
            &ceremony,
            "key",
            &theirs.register(&options),
        )
        .await
        .unwrap();
    }
}
