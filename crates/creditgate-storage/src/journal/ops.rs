//! The money operations, each run inside one transaction: lock the organization, answer a replay
//! from the stored result, apply the rules of `creditgate_core::ledger`, record the transfer.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    account, available, entry_hash, plan_draws, request_digest, spendable_total, AdjustRequest,
    Adjusted, ClawbackRequest, ClawedBack, Draw, Entry, ExtendHoldRequest, GrantRequest, Granted,
    Hold, HoldRequest, HoldResolution, LeaseRequest, LeasedHold, LedgerError, LedgerResult, Lot,
    LotCategory, LotSource, Organization, RefundRequest, Refunded, ReleaseRequest, Released,
    SettleRequest, Settlement, SpendLimit, GENESIS_HASH, MAX_HOLD_TIMEOUT_MS, MAX_MEMO_LEN,
    MAX_SCOPE_LEN,
};
use creditgate_core::money::NanoCredits;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ChargeRow, HoldRow, Journal, NewTransfer, OrgState};

/// The transfer kinds stored in `transfers.kind`.
pub(crate) mod kind {
    pub const GRANT: &str = "grant";
    pub const HOLD: &str = "hold";
    pub const EXTEND_HOLD: &str = "extend_hold";
    pub const SETTLE: &str = "settle";
    pub const RELEASE: &str = "release";
    pub const REFUND: &str = "refund";
    pub const ADJUST: &str = "adjust";
    pub const EXPIRE_LOT: &str = "expire_lot";
    pub const CLAW_BACK: &str = "claw_back";
    /// Only in digests: a lease's transfer is recorded as a hold.
    pub const LEASE: &str = "lease";
}

pub(crate) async fn create_organization<J: Journal>(
    j: &mut J,
    now: Timestamp,
    id: OrganizationId,
    name: String,
) -> LedgerResult<Organization> {
    check_memo("organization name", Some(&name))?;
    let org = Organization {
        id,
        name,
        created_at: now,
    };
    if j.insert_organization(&org).await? {
        Ok(org)
    } else {
        Err(LedgerError::OrganizationExists(org.id))
    }
}

pub(crate) async fn grant<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: GrantRequest,
) -> LedgerResult<Granted> {
    if !req.amount.is_positive() {
        return Err(LedgerError::InvalidAmount(format!(
            "a grant must be positive, not {}",
            req.amount
        )));
    }
    check_memo("memo", req.memo.as_deref())?;
    let digest = request_digest(kind::GRANT, &req);
    let mut state = lock(j, &req.org).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    let (lot, repaid_overrun) = new_lot(
        j,
        &mut state,
        NewLot {
            org: &req.org,
            transfer_id: &req.transfer_id,
            lot_id: &req.lot_id,
            amount: req.amount,
            category: req.category,
            source: req.source,
            price_per_credit: req.price_per_credit,
            expires_at: req.expires_at,
            from: account::ISSUANCE,
        },
        now,
    )
    .await?;
    let result = Granted {
        lot,
        repaid_overrun,
    };
    j.save_org_state(&req.org, &state).await?;
    record(
        j,
        &req.transfer_id,
        kind::GRANT,
        &req.org,
        &digest,
        req.memo.as_deref(),
        now,
        &result,
    )
    .await?;
    Ok(result)
}

pub(crate) async fn reserve<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: HoldRequest,
) -> LedgerResult<Hold> {
    check_non_negative("hold", req.amount)?;
    check_timeout(req.timeout_ms)?;
    check_memo("memo", req.memo.as_deref())?;
    if let Some(scope) = &req.scope {
        check_scope(scope)?;
    }
    let digest = request_digest(kind::HOLD, &req);
    let state = lock(j, &req.org).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    admit(j, &req.org, &state, req.amount, &req.limits, now).await?;
    let hold = Hold {
        id: req.transfer_id.clone(),
        org: req.org.clone(),
        amount: req.amount,
        created_at: now,
        expires_at: now.plus_millis(req.timeout_ms),
        scope: req.scope.clone(),
    };
    j.insert_hold(&hold).await?;
    record(
        j,
        &req.transfer_id,
        kind::HOLD,
        &req.org,
        &digest,
        req.memo.as_deref(),
        now,
        &hold,
    )
    .await?;
    Ok(hold)
}

pub(crate) async fn extend_hold<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: ExtendHoldRequest,
) -> LedgerResult<Hold> {
    check_non_negative("hold extension", req.amount)?;
    check_timeout(req.timeout_ms)?;
    let digest = request_digest(kind::EXTEND_HOLD, &req);
    let (org, state) = lock_hold(j, &req.hold).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    let row = j
        .hold(&req.hold)
        .await?
        .ok_or_else(|| LedgerError::UnknownHold(req.hold.clone()))?;
    if let Some(resolution) = row.resolution {
        return Err(LedgerError::HoldResolved {
            hold: req.hold,
            resolution,
        });
    }
    if row.hold.expires_at <= now {
        return Err(LedgerError::HoldResolved {
            hold: req.hold,
            resolution: HoldResolution::Expired,
        });
    }
    // Growing needs available credit; a keep-alive (zero) only pushes the expiry of credit
    // already held, so an organization in debt never loses the hold of a live request.
    if req.amount.is_positive() {
        admit(j, &org, &state, req.amount, &req.limits, now).await?;
    }
    let mut hold = row.hold;
    hold.amount = hold.amount.checked_add(req.amount)?;
    hold.expires_at = hold.expires_at.max(now.plus_millis(req.timeout_ms));
    j.insert_hold_extension(&req.transfer_id, &hold, req.amount, now)
        .await?;
    record(
        j,
        &req.transfer_id,
        kind::EXTEND_HOLD,
        &org,
        &digest,
        None,
        now,
        &hold,
    )
    .await?;
    Ok(hold)
}

