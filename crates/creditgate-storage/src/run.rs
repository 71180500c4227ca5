//! Single statements and short transactions on a [`Database`], for the gateway's plain tables
//! (keys, accounts, settings, request records): on SQLite through the writer thread or a reader,
//! on Postgres through the pool.

use creditgate_core::ledger::{LedgerError, LedgerResult};
use tokio_postgres::types::ToSql;

use crate::statement::{pg_error, sqlite_error, sqlite_sql, Param, RowMapper};
use crate::Database;

impl Database {
    /// Runs a write statement; returns the number of rows it changed.
    pub(crate) async fn execute(&self, sql: &'static str, params: Vec<Param>) -> LedgerResult<u64> {
        match self {
            Database::Sqlite(s) => {
                s.write(move |conn, _| {
                    let mut st = conn.prepare_cached(sqlite_sql(sql)).map_err(sqlite_error)?;
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
                    let mut st = conn.prepare_cached(sqlite_sql(sql)).map_err(sqlite_error)?;
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
                            .prepare_cached(sqlite_sql(step.sql))
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
