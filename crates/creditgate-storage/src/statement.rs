//! One statement, either backend: the gateway's own tables (keys, request records, settings) are
//! plain rows, so their SQL is written once with `$n` placeholders and run here on SQLite (as
//! `?n`, through the writer thread or a reader) or on Postgres (through the pool).
//!
//! The ledger does not use this: its operations need one transaction across many statements,
//! which `journal` provides.

use creditgate_core::clock::Timestamp;
use creditgate_core::ledger::{LedgerError, LedgerResult};
use creditgate_core::money::NanoCredits;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::journal::statements::Dialect;
use crate::postgres::pg_error;
use crate::sqlite::sqlite_error;
use crate::Database;

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
}

/// A `$n` statement in SQLite's spelling (`?n`).
pub(crate) fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

impl Database {
    /// Runs a write statement; returns the number of rows it changed.
    pub(crate) async fn execute(&self, sql: &'static str, params: Vec<Param>) -> LedgerResult<u64> {
        match self {
            Database::Sqlite(s) => {
                s.write(move |conn, _| {
                    let mut st = conn
                        .prepare_cached(&sqlite_sql(sql))
                        .map_err(sqlite_error)?;
                    let n = st
                        .execute(rusqlite::params_from_iter(params.iter()))
                        .map_err(sqlite_error)?;
                    Ok(n as u64)
                })
                .await
            }
            Database::Postgres(p) => {
                let client = p.client().await?;
                let st = client.prepare_cached(sql).await.map_err(pg_error)?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                client.execute(&st, &refs).await.map_err(pg_error)
            }
        }
    }

    /// Runs a query and maps every row.
    pub(crate) async fn query<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        map: RowMapper<T>,
    ) -> LedgerResult<Vec<T>> {
        match self {
            Database::Sqlite(s) => {
                s.read(move |conn, _| {
                    let mut st = conn
                        .prepare_cached(&sqlite_sql(sql))
                        .map_err(sqlite_error)?;
                    let mut rows = st
                        .query(rusqlite::params_from_iter(params.iter()))
                        .map_err(sqlite_error)?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next().map_err(sqlite_error)? {
                        out.push(map(row)?);
                    }
                    Ok(out)
                })
                .await
            }
            Database::Postgres(p) => {
                let client = p.client().await?;
                let st = client.prepare_cached(sql).await.map_err(pg_error)?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                let rows = client.query(&st, &refs).await.map_err(pg_error)?;
                rows.iter().map(|r| map(r)).collect()
            }
        }
    }

    /// Runs a query expected to return at most one row.
    pub(crate) async fn query_opt<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        map: RowMapper<T>,
    ) -> LedgerResult<Option<T>> {
        let mut rows = self.query(sql, params, map).await?;
        if rows.len() > 1 {
            return Err(LedgerError::Corrupt(format!(
                "{} rows where one was expected",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }
}

/// One statement of a [`Database::transaction`], with the number of rows it must change
/// (`None`: any).
pub(crate) struct Step {
    pub sql: &'static str,
    pub params: Vec<Param>,
    pub expect: Option<u64>,
}

impl Step {
    pub fn new(sql: &'static str, params: Vec<Param>) -> Self {
        Self {
            sql,
            params,
            expect: None,
        }
    }

    /// The step must change exactly `n` rows, or the whole transaction is rolled back.
    pub fn expect(mut self, n: u64) -> Self {
        self.expect = Some(n);
        self
    }
}

/// Marks the rollback of a transaction whose step did not change what it expected.
const STEP_FAILED: &str = "\u{0}step failed:";

impl Database {
    /// Runs the steps in one transaction. `Ok(Err(i))` when step `i` changed a different number
    /// of rows than it expected: then nothing of the transaction was written.
    pub(crate) async fn transaction(&self, steps: Vec<Step>) -> LedgerResult<Result<(), usize>> {
        let result = match self {
            Database::Sqlite(s) => {
                s.write(move |conn, _| {
                    for (i, step) in steps.iter().enumerate() {
                        let mut st = conn
                            .prepare_cached(&sqlite_sql(step.sql))
                            .map_err(sqlite_error)?;
                        let n = st
                            .execute(rusqlite::params_from_iter(step.params.iter()))
                            .map_err(sqlite_error)? as u64;
                        if step.expect.is_some_and(|e| e != n) {
                            return Err(LedgerError::InvalidRequest(format!("{STEP_FAILED}{i}")));
                        }
                    }
                    Ok(())
                })
                .await
            }
            Database::Postgres(p) => {
                let mut client = p.client().await?;
                let tx = client.transaction().await.map_err(pg_error)?;
                for (i, step) in steps.iter().enumerate() {
                    let st = tx.prepare_cached(step.sql).await.map_err(pg_error)?;
                    let refs: Vec<&(dyn ToSql + Sync)> = step
                        .params
                        .iter()
                        .map(|p| p as &(dyn ToSql + Sync))
                        .collect();
                    let n = tx.execute(&st, &refs).await.map_err(pg_error)?;
                    if step.expect.is_some_and(|e| e != n) {
                        return Ok(Err(i));
                    }
                }
                tx.commit().await.map_err(pg_error)
            }
        };
        match result {
            Ok(()) => Ok(Ok(())),
            Err(LedgerError::InvalidRequest(m)) if m.starts_with(STEP_FAILED) => {
                Ok(Err(m[STEP_FAILED.len()..].parse().unwrap_or(usize::MAX)))
            }
            Err(e) => Err(e),
        }
    }
}
