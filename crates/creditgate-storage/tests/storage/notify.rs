//! Alerts and webhooks storage (`docs/alerts.md`) on SQLite and Postgres, with two replicas
//! on one database where it matters: an alert fires once however many ask at once and is
//! re-armed only by a new lot; a job lease goes to one holder at a time; a recorded event
//! gets one delivery per subscribed, enabled endpoint, once; a delivery is claimed by one
//! replica, and its attempt log and the endpoint's failure streak follow each attempt.

use crate::common::*;
use creditgate_core::clock::Clock;
use creditgate_core::ledger::LedgerStore;
use creditgate_storage::notify::{
    Attempt, AttemptOutcome, DeliveryStatus, EndpointStatus, WebhookEndpoint,
};
use futures_util::future::join_all;

contract!(
    an_alert_fires_once_and_only_a_new_lot_rearms_it,
    a_job_lease_has_one_holder_at_a_time,
    events_become_one_delivery_per_subscribed_endpoint,
    a_delivery_is_claimed_once_and_its_attempts_are_logged,
);

async fn an_alert_fires_once_and_only_a_new_lot_rearms_it(h: Harness) {
    funded(&h.db, "acme", 10).await;
    let other = h.replica().await;
    let now = h.clock.now();
    let acme = org("acme");
    let tries = (0..20).map(|i| {
        let db = if i % 2 == 0 { &h.db } else { &other };
        db.fire_alert(&acme, "credits.low", "100", true, now)
    });
    let fired = join_all(tries).await;
    assert_eq!(fired.iter().filter(|f| *f.as_ref().unwrap()).count(), 1);
    assert!(!h
        .db
        .fire_alert(&acme, "credits.low", "100", true, now)
        .await
        .unwrap());
    assert!(
        h.db.fire_alert(&acme, "credits.low", "5", true, now)
            .await
            .unwrap(),
        "another mark"
    );
    h.db.grant(grant_req("acme", "topup", 1)).await.unwrap();
    assert!(
        h.db.fire_alert(&acme, "credits.low", "100", true, now)
            .await
            .unwrap(),
        "re-armed"
    );
    assert!(!h
        .db
        .fire_alert(&acme, "credits.low", "100", true, now)
        .await
        .unwrap());
    assert!(h
        .db
        .fire_alert(&acme, "credits.expiring", "lot:30", false, now)
        .await
        .unwrap());
    h.db.grant(grant_req("acme", "topup2", 1)).await.unwrap();
    assert!(
        !h.db
            .fire_alert(&acme, "credits.expiring", "lot:30", false, now)
            .await
            .unwrap(),
        "never re-armed"
    );
}

async fn a_job_lease_has_one_holder_at_a_time(h: Harness) {
    let other = h.replica().await;
    let now = h.clock.now();
    let (a, b) = tokio::join!(
        h.db.claim_job("expiry-warnings", "a", now, 50_000),
        other.claim_job("expiry-warnings", "b", now, 50_000)
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one holder");
    assert!(!h
        .db
        .claim_job("expiry-warnings", "c", now.plus_millis(49_999), 50_000)
        .await
        .unwrap());
    assert!(h
        .db
        .claim_job("expiry-warnings", "c", now.plus_millis(50_000), 50_000)
        .await
        .unwrap());
}

fn endpoint(id: &str, org_id: &str, events: &[&str], status: EndpointStatus) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.to_owned(),
        org: org(org_id),
        url: "http://93.184.216.34/hook".to_owned(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secret: "whsec_test".to_owned(),
        status,
        failing_since: None,
        disabled_at: None,
        created_at: START,
    }
}

const WHE_A: &str = "whe_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const WHE_B: &str = "whe_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const EVT: &str = "evt_0123456789abcdef0123456789abcdef";

