//! The ledger contract: every scenario runs on SQLite and on Postgres (when
//! `CREDITGATE_TEST_POSTGRES_URL` is set).

use std::collections::HashSet;
use std::sync::Arc;

use crate::common::*;
use creditgate_core::ledger::{
    AdjustRequest, ExtendHoldRequest, HoldResolution, LedgerError, LedgerStore, LotCategory,
    RefundRequest, SpendLimit, DEFAULT_HOLD_TIMEOUT_MS,
};
use creditgate_core::money::{MoneyError, NanoCredits};
use creditgate_storage::Database;
use tokio::sync::Barrier;

contract!(
    grant_shows_in_balance_and_journal,
    draw_order_skips_expired_lots_before_the_sweep,
    admission_is_exact,
    overrun_becomes_debt_that_the_next_grant_repays,
    late_settle_after_expiry_charges_once,
    settle_of_a_hold_expired_by_the_clock_only,
    every_transfer_type_replays_and_refuses_reuse,
    hold_resolves_once_under_concurrent_settle_and_release,
    sixty_four_holds_against_ten,
    sixty_four_holds_against_ten_on_two_replicas,
    spend_limits_cover_holds_and_charges_by_scope_path,
    extend_grows_a_hold_under_the_same_rules,
    keep_alive_needs_no_available_credit,
    refund_claws_back_the_remainder_once,
    adjustments_in_both_directions,
    i64_edges_are_errors_not_wraps,
    journal_tables_are_append_only,
    verify_detects_tampering,
    verify_detects_cache_and_charge_drift,
    expiry_runs_once_across_replicas,
    unknown_and_duplicate_things_are_errors,
);

async fn grant_shows_in_balance_and_journal(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let mut req = grant_req("acme", "g1", 12_500_000_000);
    req.category = LotCategory::Granted;
    req.price_per_credit = Some("0.005".parse().unwrap());
    req.expires_at = Some(START.plus_millis(86_400_000));
    req.memo = Some("welcome".into());
    let granted = db.grant(req).await.unwrap();
    assert_eq!(granted.repaid_overrun, NanoCredits::ZERO);
    assert_eq!(granted.lot.remaining, nc(12_500_000_000));
    assert_eq!(granted.lot.created_at, START);

    let b = db.balance(&org("acme")).await.unwrap();
    assert_eq!(b.posted, nc(12_500_000_000));
    assert_eq!(b.available, nc(12_500_000_000));
    assert_eq!(b.held, NanoCredits::ZERO);
    assert_eq!(b.lots, vec![granted.lot.clone()]);

    let entries = db.entries(&org("acme")).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].debit, "sys:issuance");
    assert_eq!(entries[0].credit, "lot:lot-g1");
    assert_eq!(entries[0].seq, 1);
    assert_eq!(db.organizations().await.unwrap().len(), 1);
    assert_eq!(
        db.organization(&org("acme")).await.unwrap().name,
        "Org acme"
    );
    assert_clean(db).await;
}

async fn draw_order_skips_expired_lots_before_the_sweep(h: Harness) {
    let db = &h.db;
    funded(db, "o", 0).await;
    let day = 86_400_000;
    for (id, cat, exp) in [
        ("paid-never", LotCategory::Paid, None),
        ("granted-never", LotCategory::Granted, None),
        ("paid-2d", LotCategory::Paid, Some(2 * day)),
        ("granted-2d", LotCategory::Granted, Some(2 * day)),
        ("paid-1d", LotCategory::Paid, Some(day)),
    ] {
        let mut req = grant_req("o", id, 100);
        req.category = cat;
        req.expires_at = exp.map(|e| START.plus_millis(e));
        db.grant(req).await.unwrap();
        h.clock.advance(1);
    }
    // Past the first expiry: the 1-day lot is no longer spendable although nobody swept it.
    h.clock.set(START.plus_millis(day));
    let b = db.balance(&org("o")).await.unwrap();
    assert_eq!(b.posted, nc(400));
    db.reserve(hold_req("o", "h1", 250)).await.unwrap();
    let s = db.settle(settle_req("h1", "s1", 250)).await.unwrap();
    let order: Vec<_> = s
        .draws
        .iter()
        .map(|d| (d.lot.as_str().to_owned(), d.amount.nanos()))
        .collect();
    assert_eq!(
        order,
        [
            ("lot-granted-2d".to_owned(), 100),
            ("lot-paid-2d".to_owned(), 100),
            ("lot-granted-never".to_owned(), 50)
        ]
    );
    assert_eq!(s.debt, NanoCredits::ZERO);
    let swept = db.sweep_expired_lots().await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].lot.as_str(), "lot-paid-1d");
    assert_eq!(swept[0].amount, nc(100));
    assert!(db.sweep_expired_lots().await.unwrap().is_empty());
    let entries = db.entries(&org("o")).await.unwrap();
    let expiry = entries.last().unwrap();
    assert_eq!(expiry.credit, "sys:expiry");
    assert_eq!(expiry.transfer_id.as_str(), "expire-lot:lot-paid-1d");
    assert_eq!(db.balance(&org("o")).await.unwrap().posted, nc(150));
    assert_clean(db).await;
}

