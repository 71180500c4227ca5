//! Statements written once for both backends: parameters, columns read back, the statements of
//! an open transaction ([`TxStatements`]), and how each driver's errors read in the ledger's
//! terms. SQL uses `$n` placeholders (SQLite reads them as `?n`). This module depends on no other
//! of the crate; `run` executes single statements on a [`crate::Database`], `journal` builds the
//! ledger's transactions on [`TxStatements`].

use creditgate_core::clock::Timestamp;
use creditgate_core::ledger::{LedgerError, LedgerResult};
use creditgate_core::money::NanoCredits;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use creditgate_core::money::MoneyError;
use tokio_postgres::error::SqlState;

/// A parameter of a statement.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(i64),
    Bool(bool),
    Text(String),
    OptInt(Option<i64>),
    OptText(Option<String>),
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Int(v) => rusqlite::ToSql::to_sql(v),
            Param::Bool(v) => rusqlite::ToSql::to_sql(v),
            Param::Text(v) => rusqlite::ToSql::to_sql(v),
            Param::OptInt(v) => rusqlite::ToSql::to_sql(v),
            Param::OptText(v) => rusqlite::ToSql::to_sql(v),
        }
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Int(v) => ToSql::to_sql(v, ty, out),
            Param::Bool(v) => ToSql::to_sql(v, ty, out),
            Param::Text(v) => ToSql::to_sql(v, ty, out),
            Param::OptInt(v) => ToSql::to_sql(v, ty, out),
            Param::OptText(v) => ToSql::to_sql(v, ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty)
            || <String as ToSql>::accepts(ty)
            || <bool as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// Reads the columns of one result row (0-based), whichever backend produced it; a stored
/// value of another type is an error.
pub(crate) trait Columns {
    fn int(&self, i: usize) -> LedgerResult<i64>;
    fn text(&self, i: usize) -> LedgerResult<String>;
    fn opt_int(&self, i: usize) -> LedgerResult<Option<i64>>;
    fn opt_text(&self, i: usize) -> LedgerResult<Option<String>>;
    fn flag(&self, i: usize) -> LedgerResult<bool>;

    fn nanos(&self, i: usize) -> LedgerResult<NanoCredits> {
        self.int(i).map(NanoCredits::from_nanos)
    }

    fn millis(&self, i: usize) -> LedgerResult<Timestamp> {
        self.int(i).map(Timestamp::from_millis)
    }

    fn opt_millis(&self, i: usize) -> LedgerResult<Option<Timestamp>> {
        self.opt_int(i).map(|t| t.map(Timestamp::from_millis))
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> LedgerResult<i64> {
        self.get(i).map_err(sqlite_error)
    }
    fn text(&self, i: usize) -> LedgerResult<String> {
        self.get(i).map_err(sqlite_error)
    }
    fn opt_int(&self, i: usize) -> LedgerResult<Option<i64>> {
        self.get(i).map_err(sqlite_error)
    }
    fn opt_text(&self, i: usize) -> LedgerResult<Option<String>> {
        self.get(i).map_err(sqlite_error)
    }
    fn flag(&self, i: usize) -> LedgerResult<bool> {
        self.get(i).map_err(sqlite_error)
    }
}

impl Columns for tokio_postgres::Row {
    fn int(&self, i: usize) -> LedgerResult<i64> {
        self.try_get(i).map_err(pg_error)
    }
    fn text(&self, i: usize) -> LedgerResult<String> {
        self.try_get(i).map_err(pg_error)
    }
    fn opt_int(&self, i: usize) -> LedgerResult<Option<i64>> {
        self.try_get(i).map_err(pg_error)
    }
    fn opt_text(&self, i: usize) -> LedgerResult<Option<String>> {
        self.try_get(i).map_err(pg_error)
    }
    fn flag(&self, i: usize) -> LedgerResult<bool> {
        self.try_get(i).map_err(pg_error)
    }
}

/// Turns one row into a value.
pub(crate) type RowMapper<T> = fn(&dyn Columns) -> LedgerResult<T>;

/// Statements run inside the transaction a ledger operation opened, so that a module's rows
/// commit or roll back with the money they describe (an order with the lot that credits it).
/// SQL is written once with `$n` placeholders, as for [`Database::execute`]. The ledger's own
/// statements are built on these (`journal::statements`).
pub(crate) trait TxStatements {
    /// The ledger statements whose text differs on this backend.
    const DIALECT: Dialect;

