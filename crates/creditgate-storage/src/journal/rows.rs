//! Rows read back from the ledger tables, mapped once for both backends.
//!
//! The statements (`journal::statements`) select the columns each function names, in order;
//! these turn such a row ([`Columns`], either backend's) into the ledger's types and refuse
//! stored values that do not parse.

use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    Entry, Hold, LedgerError, LedgerResult, Lot, LotCategory, LotSource, Organization,
};
use creditgate_core::money::{Decimal, NanoCredits};

use crate::statement::Columns;

use super::{stored_id, stored_resolution, AuditCharge, AuditHold, AuditLot, HoldRow, OrgState};

/// Columns: id, name, created_at.
pub(crate) fn organization(row: &dyn Columns) -> LedgerResult<Organization> {
    Ok(Organization {
        id: stored_id(OrganizationId::parse, &row.text(0)?)?,
        name: row.text(1)?,
        created_at: row.millis(2)?,
    })
}

/// Columns: debt, last_seq, last_hash, credit_limit.
pub(crate) fn org_state(row: &dyn Columns) -> LedgerResult<OrgState> {
    Ok(OrgState {
        debt: row.nanos(0)?,
        last_seq: row.int(1)?,
        last_hash: row.text(2)?,
        credit_limit: row.nanos(3)?,
    })
}

/// Columns: seq, transfer_id, debit, credit, amount, at, prev_hash, hash.
pub(crate) fn entry(org: &OrganizationId, row: &dyn Columns) -> LedgerResult<Entry> {
    let transfer = row.text(1)?;
    Ok(Entry {
        org: org.clone(),
        seq: row.int(0)?,
        transfer_id: stored_id(TransferId::parse, &transfer)?,
        debit: row.text(2)?,
        credit: row.text(3)?,
        amount: row.nanos(4)?,
        at: row.millis(5)?,
        prev_hash: row.text(6)?,
        hash: row.text(7)?,
    })
}

/// The columns [`lot`] reads, for `concat!` into a backend's query over `lots l` and
/// `lot_state s`.
macro_rules! lot_columns {
    () => {
        "l.id, l.org, l.category, l.source, l.amount, COALESCE(s.remaining, 0), \
         l.price_per_credit, l.expires_at, l.created_at"
    };
}
pub(crate) use lot_columns;

/// Columns: id, org, category, source, amount, remaining, price_per_credit, expires_at,
/// created_at ([`lot_columns!`]).
pub(crate) fn lot(row: &dyn Columns) -> LedgerResult<Lot> {
    let category = row.text(2)?;
    let source = row.text(3)?;
    let price = row.opt_text(6)?;
    Ok(Lot {
        id: stored_id(LotId::parse, &row.text(0)?)?,
        org: stored_id(OrganizationId::parse, &row.text(1)?)?,
        category: LotCategory::parse(&category)
            .ok_or_else(|| LedgerError::Corrupt(format!("stored lot category {category:?}")))?,
        source: LotSource::parse(&source)
            .ok_or_else(|| LedgerError::Corrupt(format!("stored lot source {source:?}")))?,
        amount: row.nanos(4)?,
        remaining: row.nanos(5)?,
        price_per_credit: price
            .map(|p| {
                p.parse::<Decimal>()
                    .map_err(|_| LedgerError::Corrupt(format!("stored lot price {p:?}")))
            })
            .transpose()?,
        expires_at: row.opt_millis(7)?,
        created_at: row.millis(8)?,
    })
}

/// The lot columns, then: cached remaining, refund transfer id, refund amount.
pub(crate) fn audit_lot(row: &dyn Columns) -> LedgerResult<AuditLot> {
    let refund_transfer = row.opt_text(10)?;
    let refund_amount = row.opt_int(11)?;
    Ok(AuditLot {
        lot: lot(row)?,
        cached_remaining: row.opt_int(9)?.map(NanoCredits::from_nanos),
        refund: match (refund_transfer, refund_amount) {
            (Some(t), Some(a)) => Some((
                stored_id(TransferId::parse, &t)?,
                NanoCredits::from_nanos(a),
            )),
            _ => None,
        },
    })
}

/// The hold `id`. Columns: org, amount, scope, created_at, expires_at, cached amount, cached
/// expiry, resolution, charged, Σ extensions, latest extension expiry.
pub(crate) fn hold(id: &TransferId, row: &dyn Columns) -> LedgerResult<HoldRow> {
    let org = row.text(0)?;
    let initial = row.nanos(1)?;
    let initial_expiry = row.millis(4)?;
    let cached_amount = row.opt_int(5)?;
    let cached_expiry = row.opt_millis(6)?;
    let resolution = row.opt_text(7)?;
    let extended = row.nanos(9)?;
    let extended_expiry = row.opt_millis(10)?;
    let (amount, expires_at) = match (cached_amount, cached_expiry) {
        (Some(a), Some(e)) => (NanoCredits::from_nanos(a), e),
        _ => (
            initial.checked_add(extended)?,
            extended_expiry.map_or(initial_expiry, |e| e.max(initial_expiry)),
        ),
    };
    Ok(HoldRow {
        hold: Hold {
            id: id.clone(),
            org: stored_id(OrganizationId::parse, &org)?,
            amount,
            created_at: row.millis(3)?,
            expires_at,
            scope: row.opt_text(2)?,
        },
        resolution: resolution.as_deref().map(stored_resolution).transpose()?,
        charged: row.flag(8)?,
    })
}

/// Columns: id, amount, expires_at, Σ extensions, latest extension expiry, resolution,
/// resolution transfer, charge transfer, held, charged, overrun, debt, late, cached amount,
/// cached expiry, org.
pub(crate) fn audit_hold(row: &dyn Columns) -> LedgerResult<AuditHold> {
    let id = row.text(0)?;
    let initial_expiry = row.millis(2)?;
    let extended_expiry = row.opt_millis(4)?;
    let resolution = row.opt_text(5)?;
    let resolution_transfer = row.opt_text(6)?;
    let charge = match row.opt_text(7)? {
        Some(t) => Some(AuditCharge {
            transfer_id: stored_id(TransferId::parse, &t)?,
            held: row.nanos(8)?,
            charged: row.nanos(9)?,
            overrun: row.nanos(10)?,
            debt: row.nanos(11)?,
            late: row.flag(12)?,
        }),
        None => None,
    };
    let cached_amount = row.opt_int(13)?;
    let cached_expiry = row.opt_millis(14)?;
    let org = row.text(15)?;
    Ok(AuditHold {
        id: stored_id(TransferId::parse, &id)?,
        org: stored_id(OrganizationId::parse, &org)?,
        initial: row.nanos(1)?,
        extended: row.nanos(3)?,
        expires_at: extended_expiry.map_or(initial_expiry, |x| x.max(initial_expiry)),
        resolution: resolution.as_deref().map(stored_resolution).transpose()?,
        resolution_transfer: resolution_transfer
            .map(|t| stored_id(TransferId::parse, &t))
            .transpose()?,
        charge,
        cached: cached_amount
            .zip(cached_expiry)
            .map(|(a, x)| (NanoCredits::from_nanos(a), x)),
    })
}