/// A settlement's own checks: a charge that is not negative, a memo within bounds, and a usage
/// record (if any) whose credits are the charge.
fn check_settle(req: &SettleRequest) -> LedgerResult<()> {
    check_non_negative("charge", req.amount)?;
    check_memo("memo", req.memo.as_deref())?;
    match &req.usage {
        Some(record) => record
            .check(req.amount)
            .map_err(LedgerError::InvalidRequest),
        None => Ok(()),
    }
}

pub(crate) async fn settle<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: SettleRequest,
) -> LedgerResult<Settlement> {
    check_settle(&req)?;
    let digest = request_digest(kind::SETTLE, &req);
    if let Some(leased) = &req.leased {
        return settle_leased(j, now, &req, leased, &digest).await;
    }
    let (org, state) = lock_hold(j, &req.hold).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    let (row, late) =
        end_hold(j, &req.hold, HoldResolution::Settled, &req.transfer_id, now).await?;
    charge(j, now, &req, &digest, org, state, &row.hold, late).await
}

/// The settle of a request admitted against a credit lease: its hold never reached the
/// database, so it is recorded here, settled, beside its charge. The credit it used was the
/// lease's, an ordinary hold of the organization, so nothing is admitted again: the charge may
/// draw what the lease held, as a request's charge draws what its own hold held.
async fn settle_leased<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: &SettleRequest,
    leased: &LeasedHold,
    digest: &str,
) -> LedgerResult<Settlement> {
    check_leased(leased)?;
    let state = lock(j, &leased.org).await?;
    if let Some(done) = replay(j, &req.transfer_id, digest).await? {
        return Ok(done);
    }
    // A request id names one request: a hold already under it is another operation's.
    if j.transfer(&req.hold).await?.is_some() {
        return Err(LedgerError::IdempotencyConflict(req.hold.clone()));
    }
    let hold = record_leased_hold(j, now, req, leased).await?;
    charge(j, now, req, digest, leased.org.clone(), state, &hold, false).await
}

/// Settles requests admitted against credit leases together, in one transaction
/// (`LedgerStore::settle_leased_group`): each is recorded and charged as [`settle_leased`] would,
/// but each organization is locked once, its lots and holds read once, and each lot drawn and
/// its state written once. An id already used — a replay of a settle already posted, a request
/// id naming another transfer, the same request twice — refuses the whole group
/// (`IdempotencyConflict`) without looking up earlier results. Organizations are locked in order
/// of their ids, so two replicas' groups cannot deadlock.
pub(crate) async fn settle_leased_group<J: Journal>(
    j: &mut J,
    now: Timestamp,
    reqs: &[SettleRequest],
) -> LedgerResult<Vec<Settlement>> {
    let mut leased = Vec::with_capacity(reqs.len());
    for req in reqs {
        check_settle(req)?;
        let l = req.leased.as_ref().ok_or_else(|| {
            LedgerError::InvalidRequest(format!(
                "settle {} was not admitted against a credit lease",
                req.transfer_id
            ))
        })?;
        check_leased(l)?;
        leased.push(l);
    }
    let mut ids: Vec<&TransferId> = reqs
        .iter()
        .flat_map(|r| [&r.transfer_id, &r.hold])
        .collect();
    let mut orgs: Vec<&OrganizationId> = leased.iter().map(|l| &l.org).collect();
    orgs.sort();
    orgs.dedup();
    let mut settled = Vec::with_capacity(reqs.len());
    for (n, org) in orgs.into_iter().enumerate() {
        let mut state = lock(j, org).await?;
        // Under the first lock, as a settle alone looks for its replay under its lock.
        if n == 0 {
            if let Some(used) = j.any_transfer(&ids).await? {
                return Err(LedgerError::IdempotencyConflict(used));
            }
            ids.sort();
            if let Some(twice) = ids.windows(2).find(|w| w[0] == w[1]) {
                return Err(LedgerError::IdempotencyConflict(twice[0].clone()));
            }
        }
        let mut lots = j.spendable_lots(org, now).await?;
        // Constant through the group: each hold it records is settled as it is recorded.
        let (held, _) = j.held(org, now).await?;
        let mut drawn = Vec::new();
        for (i, (req, l)) in reqs.iter().zip(&leased).enumerate() {
            if l.org != *org {
                continue;
            }
            let hold = record_leased_hold(j, now, req, l).await?;
            let digest = request_digest(kind::SETTLE, req);
            let booked = Booking {
                org,
                lots: &mut lots,
                held,
            };
            let s = book_charge(j, now, req, &digest, &mut state, booked, &hold, false).await?;
            drawn.extend(s.draws.iter().cloned());
            settled.push((i, s));
        }
        save_drawn(j, &lots, &drawn).await?;
        j.save_org_state(org, &state).await?;
    }
    settled.sort_by_key(|(i, _)| *i);
    Ok(settled.into_iter().map(|(_, s)| s).collect())
}

