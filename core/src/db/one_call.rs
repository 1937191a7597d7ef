//! Several INSERTs sent to the database in one call: one round trip to PostgreSQL, one
//! hand-off to SQLite's worker thread, instead of one per statement. Each owner adds the rows
//! of its own tables. A call may be guarded by an UPDATE that moves a row from the state the
//! caller expects (the audit chain's head): every INSERT then writes only if that move did,
//! so a wrong guess writes nothing and the caller takes the long way. A call runs inside the
//! caller's transaction ([`OneCall::run_in`], [`OneCall::run_guarded_in`]) or, guarded, as a
//! transaction of its own ([`Db::write_in_one_call`]).

use sqlx::any::AnyArguments;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Arguments, Encode, Executor, Type};

use super::{Backend, Db, WriteConn};

/// INSERTs being put together for one call.
pub struct OneCall<'q> {
    backend: Backend,
    guard: Option<Guard>,
    inserts: Vec<String>,
    args: AnyArguments<'q>,
    error: Option<sqlx::error::BoxDynError>,
}

struct Guard {
    update: String,
    /// The rows that exist once the guard moved (`table WHERE …`): on PostgreSQL the rows the
    /// UPDATE returned, on SQLite (whose statements run in turn) a query for the moved row.
    moved: String,
}

/// Binds a statement's parameters in the order of its `$N` placeholders.
pub struct Binder<'c, 'q> {
    call: &'c mut OneCall<'q>,
}

impl<'q> Binder<'_, 'q> {
    pub fn bind<T: 'q + Encode<'q, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        if let Err(e) = self.call.args.add(value)
            && self.call.error.is_none()
        {
            self.call.error = Some(e);
        }
        self
    }
}

impl<'q> OneCall<'q> {
    /// INSERTs for the caller's transaction ([`OneCall::run_in`]).
    pub fn new(backend: Backend) -> Self {
        OneCall {
            backend,
            guard: None,
            inserts: Vec::new(),
            args: AnyArguments::default(),
            error: None,
        }
    }

    /// INSERTs written only if `update` (`UPDATE table SET … WHERE <the expected state>`,
    /// placeholders from `$1`, bound by `bind`) moves its row; run by
    /// [`Db::write_in_one_call`] or [`OneCall::run_guarded_in`]. `moved_on_sqlite` finds the
    /// moved row by its new state (`table WHERE …`, reusing the update's placeholders).
    pub fn guarded_by(
        backend: Backend,
        update: &str,
        moved_on_sqlite: &str,
        bind: impl FnOnce(&mut Binder<'_, 'q>),
    ) -> Self {
        let mut call = OneCall::new(backend);
        call.guard = Some(Guard {
            update: update.to_string(),
            moved: match backend {
                Backend::Postgres => "moved".into(),
                Backend::Sqlite => moved_on_sqlite.to_string(),
            },
        });
        bind(&mut Binder { call: &mut call });
        call
    }