async fn admission_is_exact(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000).await;
    db.reserve(hold_req("o", "h1", 600)).await.unwrap();
    let before = db.entries(&org("o")).await.unwrap().len();
    let err = db.reserve(hold_req("o", "h2", 401)).await.unwrap_err();
    assert_eq!(
        err,
        LedgerError::Insufficient {
            available: nc(400),
            needed: nc(401)
        }
    );
    assert_eq!(db.entries(&org("o")).await.unwrap().len(), before);
    assert!(db.hold(&tid("h2")).await.unwrap().is_none());
    // A refused transfer id is not consumed: the same id works once credit allows.
    db.reserve(hold_req("o", "h2", 400)).await.unwrap();
    let b = db.balance(&org("o")).await.unwrap();
    assert_eq!((b.held, b.available, b.active_holds), (nc(1_000), nc(0), 2));
    // A zero hold fits into zero available credit.
    db.reserve(hold_req("o", "h3", 0)).await.unwrap();
    assert!(matches!(
        db.reserve(hold_req("o", "h4", 1)).await,
        Err(LedgerError::Insufficient { .. })
    ));
    db.release(release_req("h1", "r1")).await.unwrap();
    assert_eq!(db.balance(&org("o")).await.unwrap().available, nc(600));
    assert!(matches!(
        db.reserve(hold_req("o", "neg", -1)).await,
        Err(LedgerError::InvalidAmount(_))
    ));
    let mut bad_timeout = hold_req("o", "t0", 1);
    bad_timeout.timeout_ms = 0;
    assert!(matches!(
        db.reserve(bad_timeout).await,
        Err(LedgerError::InvalidRequest(_))
    ));
    assert_clean(db).await;
}

async fn overrun_becomes_debt_that_the_next_grant_repays(h: Harness) {
    let db = &h.db;
    funded(db, "o", 100).await;
    db.reserve(hold_req("o", "h1", 80)).await.unwrap();
    let s = db.settle(settle_req("h1", "s1", 130)).await.unwrap();
    assert_eq!(
        (s.held, s.charged, s.overrun, s.debt),
        (nc(80), nc(130), nc(50), nc(30))
    );
    let b = db.balance(&org("o")).await.unwrap();
    assert_eq!((b.posted, b.available, b.debt), (nc(-30), nc(-30), nc(30)));
    assert!(b.lots.is_empty());
    assert!(matches!(
        db.reserve(hold_req("o", "h2", 0)).await,
        Err(LedgerError::Insufficient { .. })
    ));
    let g = db.grant(grant_req("o", "g2", 100)).await.unwrap();
    assert_eq!(g.repaid_overrun, nc(30));
    assert_eq!(g.lot.remaining, nc(70));
    let b = db.balance(&org("o")).await.unwrap();
    assert_eq!((b.posted, b.available, b.debt), (nc(70), nc(70), nc(0)));
    // An adjustment upward repays debt the same way.
    db.reserve(hold_req("o", "h3", 70)).await.unwrap();
    db.settle(settle_req("h3", "s3", 75)).await.unwrap();
    let a = db
        .adjust(AdjustRequest {
            transfer_id: tid("adj"),
            org: org("o"),
            lot_id: lot("lot-adj"),
            amount: nc(10),
            reason: "goodwill".into(),
        })
        .await
        .unwrap();
    assert_eq!(a.lot, Some(lot("lot-adj")));
    let b = db.balance(&org("o")).await.unwrap();
    assert_eq!((b.posted, b.debt), (nc(5), nc(0)));
    assert_clean(db).await;
}

async fn late_settle_after_expiry_charges_once(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000).await;
    db.reserve(hold_req("o", "h1", 300)).await.unwrap();
    h.clock.advance(DEFAULT_HOLD_TIMEOUT_MS);
    assert_eq!(db.expire_holds().await.unwrap(), vec![tid("h1")]);
    assert!(db.expire_holds().await.unwrap().is_empty());
    let (_, res) = db.hold(&tid("h1")).await.unwrap().unwrap();
    assert_eq!(res, Some(HoldResolution::Expired));
    assert_eq!(db.balance(&org("o")).await.unwrap().held, nc(0));

    let released = db.release(release_req("h1", "r1")).await.unwrap();
    assert!(released.already_expired);
    let s = db.settle(settle_req("h1", "s1", 250)).await.unwrap();
    assert!(s.late);
    assert_eq!(s.charged, nc(250));
    assert_eq!(db.balance(&org("o")).await.unwrap().posted, nc(750));
    // The same settle replays; another settle of the same hold is refused: charged once.
    assert_eq!(db.settle(settle_req("h1", "s1", 250)).await.unwrap(), s);
    assert_eq!(
        db.settle(settle_req("h1", "s2", 250)).await.unwrap_err(),
        LedgerError::HoldResolved {
            hold: tid("h1"),
            resolution: HoldResolution::Settled
        }
    );
    assert!(matches!(
        db.release(release_req("h1", "r2")).await,
        Err(LedgerError::HoldResolved { .. })
    ));
    assert_eq!(db.balance(&org("o")).await.unwrap().posted, nc(750));
    assert_clean(db).await;
}

