//! `POST /v1/messages/quote` over HTTP: the numbers admission would use, for free — nothing held,
//! counted or forwarded — and the same refusals as `POST /v1/messages`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{admin_key, call, Cred};
use crate::helpers::{body, credits, JsonReply, Setup, TestApp};

async fn quote_as(t: &TestApp, key: &str, body: &Value) -> JsonReply {
    let resp = t
        .client
        .post(t.url("/v1/messages/quote"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("request sent");
    JsonReply::read(resp).await
}

fn amount(v: &Value) -> creditgate_core::money::NanoCredits {
    credits(v.as_str().expect("a credit string"))
}

async fn quotes_are_what_admission_would_hold_and_change_nothing(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let before = (t.balance().await, t.sim.stats());
    let req = body(4096, "");
    let q = quote_as(&t, &t.api_key, &req).await;
    assert_eq!(q.status, 200, "{}", q.body);
    let estimate = t.estimate(&req);
    let worst = estimate.with_output(4096).unwrap();
    assert_eq!(q.body["type"], "quote");
    assert_eq!(q.body["input_tokens"], estimate.input_tokens());
    assert_eq!(amount(&q.body["worst_case"]), worst);
    assert_eq!(
        amount(&q.body["hold"]),
        worst,
        "a JSON answer holds its worst case"
    );
    assert_eq!(q.body["first_slice"]["output_tokens"], 4096);
    assert_eq!(
        (
            q.body["affordable"].as_bool(),
            q.body["affordable_in_full"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert_eq!(q.body["max_affordable_max_tokens"], 4096);
    assert_eq!(amount(&q.body["available"]), credits("1000"));
    assert_eq!(q.body["limited_by"], "balance");

    // A stream holds only its first slice to start.
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let q = quote_as(&t, &t.api_key, &streamed).await;
    assert_eq!(
        q.body["first_slice"]["output_tokens"], 1024,
        "the test config's first slice"
    );
    assert_eq!(amount(&q.body["hold"]), estimate.with_output(1024).unwrap());
    assert_eq!(amount(&q.body["worst_case"]), worst);

    assert_eq!(
        (t.balance().await, t.sim.stats()),
        before,
        "nothing held, nothing forwarded"
    );
    t.assert_ledger_clean().await;
}

async fn a_quote_agrees_with_the_402_and_the_keys_spend_limit(setup: Setup) {
    let t = TestApp::spawn_with(Setup {
        credits: credits("0.01"),
        ..setup
    })
    .await;
    let req = body(64_000, "");
    let q = quote_as(&t, &t.api_key, &req).await;
    assert_eq!(q.status, 200, "{}", q.body);
    assert_eq!(q.body["affordable"], false, "{}", q.body);
    let fits = q.body["max_affordable_max_tokens"].as_u64().unwrap();
    assert_eq!(
        fits,
        t.estimate(&req).max_affordable_output(credits("0.01"))
    );
    let refused = t.message(&req).await;
    refused.assert_error(402, "billing_error");
    assert!(
        refused
            .error_message()
            .contains(&format!("would fit is {fits}.")),
        "the quote and the refusal agree: {}",
        refused.error_message()
    );
    let mut fitting = req.clone();
    fitting["max_tokens"] = json!(fits);
    assert_eq!(
        quote_as(&t, &t.api_key, &fitting).await.body["affordable"],
        true
    );
    assert_eq!(
        t.message(&fitting).await.status,
        200,
        "what the quote says fits, fits"
    );

    // A key's spend limit binds before the balance does.
    t.grant(credits("100")).await;
    let admin = admin_key(&t, &t.org).await;
    let key = call(
        &t,
        Method::POST,
        "/v1/organizations/api_keys",
        &Cred::Key(admin),
        Some(json!({"name": "capped", "limits": {"spend": {"daily": "0.002"}}})),
    )
    .await;
    let secret = key.body["secret"].as_str().unwrap();
    let q = quote_as(&t, secret, &body(64, "")).await;
    assert_eq!(
        (amount(&q.body["available"]), q.body["limited_by"].as_str()),
        (credits("0.002"), Some("daily spend limit")),
        "{}",
        q.body
    );
}

#[tokio::test]
async fn bad_quotes_get_the_same_refusals_as_messages() {
    let t = TestApp::spawn().await;
    let raw = |text: &'static str| {
        t.client
            .post(t.url("/v1/messages/quote"))
            .header("x-api-key", &t.api_key)
            .header("content-type", "application/json")
            .body(text)
            .send()
    };
    let bad = JsonReply::read(raw("{not json").await.unwrap()).await;
    bad.assert_error(400, "invalid_request_error");
    assert!(bad.header("request-id").is_some());
    let no_model = quote_as(&t, &t.api_key, &json!({"max_tokens": 5, "messages": []})).await;
    no_model.assert_error(400, "invalid_request_error");
    assert!(no_model.error_message().contains("model"));
    let unknown = quote_as(
        &t,
        &t.api_key,
        &crate::helpers::body_for("claude-nope-9", 5, ""),
    )
    .await;
    let sent = t
        .message(&crate::helpers::body_for("claude-nope-9", 5, ""))
        .await;
    assert_eq!(
        (unknown.status, unknown.error_type()),
        (sent.status, sent.error_type())
    );
    assert!(unknown.status >= 400, "{}", unknown.body);
    let nobody = quote_as(&t, "sk-cg-wrong", &body(5, "")).await;
    nobody.assert_error(401, "authentication_error");
    let admin = admin_key(&t, &t.org).await;
    quote_as(&t, &admin, &body(5, ""))
        .await
        .assert_error(401, "authentication_error");
    assert_eq!(t.sim.stats().messages, 0, "nothing was forwarded");
}

crate::on_both_databases!(
    quotes_are_what_admission_would_hold_and_change_nothing,
    a_quote_agrees_with_the_402_and_the_keys_spend_limit,
);
