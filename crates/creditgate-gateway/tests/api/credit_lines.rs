//! Enterprise credit lines (`docs/credit-lines.md`): the operator puts an organization on
//! `billing_mode = invoiced` with a `credit_limit`; its requests are admitted while available
//! credit plus the limit covers their hold, in the ledger's one atomic admission step, on both
//! databases.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use creditgate_core::money::NanoCredits;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::accounts::{actions, call, Cred};
use crate::helpers::{body, credits, JsonReply, Setup, TestApp};
use crate::on_both_databases;

on_both_databases!(
    an_invoiced_organization_spends_past_zero_up_to_its_limit_and_no_further,
    concurrent_requests_at_the_edge_never_pass_the_limit,
    switching_modes_with_an_open_hold_keeps_the_hold_and_loses_nothing,
    bad_credit_line_changes_are_refused_and_change_nothing,
);

async fn set_line(t: &TestApp, change: Value) -> JsonReply {
    let path = format!("/admin/v1/organizations/{}", t.org);
    call(t, Method::POST, &path, &Cred::Operator, Some(change)).await
}

async fn credits_json(t: &TestApp) -> Value {
    let r = t.get("/v1/credits").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn amount(v: &Value) -> NanoCredits {
    credits(v.as_str().unwrap_or_else(|| panic!("an amount: {v}")))
}

fn no_credits() -> impl FnOnce(Setup) -> Setup {
    |setup| Setup {
        credits: NanoCredits::ZERO,
        ..setup
    }
}

async fn an_invoiced_organization_spends_past_zero_up_to_its_limit_and_no_further(setup: Setup) {
    let t = TestApp::spawn_with(no_credits()(setup)).await;
    let request = body(1024, "output_tokens=20");
    let hold = t.estimate(&request).with_output(1024).unwrap();
    // Prepaid with nothing: refused before the upstream.
    t.message(&request).await.assert_error(402, "billing_error");
    assert_eq!(t.sim.stats().messages, 0);

    let limit = hold.checked_mul(3).unwrap();
    let r = set_line(
        &t,
        json!({"billing_mode": "invoiced", "credit_limit": limit}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["billing_mode"].as_str(),
            amount(&r.body["credit_limit"])
        ),
        (Some("invoiced"), limit)
    );

    let mut admitted = 0u64;
    let mut spent = NanoCredits::ZERO;
    let refused = loop {
        let r = t.message(&request).await;
        if r.status != 200 {
            break r;
        }
        admitted += 1;
        spent = spent.checked_add(r.charged()).unwrap();
        assert!(admitted < 1_000, "the line never ran out");
    };
    refused.assert_error(402, "billing_error");
    assert_eq!(
        t.sim.stats().messages,
        admitted,
        "the refused request was not forwarded"
    );
    // Every admission fit: what is owed never passes the limit, and the next hold does not fit.
    let b = t.balance().await;
    assert_eq!(b.debt, spent);
    assert!(b.debt <= limit, "{b:?}");
    assert!(limit.checked_sub(b.debt).unwrap() < hold, "{b:?}");
    assert!(
        admitted >= 3,
        "a limit of three holds admits at least three: {admitted}"
    );

    let c = credits_json(&t).await;
    assert_eq!(c["billing_mode"], "invoiced");
    assert_eq!(amount(&c["credit_limit"]), limit);
    assert_eq!(amount(&c["balance"]), spent.checked_neg().unwrap());
    assert_eq!(amount(&c["spendable"]), limit.checked_sub(spent).unwrap());
    let needed = format!("low: {} ", limit.checked_sub(spent).unwrap());
    assert!(
        refused.error_message().contains(&needed),
        "{}",
        refused.body
    );

    // A payment repays what is owed first; the line is whole again.
    t.grant(spent).await;
    let b = t.balance().await;
    assert_eq!((b.debt, b.posted), (NanoCredits::ZERO, NanoCredits::ZERO));
    assert_eq!(t.message(&request).await.status, 200);
    t.assert_ledger_clean().await;
}

async fn concurrent_requests_at_the_edge_never_pass_the_limit(setup: Setup) {
    const REQUESTS: usize = 40;
    const COVERED: i64 = 5;
    let t = Arc::new(TestApp::spawn_with(no_credits()(setup)).await);
    let mut request = body(1024, "output_tokens=20 chunk_tokens=2 latency_ms=40");
    request["stream"] = json!(true);
    let hold = t.estimate(&request).with_output(1024).unwrap();
    let limit = hold.checked_mul(COVERED).unwrap();
    let r = set_line(
        &t,
        json!({"billing_mode": "invoiced", "credit_limit": limit.to_string()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Sampled while the requests run: holds plus what is owed never pass the limit.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (t, done) = (t.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let b = t.balance().await;
                assert!(
                    b.debt.checked_add(b.held).unwrap() <= limit,
                    "past the limit: {b:?}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let barrier = Arc::new(Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (t, barrier, request) = (t.clone(), barrier.clone(), request.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                t.stream(&request).await
            })
        })
        .collect();
    let (mut admitted, mut refused) = (0u64, 0u64);
    for task in tasks {
        let reply = task.await.expect("request task");
        match reply.status {
            200 => admitted += 1,
            402 => refused += 1,
            other => panic!("neither completed nor refused: {other} {}", reply.raw),
        }
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.expect("the limit held in every sample");
    assert!(admitted >= COVERED as u64, "admitted {admitted}");
    assert!(
        refused > 0,
        "40 streams at once cannot all fit in five holds"
    );
    assert_eq!(
        t.sim.stats().messages,
        admitted,
        "refused streams were not forwarded"
    );
    let b = t.balance().await;
    assert!(b.debt <= limit, "{b:?}");
    t.assert_ledger_clean().await;
}

async fn switching_modes_with_an_open_hold_keeps_the_hold_and_loses_nothing(setup: Setup) {
    let t = Arc::new(TestApp::spawn_with(no_credits()(setup)).await);
    let mut slow = body(1024, "output_tokens=20 chunk_tokens=1 latency_ms=100");
    slow["stream"] = json!(true);
    let hold = t.estimate(&slow).with_output(1024).unwrap();
    let limit = hold.checked_mul(2).unwrap();
    let r = set_line(
        &t,
        json!({"billing_mode": "invoiced", "credit_limit": limit}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A stream holds credit on the line while the organization is switched back to prepaid.
    let open = {
        let (t, slow) = (t.clone(), slow.clone());
        tokio::spawn(async move { t.stream(&slow).await })
    };
    while t.balance().await.active_holds == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = set_line(&t, json!({"billing_mode": "prepaid"})).await;
    assert_eq!(
        r.status, 200,
        "switching with an open hold is allowed: {}",
        r.body
    );
    assert_eq!(
        (
            r.body["billing_mode"].as_str(),
            amount(&r.body["credit_limit"])
        ),
        (Some("prepaid"), NanoCredits::ZERO)
    );
    t.message(&body(16, ""))
        .await
        .assert_error(402, "billing_error");

    // The hold placed before the switch stays and settles: its charge is owed.
    let stream = open.await.unwrap();
    assert_eq!(stream.status, 200, "{}", stream.raw);
    let owed = stream.charged();
    assert!(owed.is_positive());
    let b = t.balance().await;
    assert_eq!((b.debt, b.active_holds), (owed, 0));
    assert_eq!(t.sim.stats().messages, 1);

    // Back on a line lower than what is owed: refused, nothing moves, until it is paid.
    let below = owed.checked_sub(NanoCredits::from_nanos(1)).unwrap();
    let r = set_line(
        &t,
        json!({"billing_mode": "invoiced", "credit_limit": below}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.message(&body(16, ""))
        .await
        .assert_error(402, "billing_error");
    assert_eq!(t.balance().await.debt, owed);
    t.grant(owed).await;
    assert_eq!(t.message(&body(16, "")).await.status, 200);
    t.assert_ledger_clean().await;

    let path = format!("/admin/v1/audit_log?organization_id={}", t.org);
    let log = call(&t, Method::GET, &path, &Cred::Operator, None).await;
    let set = actions(&log)
        .iter()
        .filter(|a| *a == "organization.credit_line_set")
        .count();
    assert_eq!(set, 3);
}

async fn bad_credit_line_changes_are_refused_and_change_nothing(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let before = set_line(&t, json!({})).await;
    assert_eq!(before.status, 200);
    assert_eq!(before.body["billing_mode"], "prepaid");
    for bad in [
        json!({"billing_mode": "invoiced", "credit_limit": "-5"}),
        json!({"billing_mode": "invoiced", "credit_limit": -5}),
        json!({"billing_mode": "invoiced", "credit_limit": "lots"}),
        json!({"billing_mode": "invoiced", "credit_limit": 1.5}),
        json!({"billing_mode": "invoiced", "credit_limit": true}),
        json!({"billing_mode": "invoiced", "credit_limit": "0.0000000001"}),
        json!({"billing_mode": "postpaid"}),
        // A limit needs the invoiced mode.
        json!({"credit_limit": "100"}),
        json!({"billing_mode": "prepaid", "credit_limit": "100"}),
        // Every field is checked before anything changes.
        json!({"name": "Renamed", "billing_mode": "invoiced", "credit_limit": "-1"}),
        json!({"name": "Renamed", "billing_mode": "invoiced", "status": "bogus"}),
    ] {
        let r = set_line(&t, bad.clone()).await;
        r.assert_error(400, "invalid_request_error");
        assert!(
            r.error_message().contains("credit_limit")
                || r.error_message().contains("billing_mode")
                || r.error_message().contains("status"),
            "{bad}: {}",
            r.body
        );
        let now = set_line(&t, json!({})).await;
        assert_eq!(now.body, before.body, "{bad} changed something");
    }
    // Invoiced without a limit is a line of zero: it behaves as prepaid until a limit is set.
    let r = set_line(&t, json!({"billing_mode": "invoiced"})).await;
    assert_eq!(
        (r.status, r.body["credit_limit"].as_str()),
        (200, Some("0")),
        "{}",
        r.body
    );
    let r = set_line(&t, json!({"credit_limit": 250})).await;
    assert_eq!(
        (r.status, r.body["credit_limit"].as_str()),
        (200, Some("250")),
        "{}",
        r.body
    );
    let c = credits_json(&t).await;
    assert_eq!(
        amount(&c["spendable"]),
        amount(&c["available"]).checked_add(credits("250")).unwrap()
    );
    let path = format!("/admin/v1/organizations/{}", t.org);
    let r = call(
        &t,
        Method::POST,
        &path,
        &Cred::Key(t.api_key.clone()),
        Some(json!({"credit_limit": 1})),
    )
    .await;
    assert_eq!(r.status, 401, "only the operator sets a line: {}", r.body);
}
