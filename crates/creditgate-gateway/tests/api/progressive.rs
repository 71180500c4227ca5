//! Progressive holds (`docs/ledger.md`, holds): a stream holds its output slice by slice, so a huge
//! `max_tokens` does not lock out a modest balance, and a stream that outgrows the balance is
//! cut with a `billing_error` event and charged what was produced.

use creditgate_core::money::NanoCredits;
use serde_json::{json, Value};

use crate::helpers::{body, Setup, TestApp, MODEL};

const SLICE: u64 = 1024;

fn streamed(mut request: Value) -> Value {
    request["stream"] = json!(true);
    request
}

#[tokio::test]
async fn a_stream_that_outgrows_the_balance_is_cut_with_a_billing_error() {
    let app = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        ..Setup::default()
    })
    .await;
    let request = streamed(body(32_000, "output_tokens=20000 chunk_tokens=16"));
    // Enough for two slices and a half: the third slice cannot be held.
    let estimate = app.estimate(&request);
    let granted = estimate.with_output(2 * SLICE + SLICE / 2).unwrap();
    app.grant(granted).await;

    let reply = app.stream(&request).await;

    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(!reply.has("message_stop"), "the stream was cut");
    let error = reply
        .error()
        .unwrap_or_else(|| panic!("an error event: {}", reply.raw));
    assert_eq!(error["error"]["type"], "billing_error", "{error}");
    let seen = reply.tokens_seen();
    assert!(
        seen > SLICE,
        "the second slice was granted ({seen} tokens seen)"
    );
    assert!(
        seen <= 2 * SLICE,
        "nothing passed beyond what was held ({seen} tokens seen)"
    );

    let r = app.receipt(&reply.request_id()).await;
    assert_eq!(r.status(), "partial", "{}", r.0);
    assert!(
        r.output_tokens() >= seen,
        "charged at least what the client saw: {}",
        r.0
    );
    assert!(
        r.output_tokens() < 20_000,
        "the upstream was stopped: {}",
        r.0
    );
    assert_eq!(
        r.charged(),
        app.cost_of(MODEL, r.usage()),
        "charged what was produced"
    );
    assert_eq!(reply.charged(), r.charged());
    let b = app.balance().await;
    assert_eq!(b.posted, granted.checked_sub(r.charged()).unwrap());
    let one_slice = app.output_cost(SLICE);
    assert!(
        b.posted >= one_slice.checked_neg().unwrap(),
        "overdraft beyond zero at most one slice: {b:?}"
    );
    app.assert_settled_once(&reply.request_id(), r.charged())
        .await;
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_huge_max_tokens_with_a_small_output_runs_on_a_small_balance() {
    let app = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        ..Setup::default()
    })
    .await;
    let request = streamed(body(32_000, "output_tokens=50"));
    let estimate = app.estimate(&request);
    let granted = estimate.with_output(SLICE + SLICE / 2).unwrap();
    assert!(granted < estimate.worst_case().unwrap());
    app.grant(granted).await;

    // Not streamed, the same request must hold its full worst case: refused.
    let mut plain = request.clone();
    plain["stream"] = json!(false);
    app.message(&plain).await.assert_error(402, "billing_error");
    assert_eq!(app.sim.stats().messages, 0);

    let reply = app.stream(&request).await;

    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(reply.has("message_stop"), "{}", reply.raw);
    assert_eq!(reply.tokens_seen(), 50);
    let r = app.receipt(&reply.request_id()).await;
    assert_eq!(r.status(), "settled");
    assert_eq!(r.charged(), app.cost_of(MODEL, r.usage()));
    assert_eq!(
        app.balance().await.posted,
        granted.checked_sub(r.charged()).unwrap()
    );
    app.assert_ledger_clean().await;
}

/// A request shaped like Claude Code's: streamed, `max_tokens` 32,000, ~90 KB of system prompt,
/// tools and conversation, with cache breakpoints.
fn claude_code_request() -> Value {
    let words = |n: usize, salt: usize| -> String {
        const W: [&str; 12] = [
            "the", "file", "path", "test", "code", "run", "fix", "read", "edit", "line", "call",
            "tool",
        ];
        (0..n)
            .map(|i| W[(i * 7 + salt) % W.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let tools: Vec<Value> = (0..16)
        .map(|i| {
            json!({
                "name": format!("tool_{i}"),
                "description": words(150, i),
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": words(20, i + 1)},
                        "content": {"type": "string"},
                        "limit": {"type": "integer"}
                    },
                    "required": ["path"]
                }
            })
        })
        .collect();
    let mut messages = Vec::new();
    for turn in 0..30 {
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{turn}"), "content": words(350, turn)}
        ]}));
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": words(30, turn + 3)},
            {"type": "tool_use", "id": format!("toolu_{}", turn + 1), "name": "tool_1",
             "input": {"path": format!("src/file_{turn}.rs")}}
        ]}));
    }
    messages.push(json!({"role": "user", "content": [
        {"type": "text", "text": "Now fix the failing test. [[sim output_tokens=120 chunk_tokens=4]]",
         "cache_control": {"type": "ephemeral"}}
    ]}));
    json!({
        "model": MODEL,
        "max_tokens": 32_000,
        "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code, an interactive CLI tool."},
            {"type": "text", "text": words(4000, 5), "cache_control": {"type": "ephemeral"}}
        ],
        "tools": tools,
        "messages": messages,
        "metadata": {"user_id": "user_abc_account_def_session_ghi"},
    })
}

