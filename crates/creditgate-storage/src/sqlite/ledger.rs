//! The ledger on SQLite: statements inside the writer's transaction, and [`LedgerStore`] for
//! [`SqliteStore`].
//!
//! Every statement is answered synchronously (SQLite is in-process), so each primitive returns a
//! ready future and the shared operations run to completion on the writer thread.

use std::future::{ready, Future, Ready};

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::ledger::{
    AdjustRequest, Adjusted, Balance, Draw, Entry, ExtendHoldRequest, GrantRequest, Granted, Hold,
    HoldRequest, HoldResolution, LeaseRequest, LedgerError, LedgerResult, LedgerStore,
    Organization, RefundRequest, Refunded, ReleaseRequest, Released, SettleRequest, Settlement,
    VerifyReport,
};
use creditgate_core::money::NanoCredits;
use rusqlite::Connection;

use super::{sqlite_error, SqliteStore};
use crate::journal::{audit, credit_line, ops, run_ready, Journal, EXPIRY_BATCH};
use crate::statement::{sqlite_sql, Columns, Dialect, Param, TxStatements};

/// The journal statements over one SQLite connection inside an open transaction.
pub(crate) struct SqliteJournal<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteJournal<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }
}

type Done<T> = Ready<LedgerResult<T>>;

/// Runs a synchronous statement block as a ready future.
fn now<T>(f: impl FnOnce() -> rusqlite::Result<T>) -> Done<T> {
    ready(f().map_err(sqlite_error))
}

/// Like [`now`] for blocks that can also fail in ledger terms (a corrupt stored value).
fn now_checked<T>(f: impl FnOnce() -> LedgerResult<T>) -> Done<T> {
    ready(f())
}

/// Every row of a query, each mapped by `map`.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut map: impl FnMut(&dyn Columns) -> LedgerResult<T>,
) -> LedgerResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    let mut rows = stmt.query(params).map_err(sqlite_error)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        all.push(map(row)?);
    }
    Ok(all)
}

/// Which rows belong to a scope or a scope below it (`team:t1` matches `team:t1/key:k1`): in
/// byte order, the names starting with `<scope>/` lie between `<scope>/` and `<scope>0`.
macro_rules! scope_match {
    () => {
        "(scope = $1 OR (scope >= $1 || '/' AND scope < $1 || '0'))"
    };
}

/// SQLite's statements where the text differs from Postgres's.
const DIALECT: Dialect = Dialect {
    // The writer thread holds the only write transaction: reading is locking.
    lock_org: concat!(
        "SELECT debt, last_seq, last_hash, ",
        credit_line!(),
        " FROM org_state WHERE org = $1"
    ),
    lock_hold_org: concat!(
        "SELECT debt, last_seq, last_hash, ",
        credit_line!(),
        ", org FROM org_state WHERE org = (SELECT org FROM holds WHERE id = $1)"
    ),
    scope_spend: concat!(
        "SELECT CAST((SELECT COALESCE(SUM(charged), 0) FROM charges WHERE ",
        scope_match!(),
        " AND at >= $2) + (SELECT COALESCE(SUM(amount), 0) FROM active_holds WHERE ",
        scope_match!(),
        " AND expires_at > $3) AS BIGINT)"
    ),
};

/// Runs one shared ledger operation as a write on the writer thread (`rerunnable <synced>`:
/// with [`SqliteStore::write_rerunnable`], for an operation that clones what it consumes).
macro_rules! write_op {
    (rerunnable $synced:literal, $store:expr, |$j:ident, $now:ident| $op:expr) => {
        $store
            .write_rerunnable($synced, move |conn, $now| {
                let $j = &mut SqliteJournal::new(conn);
                run_ready($op)?
            })
            .await
    };
    ($store:expr, |$j:ident, $now:ident| $op:expr) => {
        $store
            .write(move |conn, $now| {
                let $j = &mut SqliteJournal::new(conn);
                run_ready($op)?
            })
            .await
    };
}

pub(crate) use write_op;

impl TxStatements for SqliteJournal<'_> {
    const DIALECT: Dialect = DIALECT;

    fn exec(
        &mut self,
        sql: &'static str,
        params: &[Param],
    ) -> impl Future<Output = LedgerResult<u64>> + Send {
        now(|| {
            let mut st = self.conn.prepare_cached(sqlite_sql(sql))?;
            st.execute(rusqlite::params_from_iter(params.iter()))
                .map(|n| n as u64)
        })
    }

    fn rows<T: Send>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        map: impl FnMut(&dyn Columns) -> LedgerResult<T> + Send,
    ) -> impl Future<Output = LedgerResult<Vec<T>>> + Send {
        let params = rusqlite::params_from_iter(params.iter());
        now_checked(|| query_all(self.conn, sqlite_sql(sql), params, map))
    }

    fn defer(&mut self, sql: &'static str, params: Vec<Param>) -> LedgerResult<()> {
        run_ready(self.exec(sql, &params))?.map(|_| ())
    }

    fn defer_sum(&mut self, sql: &'static str, key: usize, params: Vec<Param>) -> LedgerResult<()> {
        match super::sums::add(sql, key, params) {
            Ok(added) => added,
            Err(params) => self.defer(sql, params),
        }
    }
}

