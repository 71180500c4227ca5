//! The ledger's statements, written once for both backends.
//!
//! A backend provides [`TxStatements`] — run one statement inside the transaction it opened,
//! or queue a write whose result nothing waits for — and the two statements whose text really
//! differs ([`Dialect`]); every [`Journal`] statement below is built on them. SQL is written
//! with `$n` placeholders (SQLite reads them as `?n`) and sums are cast to `BIGINT`, which both
//! backends understand (Postgres sums `BIGINT` into `NUMERIC` otherwise).

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{Entry, Hold, HoldResolution, LedgerResult, Lot, Organization};
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::UsageRecord;

use super::rows::{self, lot_columns};
use super::{
    stored_id, AuditHold, AuditLot, ChargeRow, HoldRow, Journal, NewTransfer, OrgState,
    StoredTransfer, DANGLING_CHECKS,
};
use crate::statement::{Columns, Param, TxStatements};
use crate::usage;

fn text(s: &str) -> Param {
    Param::Text(s.to_owned())
}

fn opt_text(s: Option<&str>) -> Param {
    Param::OptText(s.map(str::to_owned))
}

/// The first row of a query, if any.
async fn first<J: TxStatements, T: Send>(
    j: &mut J,
    sql: &'static str,
    params: &[Param],
    map: impl FnMut(&dyn Columns) -> LedgerResult<T> + Send,
) -> LedgerResult<Option<T>> {
    Ok(j.rows(sql, params, map).await?.into_iter().next())
}

/// The one row of an aggregate query.
async fn one<J: TxStatements, T: Send>(
    j: &mut J,
    sql: &'static str,
    params: &[Param],
    map: impl FnMut(&dyn Columns) -> LedgerResult<T> + Send,
) -> LedgerResult<T> {
    first(j, sql, params, map)
        .await?
        .ok_or_else(|| creditgate_core::ledger::LedgerError::Corrupt(format!("no row from {sql}")))
}

fn count(row: &dyn Columns) -> LedgerResult<u64> {
    row.int(0).map(i64::unsigned_abs)
}

/// A hold as placed (`Journal::insert_hold`, `Journal::insert_settled_hold`).
const INSERT_HOLD: &str = "INSERT INTO holds (id, org, amount, scope, created_at, expires_at)
                           VALUES ($1, $2, $3, $4, $5, $6)";

fn hold_row(hold: &Hold) -> Vec<Param> {
    vec![
        text(hold.id.as_str()),
        text(hold.org.as_str()),
        Param::Int(hold.amount.nanos()),
        opt_text(hold.scope.as_deref()),
        Param::Int(hold.created_at.millis()),
        Param::Int(hold.expires_at.millis()),
    ]
}

/// How a hold ended (`Journal::resolve_hold`, `Journal::insert_settled_hold`).
const INSERT_RESOLUTION: &str = "INSERT INTO hold_resolutions (hold, resolution, transfer_id, at)
                                 VALUES ($1, $2, $3, $4)";

fn resolution_row(
    hold: &TransferId,
    resolution: HoldResolution,
    transfer_id: Option<&TransferId>,
    at: Timestamp,
) -> Vec<Param> {
    vec![
        text(hold.as_str()),
        text(resolution.as_str()),
        opt_text(transfer_id.map(TransferId::as_str)),
        Param::Int(at.millis()),
    ]
}

impl<J: TxStatements> Journal for J {
    async fn organization(&mut self, id: &OrganizationId) -> LedgerResult<Option<Organization>> {
        let sql = "SELECT id, name, created_at FROM organizations WHERE id = $1";
        first(self, sql, &[text(id.as_str())], rows::organization).await
    }

    async fn organizations(&mut self) -> LedgerResult<Vec<Organization>> {
        let sql = "SELECT id, name, created_at FROM organizations ORDER BY id";
        self.rows(sql, &[], rows::organization).await
    }

