//! The ledger's transactions, written once over the [`Journal`] primitives each backend provides.
//!
//! Every money operation (`grant`, `reserve`, `settle`, …) is an `async fn` in [`ops`] that runs
//! inside one database transaction the backend has opened, so SQLite and Postgres apply exactly
//! the same rules. Postgres awaits the statements; SQLite answers each primitive synchronously
//! with a ready future on its writer thread, and [`run_ready`] drives the operation there
//! without an executor. [`audit`] holds the read side: balances and `verify`; [`rows`] maps the
//! rows both backends read back.

/// The credit limit admission may spend into, as `org_state`'s columns give it: the
/// organization's `credit_limit`, or 0 while an overdue invoice suspends its line.
macro_rules! credit_line {
    () => {
        "CASE WHEN credit_suspended_at IS NULL THEN credit_limit ELSE 0 END"
    };
}
pub(crate) use credit_line;

pub(crate) mod audit;
pub(crate) mod ops;
pub(crate) mod rows;
pub(crate) mod statements;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    Entry, Hold, HoldResolution, LedgerError, LedgerResult, Lot, Organization,
};
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::UsageRecord;

/// Most holds or lots one `expire_holds`/`sweep_expired_lots` pass picks up per query; the pass
/// repeats until a query returns fewer.
pub(crate) const EXPIRY_BATCH: i64 = 500;
/// Holds `verify` reads per query.
pub(crate) const AUDIT_PAGE: i64 = 1_000;

/// Consistency checks `verify` runs on both backends: each counts rows that point at nothing.
pub(crate) const DANGLING_CHECKS: &[(&str, &str)] = &[
    (
        "entries without their transfer",
        "SELECT COUNT(*) FROM entries e
         WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = e.transfer_id)",
    ),
    (
        "entries of unknown organizations",
        "SELECT COUNT(*) FROM entries e
         WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = e.org)",
    ),
    (
        "transfers of unknown organizations",
        "SELECT COUNT(*) FROM transfers t
         WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = t.org)",
    ),
    (
        "lots without their transfer",
        "SELECT COUNT(*) FROM lots l
         WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = l.transfer_id)",
    ),
    (
        "holds without their transfer",
        "SELECT COUNT(*) FROM holds h
         WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = h.id)",
    ),
    (
        "hold extensions without their transfer or hold",
        "SELECT COUNT(*) FROM hold_extensions x
         WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = x.transfer_id)
            OR NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = x.hold)",
    ),
    (
        "hold resolutions of unknown holds or transfers",
        "SELECT COUNT(*) FROM hold_resolutions r
         WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = r.hold)
            OR (r.transfer_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = r.transfer_id))",
    ),
    (
        "charges of unknown holds or without their transfer",
        "SELECT COUNT(*) FROM charges c
         WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = c.hold)
            OR NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = c.transfer_id)",
    ),
    (
        "lot refunds of unknown lots or without their transfer",
        "SELECT COUNT(*) FROM lot_refunds f
         WHERE NOT EXISTS (SELECT 1 FROM lots l WHERE l.id = f.lot)
            OR NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = f.transfer_id)",
    ),
    (
        "usage records without their charge, or other credits than it",
        "SELECT COUNT(*) FROM usage_records u
         WHERE NOT EXISTS (SELECT 1 FROM charges c
                           WHERE c.hold = u.request_id AND c.charged = u.credits
                             AND c.org = u.org)",
    ),
    (
        "usage rollups whose sums differ from their organization's usage records",
        "SELECT COUNT(*) FROM (
             SELECT org, width, SUM(requests) AS n,
                    SUM(credits_input + credits_cache_write_5m + credits_cache_write_1h
                        + credits_cache_read + credits_output + credits_web_search
                        + credits_web_fetch) AS c
             FROM usage_rollups GROUP BY org, width) r
         WHERE NOT EXISTS (
             SELECT 1 FROM (SELECT org, COUNT(*) AS n, SUM(credits) AS c
                            FROM usage_records GROUP BY org) u
             WHERE u.org = r.org AND u.n = r.n AND u.c = r.c)",
    ),
    (
        "cached lot states without their lot",
        "SELECT COUNT(*) FROM lot_state s WHERE NOT EXISTS (SELECT 1 FROM lots l WHERE l.id = s.lot)",
    ),
    (
        "cached active holds without their hold",
        "SELECT COUNT(*) FROM active_holds a
         WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = a.hold)",
    ),
    (
        "organization states without their organization",
        "SELECT COUNT(*) FROM org_state s
         WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = s.org)",
    ),
];

/// The cached per-organization state: unpaid overrun and the head of the entry chain; and the
/// credit limit admission may spend into debt (zero unless the organization is invoiced), which
/// only the credit line's own update writes (`save_org_state` leaves it alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrgState {
    pub debt: NanoCredits,
    pub last_seq: i64,
    pub last_hash: String,
    pub credit_limit: NanoCredits,
}

/// A transfer as stored: enough to tell a replay from a conflict and to answer the replay.
#[derive(Debug, Clone)]
pub(crate) struct StoredTransfer {
    pub digest: String,
    pub result: String,
}

