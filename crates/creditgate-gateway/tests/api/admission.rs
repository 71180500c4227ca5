//! Admission: what is refused (402, 400, 413, 401, 404) is refused before anything reaches the
//! upstream, and moves no money.

use std::time::{Duration, Instant};

use creditgate_core::keys::{ApiKeySecret, KeyStatus};
use creditgate_core::money::NanoCredits;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::helpers::{
    body, body_for, credits, now, JsonReply, Setup, TestApp, ADMIN_KEY, UPSTREAM_KEY,
};

#[tokio::test]
async fn a_request_the_balance_cannot_cover_gets_402_and_nothing_is_forwarded() {
    let app = TestApp::spawn_with(Setup {
        credits: credits("1"),
        ..Setup::default()
    })
    .await;
    let before = app.balance().await;
    let request = body(4096, "output_tokens=5");
    let estimate = app.estimate(&request);
    let needed = estimate.worst_case().unwrap();
    assert!(
        needed > before.available,
        "the test needs a hold above the balance"
    );

    let reply = app.message(&request).await;

    reply.assert_error(402, "billing_error");
    assert_eq!(reply.header("x-should-retry"), Some("false"));
    assert_eq!(reply.body["request_id"], reply.request_id().as_str());
    let fits = estimate.max_affordable_output(before.available);
    let message = reply.error_message();
    assert!(
        message.contains(&before.available.to_string()),
        "names the available balance: {message}"
    );
    assert!(
        message.contains(&needed.to_string()),
        "names the amount needed ({needed}): {message}"
    );
    assert!(
        message.contains("max_tokens") && message.contains(&fits.to_string()),
        "names the largest max_tokens that fits ({fits}): {message}"
    );
    assert_eq!(app.sim.stats().messages, 0, "nothing forwarded");
    assert_eq!(app.balance().await, before, "no money moved");

    // The advice is right: the largest max_tokens that fits is admitted.
    assert!(fits > 0);
    let reply = app.message(&body(fits, "output_tokens=5")).await;
    assert_eq!(
        reply.status, 200,
        "max_tokens {fits} should fit: {}",
        reply.body
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_stream_that_cannot_cover_its_first_slice_gets_402() {
    let app = TestApp::spawn_with(Setup {
        credits: credits("0.1"),
        ..Setup::default()
    })
    .await;
    let before = app.balance().await;

    let reply = app.stream(&body(4096, "output_tokens=5")).await;

    assert_eq!(reply.status, 402, "{}", reply.raw);
    let envelope: Value = serde_json::from_str(&reply.raw).expect("a JSON error, not a stream");
    assert_eq!(envelope["error"]["type"], "billing_error");
    assert_eq!(reply.headers["x-should-retry"], "false");
    assert_eq!(app.sim.stats().messages, 0);
    assert_eq!(app.balance().await, before);
}

#[tokio::test]
async fn an_unknown_model_is_refused_before_anything_is_forwarded() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;

    let plain = app.message(&body_for("claude-imaginary-9", 64, "")).await;
    let streamed = app.stream(&body_for("claude-imaginary-9", 64, "")).await;

    let counted = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", &app.api_key)
        .header("anthropic-version", "2023-06-01")
        .json(&body_for("claude-imaginary-9", 64, ""))
        .send()
        .await
        .unwrap();

    plain.assert_error(400, "invalid_request_error");
    assert_eq!(streamed.status, 400, "{}", streamed.raw);
    assert_eq!(counted.status(), 400);
    assert_eq!(app.sim.stats().messages + app.sim.stats().count_tokens, 0);
    assert_eq!(app.balance().await, before);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_body_over_the_size_limit_gets_413() {
    let app = TestApp::spawn_with(Setup {
        max_body_bytes: 64 * 1024,
        ..Setup::default()
    })
    .await;
    let before = app.balance().await;
    let mut request = body(64, "");
    request["messages"][0]["content"] = json!("word ".repeat(20_000));

    let reply = app.message(&request).await;
    let counted = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", &app.api_key)
        .header("anthropic-version", "2023-06-01")
        .json(&request)
        .send()
        .await
        .unwrap();

    reply.assert_error(413, "request_too_large");
    assert_eq!(counted.status(), 413);
    assert_eq!(app.sim.stats().messages + app.sim.stats().count_tokens, 0);
    assert_eq!(app.balance().await, before);
}

/// One way of presenting (or not) a credential.
enum Credential {
    None,
    ApiKey(Vec<u8>),
    Bearer(String),
    Raw(&'static str, String),
}

async fn send(app: &TestApp, path: &str, credential: &Credential) -> JsonReply {
    let mut req = if path.contains("count_tokens") || path == "/v1/messages" {
        app.client
            .post(app.url(path))
            .json(&body(64, "output_tokens=5"))
    } else {
        app.client.get(app.url(path))
    };
    req = req.header("anthropic-version", "2023-06-01");
    match credential {
        Credential::None => {}
        Credential::ApiKey(bytes) => {
            req = req.header(
                HeaderName::from_static("x-api-key"),
                HeaderValue::from_bytes(bytes).expect("header bytes"),
            );
        }
        Credential::Bearer(token) => req = req.header("authorization", format!("Bearer {token}")),
        Credential::Raw(name, value) => req = req.header(*name, value),
    }
    JsonReply::read(req.send().await.expect("sent")).await
}

#[tokio::test]
async fn bad_keys_get_401_and_touch_nothing() {
    let app = TestApp::spawn().await;
    let (disabled, disabled_secret) = app
        .app
        .db
        .create_api_key(&app.org, "disabled", None)
        .await
        .unwrap();
    app.app
        .db
        .set_api_key_status(&disabled.id, KeyStatus::Disabled)
        .await
        .unwrap();
    let (revoked, revoked_secret) = app
        .app
        .db
        .create_api_key(&app.org, "revoked", None)
        .await
        .unwrap();
    app.app
        .db
        .set_api_key_status(&revoked.id, KeyStatus::Revoked)
        .await
        .unwrap();
    let (_, expired_secret) = app
        .app
        .db
        .create_api_key(&app.org, "expired", Some(now().plus_millis(-60_000)))
        .await
        .unwrap();
    let unknown = ApiKeySecret::from_random(rand::random())
        .expose()
        .to_owned();
    let mut broken_checksum = app.api_key.clone().into_bytes();
    let last = broken_checksum.len() - 1;
    broken_checksum[last] = if broken_checksum[last] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let mut non_utf8 = b"sk-cg-".to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe, 0x80, 0x81]);
    non_utf8.extend_from_slice(&app.api_key.as_bytes()[10..]);

    let key = |s: &str| Credential::ApiKey(s.as_bytes().to_vec());
    let cases: Vec<(&str, Credential)> = vec![
        ("no credential", Credential::None),
        ("empty key", key("")),
        ("garbage", key("hello")),
        ("unknown well-formed key", key(&unknown)),
        ("broken checksum", Credential::ApiKey(broken_checksum)),
        ("disabled key", key(disabled_secret.expose())),
        ("revoked key", key(revoked_secret.expose())),
        ("expired key", key(expired_secret.expose())),
        ("sql injection", key("' OR 1=1 --")),
        (
            "sql injection in a key shape",
            key("sk-cg-' OR '1'='1'; DROP TABLE api_keys; --"),
        ),
        (
            "16 KB header",
            key(&format!("sk-cg-{}", "A".repeat(16 * 1024))),
        ),
        ("non-UTF-8 header", Credential::ApiKey(non_utf8)),
        ("the admin key", key(ADMIN_KEY)),
        ("the upstream key", key(UPSTREAM_KEY)),
        ("bearer garbage", Credential::Bearer("' OR ''='".into())),
        ("bearer admin key", Credential::Bearer(ADMIN_KEY.into())),
        (
            "basic auth",
            Credential::Raw("authorization", format!("Basic {}", app.api_key)),
        ),
        (
            "key in the wrong header",
            Credential::Raw("x-api-token", app.api_key.clone()),
        ),
    ];
    let before = app.balance().await;

    for (name, credential) in &cases {
        for path in [
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/v1/credits",
            "/v1/key",
            "/v1/models",
        ] {
            let reply = send(&app, path, credential).await;
            assert_eq!(reply.status, 401, "{name} on {path}: {:?}", reply.body);
            assert_eq!(
                reply.error_type(),
                "authentication_error",
                "{name} on {path}"
            );
        }
    }

    let stats = app.sim.stats();
    assert_eq!(
        stats.messages + stats.count_tokens + stats.models,
        0,
        "nothing forwarded"
    );
    assert!(app.sim.recorded().is_empty());
    assert_eq!(app.balance().await, before, "no money moved");
    // The database is intact after the injection attempts: the real key still works.
    assert_eq!(app.message(&body(64, "output_tokens=5")).await.status, 200);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn bearer_authentication_works() {
    let app = TestApp::spawn().await;

    let reply = send(
        &app,
        "/v1/messages",
        &Credential::Bearer(app.api_key.clone()),
    )
    .await;
    let both = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.api_key)
        .header("authorization", "Bearer not-a-key")
        .header("anthropic-version", "2023-06-01")
        .json(&body(64, "output_tokens=5"))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.charged().is_positive());
    assert_eq!(both.status(), 200, "x-api-key wins over Authorization");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_revoked_key_stops_working_within_the_key_cache_ttl() {
    let app = TestApp::spawn().await;
    assert_eq!(app.message(&body(64, "output_tokens=5")).await.status, 200);

    app.app
        .db
        .set_api_key_status(&app.key.id, KeyStatus::Revoked)
        .await
        .unwrap();

    let deadline = Instant::now()
        + Duration::from_millis(creditgate_gateway::config::KEY_CACHE_TTL_MS + 2_000);
    loop {
        let reply = app.get("/v1/credits").await;
        if reply.status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revoked key still accepted: {:?}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forwarded = app.sim.stats().messages;
    let reply = app.message(&body(64, "output_tokens=5")).await;
    reply.assert_error(401, "authentication_error");
    assert_eq!(app.sim.stats().messages, forwarded);
}

#[tokio::test]
async fn another_organizations_receipt_is_not_found() {
    let app = TestApp::spawn().await;
    let (_, other_key) = app.other_org(credits("10")).await;
    let reply = app.message(&body(64, "output_tokens=5")).await;
    assert_eq!(reply.status, 200);
    let id = reply.request_id();

    let mine = app.get(&format!("/v1/requests/{id}")).await;
    let theirs = app.get_as(&other_key, &format!("/v1/requests/{id}")).await;
    let unknown = app
        .get("/v1/requests/req_cg_000000000000000000000000")
        .await;
    let hostile = app.get("/v1/requests/req_cg_1'%20OR%20'1'='1").await;

    assert_eq!(mine.status, 200);
    theirs.assert_error(404, "not_found_error");
    assert!(
        !theirs.body.to_string().contains("charged"),
        "{}",
        theirs.body
    );
    unknown.assert_error(404, "not_found_error");
    hostile.assert_error(404, "not_found_error");
}

#[tokio::test]
async fn the_gateways_own_errors_carry_a_request_id() {
    let app = TestApp::spawn_with(Setup {
        credits: credits("0.01"),
        max_body_bytes: 16 * 1024,
        ..Setup::default()
    })
    .await;
    let big = {
        let mut b = body(64, "");
        b["messages"][0]["content"] = json!("word ".repeat(10_000));
        b
    };
    let no_key = Credential::None;
    let replies = vec![
        ("402", app.message(&body(4096, "")).await),
        (
            "400 unknown model",
            app.message(&body_for("claude-imaginary-9", 64, "")).await,
        ),
        ("413", app.message(&big).await),
        ("401 messages", send(&app, "/v1/messages", &no_key).await),
        (
            "401 count_tokens",
            send(&app, "/v1/messages/count_tokens", &no_key).await,
        ),
        ("401 credits", send(&app, "/v1/credits", &no_key).await),
        ("401 key", send(&app, "/v1/key", &no_key).await),
        ("401 models", send(&app, "/v1/models", &no_key).await),
        (
            "404 receipt",
            app.get("/v1/requests/req_cg_000000000000000000000000")
                .await,
        ),
        ("404 route", app.get("/v1/no-such-route").await),
    ];
    let mut missing = Vec::new();
    for (name, reply) in replies {
        assert!(reply.status >= 400, "{name}: {:?}", reply.body);
        assert_eq!(reply.body["type"], "error", "{name}: {}", reply.body);
        let id = reply.header("request-id");
        if id.is_none_or(str::is_empty) || reply.body["request_id"].as_str() != id {
            missing.push(format!(
                "{name}: header {id:?}, body request_id {}",
                reply.body["request_id"]
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "errors without a request-id:\n{}",
        missing.join("\n")
    );
    assert_eq!(app.sim.stats().messages, 0);
    assert_eq!(app.balance().await.posted, credits("0.01"));
    assert_ne!(app.balance().await.posted, NanoCredits::ZERO);
}

#[tokio::test]
async fn malformed_bodies_get_400_and_nothing_is_forwarded() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "{not json".into()),
        ("not an object", "[1, 2, 3]".into()),
        (
            "no model",
            json!({"max_tokens": 5, "messages": []}).to_string(),
        ),
        (
            "model not a string",
            json!({"model": 5, "max_tokens": 5}).to_string(),
        ),
        (
            "no max_tokens",
            json!({"model": crate::helpers::MODEL}).to_string(),
        ),
        (
            "negative max_tokens",
            json!({"model": crate::helpers::MODEL, "max_tokens": -1}).to_string(),
        ),
        (
            "stream not a boolean",
            json!({"model": crate::helpers::MODEL, "max_tokens": 5, "stream": "yes"}).to_string(),
        ),
    ];

    for (name, text) in cases {
        let resp = app
            .client
            .post(app.url("/v1/messages"))
            .header("x-api-key", &app.api_key)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(text)
            .send()
            .await
            .unwrap();
        let reply = JsonReply::read(resp).await;
        assert_eq!(reply.status, 400, "{name}: {:?}", reply.body);
        assert_eq!(reply.error_type(), "invalid_request_error", "{name}");
    }

    assert_eq!(app.sim.stats().messages, 0);
    assert_eq!(app.balance().await, before);
    app.assert_ledger_clean().await;
}

/// A `max_tokens` no balance could ever cover is a refusal the client must not retry — not an
/// internal error (which SDKs retry).
#[tokio::test]
async fn an_absurd_max_tokens_is_refused_not_an_internal_error() {
    let app = TestApp::spawn().await;
    let before = app.balance().await;

    let reply = app
        .message(&body(9_007_199_254_740_991, "output_tokens=5"))
        .await;

    assert!(
        matches!(reply.status, 400 | 402),
        "expected 400 or 402, got {}: {}",
        reply.status,
        reply.body
    );
    assert_eq!(
        reply.header("x-should-retry"),
        Some("false"),
        "{:?}",
        reply.headers
    );
    assert_eq!(app.sim.stats().messages, 0);
    assert_eq!(app.balance().await, before);
}

/// Issue 7, leak 7: a body that repeats a key (two `"stream"`) is ambiguous (the upstream may
/// read the other one): 400 before anything is held or forwarded.
#[tokio::test]
async fn a_body_with_a_repeated_key_is_refused() {
    let app = TestApp::spawn().await;
    app.grant(NanoCredits::from_credits(10).unwrap()).await;
    let before = app.balance().await;
    for raw in [
        r#"{"model":"claude-haiku-4-5","max_tokens":64,"stream":false,"stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
        r#"{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hi","role":"assistant"}]}"#,
    ] {
        let resp = app
            .client
            .post(app.url("/v1/messages"))
            .header("x-api-key", &app.api_key)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let reply = JsonReply::read(resp).await;
        reply.assert_error(400, "invalid_request_error");
        assert!(
            reply.error_message().contains("appears twice"),
            "{:?}",
            reply.body
        );
    }
    assert_eq!(app.sim.stats().messages, 0);
    assert_eq!(app.balance().await, before);
    app.assert_ledger_clean().await;
}
