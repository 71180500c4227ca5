//! The happy path: a message, plain or streamed, is forwarded unchanged and charged exactly the
//! cost of the usage the upstream reported, once.

use std::time::{Duration, Instant};

use creditgate_core::money::NanoCredits;
use serde_json::{json, Value};

use crate::helpers::{body, credits, TestApp, MODEL, UPSTREAM_KEY};

#[tokio::test]
async fn a_json_message_is_charged_exactly_the_cost_of_its_usage() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;

    let reply = app.message(&body(256, "output_tokens=40")).await;

    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["usage"]["output_tokens"], 40);
    let id = reply.request_id();
    let receipt = app.receipt(&id).await;
    assert_eq!(receipt.status(), "settled");
    assert_eq!(
        receipt.usage(),
        &reply.body["usage"],
        "the receipt keeps the usage"
    );
    let expected = app.cost_of(MODEL, &reply.body["usage"]);
    assert!(expected.is_positive());
    assert_eq!(receipt.charged(), expected, "receipt = price book × usage");
    assert_eq!(reply.charged(), expected, "x-creditgate-charged");
    assert!(receipt.0["price_version"].is_string(), "{}", receipt.0);
    assert!(!receipt.0["lines"].as_array().expect("lines").is_empty());
    assert!(!receipt.0["lots"].as_array().expect("lots").is_empty());

    let after = app.balance().await;
    assert_eq!(after.posted, before.posted.checked_sub(expected).unwrap());
    assert_eq!(reply.available(), after.available, "x-creditgate-available");
    app.assert_settled_once(&id, expected).await;
    app.assert_ledger_clean().await;
}

/// The events from `message_stop` on are passed on with the cost comment, after the settle (one
/// write); an upstream that keeps its body open after `message_stop` does not keep them from the
/// client: they go after a short wait, and the comment when the upstream ends.
#[tokio::test]
async fn message_stop_reaches_the_client_while_the_upstream_lingers() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;
    let mut request = body(256, "output_tokens=12 linger_ms=3000");
    request["stream"] = json!(true);
    let started = Instant::now();
    let mut resp = app.post_messages(&app.api_key, &request).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["request-id"].to_str().unwrap().to_owned();
    let mut raw = String::new();
    let mut stop_seen = None;
    while let Some(chunk) = resp.chunk().await.expect("the body") {
        raw.push_str(std::str::from_utf8(&chunk).unwrap());
        if stop_seen.is_none() && raw.contains("event: message_stop") {
            stop_seen = Some(started.elapsed());
            assert!(
                !raw.contains(": creditgate "),
                "the comment waits for the upstream's end"
            );
        }
    }
    let ended = started.elapsed();
    let stop_seen = stop_seen.expect("message_stop");
    assert!(
        stop_seen < Duration::from_millis(1_500),
        "message_stop after {stop_seen:?}"
    );
    assert!(
        ended >= Duration::from_millis(3_000),
        "ended after {ended:?}"
    );
    assert!(raw.find(": creditgate ").unwrap() > raw.find("event: message_stop").unwrap());

    let receipt = app.receipt(&id).await;
    assert_eq!(receipt.status(), "settled");
    assert_eq!(receipt.output_tokens(), 12);
    let expected = app.cost_of(MODEL, receipt.usage());
    let after = app.balance().await;
    assert_eq!(after.posted, before.posted.checked_sub(expected).unwrap());
    app.assert_settled_once(&id, expected).await;
}

