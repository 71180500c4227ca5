//! The ledger on Postgres: the [`Journal`] statements, and [`LedgerStore`] for [`PgStore`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    AdjustRequest, Adjusted, Balance, Draw, Entry, ExtendHoldRequest, GrantRequest, Granted, Hold,
    HoldRequest, HoldResolution, LedgerError, LedgerResult, LedgerStore, Lot, Organization,
    RefundRequest, Refunded, ReleaseRequest, Released, SettleRequest, Settlement, VerifyReport,
};
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::UsageRecord;
use deadpool_postgres::Transaction;
use futures_util::future::join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::{is_retryable, pg_error, PgStore, MAX_ATTEMPTS};
use crate::journal::rows::{self, lot_columns, StoredRow};
use crate::journal::{
    audit, ops, stored_id, AuditHold, AuditLot, ChargeRow, HoldRow, Journal, NewTransfer, OrgState,
    StoredTransfer, DANGLING_CHECKS, EXPIRY_BATCH,
};
use crate::usage;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];
/// An owned statement parameter, kept until a deferred write is sent.
type Owned = Box<dyn ToSql + Send + Sync>;

fn own<T: ToSql + Send + Sync + 'static>(value: T) -> Owned {
    Box::new(value)
}

/// The journal statements inside one open Postgres transaction.
pub(crate) struct PgJournal<'t, 'c> {
    tx: &'t Transaction<'c>,
    /// Set when a statement lost a race to another transaction (worth one more try).
    pub(crate) conflict: AtomicBool,
    /// Writes whose results nothing waits for, sent together with the next read or before the
    /// commit: one round trip for several statements while the organization's row is locked.
    pending: Vec<(&'static str, Vec<Owned>)>,
}

impl<'t, 'c> PgJournal<'t, 'c> {
    pub(crate) fn new(tx: &'t Transaction<'c>) -> Self {
        Self {
            tx,
            conflict: AtomicBool::new(false),
            pending: Vec::new(),
        }
    }

    /// Queues a write; it runs, in order, before any later statement of this transaction.
    fn defer(&mut self, sql: &'static str, params: Vec<Owned>) -> LedgerResult<()> {
        self.pending.push((sql, params));
        Ok(())
    }

    /// Sends the queued writes (pipelined) and then `read`, in one round trip; the first error
    /// wins, since a failed write aborts the transaction and with it the read.
    async fn with_pending<T>(
        &mut self,
        read: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> LedgerResult<T> {
        let pending = std::mem::take(&mut self.pending);
        let tx = self.tx;
        // Prepared first (from the cache after the first use) so that the writes go out in the
        // order they were queued, all before the read.
        let mut statements = Vec::with_capacity(pending.len());
        for (sql, _) in &pending {
            statements.push(tx.prepare_cached(sql).await.map_err(|e| self.fail(e))?);
        }
        let writes = join_all(pending.iter().zip(&statements).map(
            |((_, params), stmt)| async move {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(stmt, &refs).await
            },
        ));
        let (written, read) = futures_util::future::join(writes, read).await;
        for w in written {
            w.map_err(|e| self.fail(e))?;
        }
        read.map_err(|e| self.fail(e))
    }

    /// Sends the queued writes; the transaction calls this before it commits.
    pub(crate) async fn flush(&mut self) -> LedgerResult<()> {
        self.with_pending(async { Ok(()) }).await
    }

    fn fail(&self, e: tokio_postgres::Error) -> LedgerError {
        if is_retryable(&e) {
            self.conflict.store(true, Ordering::Relaxed);
        }
        pg_error(e)
    }

    async fn query(&mut self, sql: &str, params: Params<'_>) -> LedgerResult<Vec<Row>> {
        let tx = self.tx;
        self.with_pending(async move {
            let stmt = tx.prepare_cached(sql).await?;
            tx.query(&stmt, params).await
        })
        .await
    }

    async fn query_opt(&mut self, sql: &str, params: Params<'_>) -> LedgerResult<Option<Row>> {
        let tx = self.tx;
        self.with_pending(async move {
            let stmt = tx.prepare_cached(sql).await?;
            tx.query_opt(&stmt, params).await
        })
        .await
    }

    async fn query_one(&mut self, sql: &str, params: Params<'_>) -> LedgerResult<Row> {
        let tx = self.tx;
        self.with_pending(async move {
            let stmt = tx.prepare_cached(sql).await?;
            tx.query_one(&stmt, params).await
        })
        .await
    }

    async fn execute(&mut self, sql: &str, params: Params<'_>) -> LedgerResult<u64> {
        let tx = self.tx;
        self.with_pending(async move {
            let stmt = tx.prepare_cached(sql).await?;
            tx.execute(&stmt, params).await
        })
        .await
    }
}

/// A typed column, or `Corrupt` if the stored value has another type.
fn col<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, i: usize) -> LedgerResult<T> {
    row.try_get(i)
        .map_err(|e| LedgerError::Corrupt(format!("unexpected stored value: {e}")))
}

fn nanos(row: &Row, i: usize) -> LedgerResult<NanoCredits> {
    col::<i64>(row, i).map(NanoCredits::from_nanos)
}

impl StoredRow for Row {
    fn int(&self, i: usize) -> LedgerResult<i64> {
        col(self, i)
    }

