//! When the upstream fails: errors before any byte are free, a stream broken after
//! `message_start` is charged its input and the output observed (`partial`), an overrun is
//! charged and recorded, hostile usage never adds credits, and a bad upstream key fails over.

use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use serde_json::{json, Value};

use crate::helpers::{body, closed_port, credits, JsonReply, Setup, TestApp, MODEL, UPSTREAM_KEY};

/// Sends `request` plain or streamed and reads the answer as JSON (errors are JSON either way).
async fn send(app: &TestApp, request: &Value, stream: bool) -> JsonReply {
    let mut request = request.clone();
    request["stream"] = json!(stream);
    app.message(&request).await
}

#[tokio::test]
async fn upstream_errors_before_any_byte_pass_through_and_are_free() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;

    for (status, kind) in [
        (529, "overloaded_error"),
        (500, "api_error"),
        (429, "rate_limit_error"),
        (400, "invalid_request_error"),
    ] {
        for stream in [false, true] {
            let what = format!("status {status}, stream {stream}");
            let reply = send(&app, &body(256, &format!("status={status}")), stream).await;

            reply.assert_error(status, kind);
            assert_eq!(reply.charged(), NanoCredits::ZERO, "{what}");
            let receipt = app.receipt(&reply.request_id()).await;
            assert_eq!(receipt.status(), "free", "{what}: {}", receipt.0);
            assert_eq!(receipt.charged(), NanoCredits::ZERO, "{what}");
        }
    }

    assert_eq!(app.balance().await, before, "nothing else moved");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_unreachable_upstream_gets_502_and_is_free() {
    let app = TestApp::spawn_with(Setup {
        upstream_base_url: Some(format!("http://{}", closed_port().await)),
        ..Setup::default()
    })
    .await;
    let before = app.balance().await;

    for stream in [false, true] {
        let reply = send(&app, &body(256, "output_tokens=5"), stream).await;

        reply.assert_error(502, "api_error");
        let receipt = app.receipt(&reply.request_id()).await;
        assert_eq!(receipt.status(), "free", "{}", receipt.0);
        assert_eq!(receipt.charged(), NanoCredits::ZERO);
    }

    assert_eq!(app.balance().await, before);
    app.assert_ledger_clean().await;
}