    async fn insert_organization(&mut self, org: &Organization) -> LedgerResult<bool> {
        let inserted = self
            .exec(
                "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    text(org.id.as_str()),
                    text(&org.name),
                    Param::Int(org.created_at.millis()),
                ],
            )
            .await?;
        if inserted == 1 {
            let genesis = super::ops::genesis_state();
            self.defer(
                "INSERT INTO org_state (org, debt, last_seq, last_hash) VALUES ($1, $2, $3, $4)",
                vec![
                    text(org.id.as_str()),
                    Param::Int(genesis.debt.nanos()),
                    Param::Int(genesis.last_seq),
                    Param::Text(genesis.last_hash),
                ],
            )?;
        }
        Ok(inserted == 1)
    }

    async fn lock_org(&mut self, org: &OrganizationId) -> LedgerResult<Option<OrgState>> {
        let sql = Self::DIALECT.lock_org;
        first(self, sql, &[text(org.as_str())], rows::org_state).await
    }

    async fn org_state(&mut self, org: &OrganizationId) -> LedgerResult<Option<OrgState>> {
        let sql = concat!(
            "SELECT debt, last_seq, last_hash, ",
            credit_line!(),
            " FROM org_state WHERE org = $1"
        );
        first(self, sql, &[text(org.as_str())], rows::org_state).await
    }

    async fn save_org_state(&mut self, org: &OrganizationId, state: &OrgState) -> LedgerResult<()> {
        self.defer(
            "UPDATE org_state SET debt = $2, last_seq = $3, last_hash = $4 WHERE org = $1",
            vec![
                text(org.as_str()),
                Param::Int(state.debt.nanos()),
                Param::Int(state.last_seq),
                text(&state.last_hash),
            ],
        )
    }

    async fn transfer(&mut self, id: &TransferId) -> LedgerResult<Option<StoredTransfer>> {
        let sql = "SELECT digest, result FROM transfers WHERE id = $1";
        first(self, sql, &[text(id.as_str())], |row| {
            Ok(StoredTransfer {
                digest: row.text(0)?,
                result: row.text(1)?,
            })
        })
        .await
    }

    async fn any_transfer(&mut self, ids: &[&TransferId]) -> LedgerResult<Option<TransferId>> {
        // Sixteen ids a statement; a short chunk repeats its first id.
        const SQL: &str = "SELECT id FROM transfers WHERE id IN \
            ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) LIMIT 1";
        for chunk in ids.chunks(16) {
            let params: Vec<Param> = (0..16)
                .map(|i| text(chunk.get(i).unwrap_or(&chunk[0]).as_str()))
                .collect();
            let found = first(self, SQL, &params, |row| {
                stored_id(TransferId::parse, &row.text(0)?)
            })
            .await?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    async fn insert_transfer(&mut self, t: &NewTransfer<'_>) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO transfers (id, kind, org, digest, result, memo, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                text(t.id.as_str()),
                text(t.kind),
                text(t.org.as_str()),
                text(t.digest),
                text(&t.result),
                opt_text(t.memo),
                Param::Int(t.at.millis()),
            ],
        )
    }

    async fn insert_entry(&mut self, e: &Entry) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO entries (org, seq, transfer_id, debit, credit, amount, at, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vec![
                text(e.org.as_str()),
                Param::Int(e.seq),
                text(e.transfer_id.as_str()),
                text(&e.debit),
                text(&e.credit),
                Param::Int(e.amount.nanos()),
                Param::Int(e.at.millis()),
                text(&e.prev_hash),
                text(&e.hash),
            ],
        )
    }

    async fn entries(&mut self, org: &OrganizationId) -> LedgerResult<Vec<Entry>> {
        let sql = "SELECT seq, transfer_id, debit, credit, amount, at, prev_hash, hash
                   FROM entries WHERE org = $1 ORDER BY seq";
        self.rows(sql, &[text(org.as_str())], |row| rows::entry(org, row))
            .await
    }

    async fn lot(&mut self, id: &LotId) -> LedgerResult<Option<Lot>> {
        let sql = concat!(
            "SELECT ",
            lot_columns!(),
            " FROM lots l LEFT JOIN lot_state s ON s.lot = l.id WHERE l.id = $1"
        );
        first(self, sql, &[text(id.as_str())], rows::lot).await
    }

    async fn spendable_lots(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> LedgerResult<Vec<Lot>> {
        let sql = concat!(
            "SELECT ",
            lot_columns!(),
            " FROM lot_state s JOIN lots l ON l.id = s.lot
              WHERE s.org = $1 AND s.remaining > 0
                AND (s.expires_at IS NULL OR s.expires_at > $2)"
        );
        let params = [text(org.as_str()), Param::Int(now.millis())];
        self.rows(sql, &params, rows::lot).await
    }

    async fn spendable_total(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> LedgerResult<NanoCredits> {
        let sql = "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM lot_state
                   WHERE org = $1 AND remaining > 0 AND (expires_at IS NULL OR expires_at > $2)";
        let params = [text(org.as_str()), Param::Int(now.millis())];
        one(self, sql, &params, |row| row.nanos(0)).await
    }

    async fn total_remaining(&mut self, org: &OrganizationId) -> LedgerResult<NanoCredits> {
        let sql = "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM lot_state
                   WHERE org = $1 AND remaining > 0";
        one(self, sql, &[text(org.as_str())], |row| row.nanos(0)).await
    }

    async fn insert_lot(&mut self, lot: &Lot, transfer_id: &TransferId) -> LedgerResult<()> {
        let expires = Param::OptInt(lot.expires_at.map(Timestamp::millis));
        self.defer(
            "INSERT INTO lots (id, org, transfer_id, category, source, amount, price_per_credit,
                               expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vec![
                text(lot.id.as_str()),
                text(lot.org.as_str()),
                text(transfer_id.as_str()),
                text(lot.category.as_str()),
                text(lot.source.as_str()),
                Param::Int(lot.amount.nanos()),
                Param::OptText(lot.price_per_credit.map(|p| p.to_string())),
                expires.clone(),
                Param::Int(lot.created_at.millis()),
            ],
        )?;
        self.defer(
            "INSERT INTO lot_state (lot, org, remaining, expires_at) VALUES ($1, $2, $3, $4)",
            vec![
                text(lot.id.as_str()),
                text(lot.org.as_str()),
                Param::Int(lot.remaining.nanos()),
                expires,
            ],
        )
    }

    async fn set_lot_remaining(&mut self, lot: &LotId, remaining: NanoCredits) -> LedgerResult<()> {
        self.defer(
            "UPDATE lot_state SET remaining = $2 WHERE lot = $1",
            vec![text(lot.as_str()), Param::Int(remaining.nanos())],
        )
    }

    async fn lot_refunded(&mut self, lot: &LotId) -> LedgerResult<bool> {
        let sql = "SELECT EXISTS (SELECT 1 FROM lot_refunds WHERE lot = $1)";
        one(self, sql, &[text(lot.as_str())], |row| row.flag(0)).await
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
                text(lot.as_str()),
                text(transfer_id.as_str()),
                Param::Int(amount.nanos()),
                Param::Int(at.millis()),
            ],
        )
    }

    async fn expired_lots(&mut self, now: Timestamp, limit: i64) -> LedgerResult<Vec<LotId>> {
        let sql = "SELECT lot FROM lot_state WHERE remaining > 0 AND expires_at <= $1
                   ORDER BY expires_at, lot LIMIT $2";
        let params = [Param::Int(now.millis()), Param::Int(limit)];
        self.rows(sql, &params, |row| stored_id(LotId::parse, &row.text(0)?))
            .await
    }

    async fn held(
        &mut self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> LedgerResult<(NanoCredits, u64)> {
        let sql = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT), COUNT(*) FROM active_holds
                   WHERE org = $1 AND expires_at > $2";
        let params = [text(org.as_str()), Param::Int(now.millis())];
        one(self, sql, &params, |row| {
            Ok((row.nanos(0)?, row.int(1)?.unsigned_abs()))
        })
        .await
    }

    async fn lock_hold_org(
        &mut self,
        hold: &TransferId,
    ) -> LedgerResult<Option<(OrganizationId, OrgState)>> {
        let sql = Self::DIALECT.lock_hold_org;
        first(self, sql, &[text(hold.as_str())], |row| {
            let org = stored_id(OrganizationId::parse, &row.text(4)?)?;
            Ok((org, rows::org_state(row)?))
        })
        .await
    }

    async fn hold(&mut self, id: &TransferId) -> LedgerResult<Option<HoldRow>> {
        let sql = "SELECT h.org, h.amount, h.scope, h.created_at, h.expires_at,
                          a.amount, a.expires_at, r.resolution,
                          EXISTS (SELECT 1 FROM charges c WHERE c.hold = h.id),
                          (SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT)
                           FROM hold_extensions e WHERE e.hold = h.id),
                          (SELECT MAX(e.expires_at) FROM hold_extensions e WHERE e.hold = h.id)
                   FROM holds h
                   LEFT JOIN active_holds a ON a.hold = h.id
                   LEFT JOIN hold_resolutions r ON r.hold = h.id
                   WHERE h.id = $1";
        first(self, sql, &[text(id.as_str())], |row| rows::hold(id, row)).await
    }

    async fn insert_hold(&mut self, hold: &Hold) -> LedgerResult<()> {
        self.defer(INSERT_HOLD, hold_row(hold))?;
        self.defer(
            "INSERT INTO active_holds (hold, org, amount, scope, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                text(hold.id.as_str()),
                text(hold.org.as_str()),
                Param::Int(hold.amount.nanos()),
                opt_text(hold.scope.as_deref()),
                Param::Int(hold.expires_at.millis()),
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
                text(transfer_id.as_str()),
                text(hold.id.as_str()),
                Param::Int(amount.nanos()),
                Param::Int(hold.expires_at.millis()),
                Param::Int(at.millis()),
            ],
        )?;
        self.defer(
            "UPDATE active_holds SET amount = $2, expires_at = $3 WHERE hold = $1",
            vec![
                text(hold.id.as_str()),
                Param::Int(hold.amount.nanos()),
                Param::Int(hold.expires_at.millis()),
            ],
        )
    }

    async fn insert_settled_hold(
        &mut self,
        hold: &Hold,
        transfer_id: &TransferId,
        at: Timestamp,
    ) -> LedgerResult<()> {
        self.defer(INSERT_HOLD, hold_row(hold))?;
        self.defer(
            INSERT_RESOLUTION,
            resolution_row(&hold.id, HoldResolution::Settled, Some(transfer_id), at),
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
            INSERT_RESOLUTION,
            resolution_row(hold, resolution, transfer_id, at),
        )?;
        self.defer(
            "DELETE FROM active_holds WHERE hold = $1",
            vec![text(hold.as_str())],
        )
    }

    async fn insert_charge(&mut self, c: &ChargeRow<'_>) -> LedgerResult<()> {
        self.defer(
            "INSERT INTO charges (hold, transfer_id, org, scope, held, charged, overrun, debt,
                                  late, at, memo)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            vec![
                text(c.hold.as_str()),
                text(c.transfer_id.as_str()),
                text(c.org.as_str()),
                opt_text(c.scope),
                Param::Int(c.held.nanos()),
                Param::Int(c.charged.nanos()),
                Param::Int(c.overrun.nanos()),
                Param::Int(c.debt.nanos()),
                Param::Bool(c.late),
                Param::Int(c.at.millis()),
                opt_text(c.memo),
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
        self.defer(usage::INSERT_USAGE, params)?;
        let params = usage::rollup_params(org, at, record)?;
        self.defer_sum(usage::ADD_TO_ROLLUPS, usage::ROLLUP_KEY_PARAMS, params)
    }

    async fn scope_spend(
        &mut self,
        scope: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> LedgerResult<NanoCredits> {
        let sql = Self::DIALECT.scope_spend;
        let params = [
            text(scope),
            Param::Int(since.millis()),
            Param::Int(now.millis()),
        ];
        one(self, sql, &params, |row| row.nanos(0)).await
    }

    async fn expired_holds(&mut self, now: Timestamp, limit: i64) -> LedgerResult<Vec<TransferId>> {
        let sql = "SELECT hold FROM active_holds WHERE expires_at <= $1
                   ORDER BY expires_at, hold LIMIT $2";
        let params = [Param::Int(now.millis()), Param::Int(limit)];
        self.rows(sql, &params, |row| {
            stored_id(TransferId::parse, &row.text(0)?)
        })
        .await
    }

    async fn audit_lots(&mut self, org: &OrganizationId) -> LedgerResult<Vec<AuditLot>> {
        let sql = concat!(
            "SELECT ",
            lot_columns!(),
            ", s.remaining, f.transfer_id, f.amount
             FROM lots l
             LEFT JOIN lot_state s ON s.lot = l.id
             LEFT JOIN lot_refunds f ON f.lot = l.id
             WHERE l.org = $1 ORDER BY l.id"
        );
        self.rows(sql, &[text(org.as_str())], rows::audit_lot).await
    }

    async fn audit_holds(
        &mut self,
        after: Option<&TransferId>,
        limit: i64,
    ) -> LedgerResult<Vec<AuditHold>> {
        let sql = "SELECT h.id, h.amount, h.expires_at,
                          (SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT)
                           FROM hold_extensions e WHERE e.hold = h.id),
                          (SELECT MAX(e.expires_at) FROM hold_extensions e WHERE e.hold = h.id),
                          r.resolution, r.transfer_id,
                          c.transfer_id, c.held, c.charged, c.overrun, c.debt, c.late,
                          a.amount, a.expires_at, h.org
                   FROM holds h
                   LEFT JOIN hold_resolutions r ON r.hold = h.id
                   LEFT JOIN charges c ON c.hold = h.id
                   LEFT JOIN active_holds a ON a.hold = h.id
                   WHERE CAST($1 AS TEXT) IS NULL OR h.id > $1
                   ORDER BY h.id LIMIT $2";
        let params = [opt_text(after.map(TransferId::as_str)), Param::Int(limit)];
        self.rows(sql, &params, rows::audit_hold).await
    }

    async fn count_transfers(&mut self) -> LedgerResult<u64> {
        one(self, "SELECT COUNT(*) FROM transfers", &[], count).await
    }

    async fn dangling_rows(&mut self) -> LedgerResult<Vec<String>> {
        let mut problems = Vec::new();
        for (what, sql) in DANGLING_CHECKS {
            let n = one(self, sql, &[], count).await?;
            if n > 0 {
                problems.push(format!("{n} {what}"));
            }
        }
        Ok(problems)
    }
}