/// A leased hold's own checks.
fn check_leased(leased: &LeasedHold) -> LedgerResult<()> {
    check_non_negative("hold", leased.amount)?;
    check_memo("memo", leased.memo.as_deref())?;
    if let Some(scope) = &leased.scope {
        check_scope(scope)?;
    }
    Ok(())
}

/// Records the hold of a request admitted against a lease, settled by `req`, with its hold
/// transfer.
async fn record_leased_hold<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: &SettleRequest,
    leased: &LeasedHold,
) -> LedgerResult<Hold> {
    let hold = Hold {
        id: req.hold.clone(),
        org: leased.org.clone(),
        amount: leased.amount,
        created_at: leased.created_at.min(now),
        expires_at: now.plus_millis(1),
        scope: leased.scope.clone(),
    };
    j.insert_settled_hold(&hold, &req.transfer_id, now).await?;
    let hold_digest = request_digest(kind::HOLD, leased);
    record(
        j,
        &req.hold,
        kind::HOLD,
        &leased.org,
        &hold_digest,
        leased.memo.as_deref(),
        hold.created_at,
        &hold,
    )
    .await?;
    Ok(hold)
}

/// Posts the charge of a hold that this transaction resolved as settled: draws the lots in draw
/// order, books what they do not cover as debt, writes the charge and its usage record, and
/// records the settle transfer.
#[allow(clippy::too_many_arguments)]
async fn charge<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: &SettleRequest,
    digest: &str,
    org: OrganizationId,
    mut state: OrgState,
    hold: &Hold,
    late: bool,
) -> LedgerResult<Settlement> {
    let mut lots = j.spendable_lots(&org, now).await?;
    // The charge changes no hold: what is held after it is what is held now.
    let (held, _) = j.held(&org, now).await?;
    let booked = Booking {
        org: &org,
        lots: &mut lots,
        held,
    };
    let result = book_charge(j, now, req, digest, &mut state, booked, hold, late).await?;
    save_drawn(j, &lots, &result.draws).await?;
    j.save_org_state(&org, &state).await?;
    Ok(result)
}

/// What a charge is booked against: its organization's lots spendable at `now` as this
/// transaction read them (their `remaining` lowered in memory by each charge booked), and what
/// the organization's holds hold.
struct Booking<'a> {
    org: &'a OrganizationId,
    lots: &'a mut [Lot],
    held: NanoCredits,
}

/// Books one charge: draws `booked.lots` in draw order (entries written, remainders lowered in
/// memory only), books what they do not cover as debt in `state`, writes the charge, its usage
/// record and the settle transfer. The caller writes the lots drawn and the state.
#[allow(clippy::too_many_arguments)]
async fn book_charge<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: &SettleRequest,
    digest: &str,
    state: &mut OrgState,
    booked: Booking<'_>,
    hold: &Hold,
    late: bool,
) -> LedgerResult<Settlement> {
    let Booking { org, lots, held } = booked;
    let (draws, debt) = plan_draws(lots, req.amount, now)?;
    let mut chain = Chain::new(org, &req.transfer_id, state, now);
    chain.post_draws(j, lots, &draws, account::REVENUE).await?;
    chain
        .post(j, &account::overdraft(org), account::REVENUE, debt)
        .await?;
    state.debt = state.debt.checked_add(debt)?;
    let overrun = req.amount.checked_sub(hold.amount)?.max(NanoCredits::ZERO);
    j.insert_charge(&ChargeRow {
        hold: &req.hold,
        transfer_id: &req.transfer_id,
        org,
        scope: hold.scope.as_deref(),
        held: hold.amount,
        charged: req.amount,
        overrun,
        debt,
        late,
        at: now,
        memo: req.memo.as_deref(),
    })
    .await?;
    // The usage record goes in the same transaction as the charge it describes.
    if let Some(record) = &req.usage {
        j.insert_usage(&req.hold, org, now, record).await?;
    }
    let result = Settlement {
        hold: req.hold.clone(),
        held: hold.amount,
        charged: req.amount,
        overrun,
        debt,
        draws,
        late,
        // The lots were read with the spendable filter at `now`: what they hold after the
        // draws is the spendable total.
        available: available(spendable_total(lots, now)?, state.debt, held).ok(),
    };
    record(
        j,
        &req.transfer_id,
        kind::SETTLE,
        org,
        digest,
        None,
        now,
        &result,
    )
    .await?;
    Ok(result)
}