#[tokio::test]
async fn a_stream_is_charged_exactly_and_ends_with_the_cost_comment() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;

    let reply = app
        .stream(&body(256, "output_tokens=40 chunk_tokens=3"))
        .await;

    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(
        reply.has("message_start") && reply.has("message_stop"),
        "{}",
        reply.raw
    );
    assert_eq!(reply.tokens_seen(), 40);
    let id = reply.request_id();
    let summary = reply.summary.clone().expect("`: creditgate` comment line");
    assert_eq!(summary["request_id"], id.as_str());
    assert_eq!(summary["status"], "settled");
    let stop = reply.raw.find("event: message_stop").unwrap();
    let comment = reply.raw.find(": creditgate ").unwrap();
    assert!(comment > stop, "the comment comes after message_stop");

    let receipt = app.receipt(&id).await;
    assert_eq!(receipt.status(), "settled");
    assert_eq!(receipt.output_tokens(), 40);
    let expected = app.cost_of(MODEL, receipt.usage());
    assert_eq!(receipt.charged(), expected);
    assert_eq!(reply.charged(), expected, "the comment's charge");
    let after = app.balance().await;
    assert_eq!(after.posted, before.posted.checked_sub(expected).unwrap());
    assert_eq!(
        credits(summary["available"].as_str().unwrap()),
        after.available
    );
    app.assert_settled_once(&id, expected).await;
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn streamed_and_plain_forms_of_one_request_cost_the_same() {
    let app = TestApp::spawn().await;
    let request = body(512, "output_tokens=57 chunk_tokens=1");

    let plain = app.message(&request).await;
    let streamed = app.stream(&request).await;

    assert_eq!(plain.status, 200);
    assert_eq!(streamed.status, 200);
    let plain_receipt = app.receipt(&plain.request_id()).await;
    let stream_receipt = app.receipt(&streamed.request_id()).await;
    for field in ["input_tokens", "output_tokens", "cache_read_input_tokens"] {
        assert_eq!(
            plain_receipt.usage()[field],
            stream_receipt.usage()[field],
            "{field}"
        );
    }
    assert_eq!(plain_receipt.output_tokens(), 57);
    assert_eq!(plain_receipt.charged(), stream_receipt.charged());
    assert_eq!(plain.charged(), streamed.charged());
    app.assert_ledger_clean().await;
}

/// Thinking and web search: the final `message_delta` carries input tokens that
/// `message_start` did not (searches) — the stream must be charged from the last delta.
#[tokio::test]
async fn thinking_and_web_search_cost_the_same_streamed_and_plain() {
    let app = TestApp::spawn().await;
    let mut request = body(2048, "output_tokens=30 web_search=2");
    request["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    request["tools"] =
        json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]);

    let plain = app.message(&request).await;
    let streamed = app.stream(&request).await;

    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(streamed.status, 200, "{}", streamed.raw);
    let usage = &plain.body["usage"];
    assert_eq!(usage["server_tool_use"]["web_search_requests"], 2);
    assert!(usage["output_tokens_details"]["thinking_tokens"].as_u64() > Some(0));
    let p = app.receipt(&plain.request_id()).await;
    let s = app.receipt(&streamed.request_id()).await;
    assert_eq!(
        s.usage()["input_tokens"],
        usage["input_tokens"],
        "searches' input counted"
    );
    assert_eq!(s.usage()["output_tokens"], usage["output_tokens"]);
    assert_eq!(s.usage()["server_tool_use"]["web_search_requests"], 2);
    assert_eq!(p.charged(), app.cost_of(MODEL, usage));
    assert_eq!(s.charged(), p.charged());
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn client_headers_and_unknown_fields_pass_through_and_the_key_is_replaced() {
    let app = TestApp::spawn().await;
    let mut request = body(64, "output_tokens=5");
    request["some_future_field"] = json!({"nested": [1, 2, 3], "flag": true});
    request["metadata"] = json!({"user_id": "u-123"});
    let text = request.to_string();

    let resp = app
        .client
        .post(app.url("/v1/messages?beta=true"))
        .header("x-api-key", &app.api_key)
        .header("anthropic-version", "2023-06-01")
        // Betas on the operator's allow-list pass unchanged (others are refused: see attacks.rs).
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        )
        .header("content-type", "application/json")
        .body(text.clone())
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    let upstream_request_id = resp.headers().get("x-upstream-request-id").cloned();
    let ours = resp.headers()["request-id"].to_str().unwrap().to_owned();
    assert!(ours.starts_with("req_cg_"), "{ours}");
    assert!(
        upstream_request_id.is_some(),
        "upstream request-id kept aside"
    );
    let recorded = app.sim.recorded();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let seen = &recorded[0];
    assert_eq!(seen.path, "/v1/messages?beta=true");
    assert_eq!(seen.body, text, "the body is forwarded byte for byte");
    let header = |name: &str| -> Vec<&str> {
        seen.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(header("x-api-key"), [UPSTREAM_KEY]);
    assert_eq!(header("anthropic-version"), ["2023-06-01"]);
    assert_eq!(
        header("anthropic-beta"),
        ["claude-code-20250219,interleaved-thinking-2025-05-14"]
    );
    assert!(
        seen.headers.iter().all(|(_, v)| !v.contains(&app.api_key)),
        "the client's key never reaches the upstream: {:?}",
        seen.headers
    );
    assert!(header("authorization").is_empty());
}