    fn opt_int(&self, i: usize) -> LedgerResult<Option<i64>> {
        col(self, i)
    }

    fn text(&self, i: usize) -> LedgerResult<String> {
        col(self, i)
    }

    fn opt_text(&self, i: usize) -> LedgerResult<Option<String>> {
        col(self, i)
    }

    fn flag(&self, i: usize) -> LedgerResult<bool> {
        col(self, i)
    }
}

/// Which rows belong to a scope or a scope below it (`team:t1` matches `team:t1/key:k1`).
macro_rules! scope_match {
    () => {
        "(scope = $1 OR starts_with(scope, $1 || '/'))"
    };
}

impl Journal for PgJournal<'_, '_> {
    async fn organization(&mut self, id: &OrganizationId) -> LedgerResult<Option<Organization>> {
        self.query_opt(
            "SELECT id, name, created_at FROM organizations WHERE id = $1",
            &[&id.as_str()],
        )
        .await?
        .map(|r| rows::organization(&r))
        .transpose()
    }

    async fn organizations(&mut self) -> LedgerResult<Vec<Organization>> {
        self.query(
            "SELECT id, name, created_at FROM organizations ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(rows::organization)
        .collect()
    }

    async fn insert_organization(&mut self, org: &Organization) -> LedgerResult<bool> {
        let inserted = self
            .execute(
                "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&org.id.as_str(), &org.name, &org.created_at.millis()],
            )
            .await?;
        if inserted == 1 {
            let genesis = ops::genesis_state();
            self.defer(
                "INSERT INTO org_state (org, debt, last_seq, last_hash)
                 VALUES ($1, $2, $3, $4)",
                vec![
                    own(org.id.as_str().to_owned()),
                    own(genesis.debt.nanos()),
                    own(genesis.last_seq),
                    own(genesis.last_hash.clone()),
                ],
            )?;
        }
        Ok(inserted == 1)
    }

    async fn lock_org(&mut self, org: &OrganizationId) -> LedgerResult<Option<OrgState>> {
        self.query_opt(
            "SELECT debt, last_seq, last_hash FROM org_state WHERE org = $1 FOR UPDATE",
            &[&org.as_str()],
        )
        .await?
        .map(|r| rows::org_state(&r))
        .transpose()
    }

    async fn org_state(&mut self, org: &OrganizationId) -> LedgerResult<Option<OrgState>> {
        self.query_opt(
            "SELECT debt, last_seq, last_hash FROM org_state WHERE org = $1",
            &[&org.as_str()],
        )
        .await?
        .map(|r| rows::org_state(&r))
        .transpose()
    }

    async fn save_org_state(&mut self, org: &OrganizationId, state: &OrgState) -> LedgerResult<()> {
        self.defer(
            "UPDATE org_state SET debt = $2, last_seq = $3, last_hash = $4 WHERE org = $1",
            vec![
                own(org.as_str().to_owned()),
                own(state.debt.nanos()),
                own(state.last_seq),
                own(state.last_hash.clone()),
            ],
        )
    }

    async fn transfer(&mut self, id: &TransferId) -> LedgerResult<Option<StoredTransfer>> {
        self.query_opt(
            "SELECT digest, result FROM transfers WHERE id = $1",
            &[&id.as_str()],
        )
        .await?
        .map(|r| {
            Ok(StoredTransfer {
                digest: col(&r, 0)?,
                result: col(&r, 1)?,
            })
        })
        .transpose()
    }

    async fn insert_transfer(&mut self, t: &NewTransfer<'_>) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO transfers (id, kind, org, digest, result, memo, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                own(t.id.as_str().to_owned()),
                own(t.kind.to_owned()),
                own(t.org.as_str().to_owned()),
                own(t.digest.to_owned()),
                own(t.result.clone()),
                own(t.memo.map(str::to_owned)),
                own(t.at.millis()),
            ],
        )
    }