async fn events_become_one_delivery_per_subscribed_endpoint(h: Harness) {
    funded(&h.db, "acme", 0).await;
    funded(&h.db, "other", 0).await;
    let db = &h.db;
    db.create_webhook_endpoint(&endpoint(
        WHE_A,
        "acme",
        &["credits.low"],
        EndpointStatus::Enabled,
    ))
    .await
    .unwrap();
    db.create_webhook_endpoint(&endpoint(
        WHE_B,
        "acme",
        &["order.credited"],
        EndpointStatus::Enabled,
    ))
    .await
    .unwrap();
    let elsewhere = "whe_cccccccccccccccccccccccccccccccc";
    db.create_webhook_endpoint(&endpoint(
        elsewhere,
        "other",
        &["credits.low"],
        EndpointStatus::Enabled,
    ))
    .await
    .unwrap();
    let now = h.clock.now();
    for _ in 0..2 {
        db.record_event(EVT, &org("acme"), "credits.low", "{}", now)
            .await
            .unwrap();
    }
    let due = db.due_deliveries(now, 100).await.unwrap();
    assert_eq!(
        due,
        ["dlv_0123456789abcdefaaaaaaaaaaaaaaaa"],
        "one, to the subscribed endpoint"
    );
    assert_eq!(db.deliveries(WHE_B, 10).await.unwrap().len(), 0);
    assert_eq!(db.deliveries(elsewhere, 10).await.unwrap().len(), 0);
    assert!(db
        .delete_webhook_endpoint(&org("acme"), WHE_A)
        .await
        .unwrap());
    assert!(!db
        .delete_webhook_endpoint(&org("acme"), WHE_A)
        .await
        .unwrap());
    let (d, _) = &db.deliveries(WHE_A, 10).await.unwrap()[0];
    assert_eq!(
        d.status,
        DeliveryStatus::Failed,
        "a deleted endpoint's pending deliveries fail"
    );
    assert!(db
        .webhook_endpoints(&org("acme"))
        .await
        .unwrap()
        .iter()
        .all(|e| e.id == WHE_B));
}

async fn a_delivery_is_claimed_once_and_its_attempts_are_logged(h: Harness) {
    funded(&h.db, "acme", 0).await;
    let db = &h.db;
    db.create_webhook_endpoint(&endpoint(
        WHE_A,
        "acme",
        &["credits.low"],
        EndpointStatus::Enabled,
    ))
    .await
    .unwrap();
    let now = h.clock.now();
    db.record_event(EVT, &org("acme"), "credits.low", "{\"a\":1}", now)
        .await
        .unwrap();
    let id = db.due_deliveries(now, 10).await.unwrap().remove(0);
    let other = h.replica().await;
    let (a, b) = tokio::join!(
        db.claim_delivery(&id, "a", now, 60_000, false),
        other.claim_delivery(&id, "b", now, 60_000, false)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_some() ^ b.is_some(), "claimed by one replica");
    let (work, owner) = match (a, b) {
        (Some(w), None) => (w, "a"),
        (None, Some(w)) => (w, "b"),
        _ => unreachable!(),
    };
    assert_eq!(
        (work.body.as_str(), work.secret.as_str()),
        ("{\"a\":1}", "whsec_test")
    );
    let failed = AttemptOutcome {
        attempt: Attempt {
            n: 1,
            at: now,
            status_code: Some(500),
            error: Some("the receiver answered 500".to_owned()),
            duration_ms: 12,
            manual: false,
        },
        succeeded: false,
        status: DeliveryStatus::Pending,
        next_at: now.plus_millis(60_000),
    };
    assert!(
        !db.finish_delivery(&id, "intruder", &failed).await.unwrap(),
        "only the holder"
    );
    assert!(db.finish_delivery(&id, owner, &failed).await.unwrap());
    assert!(
        db.due_deliveries(now, 10).await.unwrap().is_empty(),
        "backing off"
    );
    let e = &db.webhook_endpoints(&org("acme")).await.unwrap()[0];
    assert_eq!(e.failing_since, Some(now));
    assert!(!db
        .disable_failing_endpoint(WHE_A, now.plus_millis(-1), now)
        .await
        .unwrap());
    assert!(db.disable_failing_endpoint(WHE_A, now, now).await.unwrap());
    // A manual claim may send it while the endpoint is disabled; success enables it again.
    let later = now.plus_millis(1);
    assert!(db
        .claim_delivery(&id, "m", later, 60_000, false)
        .await
        .unwrap()
        .is_none());
    assert!(db
        .claim_delivery(&id, "m", later, 60_000, true)
        .await
        .unwrap()
        .is_some());
    let ok = AttemptOutcome {
        attempt: Attempt {
            n: 2,
            at: later,
            status_code: Some(200),
            error: None,
            duration_ms: 3,
            manual: true,
        },
        succeeded: true,
        status: DeliveryStatus::Delivered,
        next_at: later,
    };
    assert!(db.finish_delivery(&id, "m", &ok).await.unwrap());
    let (d, attempts) = db.delivery_log(WHE_A, &id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.attempts, d.delivered_at),
        (DeliveryStatus::Delivered, 2, Some(later))
    );
    assert_eq!(
        attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
        [Some(500), Some(200)]
    );
    assert_eq!(attempts[1], ok.attempt);
    let e = &db.webhook_endpoints(&org("acme")).await.unwrap()[0];
    assert_eq!((e.status, e.failing_since), (EndpointStatus::Enabled, None));
}
