//! The read side of the ledger: an organization's balance, and `verify`, which recomputes every
//! balance and cache from the journal and walks every hash chain.

use std::collections::{HashMap, HashSet};

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::ledger::{
    account, available, entry_hash, sort_draw_order, Balance, Entry, Hold, HoldResolution,
    LedgerError, LedgerResult, VerifyReport, GENESIS_HASH,
};
use creditgate_core::money::NanoCredits;

use super::{AuditHold, AuditLot, Journal, AUDIT_PAGE};

pub(crate) async fn balance<J: Journal>(
    j: &mut J,
    now: Timestamp,
    org: &OrganizationId,
) -> LedgerResult<Balance> {
    let state = j
        .org_state(org)
        .await?
        .ok_or_else(|| LedgerError::UnknownOrganization(org.clone()))?;
    let mut lots = j.spendable_lots(org, now).await?;
    sort_draw_order(&mut lots);
    let spendable = NanoCredits::checked_sum(lots.iter().map(|l| l.remaining))?;
    let (held, active_holds) = j.held(org, now).await?;
    Ok(Balance {
        org: org.clone(),
        posted: spendable.checked_sub(state.debt)?,
        held,
        available: available(spendable, state.debt, held)?,
        debt: state.debt,
        active_holds,
        lots,
    })
}

/// A hold and how it ended; a hold past its expiry that no one has expired yet reads as expired.
pub(crate) async fn hold<J: Journal>(
    j: &mut J,
    now: Timestamp,
    id: &TransferId,
) -> LedgerResult<Option<(Hold, Option<HoldResolution>)>> {
    Ok(j.hold(id).await?.map(|row| {
        let resolution = match row.resolution {
            None if row.hold.expires_at <= now => Some(HoldResolution::Expired),
            other => other,
        };
        (row.hold, resolution)
    }))
}

pub(crate) async fn verify<J: Journal>(j: &mut J) -> LedgerResult<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut all_accounts = HashMap::<String, i128>::new();
    // What each organization's entries paid to revenue; its charges must add up to the same.
    let mut revenue = HashMap::<OrganizationId, i128>::new();
    for org in j.organizations().await? {
        report.organizations += 1;
        let paid = verify_org(j, &org.id, &mut all_accounts, &mut report).await?;
        revenue.insert(org.id, paid);
    }
    let charged = verify_holds(j, &mut report.problems).await?;
    for (org, paid) in &revenue {
        let charged = charged.get(org).copied().unwrap_or(0);
        if charged != *paid {
            report.problems.push(format!(
                "{org}: charges add up to {charged} but entries paid {paid} to revenue"
            ));
        }
    }
    for org in charged.keys().filter(|o| !revenue.contains_key(*o)) {
        report
            .problems
            .push(format!("{org}: charges of an unknown organization"));
    }
    let total: i128 = all_accounts.values().sum();
    if total != 0 {
        report.problems.push(format!(
            "the balances of all accounts sum to {total}, not 0"
        ));
    }
    report.transfers = j.count_transfers().await?;
    report.problems.extend(j.dangling_rows().await?);
    Ok(report)
}

/// Checks one organization's chain, lots and debt; returns what its entries paid to revenue.
async fn verify_org<J: Journal>(
    j: &mut J,
    org: &OrganizationId,
    all_accounts: &mut HashMap<String, i128>,
    report: &mut VerifyReport,
) -> LedgerResult<i128> {
    let Some(state) = j.org_state(org).await? else {
        report
            .problems
            .push(format!("{org}: the organization has no state row"));
        return Ok(0);
    };
    let entries = j.entries(org).await?;
    report.entries += entries.len() as u64;
    let problems = &mut report.problems;
    let walk = walk_chain(org, &entries, problems);
    let last_seq = entries.last().map_or(0, |e| e.seq);
    if state.last_seq != last_seq || state.last_hash != walk.head {
        problems.push(format!(
            "{org}: cached chain head (entry {}) differs from the journal (entry {last_seq})",
            state.last_seq
        ));
    }
    let lots = j.audit_lots(org).await?;
    check_lots(org, &lots, &walk.accounts, problems);
    check_accounts(org, &lots, &walk.accounts, state.debt, problems);
    check_refunds(org, &lots, &walk.by_transfer, problems);
    for (name, balance) in &walk.accounts {
        *all_accounts.entry(name.clone()).or_default() += balance;
    }
    Ok(walk.accounts.get(account::REVENUE).copied().unwrap_or(0))
}