    async fn insert_entry(&mut self, e: &Entry) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO entries
             (org, seq, transfer_id, debit, credit, amount, at, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vec![
                own(e.org.as_str().to_owned()),
                own(e.seq),
                own(e.transfer_id.as_str().to_owned()),
                own(e.debit.clone()),
                own(e.credit.clone()),
                own(e.amount.nanos()),
                own(e.at.millis()),
                own(e.prev_hash.clone()),
                own(e.hash.clone()),
            ],
        )
    }

    async fn entries(&mut self, org: &OrganizationId) -> LedgerResult<Vec<Entry>> {
        self.query(
            "SELECT seq, transfer_id, debit, credit, amount, at, prev_hash, hash
             FROM entries WHERE org = $1 ORDER BY seq",
            &[&org.as_str()],
        )
        .await?
        .iter()
        .map(|row| rows::entry(org, row))
        .collect()
    }

    async fn lot(&mut self, id: &LotId) -> LedgerResult<Option<Lot>> {
        self.query_opt(
            concat!(
                "SELECT ",
                lot_columns!(),
                " FROM lots l LEFT JOIN lot_state s ON s.lot = l.id WHERE l.id = $1"
            ),
            &[&id.as_str()],
        )
        .await?
        .map(|r| rows::lot(&r))
        .transpose()
    }

    async fn spendable_lots(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> LedgerResult<Vec<Lot>> {
        self.query(
            concat!(
                "SELECT ",
                lot_columns!(),
                " FROM lot_state s JOIN lots l ON l.id = s.lot
                  WHERE s.org = $1 AND s.remaining > 0
                    AND (s.expires_at IS NULL OR s.expires_at > $2)"
            ),
            &[&org.as_str(), &now.millis()],
        )
        .await?
        .iter()
        .map(rows::lot)
        .collect()
    }

    async fn spendable_total(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> LedgerResult<NanoCredits> {
        let row = self
            .query_one(
                "SELECT COALESCE(SUM(remaining), 0)::BIGINT FROM lot_state
                 WHERE org = $1 AND remaining > 0
                   AND (expires_at IS NULL OR expires_at > $2)",
                &[&org.as_str(), &now.millis()],
            )
            .await?;
        nanos(&row, 0)
    }

    async fn total_remaining(&mut self, org: &OrganizationId) -> LedgerResult<NanoCredits> {
        let row = self
            .query_one(
                "SELECT COALESCE(SUM(remaining), 0)::BIGINT FROM lot_state
                 WHERE org = $1 AND remaining > 0",
                &[&org.as_str()],
            )
            .await?;
        nanos(&row, 0)
    }

    async fn insert_lot(&mut self, lot: &Lot, transfer_id: &TransferId) -> LedgerResult<()> {
        let price = lot.price_per_credit.map(|p| p.to_string());
        let expires = lot.expires_at.map(Timestamp::millis);
        self.defer(
            "INSERT INTO lots (id, org, transfer_id, category, source, amount,
                               price_per_credit, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vec![
                own(lot.id.as_str().to_owned()),
                own(lot.org.as_str().to_owned()),
                own(transfer_id.as_str().to_owned()),
                own(lot.category.as_str().to_owned()),
                own(lot.source.as_str().to_owned()),
                own(lot.amount.nanos()),
                own(price.clone()),
                own(expires),
                own(lot.created_at.millis()),
            ],
        )?;
        self.defer(
            "INSERT INTO lot_state (lot, org, remaining, expires_at) VALUES ($1, $2, $3, $4)",
            vec![
                own(lot.id.as_str().to_owned()),
                own(lot.org.as_str().to_owned()),
                own(lot.remaining.nanos()),
                own(expires),
            ],
        )
    }

    async fn set_lot_remaining(&mut self, lot: &LotId, remaining: NanoCredits) -> LedgerResult<()> {
        self.defer(
            "UPDATE lot_state SET remaining = $2 WHERE lot = $1",
            vec![own(lot.as_str().to_owned()), own(remaining.nanos())],
        )
    }

    async fn lot_refunded(&mut self, lot: &LotId) -> LedgerResult<bool> {
        Ok(self
            .query_opt("SELECT 1 FROM lot_refunds WHERE lot = $1", &[&lot.as_str()])
            .await?
            .is_some())
    }

    async fn insert_lot_refund(
        &mut self,
        lot: &LotId,
        transfer_id: &TransferId,
        amount: NanoCredits,
        at: Timestamp,
    ) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO lot_refunds (lot, transfer_id, amount, at) VALUES ($1, $2, $3, $4)",
            vec![
                own(lot.as_str().to_owned()),
                own(transfer_id.as_str().to_owned()),
                own(amount.nanos()),
                own(at.millis()),
            ],
        )
    }

    async fn expired_lots(&mut self, now: Timestamp, limit: i64) -> LedgerResult<Vec<LotId>> {
        self.query(
            "SELECT lot FROM lot_state WHERE remaining > 0 AND expires_at <= $1
             ORDER BY expires_at, lot LIMIT $2",
            &[&now.millis(), &limit],
        )
        .await?
        .iter()
        .map(|r| stored_id(LotId::parse, col(r, 0)?))
        .collect()
    }

    async fn held(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> LedgerResult<(NanoCredits, u64)> {
        let row = self
            .query_one(
                "SELECT COALESCE(SUM(amount), 0)::BIGINT, COUNT(*) FROM active_holds
                 WHERE org = $1 AND expires_at > $2",
                &[&org.as_str(), &now.millis()],
            )
            .await?;
        Ok((nanos(&row, 0)?, col::<i64>(&row, 1)?.unsigned_abs()))
    }

    async fn hold_org(&mut self, id: &TransferId) -> LedgerResult<Option<OrganizationId>> {
        self.query_opt("SELECT org FROM holds WHERE id = $1", &[&id.as_str()])
            .await?
            .map(|r| stored_id(OrganizationId::parse, col(&r, 0)?))
            .transpose()
    }

    async fn hold(&mut self, id: &TransferId) -> LedgerResult<Option<HoldRow>> {
        self.query_opt(
            "SELECT h.org, h.amount, h.scope, h.created_at, h.expires_at,
                        a.amount, a.expires_at, r.resolution,
                        EXISTS (SELECT 1 FROM charges c WHERE c.hold = h.id),
                        (SELECT COALESCE(SUM(e.amount), 0)::BIGINT FROM hold_extensions e
                         WHERE e.hold = h.id),
                        (SELECT MAX(e.expires_at) FROM hold_extensions e WHERE e.hold = h.id)
                 FROM holds h
                 LEFT JOIN active_holds a ON a.hold = h.id
                 LEFT JOIN hold_resolutions r ON r.hold = h.id
                 WHERE h.id = $1",
            &[&id.as_str()],
        )
        .await?
        .map(|row| rows::hold(id, &row))
        .transpose()
    }

    async fn insert_hold(&mut self, hold: &Hold) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO holds (id, org, amount, scope, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                own(hold.id.as_str().to_owned()),
                own(hold.org.as_str().to_owned()),
                own(hold.amount.nanos()),
                own(hold.scope.clone()),
                own(hold.created_at.millis()),
                own(hold.expires_at.millis()),
            ],
        )?;
        self.defer(
            "INSERT INTO active_holds (hold, org, amount, scope, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                own(hold.id.as_str().to_owned()),
                own(hold.org.as_str().to_owned()),
                own(hold.amount.nanos()),
                own(hold.scope.clone()),
                own(hold.expires_at.millis()),
            ],
        )
    }

    async fn insert_hold_extension(
        &mut self,
        transfer_id: &TransferId,
        hold: &Hold,
        amount: NanoCredits,
        at: Timestamp,
    ) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO hold_extensions (transfer_id, hold, amount, expires_at, at)
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                own(transfer_id.as_str().to_owned()),
                own(hold.id.as_str().to_owned()),
                own(amount.nanos()),
                own(hold.expires_at.millis()),
                own(at.millis()),
            ],
        )?;
        self.defer(
            "UPDATE active_holds SET amount = $2, expires_at = $3 WHERE hold = $1",
            vec![
                own(hold.id.as_str().to_owned()),
                own(hold.amount.nanos()),
                own(hold.expires_at.millis()),
            ],
        )
    }

    async fn resolve_hold(
        &mut self,
        hold: &TransferId,
        resolution: HoldResolution,
        transfer_id: Option<&TransferId>,
        at: Timestamp,
    ) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO hold_resolutions (hold, resolution, transfer_id, at)
             VALUES ($1, $2, $3, $4)",
            vec![
                own(hold.as_str().to_owned()),
                own(resolution.as_str().to_owned()),
                own(transfer_id.map(|t| t.as_str().to_owned())),
                own(at.millis()),
            ],
        )?;
        self.defer(
            "DELETE FROM active_holds WHERE hold = $1",
            vec![own(hold.as_str().to_owned())],
        )
    }

    async fn insert_charge(&mut self, c: &ChargeRow<'_>) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO charges (hold, transfer_id, org, scope, held, charged, overrun,
                                  debt, late, at, memo)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            vec![
                own(c.hold.as_str().to_owned()),
                own(c.transfer_id.as_str().to_owned()),
                own(c.org.as_str().to_owned()),
                own(c.scope.map(str::to_owned)),
                own(c.held.nanos()),
                own(c.charged.nanos()),
                own(c.overrun.nanos()),
                own(c.debt.nanos()),
                own(c.late),
                own(c.at.millis()),
                own(c.memo.map(str::to_owned)),
            ],
        )
    }

    async fn insert_usage(
        &mut self,
        request: &TransferId,
        org: &OrganizationId,
        at: Timestamp,
        record: &UsageRecord,
    ) -> LedgerResult<()> {
        let params = usage::usage_params(request, org, at, record)?;
        self.defer(
            usage::INSERT_USAGE,
            params.into_iter().map(|p| own(p)).collect(),
        )?;
        let params = usage::rollup_params(org, at, record)?;
        self.defer(
            usage::ADD_TO_ROLLUPS,
            params.into_iter().map(|p| own(p)).collect(),
        )
    }

    async fn scope_spend(
        &mut self,
        scope: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> LedgerResult<NanoCredits> {
        let row = self
            .query_one(
                concat!(
                    "SELECT ((SELECT COALESCE(SUM(charged), 0) FROM charges WHERE ",
                    scope_match!(),
                    " AND at >= $2) + (SELECT COALESCE(SUM(amount), 0) FROM active_holds WHERE ",
                    scope_match!(),
                    " AND expires_at > $3))::BIGINT"
                ),
                &[&scope, &since.millis(), &now.millis()],
            )
            .await?;
        nanos(&row, 0)
    }

    async fn expired_holds(&mut self, now: Timestamp, limit: i64) -> LedgerResult<Vec<TransferId>> {
        self.query(
            "SELECT hold FROM active_holds WHERE expires_at <= $1
             ORDER BY expires_at, hold LIMIT $2",
            &[&now.millis(), &limit],
        )
        .await?
        .iter()
        .map(|r| stored_id(TransferId::parse, col(r, 0)?))
        .collect()
    }

    async fn audit_lots(&mut self, org: &OrganizationId) -> LedgerResult<Vec<AuditLot>> {
        self.query(
            concat!(
                "SELECT ",
                lot_columns!(),
                ", s.remaining, f.transfer_id, f.amount
                 FROM lots l
                 LEFT JOIN lot_state s ON s.lot = l.id
                 LEFT JOIN lot_refunds f ON f.lot = l.id
                 WHERE l.org = $1 ORDER BY l.id"
            ),
            &[&org.as_str()],
        )
        .await?
        .iter()
        .map(rows::audit_lot)
        .collect()
    }

    async fn audit_holds(
        &mut self,
        after: Option<&TransferId>,
        limit: i64,
    ) -> LedgerResult<Vec<AuditHold>> {
        self.query(
            "SELECT h.id, h.amount, h.expires_at,
                    (SELECT COALESCE(SUM(e.amount), 0)::BIGINT FROM hold_extensions e
                     WHERE e.hold = h.id),
                    (SELECT MAX(e.expires_at) FROM hold_extensions e WHERE e.hold = h.id),
                    r.resolution, r.transfer_id,
                    c.transfer_id, c.held, c.charged, c.overrun, c.debt, c.late,
                    a.amount, a.expires_at, h.org
             FROM holds h
             LEFT JOIN hold_resolutions r ON r.hold = h.id
             LEFT JOIN charges c ON c.hold = h.id
             LEFT JOIN active_holds a ON a.hold = h.id
             WHERE $1::TEXT IS NULL OR h.id > $1
             ORDER BY h.id LIMIT $2",
            &[&after.map(TransferId::as_str), &limit],
        )
        .await?
        .iter()
        .map(rows::audit_hold)
        .collect()
    }

    async fn count_transfers(&mut self) -> LedgerResult<u64> {
        let row = self
            .query_one("SELECT COUNT(*) FROM transfers", &[])
            .await?;
        Ok(col::<i64>(&row, 0)?.unsigned_abs())
    }

    async fn dangling_rows(&mut self) -> LedgerResult<Vec<String>> {
        let mut problems = Vec::new();
        for (what, sql) in DANGLING_CHECKS {
            let n: i64 = col(&self.query_one(sql, &[]).await?, 0)?;
            if n > 0 {
                problems.push(format!("{n} {what}"));
            }
        }
        Ok(problems)
    }
}