async fn settle_of_a_hold_expired_by_the_clock_only(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000).await;
    db.reserve(hold_req("o", "h1", 300)).await.unwrap();
    db.reserve(hold_req("o", "h2", 300)).await.unwrap();
    h.clock.advance(DEFAULT_HOLD_TIMEOUT_MS);
    // Past expiry the holds no longer count, before any sweep.
    assert_eq!(db.balance(&org("o")).await.unwrap().available, nc(1_000));
    let s = db.settle(settle_req("h1", "s1", 100)).await.unwrap();
    assert!(s.late);
    let r = db.release(release_req("h2", "r2")).await.unwrap();
    assert!(r.already_expired);
    assert!(db.expire_holds().await.unwrap().is_empty());
    assert_eq!(db.balance(&org("o")).await.unwrap().posted, nc(900));
    assert_clean(db).await;
}

async fn every_transfer_type_replays_and_refuses_reuse(h: Harness) {
    let db = &h.db;
    funded(db, "o", 0).await;
    let entries = |db: &Database| {
        let db = db.clone();
        async move { db.entries(&org("o")).await.unwrap().len() }
    };
    let g = grant_req("o", "g", 1_000);
    let first = db.grant(g.clone()).await.unwrap();
    let n = entries(db).await;
    assert_eq!(db.grant(g.clone()).await.unwrap(), first);
    assert_eq!(entries(db).await, n);
    let mut other = g.clone();
    other.amount = nc(999);
    assert_eq!(
        db.grant(other).await.unwrap_err(),
        LedgerError::IdempotencyConflict(g.transfer_id.clone())
    );

    let hr = hold_req("o", "h", 100);
    let hold = db.reserve(hr.clone()).await.unwrap();
    h.clock.advance(5);
    assert_eq!(db.reserve(hr.clone()).await.unwrap(), hold);
    assert_eq!(db.balance(&org("o")).await.unwrap().held, nc(100));
    let mut other = hr.clone();
    other.amount = nc(101);
    assert!(matches!(
        db.reserve(other).await,
        Err(LedgerError::IdempotencyConflict(_))
    ));
    // A transfer id belongs to one transfer of any kind.
    let mut as_grant = grant_req("o", "x", 1);
    as_grant.transfer_id = tid("h");
    assert!(matches!(
        db.grant(as_grant).await,
        Err(LedgerError::IdempotencyConflict(_))
    ));

    let ext = ExtendHoldRequest {
        transfer_id: tid("ext"),
        hold: tid("h"),
        amount: nc(50),
        timeout_ms: DEFAULT_HOLD_TIMEOUT_MS,
        limits: vec![],
    };
    let extended = db.extend_hold(ext.clone()).await.unwrap();
    assert_eq!(db.extend_hold(ext.clone()).await.unwrap(), extended);
    assert_eq!(db.balance(&org("o")).await.unwrap().held, nc(150));
    let mut other = ext.clone();
    other.amount = nc(1);
    assert!(matches!(
        db.extend_hold(other).await,
        Err(LedgerError::IdempotencyConflict(_))
    ));

    let sr = settle_req("h", "s", 120);
    let settled = db.settle(sr.clone()).await.unwrap();
    let n = entries(db).await;
    assert_eq!(db.settle(sr.clone()).await.unwrap(), settled);
    assert_eq!(entries(db).await, n);
    assert!(matches!(
        db.settle(settle_req("h", "s", 121)).await,
        Err(LedgerError::IdempotencyConflict(_))
    ));

    db.reserve(hold_req("o", "h2", 10)).await.unwrap();
    let rr = release_req("h2", "r");
    let released = db.release(rr.clone()).await.unwrap();
    assert_eq!(db.release(rr.clone()).await.unwrap(), released);
    assert!(matches!(
        db.release(release_req("h", "r")).await,
        Err(LedgerError::IdempotencyConflict(_))
    ));

    let adj = AdjustRequest {
        transfer_id: tid("adj-up"),
        org: org("o"),
        lot_id: lot("lot-adj"),
        amount: nc(40),
        reason: "support ticket 7".into(),
    };
    let adjusted = db.adjust(adj.clone()).await.unwrap();
    assert_eq!(db.adjust(adj.clone()).await.unwrap(), adjusted);
    let neg = AdjustRequest {
        transfer_id: tid("adj-down"),
        org: org("o"),
        lot_id: lot("unused"),
        amount: nc(-30),
        reason: "correction".into(),
    };
    let adjusted = db.adjust(neg.clone()).await.unwrap();
    let n = entries(db).await;
    assert_eq!(db.adjust(neg.clone()).await.unwrap(), adjusted);
    assert_eq!(entries(db).await, n);
    let mut other = neg.clone();
    other.reason = "another reason".into();
    assert!(matches!(
        db.adjust(other).await,
        Err(LedgerError::IdempotencyConflict(_))
    ));

    let refund = RefundRequest {
        transfer_id: tid("refund"),
        org: org("o"),
        lot: lot("lot-g"),
        memo: None,
    };
    let refunded = db.refund_lot(refund.clone()).await.unwrap();
    assert_eq!(db.refund_lot(refund.clone()).await.unwrap(), refunded);
    let mut again = refund.clone();
    again.transfer_id = tid("refund-2");
    assert_eq!(
        db.refund_lot(again).await.unwrap_err(),
        LedgerError::AlreadyRefunded(lot("lot-g"))
    );
    assert_clean(db).await;
}