    /// Runs a statement now; returns the number of rows it changed.
    fn exec(
        &mut self,
        sql: &'static str,
        params: &[Param],
    ) -> impl std::future::Future<Output = LedgerResult<u64>> + Send;
    /// Every row of a query, each turned into a value by `map`.
    fn rows<T: Send>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        map: impl FnMut(&dyn Columns) -> LedgerResult<T> + Send,
    ) -> impl std::future::Future<Output = LedgerResult<Vec<T>>> + Send;
    /// A write whose result nothing waits for: Postgres sends it with the next statement (one
    /// round trip for several), SQLite runs it at once. An error surfaces by the commit.
    fn defer(&mut self, sql: &'static str, params: Vec<Param>) -> LedgerResult<()>;
    /// A deferred upsert that adds integers to a row: the first `key` parameters name the row,
    /// the rest are added to it. Additions to one row commute, so a backend may add up those of
    /// several operations and write the row once before their transaction commits (the SQLite
    /// writer does, per commit group: `sqlite::sums`); by default it is a [`Self::defer`].
    fn defer_sum(&mut self, sql: &'static str, key: usize, params: Vec<Param>) -> LedgerResult<()> {
        let _ = key;
        self.defer(sql, params)
    }
}

/// A `$n` statement in SQLite's spelling (`?n`). Each statement is converted once and the
/// conversion kept for the life of the process (the statements are `'static` and a few
/// hundred), so running one costs no copy of its text.
pub(crate) fn sqlite_sql(sql: &'static str) -> &'static str {
    type Converted = std::collections::HashMap<(usize, usize), &'static str>;
    static CONVERTED: std::sync::OnceLock<std::sync::Mutex<Converted>> = std::sync::OnceLock::new();
    if !sql.contains('$') {
        return sql;
    }
    let key = (sql.as_ptr() as usize, sql.len());
    let mut converted = CONVERTED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    converted
        .entry(key)
        .or_insert_with(|| Box::leak(sql.replace('$', "?").into_boxed_str()))
}

/// The statements whose text differs between the backends.
pub(crate) struct Dialect {
    /// Reads an organization's state (`$1` = org), locking its row until the transaction ends
    /// where the backend has row locks.
    pub lock_org: &'static str,
    /// [`Self::lock_org`] for the organization of a hold (`$1` = hold id), found in the same
    /// statement (a hold's organization never changes), with the organization's id last.
    pub lock_hold_org: &'static str,
    /// Charges of a scope and the scopes below it since `$2` plus its holds active at `$3`
    /// (`$1` = scope), as one `BIGINT`.
    pub scope_spend: &'static str,
}

/// Maps a driver error to the ledger's terms: a value out of range (a sum past `i64`) is a
/// money overflow; anything else means the database failed and nothing was written.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> LedgerError {
    if e.code() == Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE) {
        return LedgerError::Money(MoneyError::Overflow);
    }
    match e.as_db_error() {
        Some(db) => LedgerError::Unavailable(format!("postgres: {}", db.message())),
        None => LedgerError::Unavailable(format!("postgres: {e}")),
    }
}

/// Maps a SQLite error to the ledger's terms: an integer overflow in a sum is a money overflow;
/// anything else means the database failed and nothing was written.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> LedgerError {
    if e.to_string().contains("integer overflow") {
        return LedgerError::Money(MoneyError::Overflow);
    }
    LedgerError::Unavailable(format!("sqlite: {e}"))
}

#[cfg(test)]
mod tests {
    use super::sqlite_sql;

    #[test]
    fn sqlite_spelling_is_converted_once() {
        const SQL: &str = "UPDATE t SET a = $2 WHERE id = $1";
        let first = sqlite_sql(SQL);
        assert_eq!(first, "UPDATE t SET a = ?2 WHERE id = ?1");
        // The second call hands out the same conversion, not a new copy.
        assert!(std::ptr::eq(first, sqlite_sql(SQL)));
        assert!(std::ptr::eq(sqlite_sql("SELECT 1"), "SELECT 1"));
    }
}
