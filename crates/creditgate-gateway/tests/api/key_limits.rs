//! Key limits over HTTP: spend caps under concurrency, requests per minute, allowed models,
//! `GET /v1/key`, and revocation reaching another replica within a second.

use std::time::{Duration, Instant};

use creditgate_core::accounts::Role;
use creditgate_core::ledger::LedgerStore;
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{admin_key, call, Cred};
use crate::helpers::{body, body_for, Setup, TestApp, MODEL};

/// Creates a key through the organization API with `limits`; returns (id, secret).
async fn key_with(t: &TestApp, admin: &str, limits: Value) -> (String, String) {
    let r = call(
        t,
        Method::POST,
        "/v1/organizations/api_keys",
        &Cred::Key(admin.to_owned()),
        Some(json!({"name": "limited", "limits": limits})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["limits"]["requests_per_minute"],
        limits
            .get("requests_per_minute")
            .cloned()
            .unwrap_or(Value::Null)
    );
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Polls `check` every 20 ms until it holds; returns how long that took (fails after 5 s).
async fn within<F, Fut>(mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(5), "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn a_daily_spend_limit_holds_against_100_concurrent_requests(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let admin = admin_key(&t, &t.org).await;
    let req = body(64, "");
    let worst = t.estimate(&req).with_output(64).unwrap();
    let cap = worst.checked_mul(10).unwrap();
    let (id, secret) = key_with(&t, &admin, json!({"spend": {"daily": cap}})).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (client, url, secret, req) = (
            t.client.clone(),
            t.url("/v1/messages"),
            secret.clone(),
            req.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("x-api-key", secret)
                .header("anthropic-version", "2023-06-01")
                .json(&req)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                let msg = body["error"]["message"].as_str().unwrap();
                assert!(
                    msg.contains("daily spend limit") && msg.contains("resets at"),
                    "{msg}"
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 10, "the cap covers at least ten worst cases: {ok}");
    let spent = t
        .app
        .db
        .scope_spend(
            &format!("key:{id}"),
            creditgate_core::clock::Timestamp::from_millis(0),
        )
        .await
        .unwrap();
    assert!(spent <= cap, "spent {spent} of a {cap} cap");
    let key = t.get_as(&secret, "/v1/key").await;
    assert_eq!(key.body["limits"]["spend"]["daily"], json!(cap));
    assert_eq!(key.body["usage"]["day"], json!(spent));
    t.assert_ledger_clean().await;
}

async fn requests_per_minute_let_through_at_most_their_count(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let admin = admin_key(&t, &t.org).await;
    let (_, secret) = key_with(&t, &admin, json!({"requests_per_minute": 5})).await;
    let started = t.app.clock.now().millis() / 60_000;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, url, secret) = (t.client.clone(), t.url("/v1/messages"), secret.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("x-api-key", secret)
                .header("anthropic-version", "2023-06-01")
                .json(&body(8, ""))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().clone())
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for task in tasks {
        let (status, headers) = task.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert!(headers.contains_key("retry-after"));
                assert_eq!(
                    headers
                        .get("anthropic-ratelimit-requests-limit")
                        .map(|v| v.to_str().unwrap()),
                    Some("5"),
                    "{headers:?}"
                );
                assert!(headers.contains_key("anthropic-ratelimit-requests-reset"));
            }
            other => panic!("unexpected {other}"),
        }
    }
    let windows = t.app.clock.now().millis() / 60_000 - started + 1;
    assert!(
        ok >= 5 && ok <= 5 * windows,
        "{ok} admitted over {windows} window(s)"
    );
    assert_eq!(ok + limited, 20);
    assert_eq!(t.balance().await.active_holds, 0);
}

