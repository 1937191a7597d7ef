//! The first-administrator bootstrap, on every backend.

use kizuna_admin::bootstrap::{self, BootstrapError, NewAdministrator};
use kizuna_core::audit;
use kizuna_core::testing::{self, TestDb};

fn admin(username: &str) -> NewAdministrator {
    NewAdministrator {
        username: username.into(),
        email: Some("admin@city.example.jp".into()),
        password: "a long enough passphrase".into(),
        password_confirm: "a long enough passphrase".into(),
    }
}

async fn count(db: &kizuna_core::db::Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

#[tokio::test]
async fn a_token_creates_the_first_administrator_once() {
    for TestDb { db, fresh } in testing::databases().await {
        let core = testing::core(&db).await;
        let token = bootstrap::issue_if_needed(&core)
            .await
            .unwrap()
            .expect("fresh install gets a token");
        let stored: String = sqlx::query_scalar("SELECT token_hash FROM bootstrap_tokens")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_ne!(stored, token, "only the hash is stored");

        let user = bootstrap::redeem(&core, &token, admin("Mayor.Admin"))
            .await
            .unwrap();
        assert_eq!(user.username, "mayor.admin", "{:?}", fresh.backend);
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM role_assignments WHERE role = 'city-admin' AND scope = '*'"
            )
            .await,
            1
        );
        let again = bootstrap::redeem(&core, &token, admin("second")).await;
        assert!(
            matches!(again, Err(BootstrapError::InvalidToken)),
            "{again:?}"
        );
        assert!(
            bootstrap::issue_if_needed(&core).await.unwrap().is_none(),
            "no token once an admin exists"
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM users").await, 1);
        let report = audit::verify(&db).await.unwrap();
        assert!(report.broken.is_none());
    }
}

#[tokio::test]
async fn a_failed_redemption_changes_nothing_and_keeps_the_token() {
    for TestDb { db, .. } in testing::databases().await {
        let core = testing::core(&db).await;
        let token = bootstrap::issue_if_needed(&core).await.unwrap().unwrap();

        let mut mismatch = admin("mayor");
        mismatch.password_confirm = "something else entirely".into();
        assert!(matches!(
            bootstrap::redeem(&core, &token, mismatch).await,
            Err(BootstrapError::PasswordMismatch)
        ));
        let mut short = admin("mayor");
        short.password = "short".into();
        short.password_confirm = "short".into();
        assert!(matches!(
            bootstrap::redeem(&core, &token, short).await,
            Err(BootstrapError::User(_))
        ));
        assert!(matches!(
            bootstrap::redeem(&core, &token, admin("<b>x</b>")).await,
            Err(BootstrapError::User(_))
        ));
        assert_eq!(count(&db, "SELECT COUNT(*) FROM users").await, 0);
        assert!(bootstrap::token_is_usable(&core, &token).await.unwrap());
        bootstrap::redeem(&core, &token, admin("mayor"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn expired_and_unknown_tokens_are_refused_and_audited() {
    for TestDb { db, .. } in testing::databases().await {
        let core = testing::core(&db).await;
        let token = bootstrap::issue_if_needed(&core).await.unwrap().unwrap();
        sqlx::query("UPDATE bootstrap_tokens SET expires_at = expires_at - 3601")
            .execute(db.pool())
            .await
            .unwrap();
        assert!(!bootstrap::token_is_usable(&core, &token).await.unwrap());
        assert!(matches!(
            bootstrap::redeem(&core, &token, admin("mayor")).await,
            Err(BootstrapError::InvalidToken)
        ));
        assert!(matches!(
            bootstrap::redeem(&core, "guessed", admin("mayor")).await,
            Err(BootstrapError::InvalidToken)
        ));
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM audit_log WHERE action = 'bootstrap.redeem' AND outcome = 'denied'").await,
            2
        );
        // A restart while no administrator exists prints a fresh token that works.
        let fresh_token = bootstrap::issue_if_needed(&core).await.unwrap().unwrap();
        bootstrap::redeem(&core, &fresh_token, admin("mayor"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn redeeming_one_token_voids_the_others() {
    for TestDb { db, .. } in testing::databases().await {
        let core = testing::core(&db).await;
        let first = bootstrap::issue_if_needed(&core).await.unwrap().unwrap();
        let second = bootstrap::issue_if_needed(&core).await.unwrap().unwrap();
        bootstrap::redeem(&core, &second, admin("mayor"))
            .await
            .unwrap();
        assert!(!bootstrap::token_is_usable(&core, &first).await.unwrap());
    }
}