/// An organization's entries folded: account balances, what each transfer credited to each
/// account, and the hash of the last entry.
struct Walk {
    accounts: HashMap<String, i128>,
    by_transfer: HashMap<(TransferId, String), i128>,
    head: String,
}

/// Walks the hash chain, checking each entry's place, link, hash and shape.
fn walk_chain(org: &OrganizationId, entries: &[Entry], problems: &mut Vec<String>) -> Walk {
    let mut walk = Walk {
        accounts: HashMap::new(),
        by_transfer: HashMap::new(),
        head: GENESIS_HASH.to_owned(),
    };
    for (i, e) in entries.iter().enumerate() {
        check_entry(org, i as i64 + 1, &walk.head, e, problems);
        let amount = i128::from(e.amount.nanos());
        *walk.accounts.entry(e.debit.clone()).or_default() -= amount;
        *walk.accounts.entry(e.credit.clone()).or_default() += amount;
        *walk
            .by_transfer
            .entry((e.transfer_id.clone(), e.credit.clone()))
            .or_default() += amount;
        walk.head = e.hash.clone();
    }
    walk
}

/// One entry: at its place in the chain, linked to the one before, unaltered, positive, and
/// between two different accounts.
fn check_entry(
    org: &OrganizationId,
    expected_seq: i64,
    prev_hash: &str,
    e: &Entry,
    problems: &mut Vec<String>,
) {
    let seq = e.seq;
    if seq != expected_seq {
        problems.push(format!(
            "{org}: entry {seq} found where entry {expected_seq} belongs"
        ));
    }
    if e.prev_hash != prev_hash {
        problems.push(format!(
            "{org}: entry {seq} does not link to the entry before it"
        ));
    }
    let hash = entry_hash(
        &e.prev_hash,
        org,
        seq,
        &e.transfer_id,
        &e.debit,
        &e.credit,
        e.amount,
        e.at,
    );
    if e.hash != hash {
        problems.push(format!(
            "{org}: entry {seq} was altered (its hash does not match its content)"
        ));
    }
    if !e.amount.is_positive() {
        problems.push(format!(
            "{org}: entry {seq} moves {}, not a positive amount",
            e.amount
        ));
    }
    if e.debit == e.credit {
        problems.push(format!(
            "{org}: entry {seq} moves money from {} to itself",
            e.debit
        ));
    }
}

/// Each lot account's balance is the lot's remainder, within 0 and the lot's amount, and its
/// state row says the same.
fn check_lots(
    org: &OrganizationId,
    lots: &[AuditLot],
    accounts: &HashMap<String, i128>,
    problems: &mut Vec<String>,
) {
    for audit in lots {
        let lot = &audit.lot;
        let balance = accounts.get(&account::lot(&lot.id)).copied().unwrap_or(0);
        if balance < 0 {
            problems.push(format!("{org}: lot {} is negative ({balance})", lot.id));
        }
        if balance > i128::from(lot.amount.nanos()) {
            problems.push(format!(
                "{org}: lot {} holds {balance}, more than its amount {}",
                lot.id,
                lot.amount.nanos()
            ));
        }
        match audit.cached_remaining {
            Some(r) if i128::from(r.nanos()) == balance => {}
            Some(r) => problems.push(format!(
                "{org}: lot {} shows {} remaining, its entries say {balance}",
                lot.id,
                r.nanos()
            )),
            None => problems.push(format!("{org}: lot {} has no state row", lot.id)),
        }
    }
}

/// Money moves only through the system accounts, the organization's lots and its overdraft;
/// the overdraft is never positive and equals the cached debt.
fn check_accounts(
    org: &OrganizationId,
    lots: &[AuditLot],
    accounts: &HashMap<String, i128>,
    cached_debt: NanoCredits,
    problems: &mut Vec<String>,
) {
    let lot_accounts: HashSet<String> = lots.iter().map(|a| account::lot(&a.lot.id)).collect();
    let overdraft = account::overdraft(org);
    for name in accounts.keys() {
        let known = name.starts_with("sys:") || lot_accounts.contains(name) || *name == overdraft;
        if !known {
            problems.push(format!(
                "{org}: entries move money through {name}, which is not an account of this organization"
            ));
        }
    }
    let debt = -accounts.get(&overdraft).copied().unwrap_or(0);
    if debt < 0 {
        problems.push(format!(
            "{org}: the overdraft account is positive ({})",
            -debt
        ));
    }
    if i128::from(cached_debt.nanos()) != debt {
        problems.push(format!(
            "{org}: cached debt {} differs from the journal's {debt}",
            cached_debt.nanos()
        ));
    }
}