async fn allowed_models_expiry_and_bad_limits(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let admin = admin_key(&t, &t.org).await;
    let (id, secret) = key_with(&t, &admin, json!({"allowed_models": [MODEL]})).await;
    assert_eq!(t.message_as(&secret, &body(8, "")).await.status, 200);
    let other = t
        .message_as(&secret, &body_for("claude-sonnet-4-5", 8, ""))
        .await;
    assert_eq!(
        (other.status, other.body["error"]["type"].as_str()),
        (403, Some("permission_error")),
        "{}",
        other.body
    );
    for bad in [
        json!({"spend": {"daily": "-1"}}),
        json!({"requests_per_minute": 0}),
        json!({"rpm": 3}),
        json!({"spend": {"daily": 1.5}}),
    ] {
        let r = call(
            &t,
            Method::POST,
            &format!("/v1/organizations/api_keys/{id}"),
            &Cred::Key(admin.clone()),
            Some(json!({"limits": bad})),
        )
        .await;
        assert_eq!(
            (r.status, r.body["error"]["type"].as_str()),
            (400, Some("invalid_request_error")),
            "{bad}"
        );
    }
    let past = call(
        &t,
        Method::POST,
        "/v1/organizations/api_keys",
        &Cred::Key(admin.clone()),
        Some(json!({"name": "old", "expires_at": "2020-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(past.status, 400);
    let log = call(
        &t,
        Method::GET,
        "/v1/organizations/audit_log",
        &Cred::Key(admin),
        None,
    )
    .await;
    assert_eq!(
        log.body["data"][0]["action"], "api_key.created",
        "refused changes are not logged"
    );
}

async fn revocation_reaches_another_replica_within_a_second(setup: Setup) {
    let a = TestApp::spawn_with(setup.clone()).await;
    // Replica b shares a's database: its SQLite file, or the same Postgres database.
    let url = match (&setup.database_url, &a.app.db) {
        (Some(url), _) => url.clone(),
        (None, creditgate_storage::Database::Sqlite(s)) => {
            format!("sqlite://{}", s.path().display())
        }
        (None, creditgate_storage::Database::Postgres(_)) => unreachable!(),
    };
    let b = TestApp::spawn_with(Setup {
        database_url: Some(url),
        ..setup
    })
    .await;
    let owner = crate::accounts::member(&a, "owner@example.com", Role::Owner).await;
    let keys = call(
        &a,
        Method::GET,
        "/v1/organizations/api_keys",
        &owner.cred(),
        None,
    )
    .await;
    let id = keys.body["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        b.message_as(&a.api_key, &body(8, "")).await.status,
        200,
        "replica b caches the key"
    );
    let r = call(
        &a,
        Method::POST,
        &format!("/v1/organizations/api_keys/{id}"),
        &owner.cred(),
        Some(json!({"status": "archived"})),
    )
    .await;
    assert_eq!(r.body["status"], "archived");
    let took = within(|| async { b.get_as(&a.api_key, "/v1/credits").await.status == 401 }).await;
    assert!(
        took < Duration::from_secs(1),
        "revocation took {took:?} on the other replica"
    );
    assert_eq!(a.message_as(&a.api_key, &body(8, "")).await.status, 401);
}

/// The `anthropic-ratelimit-tokens-*` headers of an answer: (limit, remaining, reset).
fn token_headers(h: &reqwest::header::HeaderMap) -> (i64, i64, String) {
    let get = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("{name} missing in {h:?}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    (
        get("anthropic-ratelimit-tokens-limit").parse().unwrap(),
        get("anthropic-ratelimit-tokens-remaining").parse().unwrap(),
        get("anthropic-ratelimit-tokens-reset"),
    )
}

async fn tokens_per_minute_count_what_was_used_and_every_answer_says_so(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let admin = admin_key(&t, &t.org).await;
    let (_, secret) = key_with(&t, &admin, json!({"tokens_per_minute": 5000})).await;
    // Each request is counted at admission as ~1,020 tokens (input plus max_tokens) but uses
    // ~25: counted by its estimate alone, the fifth request of a minute would be refused.
    for i in 0..12 {
        let r = t.message_as(&secret, &body(1000, "output_tokens=5")).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        let (limit, remaining, _) = token_headers(&r.headers);
        assert_eq!(limit, 5000);
        assert!(remaining >= 3000, "request {i}: {remaining} tokens left");
        assert!(
            r.headers
                .get("anthropic-ratelimit-requests-limit")
                .is_none(),
            "no request limit"
        );
    }
    // What a request used counts, not what it might have used: ~3,000 output tokens.
    let big = t
        .message_as(&secret, &body(3000, "output_tokens=3000"))
        .await;
    assert_eq!(big.status, 200, "{}", big.body);
    let (_, before, window) = token_headers(&big.headers);
    let next = t.message_as(&secret, &body(10, "output_tokens=5")).await;
    let (_, after, next_window) = token_headers(&next.headers);
    if window == next_window {
        // `before` already counted the big request's estimate (~3,020); `after` counts what it
        // used (~3,020) plus this request's estimate (~30).
        assert!(
            before - after < 200 && before - after >= 0,
            "{before} then {after}"
        );
    }

    let stream = t
        .client
        .post(t.url("/v1/messages"))
        .header("x-api-key", &secret)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": MODEL, "max_tokens": 16, "stream": true,
            "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        token_headers(stream.headers()).0,
        5000,
        "a stream says it too"
    );
    let _ = stream.bytes().await;

    // A refused request (here by a spend cap) carries them too and uses no tokens.
    let (_, poor) = key_with(
        &t,
        &admin,
        json!({"requests_per_minute": 100, "tokens_per_minute": 5000, "spend": {"daily": "0.000001"}}),
    )
    .await;
    let refused = t.message_as(&poor, &body(1000, "")).await;
    refused.assert_error(402, "billing_error");
    assert_eq!(
        token_headers(&refused.headers).0,
        5000,
        "{:?}",
        refused.headers
    );
    assert_eq!(
        refused.header("anthropic-ratelimit-requests-remaining"),
        Some("99")
    );
    let again = t.message_as(&poor, &body(1000, "")).await;
    let (_, remaining, _) = token_headers(&again.headers);
    assert!(
        remaining >= 5000 - 1100,
        "the refused request gave its tokens back: {remaining}"
    );
}

crate::on_both_databases!(
    a_daily_spend_limit_holds_against_100_concurrent_requests,
    requests_per_minute_let_through_at_most_their_count,
    allowed_models_expiry_and_bad_limits,
    tokens_per_minute_count_what_was_used_and_every_answer_says_so,
    revocation_reaches_another_replica_within_a_second,
);