async fn hold_resolves_once_under_concurrent_settle_and_release(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000_000).await;
    for round in 0..20 {
        let hold = format!("h{round}");
        db.reserve(hold_req("o", &hold, 1_000)).await.unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let mut tasks = Vec::new();
        for k in 0..4 {
            let db = db.clone();
            let barrier = barrier.clone();
            let hold = hold.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                if k % 2 == 0 {
                    db.settle(settle_req(&hold, &format!("{hold}-s{k}"), 700))
                        .await
                        .map(|_| ())
                } else {
                    db.release(release_req(&hold, &format!("{hold}-r{k}")))
                        .await
                        .map(|_| ())
                }
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(LedgerError::HoldResolved { .. }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(ok, 1, "round {round}: exactly one resolution");
    }
    let b = db.balance(&org("o")).await.unwrap();
    assert_eq!(b.held, nc(0));
    let charged = 1_000_000 - b.posted.nanos();
    assert_eq!(charged % 700, 0, "only whole settles were charged");
    assert_clean(db).await;
}

/// 64 tasks start together and each try to hold 1,000 against a balance of exactly 10,000.
async fn race_ten_of_sixty_four(dbs: &[Database]) -> usize {
    let barrier = Arc::new(Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let db = dbs[i % dbs.len()].clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            db.reserve(hold_req("o", &format!("race-{i}"), 1_000)).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(LedgerError::Insufficient { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    ok
}

async fn sixty_four_holds_against_ten(h: Harness) {
    funded(&h.db, "o", 10_000).await;
    assert_eq!(
        race_ten_of_sixty_four(std::slice::from_ref(&h.db)).await,
        10
    );
    let b = h.db.balance(&org("o")).await.unwrap();
    assert_eq!(
        (b.held, b.available, b.active_holds),
        (nc(10_000), nc(0), 10)
    );
    assert_clean(&h.db).await;
}

async fn sixty_four_holds_against_ten_on_two_replicas(h: Harness) {
    funded(&h.db, "o", 10_000).await;
    let second = h.replica().await;
    assert_eq!(race_ten_of_sixty_four(&[h.db.clone(), second]).await, 10);
    assert_eq!(h.db.balance(&org("o")).await.unwrap().available, nc(0));
    assert_clean(&h.db).await;
}

async fn spend_limits_cover_holds_and_charges_by_scope_path(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000_000).await;
    let key_cap = SpendLimit {
        scope: "team:t1/key:k1".into(),
        since: START,
        cap: nc(500),
    };
    let team_cap = SpendLimit {
        scope: "team:t1".into(),
        since: START,
        cap: nc(800),
    };
    let hold = |id: &str, key: &str, amount: i64| {
        let mut r = hold_req("o", id, amount);
        r.scope = Some(format!("team:t1/key:{key}"));
        r.limits = vec![
            SpendLimit {
                scope: format!("team:t1/key:{key}"),
                ..key_cap.clone()
            },
            team_cap.clone(),
        ];
        r
    };
    db.reserve(hold("a", "k1", 300)).await.unwrap();
    db.settle(settle_req("a", "a-s", 200)).await.unwrap();
    db.reserve(hold("b", "k1", 250)).await.unwrap();
    assert_eq!(
        db.scope_spend("team:t1/key:k1", START).await.unwrap(),
        nc(450)
    );
    let err = db.reserve(hold("c", "k1", 51)).await.unwrap_err();
    assert_eq!(
        err,
        LedgerError::LimitExceeded {
            scope: "team:t1/key:k1".into(),
            cap: nc(500),
            remaining: nc(50),
            needed: nc(51)
        }
    );
    // Another key of the same team is held back by the team's budget.
    db.reserve(hold("d", "k2", 300)).await.unwrap();
    assert_eq!(db.scope_spend("team:t1", START).await.unwrap(), nc(750));
    assert!(matches!(
        db.reserve(hold("e", "k2", 51)).await,
        Err(LedgerError::LimitExceeded { scope, .. }) if scope == "team:t1"
    ));
    // A sibling whose name only shares a prefix is not inside the scope.
    let mut sibling = hold_req("o", "f", 10);
    sibling.scope = Some("team:t10".into());
    db.reserve(sibling).await.unwrap();
    assert_eq!(db.scope_spend("team:t1", START).await.unwrap(), nc(750));
    // Charges before `since` do not count; released holds stop counting.
    assert_eq!(
        db.scope_spend("team:t1/key:k1", START.plus_millis(1))
            .await
            .unwrap(),
        nc(250)
    );
    db.release(release_req("b", "b-r")).await.unwrap();
    assert_eq!(db.scope_spend("team:t1", START).await.unwrap(), nc(500));
    // Extending a hold is checked against the same limits.
    let ext = ExtendHoldRequest {
        transfer_id: tid("d-ext"),
        hold: tid("d"),
        amount: nc(301),
        timeout_ms: DEFAULT_HOLD_TIMEOUT_MS,
        limits: vec![team_cap.clone()],
    };
    assert!(matches!(
        db.extend_hold(ext).await,
        Err(LedgerError::LimitExceeded { .. })
    ));
    assert_clean(db).await;
}

async fn extend_grows_a_hold_under_the_same_rules(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000).await;
    let mut first = hold_req("o", "h", 100);
    first.timeout_ms = 1_000;
    db.reserve(first).await.unwrap();
    h.clock.advance(900);
    let ext = |id: &str, amount: i64| ExtendHoldRequest {
        transfer_id: tid(id),
        hold: tid("h"),
        amount: nc(amount),
        timeout_ms: 1_000,
        limits: vec![],
    };
    let grown = db.extend_hold(ext("e1", 400)).await.unwrap();
    assert_eq!(grown.amount, nc(500));
    assert_eq!(grown.expires_at, START.plus_millis(1_900));
    assert!(matches!(
        db.extend_hold(ext("e2", 501)).await,
        Err(LedgerError::Insufficient { .. })
    ));
    h.clock.advance(900);
    assert_eq!(db.balance(&org("o")).await.unwrap().held, nc(500));
    h.clock.advance(100);
    assert_eq!(
        db.extend_hold(ext("e3", 1)).await.unwrap_err(),
        LedgerError::HoldResolved {
            hold: tid("h"),
            resolution: HoldResolution::Expired
        }
    );
    db.reserve(hold_req("o", "h2", 10)).await.unwrap();
    db.release(release_req("h2", "r2")).await.unwrap();
    assert_eq!(
        db.extend_hold(ExtendHoldRequest {
            hold: tid("h2"),
            ..ext("e4", 1)
        })
        .await
        .unwrap_err(),
        LedgerError::HoldResolved {
            hold: tid("h2"),
            resolution: HoldResolution::Released
        }
    );
    assert_clean(db).await;
}

/// Extending a live hold by zero only pushes its expiry: it needs no available credit, so an
/// organization in debt (or at a spend limit) keeps the holds of its requests in flight.
async fn keep_alive_needs_no_available_credit(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000).await;
    db.reserve(hold_req("o", "h1", 100)).await.unwrap();
    let mut second = hold_req("o", "h2", 100);
    second.timeout_ms = 1_000;
    db.reserve(second).await.unwrap();
    db.settle(settle_req("h1", "s1", 1_500)).await.unwrap();
    assert!(db.balance(&org("o")).await.unwrap().available < nc(0));
    h.clock.advance(900);
    let ext = |id: &str, amount: i64| ExtendHoldRequest {
        transfer_id: tid(id),
        hold: tid("h2"),
        amount: nc(amount),
        timeout_ms: 1_000,
        limits: vec![SpendLimit {
            scope: "key:k".into(),
            since: START,
            cap: nc(0),
        }],
    };
    let kept = db.extend_hold(ext("k1", 0)).await.unwrap();
    assert_eq!(kept.amount, nc(100));
    assert_eq!(kept.expires_at, START.plus_millis(1_900));
    assert!(matches!(
        db.extend_hold(ext("k2", 1)).await,
        Err(LedgerError::Insufficient { .. })
    ));
    h.clock.advance(900);
    assert!(
        db.expire_holds().await.unwrap().is_empty(),
        "the kept hold is alive"
    );
    assert_eq!(db.balance(&org("o")).await.unwrap().held, nc(100));
    assert_clean(db).await;
}

async fn refund_claws_back_the_remainder_once(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000).await;
    let mut expiring = grant_req("o", "exp", 500);
    expiring.expires_at = Some(START.plus_millis(10));
    db.grant(expiring).await.unwrap();
    db.reserve(hold_req("o", "h", 300)).await.unwrap();
    db.settle(settle_req("h", "s", 300)).await.unwrap(); // from the expiring lot first
    let refund = |id: &str, lot_id: &str| RefundRequest {
        transfer_id: tid(id),
        org: org("o"),
        lot: lot(lot_id),
        memo: Some("chargeback".into()),
    };
    // Holds in flight need the credits: refused until they resolve.
    db.reserve(hold_req("o", "h2", 1_100)).await.unwrap();
    assert!(matches!(
        db.refund_lot(refund("f1", "lot-o")).await,
        Err(LedgerError::Insufficient { .. })
    ));
    db.release(release_req("h2", "r2")).await.unwrap();
    let r = db.refund_lot(refund("f1", "lot-o")).await.unwrap();
    assert_eq!(r.amount, nc(1_000));
    assert_eq!(db.balance(&org("o")).await.unwrap().posted, nc(200));
    // An expired lot's remainder belongs to the expiry: its refund is zero.
    h.clock.advance(10);
    let r = db.refund_lot(refund("f2", "lot-exp")).await.unwrap();
    assert_eq!(r.amount, nc(0));
    assert_eq!(db.sweep_expired_lots().await.unwrap()[0].amount, nc(200));
    assert!(matches!(
        db.refund_lot(refund("f3", "lot-nope")).await,
        Err(LedgerError::UnknownLot(_))
    ));
    funded(db, "other", 10).await;
    let mut foreign = refund("f4", "lot-other");
    foreign.org = org("o");
    assert!(matches!(
        db.refund_lot(foreign).await,
        Err(LedgerError::UnknownLot(_))
    ));
    assert_clean(db).await;
}