/// A transfer to record once its result is known.
#[derive(Debug, Clone)]
pub(crate) struct NewTransfer<'a> {
    pub id: &'a TransferId,
    pub kind: &'a str,
    pub org: &'a OrganizationId,
    pub digest: &'a str,
    pub result: String,
    pub memo: Option<&'a str>,
    pub at: Timestamp,
}

/// A hold with its current amount and expiry, how it ended (if it did) and whether it was
/// charged (a late settle charges an expired hold).
#[derive(Debug, Clone)]
pub(crate) struct HoldRow {
    pub hold: Hold,
    pub resolution: Option<HoldResolution>,
    pub charged: bool,
}

/// One row of `charges`.
#[derive(Debug, Clone)]
pub(crate) struct ChargeRow<'a> {
    pub hold: &'a TransferId,
    pub transfer_id: &'a TransferId,
    pub org: &'a OrganizationId,
    pub scope: Option<&'a str>,
    pub held: NanoCredits,
    pub charged: NanoCredits,
    pub overrun: NanoCredits,
    pub debt: NanoCredits,
    pub late: bool,
    pub at: Timestamp,
    pub memo: Option<&'a str>,
}

/// A hold as `verify` sees it: journal rows and the cache, side by side.
#[derive(Debug, Clone)]
pub(crate) struct AuditHold {
    pub id: TransferId,
    pub org: OrganizationId,
    pub initial: NanoCredits,
    pub extended: NanoCredits,
    pub expires_at: Timestamp,
    pub resolution: Option<HoldResolution>,
    pub resolution_transfer: Option<TransferId>,
    pub charge: Option<AuditCharge>,
    pub cached: Option<(NanoCredits, Timestamp)>,
}

#[derive(Debug, Clone)]
pub(crate) struct AuditCharge {
    pub transfer_id: TransferId,
    pub held: NanoCredits,
    pub charged: NanoCredits,
    pub overrun: NanoCredits,
    pub debt: NanoCredits,
    pub late: bool,
}

/// A lot as `verify` sees it: the journal row and its cached remainder (`None` if missing).
#[derive(Debug, Clone)]
pub(crate) struct AuditLot {
    pub lot: Lot,
    pub cached_remaining: Option<NanoCredits>,
    /// The refund transfer and the amount it recorded.
    pub refund: Option<(TransferId, NanoCredits)>,
}