/// Checks a stream broken after `message_start`: `partial`, charged exactly the input from
/// `message_start` plus the output the client saw.
async fn check_partial(app: &TestApp, directives: &str, upstream_error: &str) {
    let before = app.balance().await;

    let reply = app.stream(&body(256, directives)).await;

    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(!reply.has("message_stop"), "{}", reply.raw);
    let error = reply
        .error()
        .unwrap_or_else(|| panic!("an error event: {}", reply.raw));
    assert_eq!(error["error"]["type"], upstream_error, "{}", reply.raw);
    let start = reply
        .events
        .iter()
        .find(|e| e.name == "message_start")
        .expect("message_start");
    let seen = reply.tokens_seen();
    assert!(seen > 0);

    let r = app.receipt(&reply.request_id()).await;
    assert_eq!(r.status(), "partial", "{}", r.0);
    let input = &start.data["message"]["usage"]["input_tokens"];
    assert_eq!(
        &r.usage()["input_tokens"],
        input,
        "input from message_start"
    );
    assert_eq!(r.output_tokens(), seen, "output = what was observed");
    let expected = app.cost_of(
        MODEL,
        &json!({"input_tokens": input, "output_tokens": seen}),
    );
    assert_eq!(r.charged(), expected);
    assert!(
        r.charged().is_positive() && r.charged() <= r.held(),
        "{}",
        r.0
    );
    assert_eq!(
        reply.charged(),
        expected,
        "the comment line tells the charge"
    );
    let after = app.balance().await;
    assert_eq!(after.posted, before.posted.checked_sub(expected).unwrap());
    app.assert_settled_once(&reply.request_id(), expected).await;
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_error_event_mid_stream_charges_input_and_observed_output() {
    let app = TestApp::spawn().await;
    check_partial(
        &app,
        "output_tokens=100 chunk_tokens=2 error_after=3",
        "overloaded_error",
    )
    .await;
}

#[tokio::test]
async fn a_reset_mid_stream_charges_input_and_observed_output_and_tells_the_client() {
    let app = TestApp::spawn().await;
    check_partial(
        &app,
        "output_tokens=100 chunk_tokens=2 reset_after=3",
        "api_error",
    )
    .await;
}

/// Usage above what was held (the upstream reports more output than `max_tokens`): charged in
/// full as a recorded overrun; the balance goes below zero by at most that, new requests get
/// 402 until a purchase repays it.
async fn check_overrun(stream: bool) {
    let app = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        ..Setup::default()
    })
    .await;
    let mut request = body(100, "output_tokens=50 overrun=5000");
    request["stream"] = json!(stream);
    // max_tokens is below the first slice: JSON or stream, the hold is the full worst case.
    let hold = app.estimate(&request).worst_case().unwrap();
    app.grant(hold).await;

    let resp = app.post_messages(&app.api_key, &request).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["request-id"].to_str().unwrap().to_owned();
    let _ = resp.bytes().await;

    let r = app.final_receipt(&id).await;
    assert_eq!(r.output_tokens(), 5050, "{}", r.0);
    assert_eq!(
        r.charged(),
        app.cost_of(MODEL, r.usage()),
        "charged in full"
    );
    assert!(r.charged() > hold);
    let overrun = r.charged().checked_sub(hold).unwrap();
    assert_eq!(r.overrun(), overrun, "recorded on the receipt: {}", r.0);
    let b = app.balance().await;
    assert_eq!(
        b.posted,
        overrun.checked_neg().unwrap(),
        "below zero by exactly the overrun"
    );
    assert_eq!(b.debt, overrun);
    app.assert_settled_once(&id, r.charged()).await;
    app.assert_ledger_clean().await;

    // In debt: the next request is refused before forwarding…
    let forwarded = app.sim.stats().messages;
    app.message(&body(16, "output_tokens=5"))
        .await
        .assert_error(402, "billing_error");
    assert_eq!(app.sim.stats().messages, forwarded);
    // …until a purchase repays it first.
    app.grant(credits("10")).await;
    let b = app.balance().await;
    assert_eq!(b.debt, NanoCredits::ZERO);
    assert_eq!(b.posted, credits("10").checked_sub(overrun).unwrap());
    assert_eq!(app.message(&body(16, "output_tokens=5")).await.status, 200);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_overrun_is_charged_recorded_and_bounded() {
    check_overrun(false).await;
}

#[tokio::test]
async fn a_streamed_overrun_is_charged_recorded_and_bounded() {
    check_overrun(true).await;
}