async fn adjustments_in_both_directions(h: Harness) {
    let db = &h.db;
    funded(db, "o", 100).await;
    let adj = |id: &str, amount: i64| AdjustRequest {
        transfer_id: tid(id),
        org: org("o"),
        lot_id: lot(&format!("lot-{id}")),
        amount: nc(amount),
        reason: "manual".into(),
    };
    db.adjust(adj("a1", 50)).await.unwrap();
    db.reserve(hold_req("o", "h", 100)).await.unwrap();
    assert_eq!(
        db.adjust(adj("a2", -51)).await.unwrap_err(),
        LedgerError::Insufficient {
            available: nc(50),
            needed: nc(51)
        }
    );
    let down = db.adjust(adj("a3", -50)).await.unwrap();
    assert_eq!(down.draws.iter().map(|d| d.amount.nanos()).sum::<i64>(), 50);
    assert_eq!(db.balance(&org("o")).await.unwrap().available, nc(0));
    assert!(matches!(
        db.adjust(adj("a4", 0)).await,
        Err(LedgerError::InvalidAmount(_))
    ));
    assert!(matches!(
        db.adjust(AdjustRequest {
            reason: " ".into(),
            ..adj("a5", 1)
        })
        .await,
        Err(LedgerError::InvalidRequest(_))
    ));
    assert!(matches!(
        db.adjust(adj("a1", 50)).await,
        Ok(a) if a.lot == Some(lot("lot-a1"))
    ));
    assert!(matches!(
        db.adjust(AdjustRequest {
            transfer_id: tid("a6"),
            ..adj("a1", 50)
        })
        .await,
        Err(LedgerError::LotExists(_))
    ));
    assert_clean(db).await;
}