/// Writes the remaining credit of each lot drawn from (repeats allowed) as `lots` hold it now.
async fn save_drawn<J: Journal>(j: &mut J, lots: &[Lot], drawn: &[Draw]) -> LedgerResult<()> {
    for lot in lots.iter().filter(|l| drawn.iter().any(|d| d.lot == l.id)) {
        j.set_lot_remaining(&lot.id, lot.remaining).await?;
    }
    Ok(())
}

/// Replaces a replica's credit lease: releases the previous one and places the new one for as
/// much of `wanted` as the organization has available (prepaid: its credit line is not leased),
/// never less than `needed`.
pub(crate) async fn lease<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: LeaseRequest,
) -> LedgerResult<Hold> {
    check_non_negative("lease", req.needed)?;
    check_timeout(req.timeout_ms)?;
    if req.wanted < req.needed {
        return Err(LedgerError::InvalidAmount(format!(
            "a lease wants {} but needs {}",
            req.wanted, req.needed
        )));
    }
    let digest = request_digest(kind::LEASE, &req);
    let state = lock(j, &req.org).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    if let Some((previous, release_id)) = &req.previous {
        return_lease(j, now, &req.org, previous, release_id).await?;
    }
    // Prepaid credit only (no credit line): an invoiced organization's line is spent through
    // holds of their own, which check the line as it stands when each is placed.
    let available =
        ensure_available(j, &req.org, &state, req.needed, NanoCredits::ZERO, now).await?;
    let hold = Hold {
        id: req.transfer_id.clone(),
        org: req.org.clone(),
        // Never more than half of what would be left beside what is needed: another replica's
        // lease, or a key with spend limits, still finds credit.
        amount: req
            .needed
            .checked_add(
                req.wanted
                    .checked_sub(req.needed)?
                    .min(NanoCredits::from_nanos(
                        available.checked_sub(req.needed)?.nanos() / 2,
                    )),
            )?,
        created_at: now,
        expires_at: now.plus_millis(req.timeout_ms),
        scope: None,
    };
    j.insert_hold(&hold).await?;
    record(
        j,
        &req.transfer_id,
        kind::HOLD,
        &req.org,
        &digest,
        Some("credit lease"),
        now,
        &hold,
    )
    .await?;
    Ok(hold)
}

