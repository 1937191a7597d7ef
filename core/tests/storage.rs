//! Storage behaviour on every backend: SQLite always, PostgreSQL when
//! `KIZUNA_TEST_POSTGRES_URL` is set.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use kizuna_core::audit::{self, Actor, AuditEvent, AuditLog, Outcome};
use kizuna_core::custody::{
    self, CustodyError, Kek, KekSource, KeyAlgorithm, KeyBackend, KeyCustody, SoftwareBackend,
};
use kizuna_core::db::{Backend, Db, DbError, DbOptions};
use kizuna_core::orgs::{self, NewOrganization, OrgError, OrgKind};
use kizuna_core::testing::{self, TempDir, TestDb};
use serde_json::json;

fn event(n: usize) -> AuditEvent {
    AuditEvent::new(Actor::system("test"), "test.event", format!("thing:{n}"))
        .details(json!({"n": n, "note": "日本語も"}))
}

async fn append(db: &Db, events: &[AuditEvent]) {
    let mut tx = db.begin().await.unwrap();
    audit::append_in(tx.conn(), events).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn migrations_are_current_and_rerunning_them_changes_nothing() {
    for TestDb { db, fresh } in testing::databases().await {
        let status = db.schema_status().await.unwrap();
        assert!(status.is_current(), "{:?}: {status:?}", fresh.backend);
        assert!(status.applied >= 1);
        db.migrate().await.unwrap();
        assert_eq!(db.schema_status().await.unwrap(), status);
    }
}

#[tokio::test]
async fn a_newer_schema_is_served_while_it_only_expanded_and_refused_once_it_contracted() {
    for TestDb { db, fresh } in testing::databases().await {
        let known = db.schema_status().await.unwrap().expected;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', TRUE, $1, 1)",
        )
        .bind(vec![0u8; 48])
        .execute(db.pool())
        .await
        .unwrap();
        // An expand-only migration of a newer release: this binary keeps serving on it.
        db.migrate().await.unwrap();
        let status = db.schema_status().await.unwrap();
        assert!(status.is_compatible() && !status.is_current(), "{status:?}");
        // A contracting one says which binaries may read the schema now.
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, '99990101000000')")
            .bind(kizuna_core::db::READERS_FROM_KEY)
            .execute(db.pool())
            .await
            .unwrap();
        let err = db.migrate().await.unwrap_err();
        assert!(
            matches!(
                err,
                DbError::NewerThanBinary {
                    applied: 99990101000000,
                    known: k,
                    readers_from: 99990101000000,
                } if k == known
            ),
            "{:?}: {err}",
            fresh.backend
        );
        assert!(err.to_string().contains("newer release"), "{err}");
        assert!(!db.schema_status().await.unwrap().is_compatible());
    }
}

#[tokio::test]
async fn an_unreachable_database_is_retried_then_reported_clearly() {
    let options = DbOptions {
        connect_timeout: std::time::Duration::from_millis(700),
        ..DbOptions::default()
    };
    let err = match Db::connect("postgres://kizuna:pw@127.0.0.1:1/kizuna", &options).await {
        Err(e) => e,
        Ok(_) => panic!("connected to a closed port"),
    };
    let text = err.to_string();
    assert!(
        matches!(err, DbError::Unreachable { attempts, .. } if attempts >= 2),
        "{text}"
    );
    assert!(
        text.contains("postgres://kizuna:***@127.0.0.1:1/kizuna"),
        "{text}"
    );
    assert!(!text.contains(":pw@"), "password leaked: {text}");
}