async fn i64_edges_are_errors_not_wraps(h: Harness) {
    let db = &h.db;
    funded(db, "o", 0).await;
    let max = NanoCredits::MAX.nanos();
    db.grant(grant_req("o", "max", max)).await.unwrap();
    assert_eq!(
        db.grant(grant_req("o", "one", 1)).await.unwrap_err(),
        LedgerError::Money(MoneyError::Overflow)
    );
    assert_eq!(
        db.balance(&org("o")).await.unwrap().posted,
        NanoCredits::MAX
    );
    db.reserve(hold_req("o", "h", max)).await.unwrap();
    assert!(matches!(
        db.reserve(hold_req("o", "h1", 1)).await,
        Err(LedgerError::Insufficient { .. })
    ));
    let s = db.settle(settle_req("h", "s", max)).await.unwrap();
    assert_eq!(s.debt, nc(0));
    // Debt cannot grow past i64 either.
    db.reserve(hold_req("o", "h2", 0)).await.unwrap();
    db.settle(settle_req("h2", "s2", max)).await.unwrap();
    db.reserve(hold_req("o", "h3", 0)).await.unwrap_err();
    assert_eq!(db.balance(&org("o")).await.unwrap().debt, NanoCredits::MAX);
    funded(db, "p", 0).await;
    db.grant(grant_req("p", "p1", max)).await.unwrap();
    db.reserve(hold_req("p", "ph", 0)).await.unwrap();
    db.settle(settle_req("ph", "ps", max)).await.unwrap();
    db.reserve(hold_req("p", "ph2", 0)).await.unwrap();
    db.settle(settle_req("ph2", "ps2", max)).await.unwrap();
    db.reserve(hold_req("p", "ph3", 0)).await.unwrap_err();
    funded(db, "q", 0).await;
    db.grant(grant_req("q", "q1", 10)).await.unwrap();
    db.reserve(hold_req("q", "qh", 0)).await.unwrap();
    db.settle(settle_req("qh", "qs", max)).await.unwrap();
    db.reserve(hold_req("q", "qh2", 0)).await.unwrap_err();
    db.reserve(hold_req("q", "qh3", 0)).await.unwrap_err();
    // (q owes MAX − 10; another MAX charge would pass i64.)
    let mut q = hold_req("q", "qh4", 0);
    q.timeout_ms = 1;
    assert!(db.reserve(q).await.is_err());
    assert!(matches!(
        db.adjust(AdjustRequest {
            transfer_id: tid("min"),
            org: org("o"),
            lot_id: lot("x"),
            amount: NanoCredits::MIN,
            reason: "edge".into(),
        })
        .await,
        Err(LedgerError::Money(MoneyError::Overflow)) | Err(LedgerError::Insufficient { .. })
    ));
    assert_clean(db).await;
}

