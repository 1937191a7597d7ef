//! Several owners' single-value reads in one statement, `SELECT (…), (…)`: one round trip
//! instead of one per read, while each owner still writes the SQL for its own tables.

use std::marker::PhantomData;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, Arguments, Decode, Encode, Row, Type};

/// Scalar subqueries being put together for one read.
#[derive(Default)]
pub struct OneRead<'q> {
    columns: Vec<String>,
    args: AnyArguments<'q>,
    error: Option<sqlx::error::BoxDynError>,
}

/// Where one subquery's value is in the row that [`OneRead::fetch`] returns.
pub struct Column<T> {
    index: usize,
    value: PhantomData<fn() -> T>,
}

/// Binds a subquery's values, each where its placeholder goes.
pub struct Params<'r, 'q> {
    read: &'r mut OneRead<'q>,
}

impl<'q> Params<'_, 'q> {
    /// Binds `value` and returns its placeholder (`$N`).
    pub fn param<T: 'q + Encode<'q, Any> + Type<Any>>(&mut self, value: T) -> String {
        if let Err(e) = self.read.args.add(value)
            && self.read.error.is_none()
        {
            self.read.error = Some(e);
        }
        format!("${}", self.read.args.len())
    }
}

impl<'q> OneRead<'q> {
    pub fn new() -> Self {
        OneRead::default()
    }

    /// Adds the subquery that `sql` returns (`SELECT one value FROM …`, NULL when it finds no
    /// row), its values bound through [`Params::param`].
    pub fn column<T>(&mut self, sql: impl FnOnce(&mut Params<'_, 'q>) -> String) -> Column<T> {
        let subquery = sql(&mut Params { read: self });
        self.columns.push(format!("({subquery})"));
        Column {
            index: self.columns.len() - 1,
            value: PhantomData,
        }
    }

    /// Runs the reads as one statement.
    pub async fn fetch(mut self, conn: &mut AnyConnection) -> Result<Values, sqlx::Error> {
        if let Some(e) = self.error.take() {
            return Err(sqlx::Error::Encode(e));
        }
        let sql = format!("SELECT {}", self.columns.join(", "));
        let row = sqlx::query_with(&sql, self.args).fetch_one(conn).await?;
        Ok(Values(row))
    }
}

/// The values a [`OneRead`] found.
pub struct Values(AnyRow);

impl Values {
    pub fn get<T>(&self, column: Column<T>) -> Result<T, sqlx::Error>
    where
        T: for<'r> Decode<'r, Any> + Type<Any>,
    {
        self.0.try_get(column.index)
    }
}