#[tokio::test]
async fn the_audit_chain_verifies_and_names_the_first_altered_entry() {
    for TestDb { db, fresh } in testing::databases().await {
        let events: Vec<_> = (0..10).map(event).collect();
        append(&db, &events[..4]).await;
        append(&db, &events[4..]).await;
        let report = audit::verify(&db).await.unwrap();
        assert_eq!(report.entries, 10, "{:?}", fresh.backend);
        assert!(report.broken.is_none());

        let (id,): (String,) = sqlx::query_as("SELECT id FROM audit_log WHERE seq = 6")
            .fetch_one(db.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET details = '{\"n\":600}' WHERE seq = 6")
            .execute(db.pool())
            .await
            .unwrap();
        let broken = audit::verify(&db)
            .await
            .unwrap()
            .broken
            .expect("tampering detected");
        assert_eq!(broken.seq, 6);
        assert_eq!(broken.id, id);
        assert!(broken.reason.contains("altered"), "{}", broken.reason);
    }
}

#[tokio::test]
async fn a_large_batch_is_stored_in_order_across_statement_sizes() {
    for TestDb { db, fresh } in testing::databases().await {
        // Every statement size: 127 = 64 + 32 + 16 + 8 + 4 + 2 + 1 on PostgreSQL,
        // 15 × 8 + 4 + 2 + 1 on SQLite.
        append(&db, &(0..127).map(event).collect::<Vec<_>>()).await;
        let report = audit::verify(&db).await.unwrap();
        assert_eq!(report.entries, 127, "{:?}", fresh.backend);
        assert!(report.broken.is_none());
        let targets: Vec<String> = sqlx::query_scalar("SELECT target FROM audit_log ORDER BY seq")
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(targets[126], "thing:126");
    }
}

/// The group commit's one-call append (`append_alone`): batches of every size, after a guess
/// of the chain head that a rolled-back transaction made wrong, chain one linear log.
#[tokio::test]
async fn appends_alone_chain_on_after_a_wrong_guess_and_in_every_statement_size() {
    for TestDb { db, fresh } in testing::databases().await {
        let mut n = 0;
        let mut batch = |size: usize| {
            n += size;
            (n - size..n).map(event).collect::<Vec<_>>()
        };
        let first = audit::append_alone(&db, &batch(3)).await.unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        // 200 = 3 × 64 + 8 on PostgreSQL (four INSERTs in one statement), 25 × 8 on SQLite.
        let big = audit::append_alone(&db, &batch(200)).await.unwrap();
        assert_eq!((big[0].seq, big[199].seq), (4, 203));
        // This process now takes the head to be where the rolled-back append left it.
        let mut tx = db.begin().await.unwrap();
        audit::append_in(tx.conn(), &batch(2)).await.unwrap();
        drop(tx);
        let after = audit::append_alone(&db, &batch(5)).await.unwrap();
        assert_eq!(after[0].seq, 204, "{:?}", fresh.backend);
        assert_eq!(after[0].prev_hash, big[199].hash);
        let report = audit::verify(&db).await.unwrap();
        assert_eq!(report.entries, 208, "{:?}", fresh.backend);
        assert!(report.broken.is_none(), "{:?}", report.broken);
    }
}

/// An append that fails after the head moved (here an INSERT meeting a row already at its
/// place) leaves nothing half-written: the head stays, no transaction is left open on a
/// pooled connection, and the next appends chain on from where the log was.
#[tokio::test]
async fn an_append_alone_failing_part_way_leaves_no_trace_and_the_log_keeps_going() {
    for TestDb { db, fresh } in testing::databases().await {
        let before = audit::append_alone(&db, &[event(1)]).await.unwrap();
        sqlx::query(
            "INSERT INTO audit_log (seq, id, at, actor_kind, actor_id, action, target, outcome, \
             details, prev_hash, hash) VALUES (2, 'squatter', '', 'system', 'test', 'x', 'x', \
             'success', '{}', 'p', 'h')",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let failed = audit::append_alone(&db, &[event(2), event(3)]).await;
        assert!(failed.is_err(), "{:?}: the INSERT must fail", fresh.backend);
        sqlx::query("DELETE FROM audit_log WHERE id = 'squatter'")
            .execute(db.pool())
            .await
            .unwrap();
        // Every pooled connection is used again (four at most): none holds a transaction.
        for round in 0..8 {
            let entries = audit::append_alone(&db, &[event(10 + round)])
                .await
                .unwrap();
            assert_eq!(entries[0].seq, 2 + 2 * round as i64, "{:?}", fresh.backend);
            append(&db, &[event(100 + round)]).await;
        }
        let entries = audit::append_alone(&db, &[event(50)]).await.unwrap();
        assert_eq!(entries[0].seq, 18);
        let report = audit::verify(&db).await.unwrap();
        assert_eq!(report.entries, 18, "{:?}", fresh.backend);
        assert!(report.broken.is_none(), "{:?}", report.broken);
        assert_eq!(before[0].seq, 1);
    }
}

#[tokio::test]
async fn removed_entries_break_the_chain_in_the_middle_and_at_the_end() {
    for TestDb { db, .. } in testing::databases().await {
        append(&db, &(0..5).map(event).collect::<Vec<_>>()).await;
        sqlx::query("DELETE FROM audit_log WHERE seq = 5")
            .execute(db.pool())
            .await
            .unwrap();
        let broken = audit::verify(&db)
            .await
            .unwrap()
            .broken
            .expect("truncation detected");
        assert!(
            broken.reason.contains("removed from the end"),
            "{}",
            broken.reason
        );

        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(db.pool())
            .await
            .unwrap();
        let broken = audit::verify(&db)
            .await
            .unwrap()
            .broken
            .expect("gap detected");
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("missing"), "{}", broken.reason);
    }
}

#[tokio::test]
async fn concurrent_appenders_on_separate_pools_keep_one_linear_chain() {
    for TestDb { db, fresh } in testing::databases().await {
        // Two pools on one database stand for two processes (replicas).
        let other = Db::connect(&fresh.url, &DbOptions::default())
            .await
            .unwrap();
        let (log_a, writer_a) = AuditLog::start(db.clone());
        let (log_b, writer_b) = AuditLog::start(other.clone());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let log = if i % 2 == 0 {
                log_a.clone()
            } else {
                log_b.clone()
            };
            tasks.push(tokio::spawn(
                async move { log.record(event(i)).await.unwrap() },
            ));
        }
        // And in-transaction appends interleaved with the writers.
        for i in 0..20 {
            let db = if i % 2 == 0 {
                db.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                let mut tx = db.begin().await.unwrap();
                let mut entries = audit::append_in(tx.conn(), &[event(1000 + i)])
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                entries.remove(0)
            }));
        }
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.push(task.await.unwrap().seq);
        }
        seqs.sort();
        assert_eq!(seqs, (1..=220).collect::<Vec<i64>>(), "{:?}", fresh.backend);
        drop((log_a, log_b));
        writer_a.await.unwrap();
        writer_b.await.unwrap();
        let report = audit::verify(&db).await.unwrap();
        assert_eq!(report.entries, 220);
        assert!(report.broken.is_none(), "{:?}", report.broken);
    }
}