async fn journal_tables_are_append_only(h: Harness) {
    funded(&h.db, "o", 1_000).await;
    h.db.reserve(hold_req("o", "h", 10)).await.unwrap();
    h.db.settle(settle_req("h", "s", 10)).await.unwrap();
    h.db.reserve(hold_req("o", "h2", 10)).await.unwrap();
    h.db.extend_hold(ExtendHoldRequest {
        transfer_id: tid("x"),
        hold: tid("h2"),
        amount: nc(1),
        timeout_ms: 1_000,
        limits: vec![],
    })
    .await
    .unwrap();
    h.db.refund_lot(RefundRequest {
        transfer_id: tid("f"),
        org: org("o"),
        lot: lot("lot-o"),
        memo: None,
    })
    .await
    .unwrap_err();
    let attempts = [
        "UPDATE transfers SET result = '{}'",
        "DELETE FROM transfers",
        "UPDATE entries SET amount = amount + 1",
        "DELETE FROM entries",
        "UPDATE lots SET amount = 1",
        "DELETE FROM lots",
        "UPDATE holds SET amount = 0",
        "DELETE FROM holds",
        "UPDATE hold_extensions SET amount = 0",
        "DELETE FROM hold_extensions",
        "UPDATE hold_resolutions SET resolution = 'released'",
        "DELETE FROM hold_resolutions",
        "UPDATE charges SET charged = 0",
        "DELETE FROM charges",
    ];
    // TRUNCATE skips row triggers; SQLite has no TRUNCATE (its `DELETE` without `WHERE` runs
    // the delete triggers above).
    let truncates = [
        "TRUNCATE transfers",
        "TRUNCATE entries",
        "TRUNCATE lots",
        "TRUNCATE holds",
        "TRUNCATE hold_extensions",
        "TRUNCATE hold_resolutions",
        "TRUNCATE charges",
        "TRUNCATE lot_refunds",
    ];
    let attempts = attempts
        .iter()
        .chain(truncates.iter().filter(|_| h.backend == Backend::Postgres));
    for sql in attempts {
        let refused = match h.backend {
            Backend::Sqlite => {
                let path = h.url.strip_prefix("sqlite://").unwrap();
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                conn.execute(sql, []).map(|_| ()).map_err(|e| e.to_string())
            }
            Backend::Postgres => {
                let (client, conn) = tokio_postgres::connect(&h.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .batch_execute(sql)
                    .await
                    .map_err(|e| format!("{e:?}"))
            }
        };
        let err = refused.expect_err(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_clean(&h.db).await;
}

/// Alters rows behind the ledger's back (triggers dropped first) and expects `verify` to see it.
async fn verify_detects_tampering(h: Harness) {
    funded(&h.db, "o", 1_000).await;
    h.db.reserve(hold_req("o", "h", 100)).await.unwrap();
    h.db.settle(settle_req("h", "s", 100)).await.unwrap();
    assert_clean(&h.db).await;
    let drop_trigger = match h.backend {
        Backend::Sqlite => "DROP TRIGGER entries_append_only_update",
        Backend::Postgres => "DROP TRIGGER entries_append_only ON entries",
    };
    raw_sql(
        &h,
        &[drop_trigger, "UPDATE entries SET amount = 1 WHERE seq = 2"],
    )
    .await;
    let report = h.db.verify().await.unwrap();
    assert!(!report.is_clean());
    let text = report.problems.join("\n");
    assert!(text.contains("altered"), "{text}");
    assert!(text.contains("remaining, its entries say"), "{text}");
}

/// Runs statements on the test's database behind the ledger's back.
async fn raw_sql(h: &Harness, statements: &[&str]) {
    match h.backend {
        Backend::Sqlite => {
            let path = h.url.strip_prefix("sqlite://").unwrap();
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            for sql in statements {
                conn.execute_batch(sql).unwrap();
            }
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&h.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            for sql in statements {
                client.batch_execute(sql).await.unwrap();
            }
        }
    }
}

/// Caches rewritten and a charge altered: `verify` recomputes them from the journal.
async fn verify_detects_cache_and_charge_drift(h: Harness) {
    funded(&h.db, "o", 1_000).await;
    h.db.reserve(hold_req("o", "h", 100)).await.unwrap();
    h.db.settle(settle_req("h", "s", 100)).await.unwrap();
    h.db.reserve(hold_req("o", "h2", 50)).await.unwrap();
    assert_clean(&h.db).await;
    raw_sql(
        &h,
        &[
            "UPDATE lot_state SET remaining = remaining + 5",
            "UPDATE org_state SET debt = 7",
            "UPDATE active_holds SET amount = 1",
        ],
    )
    .await;
    let drop_trigger = match h.backend {
        Backend::Sqlite => "DROP TRIGGER charges_append_only_update",
        Backend::Postgres => "DROP TRIGGER charges_append_only ON charges",
    };
    raw_sql(
        &h,
        &[drop_trigger, "UPDATE charges SET charged = 1, overrun = 0"],
    )
    .await;
    let text = h.db.verify().await.unwrap().problems.join("\n");
    for needle in [
        "lot lot-o shows 905 remaining, its entries say 900",
        "cached debt 7",
        "hold h2 is cached as 1",
        "charges add up to 1 but entries paid 100",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

async fn expiry_runs_once_across_replicas(h: Harness) {
    let db = &h.db;
    funded(db, "o", 1_000_000).await;
    let mut lots = grant_req("o", "short", 1_000);
    lots.expires_at = Some(START.plus_millis(10));
    db.grant(lots).await.unwrap();
    for i in 0..40 {
        let mut r = hold_req("o", &format!("h{i}"), 10);
        r.timeout_ms = 10;
        db.reserve(r).await.unwrap();
    }
    h.clock.advance(10);
    let second = h.replica().await;
    let (a, b, c, d) = tokio::join!(
        db.expire_holds(),
        second.expire_holds(),
        db.sweep_expired_lots(),
        second.sweep_expired_lots()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<_> = a.iter().chain(b.iter()).cloned().collect();
    assert_eq!(all.len(), 40);
    assert_eq!(a.len() + b.len(), 40, "no hold expired twice");
    let swept: Vec<_> = c.unwrap().into_iter().chain(d.unwrap()).collect();
    assert_eq!(swept.len(), 1);
    assert_eq!(db.balance(&org("o")).await.unwrap().posted, nc(1_000_000));
    assert_clean(db).await;
}

async fn unknown_and_duplicate_things_are_errors(h: Harness) {
    let db = &h.db;
    assert!(matches!(
        db.grant(grant_req("ghost", "g", 1)).await,
        Err(LedgerError::UnknownOrganization(_))
    ));
    assert!(matches!(
        db.balance(&org("ghost")).await,
        Err(LedgerError::UnknownOrganization(_))
    ));
    assert!(matches!(
        db.organization(&org("ghost")).await,
        Err(LedgerError::UnknownOrganization(_))
    ));
    funded(db, "o", 10).await;
    assert!(matches!(
        db.create_organization(org("o"), "again".into()).await,
        Err(LedgerError::OrganizationExists(_))
    ));
    assert!(matches!(
        db.grant(grant_req("o", "o", 5)).await,
        Err(LedgerError::IdempotencyConflict(_))
    ));
    let mut dup_lot = grant_req("o", "o", 10);
    dup_lot.transfer_id = tid("fresh");
    assert!(matches!(
        db.grant(dup_lot).await,
        Err(LedgerError::LotExists(_))
    ));
    assert!(matches!(
        db.settle(settle_req("nope", "s", 1)).await,
        Err(LedgerError::UnknownHold(_))
    ));
    assert!(matches!(
        db.release(release_req("nope", "r")).await,
        Err(LedgerError::UnknownHold(_))
    ));
    assert!(db.hold(&tid("nope")).await.unwrap().is_none());
    assert!(matches!(
        db.grant(grant_req("o", "zero", 0)).await,
        Err(LedgerError::InvalidAmount(_))
    ));
    assert_clean(db).await;
}
