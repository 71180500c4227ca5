//! Credit leases at the ledger (`docs/ledger.md`, "Credit leases"): the lease op, which replaces
//! a replica's lease in one transaction, and the settle of a request admitted against a lease,
//! which records the request's hold beside its charge. On both databases.

use std::sync::Arc;

use crate::common::*;
use creditgate_core::ledger::{
    HoldResolution, LeaseRequest, LeasedHold, LedgerError, LedgerStore, SettleRequest,
};
use creditgate_core::money::NanoCredits;
use tokio::sync::Barrier;

contract!(
    a_lease_takes_what_is_needed_and_at_most_half_the_rest,
    a_lease_replaces_the_previous_one_atomically,
    a_refused_lease_keeps_the_previous_one,
    a_leased_settle_records_the_hold_and_charge_once,
    a_leased_settle_after_its_lease_expired_still_charges,
    two_replicas_racing_for_the_last_credits_never_overdraw,
);

fn lease_req(
    org_id: &str,
    id: &str,
    previous: Option<&str>,
    needed: i64,
    wanted: i64,
) -> LeaseRequest {
    LeaseRequest {
        transfer_id: tid(id),
        org: org(org_id),
        previous: previous.map(|p| (tid(p), tid(&format!("{p}:return")))),
        needed: nc(needed),
        wanted: nc(wanted),
        timeout_ms: 60_000,
    }
}

fn leased_settle(org_id: &str, request: &str, held: i64, charged: i64) -> SettleRequest {
    let mut req = settle_req(request, &format!("{request}:settle"), charged);
    req.leased = Some(LeasedHold {
        org: org(org_id),
        amount: nc(held),
        created_at: START,
        scope: Some("key:k1".to_owned()),
        memo: None,
    });
    req
}

async fn a_lease_takes_what_is_needed_and_at_most_half_the_rest(h: Harness) {
    funded(&h.db, "o1", 1_000).await;
    // Plenty: all it wanted.
    let l =
        h.db.lease(lease_req("o1", "l1", None, 100, 300))
            .await
            .unwrap();
    assert_eq!(l.amount, nc(300));
    // 700 left: needs 100, wants 600 more, gets half of the 600 left beside what it needs.
    let l2 =
        h.db.lease(lease_req("o1", "l2", None, 100, 700))
            .await
            .unwrap();
    assert_eq!(l2.amount, nc(100 + 300));
    let b = h.db.balance(&org("o1")).await.unwrap();
    assert_eq!(b.available, nc(300));
    // Refused: the amount a hold of its own would have been refused for.
    let err =
        h.db.lease(lease_req("o1", "l3", None, 301, 301))
            .await
            .unwrap_err();
    assert!(
        matches!(err, LedgerError::Insufficient { available, needed } if available == nc(300) && needed == nc(301)),
        "{err:?}"
    );
    // A replay returns the same lease.
    let again =
        h.db.lease(lease_req("o1", "l1", None, 100, 300))
            .await
            .unwrap();
    assert_eq!(again, l);
    assert_clean(&h.db).await;
}

async fn a_lease_replaces_the_previous_one_atomically(h: Harness) {
    funded(&h.db, "o1", 1_000).await;
    let l1 =
        h.db.lease(lease_req("o1", "l1", None, 0, 900))
            .await
            .unwrap();
    // Half of what was there: another replica still finds credit.
    assert_eq!(l1.amount, nc(500));
    // The previous lease's 500 counts as available to its replacement.
    let l2 =
        h.db.lease(lease_req("o1", "l2", Some("l1"), 950, 950))
            .await
            .unwrap();
    assert_eq!(l2.amount, nc(950));
    let (_, resolution) = h.db.hold(&tid("l1")).await.unwrap().unwrap();
    assert_eq!(resolution, Some(HoldResolution::Released));
    let b = h.db.balance(&org("o1")).await.unwrap();
    assert_eq!((b.held, b.available, b.active_holds), (nc(950), nc(50), 1));
    assert_clean(&h.db).await;
}

async fn a_refused_lease_keeps_the_previous_one(h: Harness) {
    funded(&h.db, "o1", 1_000).await;
    h.db.lease(lease_req("o1", "l1", None, 0, 400))
        .await
        .unwrap();
    let err =
        h.db.lease(lease_req("o1", "l2", Some("l1"), 1_001, 1_001))
            .await
            .unwrap_err();
    assert!(matches!(err, LedgerError::Insufficient { .. }), "{err:?}");
    let (_, resolution) = h.db.hold(&tid("l1")).await.unwrap().unwrap();
    assert_eq!(
        resolution, None,
        "the previous lease must survive a refusal"
    );
    assert!(h.db.hold(&tid("l2")).await.unwrap().is_none());
    let b = h.db.balance(&org("o1")).await.unwrap();
    assert_eq!(b.held, nc(400));
    assert_clean(&h.db).await;
}

