//! The overbooking test (reliability case B6, on SQLite): many concurrent streams against a balance
//! that covers a few of them. Admission is one atomic conditional write, so the refused ones get
//! 402 before anything is forwarded and the balance is never overdrawn.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use creditgate_core::money::NanoCredits;
use tokio::sync::Barrier;

use crate::helpers::{body, Setup, TestApp, MODEL};

const REQUESTS: usize = 300;
/// Holds the balance covers at once.
const COVERED: i64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_streams_never_overdraw_the_balance() {
    let app = Arc::new(
        TestApp::spawn_with(Setup {
            credits: NanoCredits::ZERO,
            ..Setup::default()
        })
        .await,
    );
    // Small outputs, spread over ~0.5 s each, so that admitted streams overlap.
    let mut request = body(1024, "output_tokens=20 chunk_tokens=2 latency_ms=30");
    request["stream"] = serde_json::json!(true);
    let hold = app.estimate(&request).with_output(1024).unwrap();
    let granted = hold.checked_mul(COVERED).unwrap();
    app.grant(granted).await;

    // INV-2, sampled while the requests run: available never below zero (no stream here can
    // outgrow its first slice, so no overrun is allowed), and never more than COVERED holds.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let (mut samples, mut peak_holds) = (0u64, 0u64);
            while !done.load(Ordering::Relaxed) {
                let b = app.balance().await;
                assert!(!b.available.is_negative(), "overdrawn: {b:?}");
                assert!(!b.posted.is_negative(), "overdrawn: {b:?}");
                peak_holds = peak_holds.max(b.active_holds);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (samples, peak_holds)
        })
    };

    let barrier = Arc::new(Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (app, barrier, request) = (app.clone(), barrier.clone(), request.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.stream(&request).await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let reply = task.await.expect("request task");
        match reply.status {
            200 => {
                assert!(reply.has("message_stop"), "completed: {}", reply.raw);
                assert!(reply.summary.is_some(), "cost comment: {}", reply.raw);
                admitted.push(reply);
            }
            402 => {
                assert!(reply.raw.contains("billing_error"), "{}", reply.raw);
                refused += 1;
            }
            other => panic!("neither completed nor refused: {other} {}", reply.raw),
        }
    }
    done.store(true, Ordering::Relaxed);
    let (samples, peak_holds) = sampler.await.expect("sampler");

    eprintln!(
        "{} admitted, {refused} refused, at most {peak_holds} holds at once",
        admitted.len()
    );
    assert_eq!(admitted.len() + refused, REQUESTS);
    assert!(
        !admitted.is_empty() && refused > 0,
        "{} admitted, {refused} refused",
        admitted.len()
    );
    assert_eq!(
        app.sim.stats().messages,
        admitted.len() as u64,
        "nothing forwarded for a refused request"
    );
    assert!(samples > 0);
    assert!(
        peak_holds <= COVERED as u64,
        "at most {COVERED} holds at once: {peak_holds}"
    );

    let mut total = NanoCredits::ZERO;
    for reply in &admitted {
        let r = app.receipt(&reply.request_id()).await;
        assert_eq!(r.status(), "settled", "{}", r.0);
        assert_eq!(r.charged(), app.cost_of(MODEL, r.usage()));
        assert_eq!(reply.charged(), r.charged());
        total = total.checked_add(r.charged()).unwrap();
    }
    let b = app.balance().await;
    assert_eq!(
        b.posted,
        granted.checked_sub(total).unwrap(),
        "grants − Σ receipts"
    );
    app.assert_ledger_clean().await;
}

/// Streams that outgrow their first slice, concurrently, on a balance that cannot carry them
/// all: each one completes, is cut with a `billing_error` event, or is refused; the balance goes
/// below zero by at most what was in flight when a slice could not be held (one delta each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_growing_streams_are_cut_rather_than_overdrawn() {
    const STREAMS: usize = 100;
    const CHUNK: u64 = 100;
    let app = Arc::new(
        TestApp::spawn_with(Setup {
            credits: NanoCredits::ZERO,
            ..Setup::default()
        })
        .await,
    );
    let mut request = body(32_000, "output_tokens=4000 chunk_tokens=100 latency_ms=5");
    request["stream"] = serde_json::json!(true);
    let first = app.estimate(&request).with_output(1024).unwrap();
    let granted = first.checked_mul(COVERED).unwrap();
    app.grant(granted).await;
    // What a cut stream may have let through beyond its hold: the delta that did not fit.
    let in_flight = app.output_cost(CHUNK);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (app, done) = (app.clone(), done.clone());
        let bound = in_flight
            .checked_mul(STREAMS as i64)
            .unwrap()
            .checked_neg()
            .unwrap();
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let b = app.balance().await;
                assert!(b.available >= bound, "overdrawn beyond the bound: {b:?}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let barrier = Arc::new(Barrier::new(STREAMS));
    let tasks: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (app, barrier, request) = (app.clone(), barrier.clone(), request.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.stream(&request).await
            })
        })
        .collect();
    let (mut completed, mut cut, mut refused) = (0, 0, 0);
    let mut total = NanoCredits::ZERO;
    let mut total_overrun = NanoCredits::ZERO;
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");

    for reply in &replies {
        if reply.status == 402 {
            refused += 1;
            continue;
        }
        assert_eq!(reply.status, 200, "{}", reply.raw);
        let r = app.receipt(&reply.request_id()).await;
        assert_eq!(r.charged(), app.cost_of(MODEL, r.usage()), "{}", r.0);
        assert!(r.output_tokens() >= reply.tokens_seen(), "{}", r.0);
        if reply.has("message_stop") {
            assert_eq!(r.status(), "settled", "{}", r.0);
            completed += 1;
        } else {
            let error = reply
                .error()
                .unwrap_or_else(|| panic!("cut without an error: {}", reply.raw));
            assert_eq!(error["error"]["type"], "billing_error", "{error}");
            assert_eq!(r.status(), "partial", "{}", r.0);
            assert!(r.overrun() <= in_flight, "overrun above one delta: {}", r.0);
            cut += 1;
        }
        total = total.checked_add(r.charged()).unwrap();
        total_overrun = total_overrun.checked_add(r.overrun()).unwrap();
    }
    eprintln!("{completed} completed, {cut} cut, {refused} refused, overrun {total_overrun}");

    assert_eq!(completed + cut + refused, STREAMS);
    assert!(cut > 0, "some streams outgrew the balance");
    let b = app.balance().await;
    assert_eq!(
        b.posted,
        granted.checked_sub(total).unwrap(),
        "grants − Σ receipts"
    );
    assert!(
        b.posted >= total_overrun.checked_neg().unwrap(),
        "below zero only by recorded overrun: {b:?}"
    );
    app.assert_ledger_clean().await;
}