/// Runs one shared read as a snapshot read on a reader connection.
macro_rules! read_op {
    ($store:expr, |$j:ident, $now:ident| $op:expr) => {
        $store
            .read(move |conn, $now| {
                let $j = &mut SqliteJournal::new(conn);
                run_ready($op)?
            })
            .await
    };
}

impl LedgerStore for SqliteStore {
    async fn create_organization(
        &self,
        id: OrganizationId,
        name: String,
    ) -> LedgerResult<Organization> {
        write_op!(self, |j, now| ops::create_organization(j, now, id, name))
    }

    async fn organization(&self, id: &OrganizationId) -> LedgerResult<Organization> {
        let id = id.clone();
        read_op!(self, |j, _now| async move {
            j.organization(&id)
                .await?
                .ok_or(LedgerError::UnknownOrganization(id))
        })
    }

    async fn organizations(&self) -> LedgerResult<Vec<Organization>> {
        read_op!(self, |j, _now| j.organizations())
    }

    async fn grant(&self, req: GrantRequest) -> LedgerResult<Granted> {
        write_op!(self, |j, now| ops::grant(j, now, req))
    }

    // The request path's operations: rerunnable, so they run without a savepoint of their own
    // (`docs/ledger.md`). A hold and its growth are not synced on their own: lost only with this
    // process (a power loss), when the request they cover is lost too; the settlement that ends
    // them is synced, and with it every hold before it in the WAL.
    async fn reserve(&self, req: HoldRequest) -> LedgerResult<Hold> {
        write_op!(rerunnable false, self, |j, now| ops::reserve(j, now, req.clone()))
    }

    async fn extend_hold(&self, req: ExtendHoldRequest) -> LedgerResult<Hold> {
        write_op!(rerunnable false, self, |j, now| ops::extend_hold(j, now, req.clone()))
    }

    async fn settle(&self, req: SettleRequest) -> LedgerResult<Settlement> {
        write_op!(rerunnable true, self, |j, now| ops::settle(j, now, req.clone()))
    }

    async fn settle_leased_group(&self, reqs: Vec<SettleRequest>) -> LedgerResult<Vec<Settlement>> {
        write_op!(rerunnable true, self, |j, now| ops::settle_leased_group(j, now, &reqs))
    }

    async fn release(&self, req: ReleaseRequest) -> LedgerResult<Released> {
        write_op!(rerunnable true, self, |j, now| ops::release(j, now, req.clone()))
    }

    async fn lease(&self, req: LeaseRequest) -> LedgerResult<Hold> {
        write_op!(self, |j, now| ops::lease(j, now, req))
    }

    async fn expire_holds(&self) -> LedgerResult<Vec<TransferId>> {
        write_op!(self, |j, now| async move {
            let mut expired = Vec::new();
            loop {
                let due = j.expired_holds(now, EXPIRY_BATCH).await?;
                for id in &due {
                    if ops::expire_hold(j, now, id).await? {
                        expired.push(id.clone());
                    }
                }
                if (due.len() as i64) < EXPIRY_BATCH {
                    return Ok(expired);
                }
            }
        })
    }

    async fn sweep_expired_lots(&self) -> LedgerResult<Vec<Draw>> {
        write_op!(self, |j, now| async move {
            let mut swept = Vec::new();
            loop {
                let due = j.expired_lots(now, EXPIRY_BATCH).await?;
                for id in &due {
                    swept.extend(ops::expire_lot(j, now, id).await?);
                }
                if (due.len() as i64) < EXPIRY_BATCH {
                    return Ok(swept);
                }
            }
        })
    }

    async fn refund_lot(&self, req: RefundRequest) -> LedgerResult<Refunded> {
        write_op!(self, |j, now| ops::refund_lot(j, now, req))
    }

    async fn adjust(&self, req: AdjustRequest) -> LedgerResult<Adjusted> {
        write_op!(self, |j, now| ops::adjust(j, now, req))
    }

    async fn balance(&self, org: &OrganizationId) -> LedgerResult<Balance> {
        let org = org.clone();
        read_op!(
            self,
            |j, now| async move { audit::balance(j, now, &org).await }
        )
    }

    async fn hold(&self, id: &TransferId) -> LedgerResult<Option<(Hold, Option<HoldResolution>)>> {
        let id = id.clone();
        read_op!(self, |j, now| async move { audit::hold(j, now, &id).await })
    }

    async fn scope_spend(&self, scope: &str, since: Timestamp) -> LedgerResult<NanoCredits> {
        let scope = scope.to_owned();
        read_op!(self, |j, now| async move {
            j.scope_spend(&scope, since, now).await
        })
    }

    async fn entries(&self, org: &OrganizationId) -> LedgerResult<Vec<Entry>> {
        let org = org.clone();
        read_op!(self, |j, _now| async move { j.entries(&org).await })
    }

    async fn verify(&self) -> LedgerResult<VerifyReport> {
        read_op!(self, |j, _now| audit::verify(j))
    }
}