/// Releases a lease being replaced (the ordinary release, after checking the lease is the
/// organization's), unless it already ended otherwise than by expiry.
async fn return_lease<J: Journal>(
    j: &mut J,
    now: Timestamp,
    org: &OrganizationId,
    lease: &TransferId,
    release_id: &TransferId,
) -> LedgerResult<()> {
    match j.lock_hold_org(lease).await? {
        Some((owner, _)) if &owner == org => {}
        _ => return Err(LedgerError::UnknownHold(lease.clone())),
    }
    let req = ReleaseRequest {
        transfer_id: release_id.clone(),
        hold: lease.clone(),
    };
    match release(j, now, req).await {
        Ok(_) | Err(LedgerError::HoldResolved { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn release<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: ReleaseRequest,
) -> LedgerResult<Released> {
    let digest = request_digest(kind::RELEASE, &req);
    let (org, _) = lock_hold(j, &req.hold).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    let (row, already_expired) = end_hold(
        j,
        &req.hold,
        HoldResolution::Released,
        &req.transfer_id,
        now,
    )
    .await?;
    let result = Released {
        hold: req.hold.clone(),
        amount: row.hold.amount,
        already_expired,
    };
    record(
        j,
        &req.transfer_id,
        kind::RELEASE,
        &org,
        &digest,
        None,
        now,
        &result,
    )
    .await?;
    Ok(result)
}

/// Expires one hold if it is still unresolved and past its expiry; `true` if this call did.
pub(crate) async fn expire_hold<J: Journal>(
    j: &mut J,
    now: Timestamp,
    id: &TransferId,
) -> LedgerResult<bool> {
    // Locks the hold's organization, as every money operation does first.
    if j.lock_hold_org(id).await?.is_none() {
        return Ok(false);
    }
    let Some(row) = j.hold(id).await? else {
        return Ok(false);
    };
    if row.resolution.is_some() || row.hold.expires_at > now {
        return Ok(false);
    }
    j.resolve_hold(id, HoldResolution::Expired, None, now)
        .await?;
    Ok(true)
}

/// Posts the expiry of one lot if it is past its expiry with credits left; at most once per lot,
/// under the transfer id [`lot_expiry_transfer_id`].
pub(crate) async fn expire_lot<J: Journal>(
    j: &mut J,
    now: Timestamp,
    id: &LotId,
) -> LedgerResult<Option<Draw>> {
    let Some(lot) = j.lot(id).await? else {
        return Ok(None);
    };
    let mut state = lock(j, &lot.org).await?;
    let transfer_id = lot_expiry_transfer_id(id);
    if j.transfer(&transfer_id).await?.is_some() {
        return Ok(None);
    }
    // Re-read under the organization's lock.
    let Some(lot) = j.lot(id).await? else {
        return Ok(None);
    };
    if !lot.is_expired(now) || !lot.remaining.is_positive() {
        return Ok(None);
    }
    let mut chain = Chain::new(&lot.org, &transfer_id, &mut state, now);
    chain
        .post(j, &account::lot(id), account::EXPIRY, lot.remaining)
        .await?;
    j.set_lot_remaining(id, NanoCredits::ZERO).await?;
    j.save_org_state(&lot.org, &state).await?;
    let draw = Draw {
        lot: id.clone(),
        amount: lot.remaining,
    };
    let digest = request_digest(kind::EXPIRE_LOT, id);
    record(
        j,
        &transfer_id,
        kind::EXPIRE_LOT,
        &lot.org,
        &digest,
        None,
        now,
        &draw,
    )
    .await?;
    Ok(Some(draw))
}

/// The deterministic transfer id of a lot's expiry: `expire-lot:<lot id>`, or
/// `expire-lot:<sha-256 of the lot id>` when that would exceed the id length limit.
pub(crate) fn lot_expiry_transfer_id(lot: &LotId) -> TransferId {
    TransferId::parse(&format!("expire-lot:{lot}")).unwrap_or_else(|_| {
        let digest = hex::encode(Sha256::digest(lot.as_str().as_bytes()));
        TransferId::parse(&format!("expire-lot:{digest}"))
            .expect("a 75-character id of hex digits is valid")
    })
}

pub(crate) async fn refund_lot<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: RefundRequest,
) -> LedgerResult<Refunded> {
    check_memo("memo", req.memo.as_deref())?;
    let digest = request_digest(kind::REFUND, &req);
    let mut state = lock(j, &req.org).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    let lot = match j.lot(&req.lot).await? {
        Some(lot) if lot.org == req.org => lot,
        _ => return Err(LedgerError::UnknownLot(req.lot)),
    };
    if j.lot_refunded(&lot.id).await? {
        return Err(LedgerError::AlreadyRefunded(lot.id));
    }
    // An expired lot's remainder belongs to the expiry, swept or not.
    let amount = if lot.is_expired(now) {
        NanoCredits::ZERO
    } else {
        lot.remaining
    };
    if amount.is_positive() {
        ensure_available(j, &req.org, &state, amount, NanoCredits::ZERO, now).await?;
        let mut chain = Chain::new(&req.org, &req.transfer_id, &mut state, now);
        chain
            .post(j, &account::lot(&lot.id), account::REFUND, amount)
            .await?;
        j.set_lot_remaining(&lot.id, lot.remaining.checked_sub(amount)?)
            .await?;
        j.save_org_state(&req.org, &state).await?;
    }
    j.insert_lot_refund(&lot.id, &req.transfer_id, amount, now)
        .await?;
    let result = Refunded {
        lot: lot.id,
        amount,
    };
    record(
        j,
        &req.transfer_id,
        kind::REFUND,
        &req.org,
        &digest,
        req.memo.as_deref(),
        now,
        &result,
    )
    .await?;
    Ok(result)
}

/// Takes back up to `amount` of a lot whose payment was refunded or disputed at the provider:
/// what the lot still has (unexpired) is clawed back; the rest becomes debt, repaid first by
/// the next grant. Never refused for lack of credit: the money is already gone.
pub(crate) async fn claw_back<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: ClawbackRequest,
) -> LedgerResult<ClawedBack> {
    if !req.amount.is_positive() {
        return Err(LedgerError::InvalidAmount(format!(
            "a clawback must be positive, not {}",
            req.amount
        )));
    }
    check_memo("memo", req.memo.as_deref())?;
    let digest = request_digest(kind::CLAW_BACK, &req);
    let mut state = lock(j, &req.org).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    let lot = match j.lot(&req.lot).await? {
        Some(lot) if lot.org == req.org => lot,
        _ => return Err(LedgerError::UnknownLot(req.lot)),
    };
    let left = if lot.is_expired(now) {
        NanoCredits::ZERO
    } else {
        lot.remaining
    };
    let taken = left.min(req.amount);
    let debt = req.amount.checked_sub(taken)?;
    let mut chain = Chain::new(&req.org, &req.transfer_id, &mut state, now);
    chain
        .post(j, &account::lot(&lot.id), account::REFUND, taken)
        .await?;
    chain
        .post(j, &account::overdraft(&req.org), account::REFUND, debt)
        .await?;
    if taken.is_positive() {
        j.set_lot_remaining(&lot.id, lot.remaining.checked_sub(taken)?)
            .await?;
    }
    state.debt = state.debt.checked_add(debt)?;
    j.save_org_state(&req.org, &state).await?;
    let result = ClawedBack {
        lot: lot.id,
        taken,
        debt,
    };
    record(
        j,
        &req.transfer_id,
        kind::CLAW_BACK,
        &req.org,
        &digest,
        req.memo.as_deref(),
        now,
        &result,
    )
    .await?;
    Ok(result)
}

/// A positive adjustment: a new granted lot, from the adjustment account.
async fn adjust_up<J: Journal>(
    j: &mut J,
    req: &AdjustRequest,
    state: &mut OrgState,
    now: Timestamp,
) -> LedgerResult<Adjusted> {
    let (lot, _) = new_lot(
        j,
        state,
        NewLot {
            org: &req.org,
            transfer_id: &req.transfer_id,
            lot_id: &req.lot_id,
            amount: req.amount,
            category: LotCategory::Granted,
            source: LotSource::Manual,
            price_per_credit: None,
            expires_at: None,
            from: account::ADJUSTMENT,
        },
        now,
    )
    .await?;
    Ok(Adjusted {
        amount: req.amount,
        lot: Some(lot.id),
        draws: Vec::new(),
    })
}

/// A negative adjustment: drawn from available credit in spending order, never into debt.
async fn adjust_down<J: Journal>(
    j: &mut J,
    req: &AdjustRequest,
    state: &mut OrgState,
    now: Timestamp,
) -> LedgerResult<Adjusted> {
    let needed = req.amount.checked_neg()?;
    ensure_available(j, &req.org, state, needed, NanoCredits::ZERO, now).await?;
    let mut lots = j.spendable_lots(&req.org, now).await?;
    let (draws, uncovered) = plan_draws(&lots, needed, now)?;
    if uncovered.is_positive() {
        return Err(LedgerError::Corrupt(format!(
            "lots of {} do not cover the available credit",
            req.org
        )));
    }
    let mut chain = Chain::new(&req.org, &req.transfer_id, state, now);
    chain
        .post_draws(j, &mut lots, &draws, account::ADJUSTMENT)
        .await?;
    save_drawn(j, &lots, &draws).await?;
    Ok(Adjusted {
        amount: req.amount,
        lot: None,
        draws,
    })
}

pub(crate) async fn adjust<J: Journal>(
    j: &mut J,
    now: Timestamp,
    req: AdjustRequest,
) -> LedgerResult<Adjusted> {
    if req.amount == NanoCredits::ZERO {
        return Err(LedgerError::InvalidAmount(
            "an adjustment must not be zero".to_owned(),
        ));
    }
    if req.reason.trim().is_empty() {
        return Err(LedgerError::InvalidRequest(
            "an adjustment needs a reason".to_owned(),
        ));
    }
    check_memo("reason", Some(&req.reason))?;
    let digest = request_digest(kind::ADJUST, &req);
    let mut state = lock(j, &req.org).await?;
    if let Some(done) = replay(j, &req.transfer_id, &digest).await? {
        return Ok(done);
    }
    let result = if req.amount.is_positive() {
        adjust_up(j, &req, &mut state, now).await?
    } else {
        adjust_down(j, &req, &mut state, now).await?
    };
    j.save_org_state(&req.org, &state).await?;
    record(
        j,
        &req.transfer_id,
        kind::ADJUST,
        &req.org,
        &digest,
        Some(&req.reason),
        now,
        &result,
    )
    .await?;
    Ok(result)
}

/// The state row of an organization that must exist, locked.
async fn lock<J: Journal>(j: &mut J, org: &OrganizationId) -> LedgerResult<OrgState> {
    j.lock_org(org)
        .await?
        .ok_or_else(|| LedgerError::UnknownOrganization(org.clone()))
}

/// The organization of a hold that must exist, and its state, locked.
async fn lock_hold<J: Journal>(
    j: &mut J,
    hold: &TransferId,
) -> LedgerResult<(OrganizationId, OrgState)> {
    j.lock_hold_org(hold)
        .await?
        .ok_or_else(|| LedgerError::UnknownHold(hold.clone()))
}

/// The stored result of an earlier transfer with this id and content, or a conflict if the id
/// was used for something else.
async fn replay<J: Journal, T: DeserializeOwned>(
    j: &mut J,
    id: &TransferId,
    digest: &str,
) -> LedgerResult<Option<T>> {
    match j.transfer(id).await? {
        None => Ok(None),
        Some(t) if t.digest == digest => serde_json::from_str(&t.result).map(Some).map_err(|e| {
            LedgerError::Corrupt(format!("stored result of transfer {id} is unreadable: {e}"))
        }),
        Some(_) => Err(LedgerError::IdempotencyConflict(id.clone())),
    }
}

/// Ends a hold for a settle or a release (`ending`): reads it, refuses it if it was charged or
/// already ended otherwise than by expiry, and records how it ends. A hold past its expiry that
/// no one has expired yet is recorded as expired first, so it still resolves exactly once.
/// Returns the hold and whether it had expired (a settle then charges late).
async fn end_hold<J: Journal>(
    j: &mut J,
    hold: &TransferId,
    ending: HoldResolution,
    transfer_id: &TransferId,
    now: Timestamp,
) -> LedgerResult<(HoldRow, bool)> {
    let row = j
        .hold(hold)
        .await?
        .ok_or_else(|| LedgerError::UnknownHold(hold.clone()))?;
    if row.charged {
        return Err(LedgerError::HoldResolved {
            hold: hold.clone(),
            resolution: HoldResolution::Settled,
        });
    }
    let expired = match row.resolution {
        Some(HoldResolution::Expired) => true,
        Some(resolution) => {
            return Err(LedgerError::HoldResolved {
                hold: hold.clone(),
                resolution,
            })
        }
        None if row.hold.expires_at <= now => {
            j.resolve_hold(hold, HoldResolution::Expired, None, now)
                .await?;
            true
        }
        None => {
            j.resolve_hold(hold, ending, Some(transfer_id), now).await?;
            false
        }
    };
    Ok((row, expired))
}

#[allow(clippy::too_many_arguments)]
async fn record<J: Journal, T: Serialize>(
    j: &mut J,
    id: &TransferId,
    kind: &str,
    org: &OrganizationId,
    digest: &str,
    memo: Option<&str>,
    at: Timestamp,
    result: &T,
) -> LedgerResult<()> {
    let result = serde_json::to_string(result)
        .map_err(|e| LedgerError::Corrupt(format!("cannot encode a transfer result: {e}")))?;
    j.insert_transfer(&NewTransfer {
        id,
        kind,
        org,
        digest,
        result,
        memo,
        at,
    })
    .await
}

/// `Insufficient` unless the organization's available credit at `now`, plus the credit `line`
/// it may spend into debt, covers `needed`; else what it found (available plus the line). The
/// refusal reports the same, so the caller's advice (the largest `max_tokens` that fits) stays
/// true.
async fn ensure_available<J: Journal>(
    j: &mut J,
    org: &OrganizationId,
    state: &OrgState,
    needed: NanoCredits,
    line: NanoCredits,
    now: Timestamp,
) -> LedgerResult<NanoCredits> {
    let spendable = j.spendable_total(org, now).await?;
    let (held, _) = j.held(org, now).await?;
    let available = available(spendable, state.debt, held)?.checked_add(line)?;
    if available < needed {
        return Err(LedgerError::Insufficient { available, needed });
    }
    Ok(available)
}

/// The admission rule for placing or growing a hold by `amount`: available credit plus the
/// organization's credit limit (zero unless invoiced) and every spend limit must cover it. Runs under the organization's lock, so it is one atomic step with
/// the write that follows.
async fn admit<J: Journal>(
    j: &mut J,
    org: &OrganizationId,
    state: &OrgState,
    amount: NanoCredits,
    limits: &[SpendLimit],
    now: Timestamp,
) -> LedgerResult<()> {
    ensure_available(j, org, state, amount, state.credit_limit, now).await?;
    for limit in limits {
        check_scope(&limit.scope)?;
        let spent = j.scope_spend(&limit.scope, limit.since, now).await?;
        if spent.checked_add(amount)? > limit.cap {
            return Err(LedgerError::LimitExceeded {
                scope: limit.scope.clone(),
                cap: limit.cap,
                remaining: limit
                    .cap
                    .checked_sub(spent)
                    .unwrap_or(NanoCredits::ZERO)
                    .max(NanoCredits::ZERO),
                needed: amount,
            });
        }
    }
    Ok(())
}

struct NewLot<'a> {
    org: &'a OrganizationId,
    transfer_id: &'a TransferId,
    lot_id: &'a LotId,
    amount: NanoCredits,
    category: LotCategory,
    source: LotSource,
    price_per_credit: Option<creditgate_core::money::Decimal>,
    expires_at: Option<Timestamp>,
    /// The operator account the credits come from.
    from: &'static str,
}

