//! Leased settles posted together (`LedgerStore::settle_leased_group`, `docs/ledger.md`): a group
//! leaves the ledger exactly as the same settles posted one by one, result for result and entry
//! for entry; a group with a replay, a reused request id or bad input changes nothing; groups
//! from two replicas over the same organizations neither deadlock nor lose a charge. On both
//! databases.

use std::sync::Arc;

use crate::common::*;
use crate::gateway_tables::sample_record;
use creditgate_core::clock::ManualClock;
use creditgate_core::ledger::{
    GrantRequest, LedgerError, LedgerStore, LotCategory, LotSource, SettleRequest,
};
use creditgate_core::money::NanoCredits;
use creditgate_storage::Database;

contract!(
    a_group_leaves_the_ledger_as_settles_one_by_one,
    a_refused_group_changes_nothing,
    groups_from_two_replicas_charge_everything_once,
);

fn leased(org_id: &str, request: &str, held: i64, charged: i64, seed: u64) -> SettleRequest {
    let mut req = settle_req(request, &format!("{request}:settle"), charged);
    req.usage = Some(Box::new(sample_record(charged, seed)));
    req.leased = Some(creditgate_core::ledger::LeasedHold {
        org: org(org_id),
        amount: nc(held),
        created_at: START,
        scope: Some(format!("key:{org_id}")),
        memo: Some(format!("{{\"n\":{seed}}}")),
    });
    req
}

fn lot_grant(
    org_id: &str,
    id: &str,
    amount: i64,
    granted: bool,
    expires_in: Option<i64>,
) -> GrantRequest {
    let mut g = grant_req(org_id, id, amount);
    if granted {
        g.category = LotCategory::Granted;
        g.source = LotSource::Promotion;
    }
    g.expires_at = expires_in.map(|ms| START.plus_millis(ms));
    g
}

/// Three organizations: `a` with an expiring granted lot drawn before its paid lot and a lease
/// held, `b` with one lot and a hold of its own, `c` with too little (its charges go into debt).
async fn setup(db: &Database) {
    for o in ["a", "b", "c"] {
        db.create_organization(org(o), format!("Org {o}"))
            .await
            .unwrap();
    }
    db.grant(lot_grant("a", "a1", 5_000, false, None))
        .await
        .unwrap();
    db.grant(lot_grant("a", "a2", 1_500, true, Some(3_600_000)))
        .await
        .unwrap();
    db.grant(lot_grant("b", "b1", 9_000, false, None))
        .await
        .unwrap();
    db.grant(lot_grant("c", "c1", 700, false, None))
        .await
        .unwrap();
    db.lease(creditgate_core::ledger::LeaseRequest {
        transfer_id: tid("lease:a"),
        org: org("a"),
        previous: None,
        needed: nc(2_000),
        wanted: nc(2_000),
        timeout_ms: 60_000,
    })
    .await
    .unwrap();
    db.reserve(hold_req("b", "own-b", 1_000)).await.unwrap();
}

/// Charges that cross lot boundaries (a's granted lot runs out mid-group), charge nothing, and
/// run into debt (c), interleaved across the organizations.
fn requests() -> Vec<SettleRequest> {
    let plan: [(&str, i64, i64); 12] = [
        ("a", 900, 600),
        ("b", 500, 450),
        ("c", 400, 390),
        ("a", 900, 800),
        ("c", 400, 0),
        ("a", 200, 350),
        ("b", 500, 499),
        ("c", 400, 400),
        ("a", 900, 1),
        ("b", 100, 0),
        ("c", 50, 75),
        ("a", 900, 900),
    ];
    plan.iter()
        .enumerate()
        .map(|(i, (o, held, charged))| leased(o, &format!("req-{i}"), *held, *charged, i as u64))
        .collect()
}

/// The same setup on a fresh SQLite file at the same clock, to settle one by one with the
/// ordinary settle (whose behaviour the contract pins on both databases).
async fn oracle(clock: &ManualClock) -> (TempDir, Database) {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path.join("oracle.db").display());
    let db = Database::connect(&url, Arc::new(clock.clone()))
        .await
        .unwrap();
    setup(&db).await;
    (dir, db)
}