/// Runs one shared ledger operation in its own transaction, trying again when it lost a race
/// to another replica (a serialization failure, a deadlock, a transfer id inserted
/// concurrently). The isolation level is stated, not inherited from the database's default:
/// READ COMMITTED, so that every statement after the organization's row lock (which the
/// operation takes first) sees the holds committed by whoever held the lock before. Under
/// REPEATABLE READ the snapshot predates the lock and admission over-admits.
macro_rules! in_transaction {
    ($store:expr, |$j:ident, $now:ident| $op:expr) => {{
        let mut attempt = 1;
        loop {
            let mut client = $store.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()
                .await
                .map_err(pg_error)?;
            let $now = $store.clock().now();
            let journal = &mut PgJournal::new(&tx);
            let result = {
                let $j = &mut *journal;
                $op.await
            };
            let result = match result {
                Ok(value) => journal.flush().await.map(|()| value),
                Err(e) => Err(e),
            };
            let conflict = journal.conflict.load(Ordering::Relaxed);
            let outcome = match result {
                Ok(value) => match tx.commit().await {
                    Ok(()) => Ok(value),
                    Err(e) => Err((is_retryable(&e), pg_error(e))),
                },
                Err(e) => {
                    // Dropping the transaction rolls it back; say so explicitly to free the
                    // connection at once.
                    let _ = tx.rollback().await;
                    Err((conflict, e))
                }
            };
            match outcome {
                Ok(value) => break Ok(value),
                Err((true, _)) if attempt < MAX_ATTEMPTS => {
                    retry_pause(attempt).await;
                    attempt += 1;
                }
                Err((_, e)) => break Err(e),
            }
        }
    }};
}