/// Each refund posts exactly the amount it recorded.
fn check_refunds(
    org: &OrganizationId,
    lots: &[AuditLot],
    by_transfer: &HashMap<(TransferId, String), i128>,
    problems: &mut Vec<String>,
) {
    for audit in lots {
        if let Some((transfer_id, refunded)) = &audit.refund {
            let posted = by_transfer
                .get(&(transfer_id.clone(), account::REFUND.to_owned()))
                .copied()
                .unwrap_or(0);
            if posted != i128::from(refunded.nanos()) {
                problems.push(format!(
                    "{org}: lot {} records a refund of {} but its entries post {posted}",
                    audit.lot.id,
                    refunded.nanos()
                ));
            }
        }
    }
}

/// Pages through every hold: each resolves at most once, a charge follows only a settle or an
/// expiry, the cache equals the journal. Returns what was charged per organization.
async fn verify_holds<J: Journal>(
    j: &mut J,
    problems: &mut Vec<String>,
) -> LedgerResult<HashMap<OrganizationId, i128>> {
    let mut charged = HashMap::<OrganizationId, i128>::new();
    let mut after: Option<TransferId> = None;
    loop {
        let page = j.audit_holds(after.as_ref(), AUDIT_PAGE).await?;
        for h in &page {
            verify_hold(h, problems)?;
            if let Some(c) = &h.charge {
                *charged.entry(h.org.clone()).or_default() += i128::from(c.charged.nanos());
            }
        }
        if (page.len() as i64) < AUDIT_PAGE {
            return Ok(charged);
        }
        after = page.last().map(|h| h.id.clone());
    }
}

fn verify_hold(h: &AuditHold, problems: &mut Vec<String>) -> LedgerResult<()> {
    let org = &h.org;
    let total = h.initial.checked_add(h.extended)?;
    match (h.resolution, h.cached) {
        (None, Some((amount, expires_at))) => {
            if amount != total || expires_at != h.expires_at {
                problems.push(format!(
                    "{org}: hold {} is cached as {} until {}, its journal says {} until {}",
                    h.id,
                    amount.nanos(),
                    expires_at.millis(),
                    total.nanos(),
                    h.expires_at.millis()
                ));
            }
        }
        (None, None) => problems.push(format!(
            "{org}: hold {} is unresolved but not in the active holds",
            h.id
        )),
        (Some(r), Some(_)) => problems.push(format!(
            "{org}: hold {} is {} but still in the active holds",
            h.id,
            r.as_str()
        )),
        (Some(_), None) => {}
    }
    if h.resolution == Some(HoldResolution::Settled) {
        let by_this = h.charge.as_ref().map(|c| &c.transfer_id);
        if h.charge.is_none() || h.resolution_transfer.as_ref() != by_this {
            problems.push(format!(
                "{org}: hold {} is settled without its charge",
                h.id
            ));
        }
    }
    if let Some(c) = &h.charge {
        if !matches!(
            h.resolution,
            Some(HoldResolution::Settled | HoldResolution::Expired)
        ) {
            problems.push(format!(
                "{org}: hold {} is charged but not settled or expired",
                h.id
            ));
        }
        if c.late != (h.resolution == Some(HoldResolution::Expired)) {
            problems.push(format!(
                "{org}: hold {} has a charge whose late flag disagrees with its resolution",
                h.id
            ));
        }
        let overrun = c.charged.checked_sub(c.held)?.max(NanoCredits::ZERO);
        if c.held != total || c.overrun != overrun || c.debt > c.charged {
            problems.push(format!(
                "{org}: the charge of hold {} does not add up (held {}, charged {}, overrun {}, debt {})",
                h.id, c.held, c.charged, c.overrun, c.debt
            ));
        }
    }
    Ok(())
}