#[tokio::test]
async fn hostile_usage_never_increases_a_balance() {
    let app = TestApp::spawn().await;

    for mode in ["negative", "huge", "string", "missing"] {
        for stream in [false, true] {
            let what = format!("hostile={mode}, stream {stream}");
            // Each case on its own organization: `huge` leaves a large (recorded) debt.
            let (org, key) = app.other_org(credits("100")).await;
            let before = app.balance_of(&org).await;
            let mut request = body(256, &format!("output_tokens=20 hostile={mode}"));
            request["stream"] = json!(stream);

            let resp = app.post_messages(&key, &request).await;
            let status = resp.status().as_u16();
            let id = resp.headers()["request-id"].to_str().unwrap().to_owned();
            let _ = resp.bytes().await;

            assert_eq!(status, 200, "{what}");
            let r = app.final_receipt_as(&key, &id).await;
            let after = app.balance_of(&org).await;
            assert!(
                after.posted <= before.posted,
                "{what}: balance grew: {before:?} -> {after:?}"
            );
            assert!(!r.charged().is_negative(), "{what}: {}", r.0);
            if !r.usage().is_null() {
                // Malformed usage is charged by the clamping rules, but never past the hold.
                assert_eq!(
                    r.charged(),
                    app.cost_of(MODEL, r.usage()).min(r.held()),
                    "{what}: {}",
                    r.0
                );
            }
            assert_eq!(
                before.posted.checked_sub(after.posted).unwrap(),
                r.charged(),
                "{what}: the balance moved by the receipt"
            );
            if mode == "missing" {
                // Counts the upstream did not state are estimated (issue 7, leak 7).
                assert_eq!(r.status(), "estimated", "{what}: {}", r.0);
            } else if !stream {
                let flags = r.0["flags"].as_array().map_or(0, Vec::len);
                assert!(flags > 0, "{what}: hostile usage is flagged: {}", r.0);
            }
            assert_eq!(after.active_holds, 0, "{what}");
        }
    }
    let report = app.app.db.verify().await.unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[tokio::test]
async fn a_refused_upstream_key_fails_over_to_the_next_before_any_byte() {
    let app = TestApp::spawn_with(Setup {
        upstream_keys: vec!["sk-ant-wrong-key".into(), UPSTREAM_KEY.into()],
        ..Setup::default()
    })
    .await;

    for stream in [false, true, false, true] {
        let reply = send(&app, &body(64, "output_tokens=5"), stream).await;
        assert_eq!(reply.status, 200, "stream {stream}: {:?}", reply.body);
        let r = app.receipt(&reply.request_id()).await;
        assert_eq!(r.status(), "settled");
        assert_eq!(r.charged(), app.cost_of(MODEL, r.usage()));
    }

    let keys: Vec<String> = app
        .sim
        .recorded()
        .iter()
        .filter_map(|r| {
            r.headers
                .iter()
                .find(|(n, _)| n == "x-api-key")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert!(
        keys.iter().any(|k| k == "sk-ant-wrong-key"),
        "the wrong key was tried: {keys:?}"
    );
    assert_eq!(keys.iter().filter(|k| *k == UPSTREAM_KEY).count(), 4);
    assert_eq!(app.sim.stats().messages, 4, "each request answered once");
    app.assert_ledger_clean().await;
}

/// Issue 7, leak 8 (catalogue I53): a timeout after the request was sent is not retried on the
/// next upstream key, since the first may have done (and billed) the work.
#[tokio::test]
async fn a_timeout_after_dispatch_is_not_sent_again() {
    let app = TestApp::spawn_with(Setup {
        upstream_keys: vec![UPSTREAM_KEY.into(), UPSTREAM_KEY.into()],
        upstream_idle_timeout_ms: 300,
        ..Setup::default()
    })
    .await;
    let reply = send(&app, &body(64, "output_tokens=5 latency_ms=1500"), false).await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    let sent = app
        .sim
        .recorded()
        .iter()
        .filter(|r| r.path.starts_with("/v1/messages"))
        .count();
    assert_eq!(sent, 1, "the request reached the upstream once");
    let r = app.final_receipt(&reply.request_id()).await;
    assert_eq!(r.charged(), NanoCredits::ZERO, "{}", r.0);
    assert_eq!(app.balance().await.active_holds, 0);
    app.assert_ledger_clean().await;
}

/// Issue 7, leak 7: an answer whose usage does not state the counts is not free (JSON) nor
/// "input plus one token" (a stream): the output observed is charged, capped at the hold, and
/// the receipt says `estimated`.
#[tokio::test]
async fn usage_without_counts_is_estimated_from_what_was_observed() {
    let app = TestApp::spawn().await;
    for stream in [false, true] {
        let (org, key) = app.other_org(credits("100")).await;
        let mut request = body(256, "output_tokens=40 hostile=missing");
        request["stream"] = json!(stream);
        let resp = app.post_messages(&key, &request).await;
        assert_eq!(resp.status().as_u16(), 200);
        let id = resp.headers()["request-id"].to_str().unwrap().to_owned();
        let _ = resp.bytes().await;
        let r = app.final_receipt_as(&key, &id).await;
        assert_eq!(r.status(), "estimated", "stream {stream}: {}", r.0);
        assert!(r.output_tokens() >= 40, "stream {stream}: {}", r.0);
        let expected = app.cost_of(MODEL, r.usage()).min(r.held());
        assert!(expected.is_positive());
        assert_eq!(r.charged(), expected, "stream {stream}: {}", r.0);
        let b = app.balance_of(&org).await;
        assert_eq!(b.posted, credits("100").checked_sub(expected).unwrap());
    }
    app.assert_ledger_clean().await;
}