async fn a_group_leaves_the_ledger_as_settles_one_by_one(h: Harness) {
    setup(&h.db).await;
    let reqs = requests();
    let grouped = h.db.settle_leased_group(reqs.clone()).await.unwrap();
    let (_dir, oracle) = oracle(&h.clock).await;
    let mut alone = Vec::new();
    for req in &reqs {
        alone.push(oracle.settle(req.clone()).await.unwrap());
    }
    assert_eq!(grouped, alone, "each result as its settle alone");
    assert!(
        grouped.iter().any(|s| s.draws.len() == 2),
        "a charge crossed two lots"
    );
    assert!(
        grouped.iter().any(|s| s.debt.is_positive()),
        "a charge went into debt"
    );
    for o in ["a", "b", "c"] {
        let (g, a) = (
            h.db.balance(&org(o)).await.unwrap(),
            oracle.balance(&org(o)).await.unwrap(),
        );
        assert_eq!(
            (g.posted, g.held, g.available, g.debt, g.lots),
            (a.posted, a.held, a.available, a.debt, a.lots),
            "balance of {o}"
        );
        assert_eq!(
            h.db.entries(&org(o)).await.unwrap(),
            oracle.entries(&org(o)).await.unwrap(),
            "the entries of {o}, hash chain included"
        );
        let records = |db: &Database| {
            let db = db.clone();
            async move {
                db.usage_records(&org(o), START, START.plus_millis(1), 1_000)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.request_id, r.record))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(records(&h.db).await, records(&oracle).await, "usage of {o}");
    }
    // Each replays as its own settle.
    for (req, s) in reqs.iter().zip(&grouped) {
        assert_eq!(&h.db.settle(req.clone()).await.unwrap(), s);
    }
    assert_clean(&h.db).await;
}

/// What a refused group must leave as it was: every balance and chain.
async fn snapshot(db: &Database) -> Vec<(NanoCredits, NanoCredits, NanoCredits, usize)> {
    let mut all = Vec::new();
    for o in ["a", "b", "c"] {
        let b = db.balance(&org(o)).await.unwrap();
        all.push((
            b.posted,
            b.held,
            b.debt,
            db.entries(&org(o)).await.unwrap().len(),
        ));
    }
    all
}

async fn a_refused_group_changes_nothing(h: Harness) {
    setup(&h.db).await;
    let reqs = requests();
    h.db.settle_leased_group(reqs[..4].to_vec()).await.unwrap();
    let before = snapshot(&h.db).await;
    let refused = |group: Vec<SettleRequest>, why: &'static str| {
        let db = h.db.clone();
        async move {
            let err = db.settle_leased_group(group).await.unwrap_err();
            eprintln!("{why}: {err}");
        }
    };
    // A replay of a settle already posted, beside new ones.
    refused(reqs[3..6].to_vec(), "a replay").await;
    // A request id already naming a hold of its own.
    refused(
        vec![reqs[5].clone(), leased("b", "own-b", 10, 10, 99)],
        "a reused request id",
    )
    .await;
    // The same request twice.
    refused(vec![reqs[6].clone(), reqs[6].clone()], "a duplicate").await;
    // A settle without a lease, and one whose usage record does not add up to its charge.
    let mut unleased = reqs[7].clone();
    unleased.leased = None;
    let err =
        h.db.settle_leased_group(vec![reqs[6].clone(), unleased])
            .await
            .unwrap_err();
    assert!(matches!(err, LedgerError::InvalidRequest(_)), "{err:?}");
    let mut wrong = reqs[8].clone();
    wrong.amount = nc(2);
    let err =
        h.db.settle_leased_group(vec![reqs[6].clone(), wrong])
            .await
            .unwrap_err();
    assert!(matches!(err, LedgerError::InvalidRequest(_)), "{err:?}");
    assert_eq!(
        snapshot(&h.db).await,
        before,
        "a refused group changed the ledger"
    );
    // The rest still settles, as a group.
    let rest = h.db.settle_leased_group(reqs[4..].to_vec()).await.unwrap();
    assert_eq!(rest.len(), 8);
    assert_clean(&h.db).await;
}

async fn groups_from_two_replicas_charge_everything_once(h: Harness) {
    for o in ["a", "b", "c"] {
        funded(&h.db, o, 1_000_000).await;
    }
    let second = h.replica().await;
    let post = |db: Database, replica: usize| {
        tokio::spawn(async move {
            let orgs = if replica == 0 {
                ["a", "b", "c"]
            } else {
                ["c", "b", "a"]
            };
            for g in 0..10 {
                let group: Vec<SettleRequest> = (0..9)
                    .map(|i| {
                        let o = orgs[i % 3];
                        let charged = 100 + (replica * 1_000 + g * 10 + i) as i64;
                        leased(o, &format!("r{replica}-g{g}-{i}"), 200, charged, i as u64)
                    })
                    .collect();
                db.settle_leased_group(group).await.unwrap();
            }
        })
    };
    let (one, two) = tokio::join!(post(h.db.clone(), 0), post(second, 1));
    one.unwrap();
    two.unwrap();
    let mut charged = [0i64; 3];
    for replica in 0..2 {
        for g in 0..10 {
            for i in 0..9 {
                let o = if replica == 0 { i % 3 } else { 2 - i % 3 };
                charged[o] += 100 + (replica * 1_000 + g * 10 + i) as i64;
            }
        }
    }
    for (o, spent) in ["a", "b", "c"].iter().zip(charged) {
        let b = h.db.balance(&org(o)).await.unwrap();
        assert_eq!(b.posted, nc(1_000_000 - spent), "posted of {o}");
        assert_eq!(b.held, NanoCredits::ZERO);
    }
    assert_clean(&h.db).await;
}