/// The statements the ledger needs, all inside the transaction the backend opened for one
/// operation; written once in [`statements`] over each backend's [`crate::statement::TxStatements`].
/// They never decide anything about money.
pub(crate) trait Journal {
    fn organization(
        &mut self,
        id: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Option<Organization>>>;
    fn organizations(&mut self) -> impl Future<Output = LedgerResult<Vec<Organization>>>;
    /// Inserts the organization and its state row; `false` if the id is taken.
    fn insert_organization(
        &mut self,
        org: &Organization,
    ) -> impl Future<Output = LedgerResult<bool>>;
    /// Reads the organization's state, locking its row until the transaction ends where the
    /// backend has row locks (Postgres); every money operation starts here.
    fn lock_org(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Option<OrgState>>>;
    /// Reads the organization's state without locking it.
    fn org_state(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Option<OrgState>>>;
    fn save_org_state(
        &mut self,
        org: &OrganizationId,
        state: &OrgState,
    ) -> impl Future<Output = LedgerResult<()>>;

    fn transfer(
        &mut self,
        id: &TransferId,
    ) -> impl Future<Output = LedgerResult<Option<StoredTransfer>>>;
    /// One of `ids` that names a transfer already, if any.
    fn any_transfer(
        &mut self,
        ids: &[&TransferId],
    ) -> impl Future<Output = LedgerResult<Option<TransferId>>>;
    fn insert_transfer(&mut self, t: &NewTransfer<'_>) -> impl Future<Output = LedgerResult<()>>;
    fn insert_entry(&mut self, e: &Entry) -> impl Future<Output = LedgerResult<()>>;
    fn entries(&mut self, org: &OrganizationId) -> impl Future<Output = LedgerResult<Vec<Entry>>>;

    fn lot(&mut self, id: &LotId) -> impl Future<Output = LedgerResult<Option<Lot>>>;
    /// Lots of `org` spendable at `now`: unexpired, something left. Any order.
    fn spendable_lots(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> impl Future<Output = LedgerResult<Vec<Lot>>>;
    /// Σ remaining of the lots spendable at `now`.
    fn spendable_total(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> impl Future<Output = LedgerResult<NanoCredits>>;
    /// Σ remaining of every lot of `org`, expired or not.
    fn total_remaining(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<NanoCredits>>;
    fn insert_lot(
        &mut self,
        lot: &Lot,
        transfer_id: &TransferId,
    ) -> impl Future<Output = LedgerResult<()>>;
    fn set_lot_remaining(
        &mut self,
        lot: &LotId,
        remaining: NanoCredits,
    ) -> impl Future<Output = LedgerResult<()>>;
    fn lot_refunded(&mut self, lot: &LotId) -> impl Future<Output = LedgerResult<bool>>;
    fn insert_lot_refund(
        &mut self,
        lot: &LotId,
        transfer_id: &TransferId,
        amount: NanoCredits,
        at: Timestamp,
    ) -> impl Future<Output = LedgerResult<()>>;
    /// Lots past their expiry at `now` that still hold credits.
    fn expired_lots(
        &mut self,
        now: Timestamp,
        limit: i64,
    ) -> impl Future<Output = LedgerResult<Vec<LotId>>>;

    /// Σ and count of the holds of `org` still active at `now`.
    fn held(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> impl Future<Output = LedgerResult<(NanoCredits, u64)>>;
    /// [`Self::lock_org`] for the organization a hold belongs to, in one statement: the
    /// organization and its state, or `None` for an unknown hold.
    fn lock_hold_org(
        &mut self,
        hold: &TransferId,
    ) -> impl Future<Output = LedgerResult<Option<(OrganizationId, OrgState)>>>;
    fn hold(&mut self, id: &TransferId) -> impl Future<Output = LedgerResult<Option<HoldRow>>>;
    /// Inserts a new hold and its cache row.
    fn insert_hold(&mut self, hold: &Hold) -> impl Future<Output = LedgerResult<()>>;
    /// Records a hold's growth and rewrites its cache row with the new total and expiry.
    fn insert_hold_extension(
        &mut self,
        transfer_id: &TransferId,
        hold: &Hold,
        amount: NanoCredits,
        at: Timestamp,
    ) -> impl Future<Output = LedgerResult<()>>;
    /// Inserts a hold that the same transaction settles by `transfer_id` (a request admitted
    /// against a credit lease): the hold and its resolution, no cache row.
    fn insert_settled_hold(
        &mut self,
        hold: &Hold,
        transfer_id: &TransferId,
        at: Timestamp,
    ) -> impl Future<Output = LedgerResult<()>>;
    /// Records how a hold ended and drops its cache row.
    fn resolve_hold(
        &mut self,
        hold: &TransferId,
        resolution: HoldResolution,
        transfer_id: Option<&TransferId>,
        at: Timestamp,
    ) -> impl Future<Output = LedgerResult<()>>;
    fn insert_charge(&mut self, c: &ChargeRow<'_>) -> impl Future<Output = LedgerResult<()>>;
    /// Writes a request's usage record (`crate::usage::INSERT_USAGE`) and adds it to its
    /// rollup rows (`crate::usage::ADD_TO_ROLLUPS`).
    fn insert_usage(
        &mut self,
        request: &TransferId,
        org: &OrganizationId,
        at: Timestamp,
        record: &UsageRecord,
    ) -> impl Future<Output = LedgerResult<()>>;
    /// Charges at or after `since` plus holds active at `now`, for `scope` and below it.
    fn scope_spend(
        &mut self,
        scope: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = LedgerResult<NanoCredits>>;
    /// Unresolved holds whose expiry is at or before `now`.
    fn expired_holds(
        &mut self,
        now: Timestamp,
        limit: i64,
    ) -> impl Future<Output = LedgerResult<Vec<TransferId>>>;

    fn audit_lots(
        &mut self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Vec<AuditLot>>>;
    /// Up to `limit` holds with ids after `after`, in id order (verify pages through them).
    fn audit_holds(
        &mut self,
        after: Option<&TransferId>,
        limit: i64,
    ) -> impl Future<Output = LedgerResult<Vec<AuditHold>>>;
    fn count_transfers(&mut self) -> impl Future<Output = LedgerResult<u64>>;
    /// Rows that point at nothing: entries, charges or resolutions without their transfer or
    /// hold, cache rows without their journal row. One line per kind found.
    fn dangling_rows(&mut self) -> impl Future<Output = LedgerResult<Vec<String>>>;
}

/// Polls a future that a synchronous [`Journal`] (SQLite's) makes ready at once. A pending
/// poll would mean a primitive really waited, which the SQLite backend never does.
pub(crate) fn run_ready<F: Future>(fut: F) -> LedgerResult<F::Output> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(LedgerError::Corrupt(
            "a synchronous ledger operation did not complete".to_owned(),
        )),
    }
}

/// Parses an id read back from the database.
pub(crate) fn stored_id<T, E>(
    parse: impl FnOnce(&str) -> Result<T, E>,
    raw: &str,
) -> LedgerResult<T> {
    parse(raw).map_err(|_| LedgerError::Corrupt(format!("stored id {raw:?} is not valid")))
}

/// Parses a hold resolution read back from the database.
pub(crate) fn stored_resolution(raw: &str) -> LedgerResult<HoldResolution> {
    HoldResolution::parse(raw)
        .ok_or_else(|| LedgerError::Corrupt(format!("stored hold resolution {raw:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ready_completes_ready_futures_and_refuses_pending_ones() {
        assert_eq!(run_ready(async { 7 }).unwrap(), 7);
        assert!(matches!(
            run_ready(std::future::pending::<()>()),
            Err(LedgerError::Corrupt(_))
        ));
    }
}
