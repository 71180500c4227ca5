//! The ledger on SQLite: the [`Journal`] statements, and [`LedgerStore`] for [`SqliteStore`].
//!
//! Every statement is answered synchronously (SQLite is in-process), so each primitive returns a
//! ready future and the shared operations run to completion on the writer thread.

use std::future::{ready, Future, Ready};

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    AdjustRequest, Adjusted, Balance, Draw, Entry, ExtendHoldRequest, GrantRequest, Granted, Hold,
    HoldRequest, HoldResolution, LedgerError, LedgerResult, LedgerStore, Lot, Organization,
    RefundRequest, Refunded, ReleaseRequest, Released, SettleRequest, Settlement, VerifyReport,
};
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::UsageRecord;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{sqlite_error, SqliteStore};
use crate::journal::rows::{self, lot_columns, StoredRow};
use crate::journal::{
    audit, ops, run_ready, stored_id, AuditHold, AuditLot, ChargeRow, HoldRow, Journal,
    NewTransfer, OrgState, StoredTransfer, DANGLING_CHECKS, EXPIRY_BATCH,
};
use crate::statement::sqlite_sql;
use crate::usage;

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

impl StoredRow for Row<'_> {
    fn int(&self, i: usize) -> LedgerResult<i64> {
        self.get(i).map_err(sqlite_error)
    }

    fn opt_int(&self, i: usize) -> LedgerResult<Option<i64>> {
        self.get(i).map_err(sqlite_error)
    }

    fn text(&self, i: usize) -> LedgerResult<String> {
        self.get(i).map_err(sqlite_error)
    }

    fn opt_text(&self, i: usize) -> LedgerResult<Option<String>> {
        self.get(i).map_err(sqlite_error)
    }

    fn flag(&self, i: usize) -> LedgerResult<bool> {
        self.get(i).map_err(sqlite_error)
    }
}

fn nanos(row: &Row<'_>, i: usize) -> rusqlite::Result<NanoCredits> {
    row.get::<_, i64>(i).map(NanoCredits::from_nanos)
}

/// Runs one statement that returns no rows.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute(params).map(|_| ())
}

/// Every row of a query, each mapped by `map`.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut map: impl FnMut(&Row<'_>) -> LedgerResult<T>,
) -> LedgerResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    let mut rows = stmt.query(params).map_err(sqlite_error)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        all.push(map(row)?);
    }
    Ok(all)
}

/// The first row of a query mapped by `map`, or `None` if there is none.
fn query_first<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnOnce(&Row<'_>) -> LedgerResult<T>,
) -> LedgerResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    let mut rows = stmt.query(params).map_err(sqlite_error)?;
    match rows.next().map_err(sqlite_error)? {
        Some(row) => map(row).map(Some),
        None => Ok(None),
    }
}

/// Which rows belong to a scope or a scope below it (`team:t1` matches `team:t1/key:k1`): in
/// byte order, the names starting with `<scope>/` lie between `<scope>/` and `<scope>0`.
macro_rules! scope_match {
    () => {
        "(scope = ?1 OR (scope >= ?1 || '/' AND scope < ?1 || '0'))"
    };
}

