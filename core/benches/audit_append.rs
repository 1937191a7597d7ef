//! Audit appends per second (per-event transactions, batches of 100, group commit from 64 tasks) on SQLite and, with KIZUNA_TEST_POSTGRES_URL set, PostgreSQL: `cargo bench -p kizuna-core --bench audit_append`.

use std::time::{Duration, Instant};

use kizuna_core::audit::{self, Actor, AuditEvent, AuditLog};
use kizuna_core::db::{Db, DbOptions};
use kizuna_core::testing::{self, FreshDatabase};

/// Events appended in the per-event mode, where every event pays for a whole commit.
const PER_EVENT_EVENTS: usize = 2_000;
/// Events appended in the batched and group-commit modes.
const EVENTS: usize = 20_000;
/// Events per transaction in the batched mode.
const BATCH: usize = 100;
/// Concurrent tasks calling `AuditLog::record` in the group-commit mode.
const TASKS: usize = 64;

#[derive(Clone, Copy)]
enum Mode {
    /// One transaction per event through `append_in`.
    PerEvent,
    /// `append_in` with `BATCH` events per transaction.
    Batched,
    /// `AuditLog::record` from `TASKS` concurrent tasks.
    GroupCommit,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::PerEvent, Mode::Batched, Mode::GroupCommit];

    fn name(self) -> &'static str {
        match self {
            Mode::PerEvent => "per-event",
            Mode::Batched => "batch-100",
            Mode::GroupCommit => "group-commit",
        }
    }

    fn events(self) -> usize {
        match self {
            Mode::PerEvent => PER_EVENT_EVENTS,
            Mode::Batched | Mode::GroupCommit => EVENTS,
        }
    }
}

fn event(i: usize) -> AuditEvent {
    AuditEvent::new(Actor::system("bench"), "bench.event", format!("bench:{i}"))
        .details(serde_json::json!({"i": i, "note": "audit append benchmark", "ok": true}))
}

/// Appends `mode.events()` events and returns how long the appends took.
async fn run_mode(db: &Db, mode: Mode) -> Duration {
    let events: Vec<AuditEvent> = (0..mode.events()).map(event).collect();
    let started = Instant::now();
    match mode {
        Mode::PerEvent | Mode::Batched => {
            let size = if matches!(mode, Mode::PerEvent) {
                1
            } else {
                BATCH
            };
            for chunk in events.chunks(size) {
                let mut tx = db.begin().await.expect("begin");
                audit::append_in(tx.conn(), chunk).await.expect("append");
                tx.commit().await.expect("commit");
            }
        }
        Mode::GroupCommit => {
            let (log, writer) = AuditLog::start(db.clone());
            let per_task = events.len().div_ceil(TASKS);
            let mut events = events;
            let mut tasks = Vec::with_capacity(TASKS);
            while !events.is_empty() {
                let mine = events.split_off(events.len().saturating_sub(per_task));
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    for event in mine {
                        log.record(event).await.expect("record");
                    }
                }));
            }
            for task in tasks {
                task.await.expect("task");
            }
            drop(log);
            writer.await.expect("writer");
        }
    }
    started.elapsed()
}

async fn bench(backend: &str, fresh: FreshDatabase, mode: Mode) {
    let db = Db::connect(&fresh.url, &DbOptions::default())
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    let elapsed = run_mode(&db, mode).await;
    let report = audit::verify(&db).await.expect("verify");
    assert!(
        report.broken.is_none(),
        "{backend} {}: chain broken: {:?}",
        mode.name(),
        report.broken
    );
    assert_eq!(
        report.entries,
        mode.events() as u64,
        "{backend} {}: wrong entry count",
        mode.name()
    );
    let seconds = elapsed.as_secs_f64();
    println!(
        "audit_append backend={backend} mode={} events={} seconds={seconds:.3} appends_per_sec={:.0} chain=ok",
        mode.name(),
        mode.events(),
        mode.events() as f64 / seconds
    );
    db.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for mode in Mode::ALL {
            bench("sqlite", testing::fresh_sqlite(), mode).await;
        }
        if let Some(server) = testing::postgres_url() {
            for mode in Mode::ALL {
                bench("postgres", testing::fresh_postgres(&server).await, mode).await;
            }
        }
    });
}