/// A short, jittered pause before trying a lost race again, longer after each attempt, so that
/// transactions that deadlocked do not meet again at once.
pub(crate) async fn retry_pause(attempt: u32) {
    let base = 2u64 << attempt.min(6);
    let jitter = rand::random::<u64>() % base;
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}

pub(crate) use in_transaction;

impl crate::statement::TxStatements for PgJournal<'_, '_> {
    async fn exec(
        &mut self,
        sql: &'static str,
        params: &[crate::statement::Param],
    ) -> LedgerResult<u64> {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.execute(sql, &refs).await
    }

    async fn rows<T: Send>(
        &mut self,
        sql: &'static str,
        params: &[crate::statement::Param],
        map: crate::statement::RowMapper<T>,
    ) -> LedgerResult<Vec<T>> {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.query(sql, &refs).await?;
        rows.iter().map(|r| map(r)).collect()
    }
}

/// Runs one shared read in a read-only repeatable-read transaction (a consistent snapshot).
macro_rules! in_snapshot {
    ($store:expr, |$j:ident, $now:ident| $op:expr) => {{
        let mut client = $store.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let $now = $store.clock().now();
        let result = {
            let $j = &mut PgJournal::new(&tx);
            $op.await
        };
        match result {
            Ok(value) => {
                tx.commit().await.map_err(pg_error)?;
                Ok(value)
            }
            Err(e) => Err(e),
        }
    }};
}

