//! The ledger on Postgres: statements inside one transaction (writes pipelined), retries of
//! lost races, and [`LedgerStore`] for [`PgStore`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::ledger::{
    AdjustRequest, Adjusted, Balance, Draw, Entry, ExtendHoldRequest, GrantRequest, Granted, Hold,
    HoldRequest, HoldResolution, LeaseRequest, LedgerError, LedgerResult, LedgerStore,
    Organization, RefundRequest, Refunded, ReleaseRequest, Released, SettleRequest, Settlement,
    VerifyReport,
};
use creditgate_core::money::NanoCredits;
use deadpool_postgres::Transaction;
use futures_util::future::join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::{is_retryable, pg_error, PgStore, MAX_ATTEMPTS};
use crate::journal::{audit, credit_line, ops, Journal, EXPIRY_BATCH};
use crate::statement::{Columns, Dialect, Param, TxStatements};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Statements inside one open Postgres transaction.
pub(crate) struct PgJournal<'t, 'c> {
    tx: &'t Transaction<'c>,
    /// Set when a statement lost a race to another transaction (worth one more try).
    pub(crate) conflict: AtomicBool,
    /// Writes whose results nothing waits for, sent together with the next read or before the
    /// commit: one round trip for several statements while the organization's row is locked.
    pending: Vec<(&'static str, Vec<Param>)>,
}

impl<'t, 'c> PgJournal<'t, 'c> {
    pub(crate) fn new(tx: &'t Transaction<'c>) -> Self {
        Self {
            tx,
            conflict: AtomicBool::new(false),
            pending: Vec::new(),
        }
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
        let writes = join_all(
            pending
                .iter()
                .zip(&statements)
                .map(|((_, params), stmt)| async move { tx.execute(stmt, &refs(params)).await }),
        );
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

    async fn execute(&mut self, sql: &str, params: Params<'_>) -> LedgerResult<u64> {
        let tx = self.tx;
        self.with_pending(async move {
            let stmt = tx.prepare_cached(sql).await?;
            tx.execute(&stmt, params).await
        })
        .await
    }
}

/// Which rows belong to a scope or a scope below it (`team:t1` matches `team:t1/key:k1`).
macro_rules! scope_match {
    () => {
        "(scope = $1 OR starts_with(scope, $1 || '/'))"
    };
}

/// Postgres's statements where the text differs from SQLite's.
const DIALECT: Dialect = Dialect {
    // Replicas serialize on the organization's row.
    lock_org: concat!(
        "SELECT debt, last_seq, last_hash, ",
        credit_line!(),
        " FROM org_state WHERE org = $1 FOR UPDATE"
    ),
    lock_hold_org: concat!(
        "SELECT debt, last_seq, last_hash, ",
        credit_line!(),
        ", org FROM org_state WHERE org = (SELECT org FROM holds WHERE id = $1) FOR UPDATE"
    ),
    scope_spend: concat!(
        "SELECT CAST((SELECT COALESCE(SUM(charged), 0) FROM charges WHERE ",
        scope_match!(),
        " AND at >= $2) + (SELECT COALESCE(SUM(amount), 0) FROM active_holds WHERE ",
        scope_match!(),
        " AND expires_at > $3) AS BIGINT)"
    ),
};

/// Starts the transaction `$builder` describes, inside the retry loop of `in_transaction!` or
/// `in_snapshot!`: a pooled connection the server closed while it sat idle (a restart, a
/// terminated backend) fails its `BEGIN` with nothing run, so the loop goes round again for
/// another connection (`continue`), counting `$attempt`.
macro_rules! begin {
    ($attempt:ident, $builder:expr) => {
        match $builder.start().await {
            Ok(tx) => tx,
            Err(e)
                if $crate::postgres::connection_lost(&e)
                    && $attempt < $crate::postgres::MAX_ATTEMPTS =>
            {
                $attempt += 1;
                continue;
            }
            Err(e) => return Err($crate::postgres::pg_error(e)),
        }
    };
}
pub(crate) use begin;

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
            let tx = $crate::postgres::ledger::begin!(
                attempt,
                client
                    .build_transaction()
                    .isolation_level(IsolationLevel::ReadCommitted)
            );
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

impl TxStatements for PgJournal<'_, '_> {
    const DIALECT: Dialect = DIALECT;

    async fn exec(&mut self, sql: &'static str, params: &[Param]) -> LedgerResult<u64> {
        self.execute(sql, &refs(params)).await
    }

    async fn rows<T: Send>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        mut map: impl FnMut(&dyn Columns) -> LedgerResult<T> + Send,
    ) -> LedgerResult<Vec<T>> {
        let rows = self.query(sql, &refs(params)).await?;
        rows.iter().map(|r| map(r)).collect()
    }

    fn defer(&mut self, sql: &'static str, params: Vec<Param>) -> LedgerResult<()> {
        self.pending.push((sql, params));
        Ok(())
    }
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Runs one shared read in a read-only repeatable-read transaction (a consistent snapshot).
macro_rules! in_snapshot {
    ($store:expr, |$j:ident, $now:ident| $op:expr) => {{
        let mut attempt = 1;
        loop {
            let mut client = $store.client().await?;
            let tx = $crate::postgres::ledger::begin!(
                attempt,
                client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
            );
            let $now = $store.clock().now();
            let result = {
                let $j = &mut PgJournal::new(&tx);
                $op.await
            };
            break match result {
                Ok(value) => {
                    tx.commit().await.map_err(pg_error)?;
                    Ok(value)
                }
                Err(e) => Err(e),
            };
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

    async fn settle_leased_group(&self, reqs: Vec<SettleRequest>) -> LedgerResult<Vec<Settlement>> {
        in_transaction!(self, |j, now| ops::settle_leased_group(j, now, &reqs))
    }

    async fn release(&self, req: ReleaseRequest) -> LedgerResult<Released> {
        in_transaction!(self, |j, now| ops::release(j, now, req.clone()))
    }

    async fn lease(&self, req: LeaseRequest) -> LedgerResult<Hold> {
        in_transaction!(self, |j, now| ops::lease(j, now, req.clone()))
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