    /// Adds `INSERT INTO table_and_columns` for `rows`, several rows per statement in the
    /// backend's batch sizes; `bind` binds one row's `columns` values.
    pub fn insert<T>(
        &mut self,
        table_and_columns: &str,
        columns: usize,
        rows: &'q [T],
        mut bind: impl FnMut(&mut Binder<'_, 'q>, &'q T),
    ) {
        for chunk in super::chunks(rows, self.backend.batch_sizes()) {
            let first = self.args.len() + 1;
            for row in chunk {
                bind(&mut Binder { call: &mut *self }, row);
            }
            debug_assert_eq!(self.args.len() + 1 - first, columns * chunk.len());
            let values = super::values_sql(columns, chunk.len(), first);
            self.inserts.push(match &self.guard {
                None => format!("INSERT INTO {table_and_columns} VALUES {values}"),
                Some(guard) => format!(
                    "INSERT INTO {table_and_columns} SELECT * FROM (VALUES {values}) AS v \
                     WHERE EXISTS (SELECT 1 FROM {})",
                    guard.moved
                ),
            });
        }
    }

    /// The call's text. PostgreSQL: one statement, the guard and all but the last INSERT in
    /// a `WITH`. SQLite: its statements in turn, between `BEGIN IMMEDIATE` and `COMMIT` when
    /// the call is its `own_transaction`. A guarded call ends by counting the moved rows,
    /// except on SQLite inside the caller's transaction (see [`OneCall::run_guarded_in`]).
    fn sql(&self, own_transaction: bool) -> String {
        let mut inserts = self.inserts.clone();
        match (self.backend, &self.guard) {
            (Backend::Postgres, guard) => {
                let last = match guard {
                    Some(guard) => format!("SELECT COUNT(*) FROM {}", guard.moved),
                    None => inserts.pop().unwrap_or_default(),
                };
                let mut with: Vec<String> = guard
                    .iter()
                    .map(|guard| format!("moved AS ({} RETURNING 1)", guard.update))
                    .collect();
                with.extend(
                    inserts
                        .iter()
                        .enumerate()
                        .map(|(i, insert)| format!("i{i} AS ({insert})")),
                );
                if with.is_empty() {
                    last
                } else {
                    format!("WITH {} {last}", with.join(", "))
                }
            }
            (Backend::Sqlite, None) => inserts.join("; "),
            (Backend::Sqlite, Some(guard)) => {
                let mut statements = vec![guard.update.clone()];
                statements.append(&mut inserts);
                if own_transaction {
                    statements.insert(0, "BEGIN IMMEDIATE".into());
                    statements.push(format!("SELECT COUNT(*) FROM {}", guard.moved));
                    statements.push("COMMIT".into());
                }
                statements.join("; ")
            }
        }
    }

    /// The call's text and values, once every value is bound; `guarded` says which kind of
    /// call the runner takes.
    fn into_query(
        mut self,
        guarded: bool,
        own_transaction: bool,
    ) -> Result<(String, AnyArguments<'q>), sqlx::Error> {
        debug_assert_eq!(self.guard.is_some(), guarded, "a call of the other kind");
        if let Some(e) = self.error.take() {
            return Err(sqlx::Error::Encode(e));
        }
        Ok((self.sql(own_transaction), self.args))
    }

    /// Runs the INSERTs inside the caller's transaction, in one call.
    pub async fn run_in(self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        if self.inserts.is_empty() {
            return Ok(());
        }
        let (sql, args) = self.into_query(false, false)?;
        conn.execute(sqlx::query_with(&sql, args)).await?;
        Ok(())
    }

    /// Runs a guarded call inside the caller's transaction, in one call; true when its guard
    /// moved and everything was written, false when nothing was.
    pub async fn run_guarded_in(self, conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
        let backend = self.backend;
        let (sql, args) = self.into_query(true, false)?;
        match backend {
            Backend::Postgres => moved(sqlx::query_scalar_with(&sql, args).fetch_all(conn).await?),
            // Only UPDATEs and INSERTs: the rows they changed add up to more than none only
            // if the guard moved. (Not so with `BEGIN` and `COMMIT` in the text: SQLite
            // reports the previous statement's count for those.)
            Backend::Sqlite => {
                let result = conn.execute(sqlx::query_with(&sql, args)).await?;
                Ok(result.rows_affected() > 0)
            }
        }
    }
}

impl Db {
    /// Runs a guarded `call` on a writer connection in one call, as its own transaction; true
    /// when its guard moved and everything was written, false when the guess was wrong and
    /// nothing was. A connection the call did not finish on (an error part-way, or the caller
    /// gone) is closed rather than given back, so a transaction it left open never reaches
    /// another caller. Do not call while holding a `WriteTx` or a `WriteConn` in the same task.
    pub async fn write_in_one_call(&self, call: OneCall<'_>) -> Result<bool, sqlx::Error> {
        let (sql, args) = call.into_query(true, true)?;
        let WriteConn { conn, _writer } = self.writer().await?;
        let mut conn = ClosedUnlessFinished(Some(conn));
        // Every row, not one: a fetch that stops at its first row would leave SQLite's
        // `COMMIT` unrun.
        let counted = sqlx::query_scalar_with(&sql, args)
            .fetch_all(&mut **conn.held())
            .await?;
        conn.finished();
        moved(counted)
    }
}

/// Whether a guarded call's closing count found the moved row.
fn moved(counted: Vec<i64>) -> Result<bool, sqlx::Error> {
    Ok(counted.first().is_some_and(|n| *n > 0))
}

/// A pooled connection that is closed when dropped unless [`ClosedUnlessFinished::finished`]
/// gave it back to the pool first.
struct ClosedUnlessFinished(Option<PoolConnection<Any>>);

impl ClosedUnlessFinished {
    fn held(&mut self) -> &mut PoolConnection<Any> {
        self.0.as_mut().expect("held until finished")
    }

    fn finished(mut self) {
        self.0.take();
    }
}

impl Drop for ClosedUnlessFinished {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}