#[tokio::test]
async fn a_claude_code_shaped_request_runs_on_three_times_its_cost() {
    let request = claude_code_request();
    let size = request.to_string().len();
    assert!((80_000..120_000).contains(&size), "about 90 KB: {size}");

    // What it costs, measured on a rich organization (a fresh simulator: a cold cache).
    let rich = TestApp::spawn().await;
    let measured = rich.stream(&request).await;
    assert_eq!(measured.status, 200, "{}", measured.raw);
    let cost = rich.receipt(&measured.request_id()).await.charged();
    assert!(cost.is_positive());

    let app = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        ..Setup::default()
    })
    .await;
    let granted = cost.checked_mul(3).unwrap();
    assert!(
        granted < app.estimate(&request).worst_case().unwrap(),
        "the balance does not cover 32,000 output tokens"
    );
    app.grant(granted).await;

    let reply = app.stream(&request).await;

    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(reply.has("message_stop"), "{}", reply.raw);
    let r = app.receipt(&reply.request_id()).await;
    assert_eq!(r.status(), "settled");
    assert_eq!(
        r.charged(),
        cost,
        "same request, same cold cache, same cost"
    );
    assert_eq!(r.charged(), app.cost_of(MODEL, r.usage()));
    assert!(
        r.usage()["cache_creation_input_tokens"].as_u64() > Some(0),
        "the breakpoints wrote the cache: {}",
        r.0
    );
    app.assert_ledger_clean().await;
}

/// A stream whose hold grew slice by slice: the charge fits in the grown hold (no overrun), and
/// the receipt's `held` says what was actually held.
#[tokio::test]
async fn a_growing_stream_settles_within_its_grown_hold() {
    let app = TestApp::spawn().await;
    let request = streamed(body(32_000, "output_tokens=3000 chunk_tokens=20"));

    let reply = app.stream(&request).await;

    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(reply.has("message_stop"));
    let r = app.receipt(&reply.request_id()).await;
    assert_eq!(r.status(), "settled");
    assert_eq!(r.output_tokens(), 3000);
    assert_eq!(r.charged(), app.cost_of(MODEL, r.usage()));
    assert_eq!(
        r.overrun(),
        NanoCredits::ZERO,
        "the hold grew ahead of the output: {}",
        r.0
    );
    let grown = app.estimate(&request).with_output(3 * SLICE).unwrap();
    assert!(
        r.held() >= r.charged() && r.held() >= grown,
        "the receipt shows the grown hold ({grown}), not the first slice: {}",
        r.0
    );
    app.assert_settled_once(&reply.request_id(), r.charged())
        .await;
    app.assert_ledger_clean().await;
}

/// The hold timeout bounds a stream's silence, not its length: a stream that keeps sending
/// (without needing a new slice) for longer than the hold timeout keeps its credits reserved
/// until it settles — otherwise other requests could be admitted against them.
#[tokio::test]
async fn a_busy_stream_keeps_its_hold_past_the_hold_timeout() {
    let app = TestApp::spawn_with(Setup {
        hold_timeout_ms: 1_000,
        sweep_interval_ms: 100,
        ..Setup::default()
    })
    .await;
    // About 2.5 s, a frame every 50 ms: never silent for more than 50 ms.
    let request = streamed(body(1024, "output_tokens=40 chunk_tokens=1 latency_ms=50"));

    let reply = app.stream(&request).await;

    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(reply.has("message_stop"));
    let r = app.receipt(&reply.request_id()).await;
    assert_eq!(r.status(), "settled", "{}", r.0);
    assert_eq!(
        r.0["late"], false,
        "the hold expired under a live stream: {}",
        r.0
    );
    app.assert_settled_once(&reply.request_id(), r.charged())
        .await;
    app.assert_ledger_clean().await;
}

/// Issue 7, leak 4: thinking is billed in full even when only a summary is streamed, so the
/// deltas cannot grow the hold ahead of it. With the first slice sized from
/// `thinking.budget_tokens`, concurrent streams on a small balance overrun by at most one slice
/// each.
#[tokio::test]
async fn summarized_thinking_overruns_by_at_most_one_slice_per_stream() {
    let app = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        ..Setup::default()
    })
    .await;
    let mut request = streamed(body(
        8_192,
        "thinking_tokens=4000 thinking_shown=8 output_tokens=40 chunk_tokens=4",
    ));
    request["thinking"] = json!({"type": "enabled", "budget_tokens": 4_000});
    // What eight streams would hold if the first slice ignored the thinking budget.
    let granted = app.estimate(&request).with_output(8 * SLICE).unwrap();
    app.grant(granted).await;

    let replies = futures_util::future::join_all((0..8).map(|_| app.stream(&request))).await;
    let admitted: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert!(!admitted.is_empty());
    for reply in &admitted {
        let r = app.final_receipt(&reply.request_id()).await;
        assert_eq!(r.charged(), app.cost_of(MODEL, r.usage()), "{}", r.0);
    }
    let b = app.balance().await;
    let bound = app
        .output_cost(SLICE)
        .checked_mul(admitted.len() as i64)
        .unwrap();
    assert!(
        b.posted >= bound.checked_neg().unwrap(),
        "{} streams overran by more than one slice each: {b:?}",
        admitted.len()
    );
    app.assert_ledger_clean().await;
}
