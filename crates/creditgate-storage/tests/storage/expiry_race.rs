//! Catalogue H49: the expiry sweeper racing a settlement on the same lots, concurrently (two
//! connections: on Postgres two pools, on SQLite two writers on one file), on both databases.
//! Whatever the interleaving, the sweep takes only what is left of the lot that expired — never
//! paid or unexpired credit — and every nano-credit is accounted for exactly once.

use std::sync::Arc;

use crate::common::*;
use creditgate_core::clock::Clock;
use creditgate_core::ledger::{LedgerStore, LotCategory};
use creditgate_core::money::NanoCredits;
use tokio::sync::Barrier;

contract!(the_sweeper_racing_a_settlement_claws_only_expired_credit);

/// Rounds per database: each a fresh organization with an expired lot, an unexpired expiring
/// lot and a paid lot, a live hold, then a settle and a sweep started together.
const ROUNDS: u64 = 25;

async fn the_sweeper_racing_a_settlement_claws_only_expired_credit(h: Harness) {
    let db = Arc::new(h.db.clone());
    let other = Arc::new(h.replica().await);
    for round in 0..ROUNDS {
        let o = format!("o{round}");
        funded(&db, &o, 0).await;
        let now = h.clock.now();
        // Amounts differ per round so the settle draws differently from the lots each time.
        let (expiring, later, paid) = (100 + round as i64, 100, 100);
        // At most what the unexpired lots hold: the expired lot is not spendable at settle time.
        let charge = 40 + (round as i64 * 13) % 160;
        for (id, amount, category, expires) in [
            (
                "exp",
                expiring,
                LotCategory::Granted,
                Some(now.plus_millis(10)),
            ),
            (
                "later",
                later,
                LotCategory::Granted,
                Some(now.plus_millis(3_600_000)),
            ),
            ("paid", paid, LotCategory::Paid, None),
        ] {
            let mut g = grant_req(&o, &format!("{o}-{id}"), amount);
            g.category = category;
            g.expires_at = expires;
            db.grant(g).await.unwrap();
        }
        let hold = format!("{o}-h");
        db.reserve(hold_req(&o, &hold, charge)).await.unwrap();
        h.clock.advance(10);

        // Which connection settles alternates; both start at the barrier.
        let (settler, sweeper) = if round % 2 == 0 {
            (db.clone(), other.clone())
        } else {
            (other.clone(), db.clone())
        };
        let barrier = Arc::new(Barrier::new(2));
        let (b1, b2) = (barrier.clone(), barrier.clone());
        let settle = settle_req(&hold, &format!("{hold}-s"), charge);
        let (settled, swept) = tokio::join!(
            async move {
                b1.wait().await;
                settler.settle(settle).await
            },
            async move {
                b2.wait().await;
                sweeper.sweep_expired_lots().await
            }
        );
        let settled = settled.unwrap();
        let mut swept = swept.unwrap();
        // A sweep that ran first on the other connection may leave nothing here; sweep again
        // so every expired lot is taken by now.
        swept.extend(db.sweep_expired_lots().await.unwrap());

        let exp_lot = lot(&format!("lot-{o}-exp"));
        let taken = |draws: &[creditgate_core::ledger::Draw], l: &creditgate_core::ids::LotId| {
            draws
                .iter()
                .filter(|d| &d.lot == l)
                .fold(0i64, |acc, d| acc + d.amount.nanos())
        };
        let ours: Vec<_> = swept
            .iter()
            .filter(|d| d.lot.as_str().starts_with(&format!("lot-{o}-")))
            .cloned()
            .collect();
        assert!(
            ours.iter().all(|d| d.lot == exp_lot),
            "round {round}: the sweep took from a lot that had not expired: {ours:?}"
        );
        assert_eq!(
            taken(&ours, &exp_lot) + taken(&settled.draws, &exp_lot),
            expiring,
            "round {round}: the expired lot is swept for exactly what the settle left of it"
        );
        assert_eq!(settled.charged, nc(charge));
        assert_eq!(settled.debt, NanoCredits::ZERO, "round {round}");
        let b = db.balance(&org(&o)).await.unwrap();
        assert_eq!(
            b.posted,
            nc(expiring + later + paid - charge - taken(&ours, &exp_lot)),
            "round {round}: every nano-credit accounted for once"
        );
        assert_eq!(b.active_holds, 0);
    }
    assert_clean(&db).await;
}