impl LedgerStore for PgStore {
    async fn create_organization(
        &self,
        id: OrganizationId,
        name: String,
    ) -> LedgerResult<Organization> {
        in_transaction!(self, |j, now| ops::create_organization(
            j,
            now,
            id.clone(),
            name.clone()
        ))
    }

    async fn organization(&self, id: &OrganizationId) -> LedgerResult<Organization> {
        in_snapshot!(self, |j, _now| j.organization(id))?
            .ok_or_else(|| LedgerError::UnknownOrganization(id.clone()))
    }

    async fn organizations(&self) -> LedgerResult<Vec<Organization>> {
        in_snapshot!(self, |j, _now| j.organizations())
    }

    async fn grant(&self, req: GrantRequest) -> LedgerResult<Granted> {
        in_transaction!(self, |j, now| ops::grant(j, now, req.clone()))
    }

    async fn reserve(&self, req: HoldRequest) -> LedgerResult<Hold> {
        in_transaction!(self, |j, now| ops::reserve(j, now, req.clone()))
    }

    async fn extend_hold(&self, req: ExtendHoldRequest) -> LedgerResult<Hold> {
        in_transaction!(self, |j, now| ops::extend_hold(j, now, req.clone()))
    }

    async fn settle(&self, req: SettleRequest) -> LedgerResult<Settlement> {
        in_transaction!(self, |j, now| ops::settle(j, now, req.clone()))
    }