#[tokio::test]
async fn count_tokens_is_forwarded_and_free() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;
    let request: Value = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "How many tokens is this sentence?"}],
    });

    let resp = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", &app.api_key)
        .header("anthropic-version", "2023-06-01")
        .json(&request)
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    let counted: Value = resp.json().await.unwrap();
    assert_eq!(
        counted["input_tokens"].as_u64(),
        Some(creditgate_sim::tokenizer::count_request(&request))
    );
    assert_eq!(app.sim.stats().count_tokens, 1);
    assert_eq!(app.sim.stats().messages, 0);
    assert_eq!(app.balance().await, before, "count_tokens moves no money");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn models_lists_only_priced_models() {
    let app = TestApp::spawn().await;

    let reply = app.get("/v1/models?limit=1000").await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = reply.body["data"].as_array().expect("data");
    assert!(!data.is_empty());
    for model in data {
        let id = model["id"].as_str().expect("id");
        assert!(app.app.book.resolve(id).is_ok(), "{id} is priced");
        assert_eq!(model["type"], "model");
    }
    let one = app.get(&format!("/v1/models/{MODEL}")).await;
    assert_eq!(one.status, 200, "{}", one.body);
    let unknown = app.get("/v1/models/claude-unknown-9").await;
    unknown.assert_error(404, "not_found_error");
}

#[tokio::test]
async fn credits_and_key_report_the_callers_own_organization() {
    let app = TestApp::spawn().await;
    let reply = app.message(&body(64, "output_tokens=5")).await;
    assert_eq!(reply.status, 200);
    let b = app.balance().await;

    let credits_reply = app.get("/v1/credits").await;
    let key_reply = app.get("/v1/key").await;

    assert_eq!(credits_reply.status, 200, "{}", credits_reply.body);
    assert_eq!(credits_reply.body["organization_id"], app.org.as_str());
    assert_eq!(
        credits(credits_reply.body["available"].as_str().unwrap()),
        b.available
    );
    assert_eq!(
        credits(credits_reply.body["balance"].as_str().unwrap()),
        b.posted
    );
    assert_eq!(key_reply.status, 200, "{}", key_reply.body);
    assert_eq!(key_reply.body["id"], app.key.id.as_str());
    assert_eq!(key_reply.body["organization_id"], app.org.as_str());
    let spent_today = credits(key_reply.body["usage"]["day"].as_str().unwrap());
    assert_eq!(spent_today, reply.charged());
    assert!(
        !key_reply.body.to_string().contains(&app.api_key),
        "the secret is never shown again"
    );
    assert_ne!(b.posted, NanoCredits::ZERO);
}

/// Cache writes at both TTLs: the 5m/1h split only exists in `message_start`, so a stream must
/// keep it from there; both forms (each on a cold cache) cost the same, and a repeat reads the
/// cache at its own rate.
#[tokio::test]
async fn cache_writes_at_both_ttls_cost_the_same_streamed_and_plain() {
    let words = |n: usize, salt: &str| -> String {
        (0..n)
            .map(|i| format!("{salt}{}", i % 97))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut request = body(256, "output_tokens=20");
    request["system"] = json!([
        {"type": "text", "text": words(1500, "a"), "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": words(1500, "b"), "cache_control": {"type": "ephemeral", "ttl": "5m"}}
    ]);
    let plain_app = TestApp::spawn().await;
    let stream_app = TestApp::spawn().await;

    let plain = plain_app.message(&request).await;
    let streamed = stream_app.stream(&request).await;

    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(streamed.status, 200, "{}", streamed.raw);
    let usage = &plain.body["usage"];
    let split = &usage["cache_creation"];
    assert!(
        split["ephemeral_1h_input_tokens"].as_u64() > Some(0),
        "{usage}"
    );
    assert!(
        split["ephemeral_5m_input_tokens"].as_u64() > Some(0),
        "{usage}"
    );
    let p = plain_app.receipt(&plain.request_id()).await;
    let s = stream_app.receipt(&streamed.request_id()).await;
    assert_eq!(
        s.usage()["cache_creation"],
        *split,
        "the split from message_start"
    );
    assert_eq!(
        s.usage()["cache_creation_input_tokens"],
        usage["cache_creation_input_tokens"]
    );
    assert_eq!(p.charged(), plain_app.cost_of(MODEL, usage));
    assert_eq!(s.charged(), p.charged());

    let again = plain_app.message(&request).await;
    let read = &again.body["usage"]["cache_read_input_tokens"];
    assert!(read.as_u64() > Some(0), "{}", again.body);
    let r = plain_app.receipt(&again.request_id()).await;
    assert_eq!(r.charged(), plain_app.cost_of(MODEL, &again.body["usage"]));
    assert!(
        r.charged() < p.charged(),
        "a cache read is cheaper than the write"
    );
    plain_app.assert_ledger_clean().await;
    stream_app.assert_ledger_clean().await;
}