#[tokio::test]
async fn recorded_events_carry_outcome_and_export_filters_by_time() {
    for TestDb { db, .. } in testing::databases().await {
        let (log, writer) = AuditLog::start(db.clone());
        let denied = log.record(event(1).outcome(Outcome::Denied)).await.unwrap();
        assert_eq!(denied.outcome, "denied");
        log.record(event(2)).await.unwrap();
        drop(log);
        writer.await.unwrap();

        let mut out = Vec::new();
        assert_eq!(audit::export_jsonl(&db, None, &mut out).await.unwrap(), 2);
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["outcome"], "denied");
        assert_eq!(
            lines[1]["details"]["note"], "日本語も",
            "details export as JSON, not a string"
        );
        assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);

        let mut out = Vec::new();
        let n = audit::export_jsonl(&db, Some("2999-01-01T00:00:00.000000Z"), &mut out)
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert!(out.is_empty());
    }
}

fn kek_file(dir: &TempDir, name: &str, bytes: [u8; 32]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(
        &path,
        base64::engine::general_purpose::STANDARD.encode(bytes),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn the_kek_is_created_once_and_a_wrong_or_missing_one_is_refused() {
    for TestDb { db, fresh } in testing::databases().await {
        let dir = TempDir::new("kizuna-kek");
        let default_path = dir.path().join("kek");
        let source = KekSource::File {
            path: default_path.clone(),
            explicit: false,
        };
        custody::open_kek(&db, &source).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&default_path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{:?}", fresh.backend);
        }
        let first = std::fs::read(&default_path).unwrap();
        // Reopening reuses the file.
        custody::open_kek(&db, &source).await.unwrap();
        assert_eq!(std::fs::read(&default_path).unwrap(), first);

        let wrong = kek_file(&dir, "wrong", [9u8; 32]);
        let err = custody::open_kek(
            &db,
            &KekSource::File {
                path: wrong,
                explicit: true,
            },
        )
        .await
        .err()
        .expect("wrong KEK refused");
        assert!(matches!(err, CustodyError::WrongKek), "{err}");

        std::fs::remove_file(&default_path).unwrap();
        let err = custody::open_kek(&db, &source)
            .await
            .err()
            .expect("missing KEK refused");
        assert!(
            matches!(err, CustodyError::KekMissingForExistingData(_)),
            "{err}"
        );
        assert!(
            !default_path.exists(),
            "no new KEK may be created over existing data"
        );

        let err = custody::open_kek(
            &db,
            &KekSource::File {
                path: dir.path().join("absent"),
                explicit: true,
            },
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(err, CustodyError::KekFileMissing(_)), "{err}");
    }
}

#[tokio::test]
async fn stored_keys_are_sealed_and_sign_after_reload() {
    for TestDb { db, fresh } in testing::databases().await {
        let kek_text = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        let kek = custody::open_kek(&db, &KekSource::Inline(kek_text.clone()))
            .await
            .unwrap();
        let custody = KeyCustody::new(db.clone(), Arc::new(SoftwareBackend::new(kek)));
        let mut ids = Vec::new();
        for algorithm in [
            KeyAlgorithm::P256,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let key = custody.generate("test", algorithm).await.unwrap();
            ids.push((key.id().to_string(), key.public_key().clone()));
        }
        // A fresh custody (another replica) loads the keys from the database.
        let replica = KeyCustody::new(
            db.clone(),
            Arc::new(SoftwareBackend::new(Kek::parse(&kek_text).unwrap())),
        );
        for (id, public) in &ids {
            let key = replica.get(id).await.unwrap();
            assert_eq!(key.public_key(), public);
            let sig = key.sign(b"message").unwrap();
            assert!(public.verify(b"message", &sig), "{:?} {id}", fresh.backend);
        }
        assert_eq!(replica.list().await.unwrap().len(), 3);
        assert!(matches!(
            replica.get("nope").await,
            Err(CustodyError::NotFound(_))
        ));

        // What is stored is ciphertext: the public key bytes appear, the private key's
        // PKCS#8 header does not.
        let materials: Vec<Vec<u8>> = sqlx::query_scalar("SELECT material FROM keys")
            .fetch_all(db.pool())
            .await
            .unwrap();
        for material in materials {
            assert!(
                !material.windows(4).any(|w| w == [0x30, 0x81, 0x87, 0x02]),
                "plaintext PKCS#8 stored"
            );
        }
    }
}

/// A value sealed the way releases before KEK ids sealed: nonce ‖ ciphertext ‖ tag.
fn legacy_seal(key: [u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    let nonce = kizuna_core::secret::random_bytes::<12>();
    let mut out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut out,
    )
    .unwrap();
    [nonce.to_vec(), out].concat()
}

#[tokio::test]
async fn a_database_sealed_before_kek_ids_opens_keeps_its_format_and_rotates_whole() {
    for TestDb { db, fresh } in testing::databases().await {
        let b64 = |k: [u8; 32]| base64::engine::general_purpose::STANDARD.encode(k);
        let (old, new) = ([4u8; 32], [5u8; 32]);
        custody::set_meta_value(
            &db,
            "kek_check",
            &b64_bytes(&legacy_seal(
                old,
                b"kizuna-kek-check",
                b"kizuna-kek-check-v1",
            )),
        )
        .await
        .unwrap();
        // An older release's replicas may still run: new values keep the old layout.
        let keyring = custody::open_kek(&db, &KekSource::Inline(b64(old)))
            .await
            .unwrap();
        let custody = KeyCustody::new(db.clone(), Arc::new(SoftwareBackend::new(keyring)));
        let key = custody.generate("test", KeyAlgorithm::P256).await.unwrap();
        let material: Vec<u8> = sqlx::query_scalar("SELECT material FROM keys")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(
            custody::sealed_kek_id(&material),
            None,
            "{:?}",
            fresh.backend
        );

        // The rotation re-seals the key and the check value under the new KEK, with its id.
        let from = custody::open_kek(&db, &KekSource::Inline(b64(old)))
            .await
            .unwrap();
        let mut rotation = custody::Rotation::new(from, Kek::from_bytes(&new));
        let mut tx = db.begin().await.unwrap();
        custody::reseal_keys(tx.conn(), &mut rotation)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(rotation.resealed(), 2);
        assert_eq!(rotation.counts()["kek_check"].resealed, 1);
        assert_eq!(rotation.counts()["software_key"].resealed, 1);
        let material: Vec<u8> = sqlx::query_scalar("SELECT material FROM keys")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(
            custody::sealed_kek_id(&material),
            Some(Kek::from_bytes(&new).id())
        );
        let err = custody::open_kek(&db, &KekSource::Inline(b64(old)))
            .await
            .err()
            .expect("the old KEK alone is refused");
        assert!(matches!(err, CustodyError::WrongKek), "{err}");
        let keyring = custody::open_kek(&db, &KekSource::Inline(b64(new)))
            .await
            .unwrap();
        let replica = KeyCustody::new(db.clone(), Arc::new(SoftwareBackend::new(keyring)));
        let sig = replica.get(key.id()).await.unwrap().sign(b"m").unwrap();
        assert!(key.public_key().verify(b"m", &sig));
        let sealed = replica.seal("totp:u", b"seed").unwrap();
        assert_eq!(
            custody::sealed_kek_id(&sealed),
            Some(Kek::from_bytes(&new).id()),
            "once rotated, new values name their KEK"
        );
    }
}

fn b64_bytes(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn open_only_keks_open_what_they_sealed_and_never_seal() {
    for TestDb { db, .. } in testing::databases().await {
        let dir = TempDir::new("kizuna-kek");
        let old = kek_file(&dir, "old", [6u8; 32]);
        let new = kek_file(&dir, "new", [7u8; 32]);
        let file = |path: &PathBuf| KekSource::File {
            path: path.clone(),
            explicit: true,
        };
        let first = custody::open_kek(&db, &file(&old)).await.unwrap();
        let by_old = SoftwareBackend::new(first).seal_data("totp:u", b"seed");
        // Step 1 of a rotation: the old KEK seals, the new one only opens.
        let step1 = custody::open_keyring(&db, &file(&old), std::slice::from_ref(&new))
            .await
            .unwrap();
        assert_eq!(step1.current().id(), Kek::from_bytes(&[6u8; 32]).id());
        // Step 2: the new KEK seals; the database (still under the old one) opens.
        let step2 = custody::open_keyring(&db, &file(&new), std::slice::from_ref(&old))
            .await
            .unwrap();
        let by_new = SoftwareBackend::new(step2).seal_data("totp:v", b"seed2");
        let step1 = SoftwareBackend::new(
            custody::open_keyring(&db, &file(&old), std::slice::from_ref(&new))
                .await
                .unwrap(),
        );
        assert_eq!(
            step1.open_data("totp:u", &by_old.unwrap()).unwrap(),
            b"seed"
        );
        assert_eq!(
            step1.open_data("totp:v", &by_new.unwrap()).unwrap(),
            b"seed2"
        );
        // Without the old KEK the database is refused; a missing open-only file is named.
        let err = custody::open_kek(&db, &file(&new)).await.err().unwrap();
        assert!(matches!(err, CustodyError::WrongKek), "{err}");
        let absent = dir.path().join("absent");
        let err = custody::open_keyring(&db, &file(&old), &[absent])
            .await
            .err()
            .unwrap();
        assert!(matches!(err, CustodyError::KekFileMissing(_)), "{err}");
    }
}

#[tokio::test]
async fn organizations_are_created_audited_and_found_by_id_or_name() {
    for TestDb { db, .. } in testing::databases().await {
        let org = orgs::create(
            &db,
            Actor::cli(),
            NewOrganization {
                name: "Kizuna Water Works".into(),
                name_ja: Some("絆水道局".into()),
                kind: OrgKind::ServiceProvider,
            },
        )
        .await
        .unwrap();
        assert_eq!(orgs::find(&db, &org.id).await.unwrap(), org);
        assert_eq!(orgs::find(&db, "Kizuna Water Works").await.unwrap(), org);
        assert!(matches!(
            orgs::find(&db, "nobody").await,
            Err(OrgError::NotFound(_))
        ));

        let dup = orgs::create(
            &db,
            Actor::cli(),
            NewOrganization {
                name: " Kizuna Water Works ".into(),
                name_ja: None,
                kind: OrgKind::Other,
            },
        )
        .await;
        assert!(matches!(dup, Err(OrgError::NameTaken(_))), "{dup:?}");
        assert_eq!(orgs::list(&db).await.unwrap().len(), 1);

        let (action, target): (String, String) =
            sqlx::query_as("SELECT action, target FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(action, "org.create");
        assert_eq!(target, format!("org:{}", org.id));
        assert_eq!(
            audit::verify(&db).await.unwrap().entries,
            1,
            "the failed create wrote nothing"
        );
    }
}

#[tokio::test]
async fn run_once_jobs_are_exclusive_across_replicas_on_postgres() {
    for TestDb { db, fresh } in testing::databases().await {
        let held = db.try_job_lock("crl").await.unwrap();
        assert!(held.is_some());
        if fresh.backend == Backend::Postgres {
            let other = Db::connect(&fresh.url, &DbOptions::default())
                .await
                .unwrap();
            assert!(
                other.try_job_lock("crl").await.unwrap().is_none(),
                "lock is exclusive"
            );
            assert!(
                other.try_job_lock("sweep").await.unwrap().is_some(),
                "locks are per job"
            );
            held.unwrap().release().await.unwrap();
            assert!(
                other.try_job_lock("crl").await.unwrap().is_some(),
                "released"
            );
        }
    }
}

#[tokio::test]
async fn connections_the_server_closed_are_replaced_once_they_sat_idle() {
    for TestDb { db, fresh } in testing::databases().await {
        if fresh.backend != Backend::Postgres {
            continue;
        }
        let count = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_head")
                .fetch_one(db.pool())
                .await
        };
        assert_eq!(count().await.unwrap(), 1);
        // An administrator (or a failover) ends every session of the pool.
        let admin = Db::connect(&fresh.url, &DbOptions::default())
            .await
            .unwrap();
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(admin.pool())
        .await
        .unwrap();
        assert!(!ended.is_empty() && ended.iter().all(|e| *e), "{ended:?}");
        // A connection idle past the ping threshold is tested before use and replaced.
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        assert_eq!(count().await.unwrap(), 1, "the first query after the break");
        assert_eq!(count().await.unwrap(), 1);
        admin.close().await;
    }
}

/// A PostgreSQL on the same host reached through its Unix socket, as docs/ha.md advises for
/// a single-host install: the connection is the socket (no server address), the schema
/// migrates and the audit writer's one-call appends chain. Runs where PostgreSQL tests run
/// and the socket directory (`KIZUNA_TEST_POSTGRES_SOCKET_DIR`, default
/// `/var/run/postgresql`) holds the server's socket.
#[tokio::test]
async fn a_postgres_on_this_host_serves_through_its_unix_socket() {
    let Some(tcp) = testing::postgres_url() else {
        println!("skipped: KIZUNA_TEST_POSTGRES_URL is not set");
        return;
    };
    let dir = std::env::var("KIZUNA_TEST_POSTGRES_SOCKET_DIR")
        .unwrap_or_else(|_| "/var/run/postgresql".into());
    if !std::path::Path::new(&dir).join(".s.PGSQL.5432").exists() {
        println!("skipped: no PostgreSQL socket in {dir}");
        return;
    }
    let user = tcp
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(userinfo, _)| userinfo.to_string())
        .unwrap_or_else(|| "postgres".into());
    let url = format!("postgres://{user}@localhost/postgres?host={dir}");
    let TestDb {
        db,
        fresh: _dropped_last,
    } = testing::connect_migrated(testing::fresh_postgres(&url).await).await;
    let over_socket: bool = sqlx::query_scalar("SELECT inet_server_addr() IS NULL")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(over_socket, "connected over TCP, not the socket");
    let (log, writer) = AuditLog::start(db.clone());
    for n in 0..3 {
        log.record(event(n)).await.unwrap();
    }
    drop(log);
    writer.await.unwrap();
    let report = audit::verify(&db).await.unwrap();
    assert_eq!(report.entries, 3);
    assert!(report.broken.is_none(), "{:?}", report.broken);
}