impl Journal for SqliteJournal<'_> {
    fn organization(
        &mut self,
        id: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Option<Organization>>> + Send {
        now_checked(|| {
            query_first(
                self.conn,
                "SELECT id, name, created_at FROM organizations WHERE id = ?1",
                [id.as_str()],
                |row| rows::organization(row),
            )
        })
    }

    fn organizations(&mut self) -> impl Future<Output = LedgerResult<Vec<Organization>>> + Send {
        now_checked(|| {
            query_all(
                self.conn,
                "SELECT id, name, created_at FROM organizations ORDER BY id",
                [],
                |row| rows::organization(row),
            )
        })
    }

    fn insert_organization(
        &mut self,
        org: &Organization,
    ) -> impl Future<Output = LedgerResult<bool>> + Send {
        now(|| {
            let inserted = self
                .conn
                .prepare_cached(
                    "INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![org.id.as_str(), org.name, org.created_at.millis()])?;
            if inserted == 1 {
                let genesis = ops::genesis_state();
                exec(
                    self.conn,
                    "INSERT INTO org_state (org, debt, last_seq, last_hash)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        org.id.as_str(),
                        genesis.debt.nanos(),
                        genesis.last_seq,
                        genesis.last_hash
                    ],
                )?;
            }
            Ok(inserted == 1)
        })
    }

    fn lock_org(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Option<OrgState>>> + Send {
        // The writer thread holds the only write transaction: reading is locking.
        self.org_state(org)
    }

    fn org_state(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Option<OrgState>>> + Send {
        now_checked(|| {
            query_first(
                self.conn,
                "SELECT debt, last_seq, last_hash FROM org_state WHERE org = ?1",
                [org.as_str()],
                |row| rows::org_state(row),
            )
        })
    }

    fn save_org_state(
        &mut self,
        org: &OrganizationId,
        state: &OrgState,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "UPDATE org_state SET debt = ?2, last_seq = ?3, last_hash = ?4 WHERE org = ?1",
                params![
                    org.as_str(),
                    state.debt.nanos(),
                    state.last_seq,
                    state.last_hash
                ],
            )
        })
    }

    fn transfer(
        &mut self,
        id: &TransferId,
    ) -> impl Future<Output = LedgerResult<Option<StoredTransfer>>> + Send {
        now(|| {
            self.conn
                .prepare_cached("SELECT digest, result FROM transfers WHERE id = ?1")?
                .query_row([id.as_str()], |row| {
                    Ok(StoredTransfer {
                        digest: row.get(0)?,
                        result: row.get(1)?,
                    })
                })
                .optional()
        })
    }

    fn insert_transfer(
        &mut self,
        t: &NewTransfer<'_>,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "INSERT INTO transfers (id, kind, org, digest, result, memo, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.id.as_str(),
                    t.kind,
                    t.org.as_str(),
                    t.digest,
                    t.result,
                    t.memo,
                    t.at.millis()
                ],
            )
        })
    }

    fn insert_entry(&mut self, e: &Entry) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "INSERT INTO entries
                 (org, seq, transfer_id, debit, credit, amount, at, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    e.org.as_str(),
                    e.seq,
                    e.transfer_id.as_str(),
                    e.debit,
                    e.credit,
                    e.amount.nanos(),
                    e.at.millis(),
                    e.prev_hash,
                    e.hash
                ],
            )
        })
    }

    fn entries(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Vec<Entry>>> + Send {
        now_checked(|| {
            query_all(
                self.conn,
                "SELECT seq, transfer_id, debit, credit, amount, at, prev_hash, hash
                 FROM entries WHERE org = ?1 ORDER BY seq",
                [org.as_str()],
                |row| rows::entry(org, row),
            )
        })
    }

    fn lot(&mut self, id: &LotId) -> impl Future<Output = LedgerResult<Option<Lot>>> + Send {
        now_checked(|| {
            let sql = concat!(
                "SELECT ",
                lot_columns!(),
                " FROM lots l LEFT JOIN lot_state s ON s.lot = l.id
                 WHERE l.id = ?1"
            );
            query_first(self.conn, sql, [id.as_str()], |row| rows::lot(row))
        })
    }

    fn spendable_lots(
        &mut self,
        org: &OrganizationId,
        now_: Timestamp,
    ) -> impl Future<Output = LedgerResult<Vec<Lot>>> + Send {
        now_checked(|| {
            let sql = concat!(
                "SELECT ",
                lot_columns!(),
                " FROM lot_state s JOIN lots l ON l.id = s.lot
                 WHERE s.org = ?1 AND s.remaining > 0
                   AND (s.expires_at IS NULL OR s.expires_at > ?2)"
            );
            query_all(
                self.conn,
                sql,
                params![org.as_str(), now_.millis()],
                |row| rows::lot(row),
            )
        })
    }

    fn spendable_total(
        &mut self,
        org: &OrganizationId,
        now_: Timestamp,
    ) -> impl Future<Output = LedgerResult<NanoCredits>> + Send {
        now(|| {
            self.conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(remaining), 0) FROM lot_state
                     WHERE org = ?1 AND remaining > 0
                       AND (expires_at IS NULL OR expires_at > ?2)",
                )?
                .query_row(params![org.as_str(), now_.millis()], |r| nanos(r, 0))
        })
    }

    fn total_remaining(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<NanoCredits>> + Send {
        now(|| {
            self.conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(remaining), 0) FROM lot_state
                     WHERE org = ?1 AND remaining > 0",
                )?
                .query_row([org.as_str()], |r| nanos(r, 0))
        })
    }

    fn insert_lot(
        &mut self,
        lot: &Lot,
        transfer_id: &TransferId,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "INSERT INTO lots (id, org, transfer_id, category, source, amount,
                                   price_per_credit, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    lot.id.as_str(),
                    lot.org.as_str(),
                    transfer_id.as_str(),
                    lot.category.as_str(),
                    lot.source.as_str(),
                    lot.amount.nanos(),
                    lot.price_per_credit.map(|p| p.to_string()),
                    lot.expires_at.map(Timestamp::millis),
                    lot.created_at.millis()
                ],
            )?;
            exec(
                self.conn,
                "INSERT INTO lot_state (lot, org, remaining, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    lot.id.as_str(),
                    lot.org.as_str(),
                    lot.remaining.nanos(),
                    lot.expires_at.map(Timestamp::millis)
                ],
            )
        })
    }

    fn set_lot_remaining(
        &mut self,
        lot: &LotId,
        remaining: NanoCredits,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "UPDATE lot_state SET remaining = ?2 WHERE lot = ?1",
                params![lot.as_str(), remaining.nanos()],
            )
        })
    }

    fn lot_refunded(&mut self, lot: &LotId) -> impl Future<Output = LedgerResult<bool>> + Send {
        now(|| {
            self.conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM lot_refunds WHERE lot = ?1)")?
                .query_row([lot.as_str()], |r| r.get(0))
        })
    }

    fn insert_lot_refund(
        &mut self,
        lot: &LotId,
        transfer_id: &TransferId,
        amount: NanoCredits,
        at: Timestamp,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "INSERT INTO lot_refunds (lot, transfer_id, amount, at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    lot.as_str(),
                    transfer_id.as_str(),
                    amount.nanos(),
                    at.millis()
                ],
            )
        })
    }

    fn expired_lots(
        &mut self,
        now_: Timestamp,
        limit: i64,
    ) -> impl Future<Output = LedgerResult<Vec<LotId>>> + Send {
        now_checked(|| {
            query_all(
                self.conn,
                "SELECT lot FROM lot_state WHERE remaining > 0 AND expires_at <= ?1
                 ORDER BY expires_at, lot LIMIT ?2",
                params![now_.millis(), limit],
                |r| stored_id(LotId::parse, &r.text(0)?),
            )
        })
    }

    fn held(
        &mut self,
        org: &OrganizationId,
        now_: Timestamp,
    ) -> impl Future<Output = LedgerResult<(NanoCredits, u64)>> + Send {
        now(|| {
            self.conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM active_holds
                     WHERE org = ?1 AND expires_at > ?2",
                )?
                .query_row(params![org.as_str(), now_.millis()], |r| {
                    Ok((nanos(r, 0)?, r.get::<_, i64>(1)?.unsigned_abs()))
                })
        })
    }

    fn hold_org(
        &mut self,
        id: &TransferId,
    ) -> impl Future<Output = LedgerResult<Option<OrganizationId>>> + Send {
        now_checked(|| {
            query_first(
                self.conn,
                "SELECT org FROM holds WHERE id = ?1",
                [id.as_str()],
                |r| stored_id(OrganizationId::parse, &r.text(0)?),
            )
        })
    }

    fn hold(
        &mut self,
        id: &TransferId,
    ) -> impl Future<Output = LedgerResult<Option<HoldRow>>> + Send {
        now_checked(|| {
            query_first(
                self.conn,
                "SELECT h.org, h.amount, h.scope, h.created_at, h.expires_at,
                        a.amount, a.expires_at, r.resolution,
                        EXISTS (SELECT 1 FROM charges c WHERE c.hold = h.id),
                        (SELECT COALESCE(SUM(e.amount), 0) FROM hold_extensions e
                         WHERE e.hold = h.id),
                        (SELECT MAX(e.expires_at) FROM hold_extensions e WHERE e.hold = h.id)
                 FROM holds h
                 LEFT JOIN active_holds a ON a.hold = h.id
                 LEFT JOIN hold_resolutions r ON r.hold = h.id
                 WHERE h.id = ?1",
                [id.as_str()],
                |row| rows::hold(id, row),
            )
        })
    }

    fn insert_hold(&mut self, hold: &Hold) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "INSERT INTO holds (id, org, amount, scope, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    hold.id.as_str(),
                    hold.org.as_str(),
                    hold.amount.nanos(),
                    hold.scope,
                    hold.created_at.millis(),
                    hold.expires_at.millis()
                ],
            )?;
            exec(
                self.conn,
                "INSERT INTO active_holds (hold, org, amount, scope, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    hold.id.as_str(),
                    hold.org.as_str(),
                    hold.amount.nanos(),
                    hold.scope,
                    hold.expires_at.millis()
                ],
            )
        })
    }

    fn insert_hold_extension(
        &mut self,
        transfer_id: &TransferId,
        hold: &Hold,
        amount: NanoCredits,
        at: Timestamp,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "INSERT INTO hold_extensions (transfer_id, hold, amount, expires_at, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    transfer_id.as_str(),
                    hold.id.as_str(),
                    amount.nanos(),
                    hold.expires_at.millis(),
                    at.millis()
                ],
            )?;
            exec(
                self.conn,
                "UPDATE active_holds SET amount = ?2, expires_at = ?3 WHERE hold = ?1",
                params![
                    hold.id.as_str(),
                    hold.amount.nanos(),
                    hold.expires_at.millis()
                ],
            )
        })
    }

    fn resolve_hold(
        &mut self,
        hold: &TransferId,
        resolution: HoldResolution,
        transfer_id: Option<&TransferId>,
        at: Timestamp,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "INSERT INTO hold_resolutions (hold, resolution, transfer_id, at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    hold.as_str(),
                    resolution.as_str(),
                    transfer_id.map(TransferId::as_str),
                    at.millis()
                ],
            )?;
            exec(
                self.conn,
                "DELETE FROM active_holds WHERE hold = ?1",
                [hold.as_str()],
            )
        })
    }

    fn insert_charge(
        &mut self,
        c: &ChargeRow<'_>,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now(|| {
            exec(
                self.conn,
                "INSERT INTO charges (hold, transfer_id, org, scope, held, charged, overrun,
                                      debt, late, at, memo)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    c.hold.as_str(),
                    c.transfer_id.as_str(),
                    c.org.as_str(),
                    c.scope,
                    c.held.nanos(),
                    c.charged.nanos(),
                    c.overrun.nanos(),
                    c.debt.nanos(),
                    c.late,
                    c.at.millis(),
                    c.memo
                ],
            )
        })
    }

    fn insert_usage(
        &mut self,
        request: &TransferId,
        org: &OrganizationId,
        at: Timestamp,
        record: &UsageRecord,
    ) -> impl Future<Output = LedgerResult<()>> + Send {
        now_checked(|| {
            let params = usage::usage_params(request, org, at, record)?;
            let mut st = self
                .conn
                .prepare_cached(&sqlite_sql(usage::INSERT_USAGE))
                .map_err(sqlite_error)?;
            st.execute(rusqlite::params_from_iter(params.iter()))
                .map_err(sqlite_error)?;
            let params = usage::rollup_params(org, at, record)?;
            let mut st = self
                .conn
                .prepare_cached(&sqlite_sql(usage::ADD_TO_ROLLUPS))
                .map_err(sqlite_error)?;
            st.execute(rusqlite::params_from_iter(params.iter()))
                .map_err(sqlite_error)?;
            Ok(())
        })
    }

    fn scope_spend(
        &mut self,
        scope: &str,
        since: Timestamp,
        now_: Timestamp,
    ) -> impl Future<Output = LedgerResult<NanoCredits>> + Send {
        now(|| {
            let sql = concat!(
                "SELECT (SELECT COALESCE(SUM(charged), 0) FROM charges
                         WHERE ",
                scope_match!(),
                " AND at >= ?2)
                      + (SELECT COALESCE(SUM(amount), 0) FROM active_holds
                         WHERE ",
                scope_match!(),
                " AND expires_at > ?3)"
            );
            self.conn
                .prepare_cached(sql)?
                .query_row(params![scope, since.millis(), now_.millis()], |r| {
                    nanos(r, 0)
                })
        })
    }

    fn expired_holds(
        &mut self,
        now_: Timestamp,
        limit: i64,
    ) -> impl Future<Output = LedgerResult<Vec<TransferId>>> + Send {
        now_checked(|| {
            query_all(
                self.conn,
                "SELECT hold FROM active_holds WHERE expires_at <= ?1
                 ORDER BY expires_at, hold LIMIT ?2",
                params![now_.millis(), limit],
                |r| stored_id(TransferId::parse, &r.text(0)?),
            )
        })
    }

    fn audit_lots(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Vec<AuditLot>>> + Send {
        now_checked(|| {
            let sql = concat!(
                "SELECT ",
                lot_columns!(),
                ", s.remaining, f.transfer_id, f.amount
                 FROM lots l
                 LEFT JOIN lot_state s ON s.lot = l.id
                 LEFT JOIN lot_refunds f ON f.lot = l.id
                 WHERE l.org = ?1 ORDER BY l.id"
            );
            query_all(self.conn, sql, [org.as_str()], |row| rows::audit_lot(row))
        })
    }

    fn audit_holds(
        &mut self,
        after: Option<&TransferId>,
        limit: i64,
    ) -> impl Future<Output = LedgerResult<Vec<AuditHold>>> + Send {
        now_checked(|| {
            query_all(
                self.conn,
                "SELECT h.id, h.amount, h.expires_at,
                        (SELECT COALESCE(SUM(e.amount), 0) FROM hold_extensions e
                         WHERE e.hold = h.id),
                        (SELECT MAX(e.expires_at) FROM hold_extensions e WHERE e.hold = h.id),
                        r.resolution, r.transfer_id,
                        c.transfer_id, c.held, c.charged, c.overrun, c.debt, c.late,
                        a.amount, a.expires_at, h.org
                 FROM holds h
                 LEFT JOIN hold_resolutions r ON r.hold = h.id
                 LEFT JOIN charges c ON c.hold = h.id
                 LEFT JOIN active_holds a ON a.hold = h.id
                 WHERE ?1 IS NULL OR h.id > ?1
                 ORDER BY h.id LIMIT ?2",
                params![after.map(TransferId::as_str), limit],
                |row| rows::audit_hold(row),
            )
        })
    }

    fn count_transfers(&mut self) -> impl Future<Output = LedgerResult<u64>> + Send {
        now(|| {
            self.conn
                .prepare_cached("SELECT COUNT(*) FROM transfers")?
                .query_row([], |r| r.get::<_, i64>(0).map(i64::unsigned_abs))
        })
    }

    fn dangling_rows(&mut self) -> impl Future<Output = LedgerResult<Vec<String>>> + Send {
        now(|| {
            let mut problems = Vec::new();
            for (what, sql) in DANGLING_CHECKS {
                let n: i64 = self.conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
                if n > 0 {
                    problems.push(format!("{n} {what}"));
                }
            }
            Ok(problems)
        })
    }
}

/// Runs one shared ledger operation as a write on the writer thread.
macro_rules! write_op {
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

impl crate::statement::TxStatements for SqliteJournal<'_> {
    fn exec(
        &mut self,
        sql: &'static str,
        params: &[crate::statement::Param],
    ) -> impl Future<Output = LedgerResult<u64>> + Send {
        now(|| {
            let mut st = self
                .conn
                .prepare_cached(&crate::statement::sqlite_sql(sql))?;
            st.execute(rusqlite::params_from_iter(params.iter()))
                .map(|n| n as u64)
        })
    }

    fn rows<T: Send>(
        &mut self,
        sql: &'static str,
        params: &[crate::statement::Param],
        map: crate::statement::RowMapper<T>,
    ) -> impl Future<Output = LedgerResult<Vec<T>>> + Send {
        now_checked(|| {
            query_all(
                self.conn,
                &crate::statement::sqlite_sql(sql),
                rusqlite::params_from_iter(params.iter()),
                |row| map(row),
            )
        })
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

    async fn reserve(&self, req: HoldRequest) -> LedgerResult<Hold> {
        write_op!(self, |j, now| ops::reserve(j, now, req))
    }

    async fn extend_hold(&self, req: ExtendHoldRequest) -> LedgerResult<Hold> {
        write_op!(self, |j, now| ops::extend_hold(j, now, req))
    }

    async fn settle(&self, req: SettleRequest) -> LedgerResult<Settlement> {
        write_op!(self, |j, now| ops::settle(j, now, req))
    }

    async fn release(&self, req: ReleaseRequest) -> LedgerResult<Released> {
        write_op!(self, |j, now| ops::release(j, now, req))
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