/// Creates a lot; if the organization owes overrun and the lot is spendable, the lot repays the
/// debt first. Returns the lot as created and what it repaid.
async fn new_lot<J: Journal>(
    j: &mut J,
    state: &mut OrgState,
    new: NewLot<'_>,
    now: Timestamp,
) -> LedgerResult<(Lot, NanoCredits)> {
    if j.lot(new.lot_id).await?.is_some() {
        return Err(LedgerError::LotExists(new.lot_id.clone()));
    }
    // Keeps every per-organization sum inside i64, so no later query can overflow.
    j.total_remaining(new.org).await?.checked_add(new.amount)?;
    let spendable = new.expires_at.is_none_or(|e| e > now);
    let repaid = if spendable {
        state.debt.min(new.amount)
    } else {
        NanoCredits::ZERO
    };
    let lot_account = account::lot(new.lot_id);
    let mut chain = Chain::new(new.org, new.transfer_id, state, now);
    chain.post(j, new.from, &lot_account, new.amount).await?;
    chain
        .post(j, &lot_account, &account::overdraft(new.org), repaid)
        .await?;
    state.debt = state.debt.checked_sub(repaid)?;
    let lot = Lot {
        id: new.lot_id.clone(),
        org: new.org.clone(),
        category: new.category,
        source: new.source,
        amount: new.amount,
        remaining: new.amount.checked_sub(repaid)?,
        price_per_credit: new.price_per_credit,
        expires_at: new.expires_at,
        created_at: now,
    };
    j.insert_lot(&lot, new.transfer_id).await?;
    Ok((lot, repaid))
}

