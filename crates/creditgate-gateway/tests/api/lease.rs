//! Credit leases over HTTP (`docs/ledger.md`, "Credit leases"): requests admitted against the
//! organization's lease in memory are refused, charged and shown exactly as with a hold each;
//! the lease returns when idle; a key with spend limits finds the credit a lease leaves unused;
//! a lease that lapses under a live stream does not lose its charge.

use std::time::Duration;

use creditgate_core::clock::ManualClock;
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use creditgate_gateway::lease::{IDLE_RETURN, LEASE_TIMEOUT_MS};
use serde_json::json;

use crate::accounts::{admin_key, call, Cred};
use crate::helpers::{body, Setup, TestApp};
use crate::metrics::{sample, scrape};

fn leased(credits: NanoCredits) -> Setup {
    Setup {
        credits,
        credit_lease: true,
        ..Setup::default()
    }
}

/// Waits until the database holds nothing for the organization (the lease returned).
async fn until_returned(t: &TestApp) {
    let deadline = std::time::Instant::now() + IDLE_RETURN * 5;
    while t.balance().await.active_holds > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle lease was never returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_requests_are_charged_exactly_against_a_lease() {
    let t = TestApp::spawn_with(leased(crate::helpers::credits("1000"))).await;
    let before = t.balance().await;
    let request = body(64, "output_tokens=20 latency_ms=100");
    let replies = futures_util::future::join_all((0..40).map(|_| t.message(&request))).await;
    let mut charged = NanoCredits::ZERO;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        charged = charged.checked_add(r.charged()).unwrap();
        t.assert_settled_once(&r.request_id(), r.charged()).await;
    }
    // The ledger keeps the lease held; what the customer is shown counts only requests in
    // flight (none), as holds of their own would.
    let db = t.balance().await;
    assert_eq!(db.posted, before.posted.checked_sub(charged).unwrap());
    assert_eq!(db.active_holds, 0, "shown as no request in flight");
    let raw = t.app.db.balance(&t.org).await.unwrap();
    assert_eq!(
        raw.active_holds, 1,
        "one lease in the ledger, not a hold per request"
    );
    let shown = t.get("/v1/credits").await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let available: NanoCredits = shown.body["available"].as_str().unwrap().parse().unwrap();
    assert_eq!(available, db.posted);
    // Every reply told the client what was left then, requests in flight aside.
    assert!(replies
        .iter()
        .all(|r| r.available() < before.posted && !r.available().is_negative()));
    // Every settlement went through the settler once: in a group or on its own (how many were
    // grouped depends on timing; that none was lost or posted twice does not).
    let (_, _, text) = scrape(&t, &Cred::Operator).await;
    let grouped = sample(&text, "creditgate_leased_settlements_grouped_total", &[]).unwrap();
    let alone = sample(&text, "creditgate_leased_settlements_alone_total", &[]).unwrap();
    let groups = sample(&text, "creditgate_leased_settle_groups_total", &[]).unwrap();
    assert_eq!(grouped + alone, 40, "grouped {grouped}, alone {alone}");
    assert!(groups * 2 <= grouped, "{groups} groups of {grouped}");
    until_returned(&t).await;
    assert_eq!(t.balance().await.available, db.posted);
    t.assert_ledger_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_credits_are_refused_as_a_hold_of_their_own_would_be() {
    let t = TestApp::spawn_with(leased(NanoCredits::ZERO)).await;
    let request = body(512, "output_tokens=512 latency_ms=300");
    let hold = t.estimate(&request).with_output(512).unwrap();
    // Ten holds' worth, less one nano-credit: nine fit, the tenth does not.
    t.grant(
        hold.checked_mul(10)
            .unwrap()
            .checked_sub(NanoCredits::from_nanos(1))
            .unwrap(),
    )
    .await;
    let replies = futures_util::future::join_all((0..24).map(|_| t.message(&request))).await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(admitted, 9, "exactly the holds that fit are admitted");
    for r in replies.iter().filter(|r| r.status != 200) {
        r.assert_error(402, "billing_error");
    }
    let b = t.balance().await;
    assert_eq!(b.debt, NanoCredits::ZERO);
    t.assert_ledger_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_grows_against_the_lease_and_shows_in_flight() {
    let t = TestApp::spawn_with(Setup {
        first_slice_tokens: 64,
        slice_tokens: 64,
        ..leased(crate::helpers::credits("1000"))
    })
    .await;
    let mut request = body(4_000, "output_tokens=3000 chunk_tokens=8");
    request["stream"] = json!(true);
    let mut raw = t.open_stream(&request, Some(2048)).await;
    assert_eq!(raw.read_head().await, 200);
    let id = raw.header("request-id").expect("a request id");
    raw.read_until_count("content_block_delta", 2).await;
    // In flight: its receipt is pending, from this replica's memory.
    let pending = t.get(&format!("/v1/requests/{id}")).await;
    assert_eq!(pending.status, 200, "{}", pending.body);
    assert_eq!(pending.body["status"], "pending", "{}", pending.body);
    raw.read_to_end().await;
    let receipt = t.final_receipt(&id).await;
    assert_eq!(receipt.output_tokens(), 3000, "{}", receipt.0);
    assert!(receipt.held() >= receipt.charged(), "{}", receipt.0);
    t.assert_settled_once(&id, receipt.charged()).await;
    t.assert_ledger_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_spend_limits_finds_what_the_lease_leaves_unused() {
    let t = TestApp::spawn_with(leased(NanoCredits::ZERO)).await;
    let request = body(512, "output_tokens=1");
    let hold = t.estimate(&request).with_output(512).unwrap();
    t.grant(hold.checked_mul(4).unwrap()).await;
    // A key without limits takes the lease (half of the rest beside its own need).
    let first = t.message(&request).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let in_db = t.app.db.balance(&t.org).await.unwrap();
    assert!(in_db.held > hold, "the lease holds headroom: {in_db:?}");
    // A key with a spend limit holds per request: it must not be refused for the lease's
    // headroom while the organization has the credit.
    let admin = admin_key(&t, &t.org).await;
    let r = call(
        &t,
        reqwest::Method::POST,
        "/v1/organizations/api_keys",
        &Cred::Key(admin),
        Some(json!({"name": "limited", "limits": {"spend": {"daily": "1000"}}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let big = body(512 * 3, "output_tokens=1");
    let limited = t.message_as(&secret, &big).await;
    assert_eq!(limited.status, 200, "{}", limited.body);
    t.assert_ledger_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_lapses_under_a_live_stream_still_charges_it() {
    let clock = ManualClock::new(creditgate_core::clock::Timestamp::from_millis(
        1_767_225_600_000,
    ));
    let t = TestApp::spawn_with(Setup {
        clock: Some(clock.clone()),
        ..leased(crate::helpers::credits("1000"))
    })
    .await;
    let mut request = body(4_000, "output_tokens=2000 chunk_tokens=8");
    request["stream"] = json!(true);
    let mut raw = t.open_stream(&request, Some(2048)).await;
    assert_eq!(raw.read_head().await, 200);
    let id = raw.header("request-id").expect("a request id");
    raw.read_until_count("content_block_delta", 2).await;
    // The lease's keep-alive cannot reach the database in time (here: the clock jumps past
    // the lease's timeout) and the sweeper expires it while the stream is live.
    clock.advance(LEASE_TIMEOUT_MS + 1_000);
    let expired = t.app.db.expire_holds().await.unwrap();
    assert_eq!(expired.len(), 1, "the lease lapsed");
    raw.read_to_end().await;
    let receipt = t.final_receipt(&id).await;
    assert_eq!(receipt.output_tokens(), 2000, "{}", receipt.0);
    t.assert_settled_once(&id, receipt.charged()).await;
    // The next request replaces the lapsed lease rather than spending it.
    let next = t.message(&body(64, "output_tokens=5")).await;
    assert_eq!(next.status, 200, "{}", next.body);
    let (lapsed, _) = t.app.db.hold(&expired[0]).await.unwrap().unwrap();
    let leases: Vec<_> = t
        .app
        .db
        .entries(&t.org)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.transfer_id.as_str().starts_with("lease:"))
        .collect();
    assert!(leases.is_empty(), "a lease moves no money: {leases:?}");
    let in_db = t.app.db.balance(&t.org).await.unwrap();
    assert_eq!(in_db.active_holds, 1, "a new lease: {in_db:?}");
    assert!(lapsed.id.as_str().starts_with("lease:"));
    let (_, resolution) = t.app.db.hold(&lapsed.id).await.unwrap().unwrap();
    assert_eq!(
        resolution,
        Some(creditgate_core::ledger::HoldResolution::Expired),
        "the lapsed lease stays expired; a new one took its place"
    );
    t.assert_ledger_clean().await;
}