async fn a_leased_settle_records_the_hold_and_charge_once(h: Harness) {
    funded(&h.db, "o1", 1_000).await;
    h.db.lease(lease_req("o1", "l1", None, 0, 500))
        .await
        .unwrap();
    let s =
        h.db.settle(leased_settle("o1", "req_1", 120, 90))
            .await
            .unwrap();
    assert_eq!(
        (s.held, s.charged, s.overrun, s.late),
        (nc(120), nc(90), NanoCredits::ZERO, false)
    );
    // The ledger's available still counts the whole lease as held.
    assert_eq!(s.available, Some(nc(1_000 - 90 - 500)));
    let (hold, resolution) = h.db.hold(&tid("req_1")).await.unwrap().unwrap();
    assert_eq!(
        (hold.amount, resolution),
        (nc(120), Some(HoldResolution::Settled))
    );
    assert_eq!(hold.created_at, START);
    // A replay answers the first result and writes nothing.
    let again =
        h.db.settle(leased_settle("o1", "req_1", 120, 90))
            .await
            .unwrap();
    assert_eq!(again, s);
    // The same request settled with other content is a conflict.
    let err =
        h.db.settle(leased_settle("o1", "req_1", 120, 91))
            .await
            .unwrap_err();
    assert!(
        matches!(err, LedgerError::IdempotencyConflict(_)),
        "{err:?}"
    );
    // A request id that already names a hold cannot be settled as leased.
    h.db.reserve(hold_req("o1", "req_2", 10)).await.unwrap();
    let err =
        h.db.settle(leased_settle("o1", "req_2", 10, 10))
            .await
            .unwrap_err();
    assert!(
        matches!(err, LedgerError::IdempotencyConflict(_)),
        "{err:?}"
    );
    h.db.settle(settle_req("req_2", "req_2:settle", 10))
        .await
        .unwrap();
    // The charge counts toward the hold's scope, as a per-request hold's would.
    let spent = h.db.scope_spend("key:k1", START).await.unwrap();
    assert_eq!(spent, nc(90));
    let b = h.db.balance(&org("o1")).await.unwrap();
    assert_eq!(b.posted, nc(1_000 - 90 - 10));
    assert_clean(&h.db).await;
}

async fn a_leased_settle_after_its_lease_expired_still_charges(h: Harness) {
    funded(&h.db, "o1", 1_000).await;
    h.db.lease(lease_req("o1", "l1", None, 0, 500))
        .await
        .unwrap();
    h.clock.advance(61_000);
    assert_eq!(h.db.expire_holds().await.unwrap(), vec![tid("l1")]);
    // The lease lapsed under a live request: its usage was real, so the charge posts.
    let s =
        h.db.settle(leased_settle("o1", "req_1", 100, 100))
            .await
            .unwrap();
    assert_eq!(s.charged, nc(100));
    // Replacing the lapsed lease does not fail on it.
    let l2 =
        h.db.lease(lease_req("o1", "l2", Some("l1"), 10, 10))
            .await
            .unwrap();
    assert_eq!(l2.amount, nc(10));
    let b = h.db.balance(&org("o1")).await.unwrap();
    assert_eq!((b.posted, b.held), (nc(900), nc(10)));
    assert_clean(&h.db).await;
}

/// Two replicas (two pools or writers on one database) each keep replacing their own lease for
/// the next request of 10 while the other does the same, until the credits run out: what they
/// leased never exceeds what the organization had, and every lease ends up covered.
async fn two_replicas_racing_for_the_last_credits_never_overdraw(h: Harness) {
    funded(&h.db, "o1", 1_000).await;
    let second = h.replica().await;
    let barrier = Arc::new(Barrier::new(2));
    let race = |db: creditgate_storage::Database, name: &'static str, barrier: Arc<Barrier>| async move {
        barrier.wait().await;
        let mut previous: Option<String> = None;
        let mut spent = 0i64;
        for n in 0..200 {
            let id = format!("lease:{name}:{n}");
            let req = lease_req("o1", &id, previous.as_deref(), 10, 40);
            match db.lease(req).await {
                Ok(lease) => {
                    assert!(lease.amount >= nc(10));
                    // One request of 10 admitted against it, charged in full.
                    let request = format!("req_{name}_{n}");
                    db.settle(leased_settle("o1", &request, 10, 10))
                        .await
                        .unwrap();
                    spent += 10;
                    previous = Some(id);
                }
                Err(LedgerError::Insufficient { .. }) => break,
                Err(err) => panic!("{err:?}"),
            }
        }
        // An idle replica returns its lease.
        if let Some(last) = previous {
            db.release(release_req(&last, &format!("{last}:return")))
                .await
                .unwrap();
        }
        spent
    };
    let a = tokio::spawn(race(h.db.clone(), "a", barrier.clone()));
    let b = tokio::spawn(race(second, "b", barrier));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let balance = h.db.balance(&org("o1")).await.unwrap();
    assert_eq!(
        balance.debt,
        NanoCredits::ZERO,
        "a lease never lets a replica overdraw"
    );
    assert_eq!(balance.posted, nc(1_000 - a - b));
    assert_eq!(
        (balance.held, balance.available),
        (NanoCredits::ZERO, balance.posted)
    );
    assert!(
        a + b >= 900,
        "the leases left at most their own headroom: {a} + {b}"
    );
    assert_clean(&h.db).await;
}