/// Appends the entries of one transfer to its organization's hash chain.
struct Chain<'a> {
    org: &'a OrganizationId,
    transfer_id: &'a TransferId,
    state: &'a mut OrgState,
    at: Timestamp,
}

impl<'a> Chain<'a> {
    fn new(
        org: &'a OrganizationId,
        transfer_id: &'a TransferId,
        state: &'a mut OrgState,
        at: Timestamp,
    ) -> Self {
        Self {
            org,
            transfer_id,
            state,
            at,
        }
    }

    /// Moves `amount` from `debit` to `credit`; a zero amount writes nothing.
    async fn post<J: Journal>(
        &mut self,
        j: &mut J,
        debit: &str,
        credit: &str,
        amount: NanoCredits,
    ) -> LedgerResult<()> {
        if amount == NanoCredits::ZERO {
            return Ok(());
        }
        if amount.is_negative() {
            return Err(LedgerError::InvalidAmount(format!(
                "entry of {amount} is negative"
            )));
        }
        let seq = self
            .state
            .last_seq
            .checked_add(1)
            .ok_or(creditgate_core::money::MoneyError::Overflow)?;
        let hash = entry_hash(
            &self.state.last_hash,
            self.org,
            seq,
            self.transfer_id,
            debit,
            credit,
            amount,
            self.at,
        );
        let entry = Entry {
            org: self.org.clone(),
            seq,
            transfer_id: self.transfer_id.clone(),
            debit: debit.to_owned(),
            credit: credit.to_owned(),
            amount,
            at: self.at,
            prev_hash: std::mem::replace(&mut self.state.last_hash, hash.clone()),
            hash,
        };
        j.insert_entry(&entry).await?;
        self.state.last_seq = seq;
        Ok(())
    }

