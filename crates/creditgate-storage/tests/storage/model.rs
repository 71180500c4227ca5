//! Model-based test: random sequences of grant, hold, extend, settle, release, time passing,
//! hold expiry, lot sweep, refund, adjustment, replays and conflicting id reuse, applied to the
//! real ledger and to a plain in-memory model. After every step the results must be equal and
//! the ledger invariants of `docs/ledger.md` must hold (INV-1…3, 5…7; INV-4 belongs to the
//! gateway).
//!
//! Each run prints its seed. Replay one with `CREDITGATE_LEDGER_SEED=<seed>`; make runs longer
//! or more numerous with `CREDITGATE_LEDGER_STEPS` and `CREDITGATE_LEDGER_RUNS`.

use std::collections::{BTreeMap, HashMap};

use crate::common::*;
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    AdjustRequest, Adjusted, Draw, ExtendHoldRequest, GrantRequest, Granted, Hold, HoldRequest,
    HoldResolution, LedgerError, LedgerStore, Lot, LotCategory, LotSource, RefundRequest, Refunded,
    ReleaseRequest, Released, SettleRequest, Settlement,
};
use creditgate_core::money::{MoneyError, NanoCredits};
use creditgate_storage::Database;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ORGS: [&str; 3] = ["org-a", "org-b", "org-c"];
const DEFAULT_STEPS: usize = 120;
const DEFAULT_RUNS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_matches_the_model() {
    for seed in seeds() {
        run(Backend::Sqlite, move |h| check_run(h, seed)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_matches_the_model() {
    for seed in seeds() {
        run(Backend::Postgres, move |h| check_run(h, seed)).await;
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("CREDITGATE_LEDGER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let runs = env_usize("CREDITGATE_LEDGER_RUNS", DEFAULT_RUNS);
    (0..runs).map(|_| rand::thread_rng().gen()).collect()
}

/// One request to the ledger, kept so that it can be replayed.
#[derive(Debug, Clone)]
enum Request {
    Grant(GrantRequest),
    Hold(HoldRequest),
    Extend(ExtendHoldRequest),
    Settle(SettleRequest),
    Release(ReleaseRequest),
    Refund(RefundRequest),
    Adjust(AdjustRequest),
    Advance(i64),
    ExpireHolds,
    Sweep,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Granted(Granted),
    Hold(Hold),
    Settled(Settlement),
    Released(Released),
    Refunded(Refunded),
    Adjusted(Adjusted),
    Expired(Vec<TransferId>),
    Swept(Vec<Draw>),
    Advanced,
    Failed(LedgerError),
}

async fn apply(
    db: &Database,
    clock: &creditgate_core::clock::ManualClock,
    req: Request,
) -> Outcome {
    fn out<T>(r: Result<T, LedgerError>, f: impl FnOnce(T) -> Outcome) -> Outcome {
        r.map_or_else(Outcome::Failed, f)
    }
    match req {
        Request::Grant(r) => out(db.grant(r).await, Outcome::Granted),
        Request::Hold(r) => out(db.reserve(r).await, Outcome::Hold),
        Request::Extend(r) => out(db.extend_hold(r).await, Outcome::Hold),
        Request::Settle(r) => out(db.settle(r).await, Outcome::Settled),
        Request::Release(r) => out(db.release(r).await, Outcome::Released),
        Request::Refund(r) => out(db.refund_lot(r).await, Outcome::Refunded),
        Request::Adjust(r) => out(db.adjust(r).await, Outcome::Adjusted),
        Request::Advance(ms) => {
            clock.advance(ms);
            Outcome::Advanced
        }
        Request::ExpireHolds => out(db.expire_holds().await, |mut ids| {
            ids.sort();
            Outcome::Expired(ids)
        }),
        Request::Sweep => out(db.sweep_expired_lots().await, |mut draws| {
            draws.sort_by(|a, b| a.lot.cmp(&b.lot));
            Outcome::Swept(draws)
        }),
    }
}

#[derive(Debug, Clone)]
struct MHold {
    hold: Hold,
    resolution: Option<HoldResolution>,
    charged: bool,
}

/// The plain model: what the ledger must compute, written as directly as possible.
#[derive(Debug, Default)]
struct Model {
    now: i64,
    debt: BTreeMap<String, i64>,
    lots: BTreeMap<String, Lot>,
    refunded: BTreeMap<String, bool>,
    holds: BTreeMap<String, MHold>,
    /// What each charge took beyond its hold, by organization and time: the overrun, or the
    /// whole charge when it came after the hold expired.
    excess: Vec<(String, i64, i64)>,
    /// Results of transfers that succeeded, by transfer id, with their request.
    done: HashMap<String, (Request, Outcome)>,
}

fn insufficient(available: i64, needed: i64) -> Outcome {
    Outcome::Failed(LedgerError::Insufficient {
        available: nc(available),
        needed: nc(needed),
    })
}

fn overflow() -> Outcome {
    Outcome::Failed(LedgerError::Money(MoneyError::Overflow))
}

fn resolved(hold: &TransferId, resolution: HoldResolution) -> Outcome {
    Outcome::Failed(LedgerError::HoldResolved {
        hold: hold.clone(),
        resolution,
    })
}

impl Model {
    fn expired(&self, lot: &Lot) -> bool {
        lot.expires_at.is_some_and(|e| e.millis() <= self.now)
    }

    fn spendable_lots(&self, org: &str) -> Vec<Lot> {
        let mut lots: Vec<Lot> = self
            .lots
            .values()
            .filter(|l| l.org.as_str() == org && !self.expired(l) && l.remaining.nanos() > 0)
            .cloned()
            .collect();
        // Soonest expiry first (none last), granted before paid, oldest, then id.
        lots.sort_by_key(|l| {
            (
                l.expires_at.is_none(),
                l.expires_at.map(|e| e.millis()),
                l.category == LotCategory::Paid,
                l.created_at,
                l.id.clone(),
            )
        });
        lots
    }

    fn spendable(&self, org: &str) -> i128 {
        self.spendable_lots(org)
            .iter()
            .map(|l| i128::from(l.remaining.nanos()))
            .sum()
    }

    fn active_holds<'a>(&'a self, org: &'a str) -> impl Iterator<Item = &'a MHold> + 'a {
        let now = self.now;
        self.holds.values().filter(move |h| {
            h.hold.org.as_str() == org && h.resolution.is_none() && h.hold.expires_at.millis() > now
        })
    }

    /// How far below zero INV-2 lets `org`'s available credit go: its recorded debt, plus what
    /// went out while its oldest active hold was in flight without having been held — charges
    /// beyond their holds (overrun, late settles) and lots that expired.
    fn shortfall_bound(&self, org: &str) -> i128 {
        let debt = i128::from(self.debt[org]);
        let Some(since) = self
            .active_holds(org)
            .map(|h| h.hold.created_at.millis())
            .min()
        else {
            return debt;
        };
        let excess: i128 = self
            .excess
            .iter()
            .filter(|(o, at, _)| o == org && *at >= since)
            .map(|(_, _, x)| i128::from(*x))
            .sum();
        let expired: i128 = self
            .lots
            .values()
            .filter(|l| {
                l.org.as_str() == org
                    && l.expires_at
                        .is_some_and(|e| e.millis() > since && e.millis() <= self.now)
            })
            .map(|l| i128::from(l.amount.nanos()))
            .sum();
        debt + excess + expired
    }

    fn held(&self, org: &str) -> i128 {
        self.active_holds(org)
            .map(|h| i128::from(h.hold.amount.nanos()))
            .sum()
    }

    /// Available credit, or `None` when it does not fit in i64 (the ledger reports overflow).
    fn available(&self, org: &str) -> Option<i64> {
        let a = self.spendable(org) - i128::from(self.debt[org]) - self.held(org);
        i64::try_from(a).ok()
    }

    fn total_remaining(&self, org: &str) -> i128 {
        self.lots
            .values()
            .filter(|l| l.org.as_str() == org)
            .map(|l| i128::from(l.remaining.nanos()))
            .sum()
    }

    /// Plans draws over spendable lots; returns the draws and the uncovered rest.
    fn draws(&self, org: &str, amount: i64) -> (Vec<Draw>, i64) {
        let mut left = amount;
        let mut draws = Vec::new();
        for lot in self.spendable_lots(org) {
            if left == 0 {
                break;
            }
            let take = left.min(lot.remaining.nanos());
            draws.push(Draw {
                lot: lot.id.clone(),
                amount: nc(take),
            });
            left -= take;
        }
        (draws, left)
    }

    fn take_draws(&mut self, draws: &[Draw]) {
        for d in draws {
            let lot = self.lots.get_mut(d.lot.as_str()).unwrap();
            lot.remaining = nc(lot.remaining.nanos() - d.amount.nanos());
        }
    }

    /// A new lot, repaying debt first when spendable; `Err` if it would overflow.
    #[allow(clippy::too_many_arguments)]
    fn new_lot(
        &mut self,
        org: &OrganizationId,
        id: &LotId,
        amount: i64,
        category: LotCategory,
        source: LotSource,
        price: Option<creditgate_core::money::Decimal>,
        expires_at: Option<creditgate_core::clock::Timestamp>,
    ) -> Result<(Lot, i64), LedgerError> {
        if self.lots.contains_key(id.as_str()) {
            return Err(LedgerError::LotExists(id.clone()));
        }
        if self.total_remaining(org.as_str()) + i128::from(amount) > i128::from(i64::MAX) {
            return Err(LedgerError::Money(MoneyError::Overflow));
        }
        let spendable = expires_at.is_none_or(|e| e.millis() > self.now);
        let debt = self.debt[org.as_str()];
        let repaid = if spendable { debt.min(amount) } else { 0 };
        let lot = Lot {
            id: id.clone(),
            org: org.clone(),
            category,
            source,
            amount: nc(amount),
            remaining: nc(amount - repaid),
            price_per_credit: price,
            expires_at,
            created_at: creditgate_core::clock::Timestamp::from_millis(self.now),
        };
        self.debt.insert(org.to_string(), debt - repaid);
        self.lots.insert(id.to_string(), lot.clone());
        Ok((lot, repaid))
    }

    fn transfer_id(req: &Request) -> Option<&TransferId> {
        match req {
            Request::Grant(r) => Some(&r.transfer_id),
            Request::Hold(r) => Some(&r.transfer_id),
            Request::Extend(r) => Some(&r.transfer_id),
            Request::Settle(r) => Some(&r.transfer_id),
            Request::Release(r) => Some(&r.transfer_id),
            Request::Refund(r) => Some(&r.transfer_id),
            Request::Adjust(r) => Some(&r.transfer_id),
            _ => None,
        }
    }

    fn apply(&mut self, req: &Request) -> Outcome {
        if let Some(id) = Self::transfer_id(req) {
            if let Some((first, outcome)) = self.done.get(id.as_str()) {
                return if same_request(first, req) {
                    outcome.clone()
                } else {
                    Outcome::Failed(LedgerError::IdempotencyConflict(id.clone()))
                };
            }
        }
        let outcome = self.apply_new(req);
        if let (Some(id), false) = (
            Self::transfer_id(req),
            matches!(outcome, Outcome::Failed(_)),
        ) {
            self.done
                .insert(id.to_string(), (req.clone(), outcome.clone()));
        }
        outcome
    }

    fn apply_new(&mut self, req: &Request) -> Outcome {
        match req {
            Request::Grant(r) => match self.new_lot(
                &r.org,
                &r.lot_id,
                r.amount.nanos(),
                r.category,
                r.source,
                r.price_per_credit,
                r.expires_at,
            ) {
                Ok((lot, repaid)) => Outcome::Granted(Granted {
                    lot,
                    repaid_overrun: nc(repaid),
                }),
                Err(e) => Outcome::Failed(e),
            },
            Request::Hold(r) => {
                let Some(available) = self.available(r.org.as_str()) else {
                    return overflow();
                };
                if available < r.amount.nanos() {
                    return insufficient(available, r.amount.nanos());
                }
                let hold = Hold {
                    id: r.transfer_id.clone(),
                    org: r.org.clone(),
                    amount: r.amount,
                    created_at: creditgate_core::clock::Timestamp::from_millis(self.now),
                    expires_at: creditgate_core::clock::Timestamp::from_millis(
                        self.now + r.timeout_ms,
                    ),
                    scope: None,
                };
                self.holds.insert(
                    r.transfer_id.to_string(),
                    MHold {
                        hold: hold.clone(),
                        resolution: None,
                        charged: false,
                    },
                );
                Outcome::Hold(hold)
            }
            Request::Extend(r) => {
                let h = self.holds[r.hold.as_str()].clone();
                if let Some(res) = h.resolution {
                    return resolved(&r.hold, res);
                }
                if h.hold.expires_at.millis() <= self.now {
                    return resolved(&r.hold, HoldResolution::Expired);
                }
                // A keep-alive (zero) needs no available credit: only growth is admitted.
                if r.amount.nanos() > 0 {
                    let Some(available) = self.available(h.hold.org.as_str()) else {
                        return overflow();
                    };
                    if available < r.amount.nanos() {
                        return insufficient(available, r.amount.nanos());
                    }
                }
                let m = self.holds.get_mut(r.hold.as_str()).unwrap();
                m.hold.amount = nc(m.hold.amount.nanos() + r.amount.nanos());
                m.hold.expires_at = creditgate_core::clock::Timestamp::from_millis(
                    m.hold.expires_at.millis().max(self.now + r.timeout_ms),
                );
                Outcome::Hold(m.hold.clone())
            }
            Request::Settle(r) => {
                let h = self.holds[r.hold.as_str()].clone();
                if h.charged {
                    return resolved(&r.hold, HoldResolution::Settled);
                }
                let late = match h.resolution {
                    Some(HoldResolution::Expired) => true,
                    Some(res) => return resolved(&r.hold, res),
                    None => h.hold.expires_at.millis() <= self.now,
                };
                let org = h.hold.org.to_string();
                let (draws, uncovered) = self.draws(&org, r.amount.nanos());
                let Some(debt) = self.debt[&org].checked_add(uncovered) else {
                    return overflow();
                };
                self.take_draws(&draws);
                self.debt.insert(org, debt);
                let m = self.holds.get_mut(r.hold.as_str()).unwrap();
                m.charged = true;
                if m.resolution.is_none() {
                    m.resolution = Some(if late {
                        HoldResolution::Expired
                    } else {
                        HoldResolution::Settled
                    });
                }
                let held = h.hold.amount.nanos();
                let excess = if late {
                    r.amount.nanos()
                } else {
                    (r.amount.nanos() - held).max(0)
                };
                self.excess.push((h.hold.org.to_string(), self.now, excess));
                let available = self.available(h.hold.org.as_str()).map(nc);
                Outcome::Settled(Settlement {
                    hold: r.hold.clone(),
                    held: nc(held),
                    charged: r.amount,
                    overrun: nc((r.amount.nanos() - held).max(0)),
                    debt: nc(uncovered),
                    draws,
                    late,
                    available,
                })
            }
            Request::Release(r) => {
                let now = self.now;
                let m = self.holds.get_mut(r.hold.as_str()).unwrap();
                if m.charged {
                    return resolved(&r.hold, HoldResolution::Settled);
                }
                let already_expired = match m.resolution {
                    Some(HoldResolution::Expired) => true,
                    Some(res) => return resolved(&r.hold, res),
                    None => {
                        let expired = m.hold.expires_at.millis() <= now;
                        m.resolution = Some(if expired {
                            HoldResolution::Expired
                        } else {
                            HoldResolution::Released
                        });
                        expired
                    }
                };
                Outcome::Released(Released {
                    hold: r.hold.clone(),
                    amount: m.hold.amount,
                    already_expired,
                })
            }
            Request::Refund(r) => {
                let lot = self.lots[r.lot.as_str()].clone();
                if self.refunded.get(r.lot.as_str()).copied().unwrap_or(false) {
                    return Outcome::Failed(LedgerError::AlreadyRefunded(r.lot.clone()));
                }
                let amount = if self.expired(&lot) {
                    0
                } else {
                    lot.remaining.nanos()
                };
                if amount > 0 {
                    let Some(available) = self.available(r.org.as_str()) else {
                        return overflow();
                    };
                    if available < amount {
                        return insufficient(available, amount);
                    }
                }
                self.lots.get_mut(r.lot.as_str()).unwrap().remaining =
                    nc(lot.remaining.nanos() - amount);
                self.refunded.insert(r.lot.to_string(), true);
                Outcome::Refunded(Refunded {
                    lot: r.lot.clone(),
                    amount: nc(amount),
                })
            }
            Request::Adjust(r) => {
                let amount = r.amount.nanos();
                if amount == 0 {
                    return Outcome::Failed(LedgerError::InvalidAmount(
                        "an adjustment must not be zero".to_owned(),
                    ));
                }
                if amount > 0 {
                    match self.new_lot(
                        &r.org,
                        &r.lot_id,
                        amount,
                        LotCategory::Granted,
                        LotSource::Manual,
                        None,
                        None,
                    ) {
                        Ok((lot, _)) => Outcome::Adjusted(Adjusted {
                            amount: r.amount,
                            lot: Some(lot.id),
                            draws: vec![],
                        }),
                        Err(e) => Outcome::Failed(e),
                    }
                } else {
                    let needed = -amount;
                    let Some(available) = self.available(r.org.as_str()) else {
                        return overflow();
                    };
                    if available < needed {
                        return insufficient(available, needed);
                    }
                    let (draws, _) = self.draws(r.org.as_str(), needed);
                    self.take_draws(&draws);
                    Outcome::Adjusted(Adjusted {
                        amount: r.amount,
                        lot: None,
                        draws,
                    })
                }
            }
            Request::Advance(ms) => {
                self.now += ms;
                Outcome::Advanced
            }
            Request::ExpireHolds => {
                let now = self.now;
                let mut ids = Vec::new();
                for (id, h) in self.holds.iter_mut() {
                    if h.resolution.is_none() && h.hold.expires_at.millis() <= now {
                        h.resolution = Some(HoldResolution::Expired);
                        ids.push(TransferId::parse(id).unwrap());
                    }
                }
                ids.sort();
                Outcome::Expired(ids)
            }
            Request::Sweep => {
                let mut draws = Vec::new();
                let now = self.now;
                for lot in self.lots.values_mut() {
                    let expired = lot.expires_at.is_some_and(|e| e.millis() <= now);
                    if expired && lot.remaining.nanos() > 0 {
                        draws.push(Draw {
                            lot: lot.id.clone(),
                            amount: lot.remaining,
                        });
                        lot.remaining = NanoCredits::ZERO;
                    }
                }
                draws.sort_by(|a, b| a.lot.cmp(&b.lot));
                Outcome::Swept(draws)
            }
        }
    }
}

fn same_request(a: &Request, b: &Request) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Draws one random step, biased toward the interesting edges (0, 1, exactly available,
/// one more than available, `i64::MAX`).
fn next_request(rng: &mut StdRng, m: &Model, n: &mut u64) -> Request {
    *n += 1;
    let fresh = |prefix: &str| TransferId::parse(&format!("{prefix}-{n}")).unwrap();
    let org = ORGS[rng.gen_range(0..ORGS.len())];
    let hold_ids: Vec<&String> = m.holds.keys().collect();
    let lot_ids: Vec<&String> = m.lots.keys().collect();
    let available = m.available(org).unwrap_or(0).max(0);
    let edge_amount = |rng: &mut StdRng, around: i64| -> i64 {
        match rng.gen_range(0..12) {
            0 => 0,
            1 => 1,
            2 => around,
            3 => around.saturating_add(1),
            4 => i64::MAX,
            5 => around.saturating_mul(2),
            _ => rng.gen_range(0..=around.max(1)),
        }
    };
    match rng.gen_range(0..100) {
        0..=11 => {
            let amount = match rng.gen_range(0..25) {
                0 => i64::MAX,
                1 => 1,
                _ => rng.gen_range(1..5_000),
            };
            Request::Grant(GrantRequest {
                transfer_id: fresh("grant"),
                org: OrganizationId::parse(org).unwrap(),
                lot_id: LotId::parse(&format!("lot-{n}")).unwrap(),
                amount: nc(amount),
                category: if rng.gen_bool(0.5) {
                    LotCategory::Paid
                } else {
                    LotCategory::Granted
                },
                source: LotSource::Purchase,
                price_per_credit: rng.gen_bool(0.5).then(|| "0.005".parse().unwrap()),
                expires_at: rng.gen_bool(0.5).then(|| {
                    creditgate_core::clock::Timestamp::from_millis(
                        m.now + rng.gen_range(-1_000..20_000),
                    )
                }),
                memo: None,
            })
        }
        12..=31 => Request::Hold(HoldRequest {
            transfer_id: fresh("hold"),
            org: OrganizationId::parse(org).unwrap(),
            amount: nc(edge_amount(rng, available)),
            timeout_ms: rng.gen_range(1..5_000),
            scope: None,
            limits: vec![],
            memo: None,
        }),
        32..=37 if !hold_ids.is_empty() => {
            let hold = hold_ids[rng.gen_range(0..hold_ids.len())];
            let org = m.holds[hold].hold.org.to_string();
            let available = m.available(&org).unwrap_or(0).max(0);
            Request::Extend(ExtendHoldRequest {
                transfer_id: fresh("extend"),
                hold: TransferId::parse(hold).unwrap(),
                amount: nc(edge_amount(rng, available)),
                timeout_ms: rng.gen_range(1..5_000),
                limits: vec![],
            })
        }
        38..=55 if !hold_ids.is_empty() => {
            let hold = hold_ids[rng.gen_range(0..hold_ids.len())];
            let held = m.holds[hold].hold.amount.nanos();
            Request::Settle(SettleRequest {
                transfer_id: fresh("settle"),
                hold: TransferId::parse(hold).unwrap(),
                amount: nc(match rng.gen_range(0..8) {
                    0 => held.saturating_add(rng.gen_range(1..500)),
                    1 => 0,
                    2 => i64::MAX,
                    _ => rng.gen_range(0..=held),
                }),
                memo: None,
                usage: None,
                leased: None,
            })
        }
        56..=63 if !hold_ids.is_empty() => Request::Release(ReleaseRequest {
            transfer_id: fresh("release"),
            hold: TransferId::parse(hold_ids[rng.gen_range(0..hold_ids.len())]).unwrap(),
        }),
        64..=71 => Request::Advance(match rng.gen_range(0..4) {
            0 => 0,
            1 => 1,
            _ => rng.gen_range(1..3_000),
        }),
        72..=75 => Request::ExpireHolds,
        76..=79 => Request::Sweep,
        80..=83 if !lot_ids.is_empty() => {
            let lot = &m.lots[lot_ids[rng.gen_range(0..lot_ids.len())]];
            Request::Refund(RefundRequest {
                transfer_id: fresh("refund"),
                org: lot.org.clone(),
                lot: lot.id.clone(),
                memo: None,
            })
        }
        84..=89 => Request::Adjust(AdjustRequest {
            transfer_id: fresh("adjust"),
            org: OrganizationId::parse(org).unwrap(),
            lot_id: LotId::parse(&format!("lot-{n}")).unwrap(),
            amount: nc(match rng.gen_range(0..6) {
                0 => -available,
                1 => -available - 1,
                2 => rng.gen_range(1..1_000),
                _ => -(rng.gen_range(1..=available.max(1))),
            })
            .max(nc(-i64::MAX)),
            reason: "model".into(),
        }),
        90..=99 if !m.done.is_empty() => {
            // Replay a finished transfer, or reuse its id for something else.
            let mut ids: Vec<&String> = m.done.keys().collect();
            ids.sort();
            let (req, _) = &m.done[ids[rng.gen_range(0..ids.len())]];
            if rng.gen_bool(0.6) {
                req.clone()
            } else {
                conflicting(req)
            }
        }
        _ => Request::Advance(1),
    }
}

/// The same transfer id with other content.
fn conflicting(req: &Request) -> Request {
    let mut req = req.clone();
    match &mut req {
        Request::Grant(r) => r.memo = Some("other".into()),
        Request::Hold(r) => r.memo = Some("other".into()),
        Request::Extend(r) => r.timeout_ms += 1,
        Request::Settle(r) => r.memo = Some("other".into()),
        Request::Refund(r) => r.memo = Some("other".into()),
        Request::Adjust(r) => r.reason = "other".into(),
        Request::Release(_) | Request::Advance(_) | Request::ExpireHolds | Request::Sweep => {}
    }
    req
}

async fn check_run(h: Harness, seed: u64) {
    let steps = env_usize("CREDITGATE_LEDGER_STEPS", DEFAULT_STEPS);
    eprintln!(
        "model test on {:?}: seed {seed} (replay with CREDITGATE_LEDGER_SEED={seed})",
        h.backend
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model {
        now: START.millis(),
        ..Model::default()
    };
    for o in ORGS {
        h.db.create_organization(org(o), o.to_owned())
            .await
            .unwrap();
        model.debt.insert(o.to_owned(), 0);
    }
    let mut chains: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut n = 0;
    for step in 0..steps {
        let req = next_request(&mut rng, &model, &mut n);
        let fresh = Model::transfer_id(&req).is_none_or(|id| !model.done.contains_key(id.as_str()));
        let expected = model.apply(&req);
        let actual = apply(&h.db, &h.clock, req.clone()).await;
        let ctx = format!("seed {seed}, step {step}: {req:?}");
        assert_eq!(actual, expected, "{ctx}");
        // A keep-alive (an extension by zero) admits nothing, so INV-2 does not apply to it.
        let keep_alive = matches!(&req, Request::Extend(r) if r.amount == NanoCredits::ZERO);
        let checked = (fresh && !keep_alive).then_some(&actual);
        check_invariants(&h.db, &model, checked, &mut chains, &ctx).await;
    }
}

async fn check_invariants(
    db: &Database,
    m: &Model,
    new_outcome: Option<&Outcome>,
    chains: &mut BTreeMap<&'static str, Vec<String>>,
    ctx: &str,
) {
    // INV-1 (conservation: Σ accounts = 0, balances and caches equal the fold of the entries),
    // INV-6 (chains intact), INV-7 (every entry a positive integer): all of `verify`.
    let report = db.verify().await.unwrap();
    assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
    for o in ORGS {
        if m.available(o).is_none() {
            // Debt near i64::MAX plus holds: available is below i64::MIN. Reading it is an
            // overflow error, never a wrapped number.
            assert_eq!(
                db.balance(&org(o)).await,
                Err(LedgerError::Money(MoneyError::Overflow)),
                "{ctx}"
            );
            continue;
        }
        let b = db.balance(&org(o)).await.unwrap();
        // The same balances as the model.
        let spendable = i64::try_from(m.spendable(o)).unwrap();
        let held = i64::try_from(m.held(o)).unwrap();
        assert_eq!(b.lots, m.spendable_lots(o), "{ctx}: lots of {o}");
        assert_eq!(b.debt, nc(m.debt[o]), "{ctx}: debt of {o}");
        assert_eq!(b.held, nc(held), "{ctx}: held by {o}");
        assert_eq!(b.posted, nc(spendable - m.debt[o]), "{ctx}: posted of {o}");
        assert_eq!(
            b.active_holds,
            m.active_holds(o).count() as u64,
            "{ctx}: active holds of {o}"
        );
        // INV-2: available is negative only within what was recorded: overrun debt, charges
        // beyond their holds and lots that expired under holds placed while they were spendable.
        if b.available.is_negative() {
            let bound = m.shortfall_bound(o);
            assert!(
                -i128::from(b.available.nanos()) <= bound,
                "{ctx}: {o} is at {}, beyond the recorded bound {bound}",
                b.available
            );
        }
        // INV-6: the journal only grows; what was there stays as it was.
        let hashes: Vec<String> = db
            .entries(&org(o))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.hash)
            .collect();
        let before = chains.entry(o).or_default();
        assert!(
            hashes.len() >= before.len() && hashes[..before.len()] == before[..],
            "{ctx}: entries of {o} were rewritten"
        );
        *before = hashes;
    }
    // INV-2: a hold that was placed or grown (not replayed) fits what was available.
    if let Some(Outcome::Hold(hold)) = new_outcome {
        let b = db.balance(&hold.org).await.unwrap();
        assert!(
            !b.available.is_negative(),
            "{ctx}: admitted into {}",
            b.available
        );
    }
    // INV-3: every hold has the model's resolution; a settled amount above the hold is recorded
    // as overrun.
    for (id, mh) in &m.holds {
        let (hold, res) = db.hold(&tid(id)).await.unwrap().unwrap();
        let expected = match mh.resolution {
            None if mh.hold.expires_at.millis() <= m.now => Some(HoldResolution::Expired),
            other => other,
        };
        assert_eq!(res, expected, "{ctx}: resolution of {id}");
        assert_eq!(hold.amount, mh.hold.amount, "{ctx}: amount of {id}");
    }
    if let Some(Outcome::Settled(s)) = new_outcome {
        let over = (s.charged.nanos() - s.held.nanos()).max(0);
        assert_eq!(s.overrun, nc(over), "{ctx}");
        let drawn: i64 = s.draws.iter().map(|d| d.amount.nanos()).sum();
        assert_eq!(drawn + s.debt.nanos(), s.charged.nanos(), "{ctx}");
    }
}
