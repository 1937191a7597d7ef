//! Building SQL both databases take: bulk INSERTs in a few fixed batch sizes, the
//! organization filter every listing applies, and `LIKE` patterns.

use super::{AnyConnection, Backend};

/// Rows per INSERT statement on this connection's backend ([`Backend::batch_sizes`]).
pub fn batch_sizes(conn: &AnyConnection) -> &'static [usize] {
    Backend::of(conn).batch_sizes()
}

/// `INSERT INTO table (columns) VALUES ($1, …), (…)` for `rows` rows.
pub fn insert_sql(table_and_columns: &str, columns: usize, rows: usize) -> String {
    format!(
        "INSERT INTO {table_and_columns} VALUES {}",
        values_sql(columns, rows, 1)
    )
}

/// `($first, …), (…)`: `rows` rows of `columns` parameters each, numbered from `first`.
pub fn values_sql(columns: usize, rows: usize, first: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let cols: Vec<String> = (0..columns)
                .map(|c| format!("${}", first + row * columns + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect();
    values.join(", ")
}

/// Splits `items` into chunks of the sizes [`batch_sizes`] allows.
pub fn chunks<'a, T>(items: &'a [T], sizes: &[usize]) -> Vec<&'a [T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let size = sizes
            .iter()
            .copied()
            .find(|s| *s <= rest.len())
            .unwrap_or(1);
        let (chunk, tail) = rest.split_at(size);
        out.push(chunk);
        rest = tail;
    }
    out
}

/// `column IN ($first, …)` for a caller whose rights reach some organizations (with the
/// values to bind), `1 = 1` for a city-wide caller, `1 = 0` for one that reaches none: how
/// every owner narrows a listing to what the caller may see.
pub fn org_clause(
    column: &str,
    reach: &crate::access::Reach,
    first: usize,
) -> (String, Vec<String>) {
    match reach.org_filter() {
        None => ("1 = 1".into(), Vec::new()),
        Some(orgs) if orgs.is_empty() => ("1 = 0".into(), Vec::new()),
        Some(orgs) => {
            let marks: Vec<String> = (0..orgs.len()).map(|i| format!("${}", first + i)).collect();
            (format!("{column} IN ({})", marks.join(", ")), orgs)
        }
    }
}

/// A lower-case `LIKE` pattern containing `text` (wildcards in the text itself dropped).
pub fn like_containing(text: &str) -> String {
    format!("%{}%", text.replace(['%', '_', '\\'], "").to_lowercase())
}