    /// Posts each draw from its lot to `credit` and lowers the lot's remaining by it in `lots`
    /// (the lots the draws were planned from); the caller writes the lots ([`save_drawn`]).
    async fn post_draws<J: Journal>(
        &mut self,
        j: &mut J,
        lots: &mut [Lot],
        draws: &[Draw],
        credit: &str,
    ) -> LedgerResult<()> {
        for draw in draws {
            self.post(j, &account::lot(&draw.lot), credit, draw.amount)
                .await?;
            let lot = lots
                .iter_mut()
                .find(|l| l.id == draw.lot)
                .ok_or_else(|| LedgerError::Corrupt(format!("drawn lot {} vanished", draw.lot)))?;
            lot.remaining = lot.remaining.checked_sub(draw.amount)?;
        }
        Ok(())
    }
}

/// The state of an organization that has no entries yet.
pub(crate) fn genesis_state() -> OrgState {
    OrgState {
        debt: NanoCredits::ZERO,
        last_seq: 0,
        last_hash: GENESIS_HASH.to_owned(),
        credit_limit: NanoCredits::ZERO,
    }
}

fn check_non_negative(what: &str, amount: NanoCredits) -> LedgerResult<()> {
    if amount.is_negative() {
        return Err(LedgerError::InvalidAmount(format!(
            "a {what} must not be negative, not {amount}"
        )));
    }
    Ok(())
}

fn check_timeout(ms: i64) -> LedgerResult<()> {
    if !(1..=MAX_HOLD_TIMEOUT_MS).contains(&ms) {
        return Err(LedgerError::InvalidRequest(format!(
            "hold timeout must be 1 to {MAX_HOLD_TIMEOUT_MS} ms, not {ms}"
        )));
    }
    Ok(())
}

fn check_memo(what: &str, memo: Option<&str>) -> LedgerResult<()> {
    match memo {
        Some(m) if m.len() > MAX_MEMO_LEN => Err(LedgerError::InvalidRequest(format!(
            "{what} is longer than {MAX_MEMO_LEN} bytes"
        ))),
        _ => Ok(()),
    }
}

fn check_scope(scope: &str) -> LedgerResult<()> {
    if scope.is_empty() || scope.len() > MAX_SCOPE_LEN || scope.ends_with('/') {
        return Err(LedgerError::InvalidRequest(format!(
            "scope must be 1 to {MAX_SCOPE_LEN} bytes and not end with `/`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lot_expiry_ids_are_deterministic_and_fit() {
        let short = LotId::parse("lot_abc").unwrap();
        assert_eq!(
            lot_expiry_transfer_id(&short).as_str(),
            "expire-lot:lot_abc"
        );
        let long = LotId::parse(&"l".repeat(128)).unwrap();
        let id = lot_expiry_transfer_id(&long);
        assert_eq!(id, lot_expiry_transfer_id(&long));
        assert!(id.as_str().starts_with("expire-lot:"));
        assert_eq!(id.as_str().len(), "expire-lot:".len() + 64);
    }

    #[test]
    fn request_checks() {
        assert!(check_timeout(0).is_err());
        assert!(check_timeout(1).is_ok());
        assert!(check_timeout(MAX_HOLD_TIMEOUT_MS + 1).is_err());
        assert!(check_scope("team:t1/key:k1").is_ok());
        assert!(check_scope("").is_err());
        assert!(check_scope("team:t1/").is_err());
        assert!(check_scope(&"s".repeat(MAX_SCOPE_LEN + 1)).is_err());
        assert!(check_memo("memo", Some(&"m".repeat(MAX_MEMO_LEN + 1))).is_err());
        assert!(check_non_negative("hold", NanoCredits::from_nanos(-1)).is_err());
    }
}