    async fn release(&self, req: ReleaseRequest) -> LedgerResult<Released> {
        in_transaction!(self, |j, now| ops::release(j, now, req.clone()))
    }

    async fn expire_holds(&self) -> LedgerResult<Vec<TransferId>> {
        let mut expired = Vec::new();
        loop {
            let due = in_snapshot!(self, |j, now| j.expired_holds(now, EXPIRY_BATCH))?;
            for id in &due {
                // One transaction per hold: replicas racing here lock the same organization
                // row, and the second finds the hold already resolved.
                if in_transaction!(self, |j, now| ops::expire_hold(j, now, id))? {
                    expired.push(id.clone());
                }
            }
            if (due.len() as i64) < EXPIRY_BATCH {
                return Ok(expired);
            }
        }
    }

    async fn sweep_expired_lots(&self) -> LedgerResult<Vec<Draw>> {
        let mut swept = Vec::new();
        loop {
            let due = in_snapshot!(self, |j, now| j.expired_lots(now, EXPIRY_BATCH))?;
            for id in &due {
                swept.extend(in_transaction!(self, |j, now| ops::expire_lot(j, now, id))?);
            }
            if (due.len() as i64) < EXPIRY_BATCH {
                return Ok(swept);
            }
        }
    }

    async fn refund_lot(&self, req: RefundRequest) -> LedgerResult<Refunded> {
        in_transaction!(self, |j, now| ops::refund_lot(j, now, req.clone()))
    }

    async fn adjust(&self, req: AdjustRequest) -> LedgerResult<Adjusted> {
        in_transaction!(self, |j, now| ops::adjust(j, now, req.clone()))
    }

    async fn balance(&self, org: &OrganizationId) -> LedgerResult<Balance> {
        in_snapshot!(self, |j, now| audit::balance(j, now, org))
    }

    async fn hold(&self, id: &TransferId) -> LedgerResult<Option<(Hold, Option<HoldResolution>)>> {
        in_snapshot!(self, |j, now| audit::hold(j, now, id))
    }

    async fn scope_spend(&self, scope: &str, since: Timestamp) -> LedgerResult<NanoCredits> {
        in_snapshot!(self, |j, now| j.scope_spend(scope, since, now))
    }

    async fn entries(&self, org: &OrganizationId) -> LedgerResult<Vec<Entry>> {
        in_snapshot!(self, |j, _now| j.entries(org))
    }

    async fn verify(&self) -> LedgerResult<VerifyReport> {
        in_snapshot!(self, |j, _now| audit::verify(j))
    }
}
