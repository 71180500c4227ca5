//! Outbound webhooks over HTTP on both databases: registering endpoints (validation, roles,
//! the SSRF guard and its operator switch, the gateway itself always refused); deliveries to a
//! receiver that answers 500, hangs past the timeout or is down, retried with backoff on a test
//! clock under one delivery id, every attempt logged, disabled after a day with an email, a
//! manual retry enabling it again; requests not slowed by a hanging receiver; two gateways on
//! one database delivering each event once.

use std::time::{Duration, Instant};

use creditgate_core::accounts::Role;
use creditgate_core::clock::ManualClock;
use creditgate_core::money::NanoCredits;
use creditgate_gateway::notify::{delivery::deliver_due, emit};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{add_member, admin_key, call, member, Cred};
use crate::alerts::{allowing_loopback, mail_to, received, subscribe};
use crate::helpers::{body, closed_port, now, random_hex, Setup, TestApp};
use crate::metrics::{sample, scrape};
use crate::on_both_databases;
use crate::payments::{buyer_on, checkout, pay_json};
use crate::receiver::{Mode, Receiver};

const ADMIN_EMAIL: &str = "admin@example.com";
const MINUTE_MS: i64 = 60_000;

async fn post_endpoint(
    t: &TestApp,
    cred: &Cred,
    url: &str,
    events: Value,
) -> crate::helpers::JsonReply {
    call(
        t,
        Method::POST,
        "/v1/organizations/webhooks",
        cred,
        Some(json!({"url": url, "events": events})),
    )
    .await
}

async fn log(t: &TestApp, cred: &Cred, endpoint: &str) -> Vec<Value> {
    let path = format!("/v1/organizations/webhooks/{endpoint}/deliveries");
    let r = call(t, Method::GET, &path, cred, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

/// Delivers what is due until the endpoint's one delivery has `n` attempts; answers it.
async fn attempts(t: &TestApp, cred: &Cred, endpoint: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        deliver_due(&t.app).await;
        let log = log(t, cred, endpoint).await;
        if let Some(d) = log
            .first()
            .filter(|d| d["attempts"].as_array().unwrap().len() >= n)
        {
            assert_eq!(log.len(), 1, "one delivery: {log:?}");
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{n} attempts never made: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn endpoints_are_validated_and_private_addresses_refused(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let events = json!(["credits.low"]);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://[::1]:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/hook",
        "http://0.0.0.0/",
        t.url("/v1/messages").as_str(),
    ] {
        let r = post_endpoint(&t, &cred, url, events.clone()).await;
        r.assert_error(400, "invalid_request_error");
        assert!(
            r.error_message().contains("address") || r.error_message().contains("gateway itself"),
            "{url}: {}",
            r.body
        );
    }
    endpoints_are_validated_listed_and_deleted(&t, &cred).await;
}

async fn endpoints_are_validated_listed_and_deleted(t: &TestApp, cred: &Cred) {
    let events = json!(["credits.low"]);
    let public = "http://93.184.216.34/hook";
    let bad = [
        ("ftp://93.184.216.34/", json!(["credits.low"]), "http"),
        ("not a url", json!(["credits.low"]), "valid URL"),
        (
            "http://user:pw@93.184.216.34/",
            json!(["credits.low"]),
            "password",
        ),
        (public, json!([]), "at least one"),
        (public, json!(["credits.lowish"]), "not an event type"),
    ];
    for (url, ev, why) in bad {
        let r = post_endpoint(t, cred, url, ev).await;
        r.assert_error(400, "invalid_request_error");
        assert!(r.error_message().contains(why), "{url}: {}", r.body);
    }
    let billing = member(t, "billing@example.com", Role::Billing).await;
    post_endpoint(t, &billing.cred(), public, events.clone())
        .await
        .assert_error(403, "permission_error");
    let listed = call(t, Method::GET, "/v1/organizations/webhooks", cred, None).await;
    assert_eq!(listed.body["data"], json!([]), "nothing refused was stored");
    let r = post_endpoint(
        t,
        cred,
        public,
        json!(["credits.low", "order.credited", "credits.low"]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(r.body["events"], json!(["credits.low", "order.credited"]));
    let id = r.body["id"].as_str().unwrap().to_owned();
    let listed = call(t, Method::GET, "/v1/organizations/webhooks", cred, None).await;
    assert_eq!(listed.body["data"][0]["id"], json!(id));
    assert!(
        listed.body["data"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    let path = format!("/v1/organizations/webhooks/{id}");
    let r = call(t, Method::DELETE, &path, cred, None).await;
    assert_eq!(
        r.body,
        json!({"id": id, "type": "webhook_endpoint_deleted"})
    );
    call(t, Method::DELETE, &path, cred, None)
        .await
        .assert_error(404, "not_found_error");
    let audit = call(t, Method::GET, "/v1/organizations/audit_log", cred, None)
        .await
        .body
        .to_string();
    assert!(
        audit.contains("webhook_endpoint.created") && audit.contains("webhook_endpoint.deleted")
    );
    assert!(!audit.contains("whsec_"), "no secret in the audit log");
}

async fn the_gateway_itself_is_refused_even_when_private_urls_are_allowed(setup: Setup) {
    let t = TestApp::spawn_with(allowing_loopback(setup)).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let own = format!("http://localhost:{}/v1/messages", t.addr.port());
    for url in [t.url("/healthz"), own] {
        let r = post_endpoint(&t, &cred, &url, json!(["credits.low"])).await;
        r.assert_error(400, "invalid_request_error");
        assert!(r.error_message().contains("gateway itself"), "{}", r.body);
    }
    let rx = Receiver::start(Mode::Ok).await;
    let r = post_endpoint(&t, &cred, &rx.url(), json!(["credits.low"])).await;
    assert_eq!(
        r.status, 200,
        "a loopback receiver is allowed by the switch: {}",
        r.body
    );
}

/// Attempts 1 to 3: 500, nothing before the first backoff ends, then a receiver hanging past
/// the timeout (1 s here) fails the attempt, bounded.
async fn the_first_attempts_back_off(
    t: &TestApp,
    cred: &Cred,
    rx: &Receiver,
    clock: &ManualClock,
    endpoint: &str,
) {
    let first = attempts(t, cred, endpoint, 1).await;
    assert_eq!(first["attempts"][0]["status_code"], 500, "{first}");
    // Nothing before the backoff ends.
    clock.advance(MINUTE_MS - 1);
    deliver_due(&t.app).await;
    assert_eq!(
        log(t, cred, endpoint).await[0]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    clock.advance(1);
    attempts(t, cred, endpoint, 2).await;
    rx.set_mode(Mode::Hang(Duration::from_secs(5)));
    clock.advance(5 * MINUTE_MS);
    let d = attempts(t, cred, endpoint, 3).await;
    let third = &d["attempts"][2];
    assert!(
        third["error"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{third}"
    );
    assert!(third["duration_ms"].as_i64().unwrap() < 4_000, "{third}");
    rx.set_mode(Mode::Fail);
}

async fn failing_deliveries_back_off_for_a_day_then_the_endpoint_is_disabled(setup: Setup) {
    let clock = ManualClock::new(now());
    let t = TestApp::spawn_with(allowing_loopback(Setup {
        clock: Some(clock.clone()),
        ..setup
    }))
    .await;
    add_member(&t, &t.org, ADMIN_EMAIL, Role::Admin).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let rx = Receiver::start(Mode::Fail).await;
    let endpoint = subscribe(&t, &cred, &rx, &["credits.low"]).await;
    emit(
        &t.app,
        &t.org,
        "credits.low",
        None,
        json!({"threshold": "10"}),
    )
    .await;
    the_first_attempts_back_off(&t, &cred, &rx, &clock, &endpoint).await;
    // The rest of the schedule: 30 min, 2 h, 6 h, 12 h, then the last try at 24 h.
    for (n, wait) in [(4, 30), (5, 120), (6, 360), (7, 720), (8, 204)] {
        clock.advance(wait * MINUTE_MS);
        attempts(&t, &cred, &endpoint, n).await;
    }
    let d = &log(&t, &cred, &endpoint).await[0];
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["next_attempt_at"], Value::Null);
    let listed = call(&t, Method::GET, "/v1/organizations/webhooks", &cred, None).await;
    assert_eq!(
        listed.body["data"][0]["status"], "disabled",
        "{}",
        listed.body
    );
    assert_eq!(
        mail_to(&t, ADMIN_EMAIL, "Webhook endpoint disabled").len(),
        1
    );
    // Disabled: new events are not sent to it.
    emit(
        &t.app,
        &t.org,
        "credits.low",
        None,
        json!({"threshold": "5"}),
    )
    .await;
    deliver_due(&t.app).await;
    assert_eq!(log(&t, &cred, &endpoint).await.len(), 1);
    // Every attempt carried the same delivery id, each signed.
    let got = rx.received();
    assert!(got.len() >= 8 && got.iter().all(|r| r.verified), "{got:?}");
    assert!(got
        .iter()
        .all(|r| r.delivery_id == d["id"].as_str().unwrap()));
    // A manual retry once the receiver works delivers it and enables the endpoint again.
    let id = d["id"].as_str().unwrap().to_owned();
    a_manual_retry_enables_it_again(&t, &cred, &rx, &endpoint, &id).await;
}

async fn a_manual_retry_enables_it_again(
    t: &TestApp,
    cred: &Cred,
    rx: &Receiver,
    endpoint: &str,
    delivery: &str,
) {
    rx.set_mode(Mode::Ok);
    let path = format!("/v1/organizations/webhooks/{endpoint}/deliveries/{delivery}/retry");
    let r = call(t, Method::POST, &path, cred, None).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("delivered")),
        "{}",
        r.body
    );
    assert_eq!(r.body["attempts"].as_array().unwrap().len(), 9);
    assert_eq!(r.body["attempts"][8]["manual"], true);
    let listed = call(t, Method::GET, "/v1/organizations/webhooks", cred, None).await;
    assert_eq!(
        listed.body["data"][0]["status"], "enabled",
        "{}",
        listed.body
    );
    let billing = member(t, "billing@example.com", Role::Billing).await;
    call(t, Method::POST, &path, &billing.cred(), None)
        .await
        .assert_error(403, "permission_error");
    let (_, _, text) = scrape(t, &Cred::Operator).await;
    let count = |outcome| {
        sample(
            &text,
            "creditgate_webhook_deliveries_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(
        (count("retrying"), count("failed"), count("delivered")),
        (Some(7), Some(1), Some(1)),
        "{text}"
    );
}

async fn a_receiver_that_is_down_is_retried_and_logged(setup: Setup) {
    let t = TestApp::spawn_with(allowing_loopback(setup)).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let down = format!("http://{}/hook", closed_port().await);
    let r = post_endpoint(&t, &cred, &down, json!(["order.credited"])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let endpoint = r.body["id"].as_str().unwrap().to_owned();
    emit(&t.app, &t.org, "order.credited", Some("ord_x"), json!({})).await;
    emit(&t.app, &t.org, "order.credited", Some("ord_x"), json!({})).await;
    let d = attempts(&t, &cred, &endpoint, 1).await;
    let a = &d["attempts"][0];
    assert_eq!(a["status_code"], Value::Null, "{a}");
    assert!(
        a["error"].as_str().unwrap().contains("not delivered"),
        "{a}"
    );
    assert_eq!(d["status"], "pending");
    assert!(d["next_attempt_at"].is_string());
}

async fn requests_are_not_slowed_by_a_hanging_receiver(setup: Setup) {
    let t = TestApp::spawn_with(allowing_loopback(setup)).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let rx = Receiver::start(Mode::Hang(Duration::from_secs(30))).await;
    subscribe(&t, &cred, &rx, &["credits.low"]).await;
    for n in 0..20 {
        emit(&t.app, &t.org, "credits.low", None, json!({"n": n})).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.in_flight() == 0 {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let request = body(10, "");
    let replies = join_all((0..10).map(|_| t.message(&request))).await;
    let took = started.elapsed();
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(rx.in_flight() > 0, "the receiver still hangs");
    assert!(
        took < Duration::from_secs(5),
        "10 requests took {took:?} while deliveries hung"
    );
}

async fn two_gateways_on_one_database_deliver_each_event_once(setup: Setup) {
    let file = std::env::temp_dir().join(format!("cg-webhooks-{}.db", random_hex(6)));
    let url = setup
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", file.display()));
    let shared = allowing_loopback(Setup {
        database_url: Some(url),
        ..setup
    });
    let a = TestApp::spawn_with(shared.clone()).await;
    let b = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        ..shared
    })
    .await;
    let cred = Cred::Key(admin_key(&a, &a.org).await);
    let rx = Receiver::start(Mode::Ok).await;
    subscribe(&a, &cred, &rx, &["credits.low"]).await;
    for n in 0..30 {
        let app = if n % 2 == 0 { &a.app } else { &b.app };
        emit(app, &a.org, "credits.low", None, json!({"n": n})).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.received().len() < 30 {
        assert!(
            Instant::now() < deadline,
            "{} of 30 delivered",
            rx.received().len()
        );
        tokio::join!(deliver_due(&a.app), deliver_due(&b.app));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::join!(deliver_due(&a.app), deliver_due(&b.app));
    let got = rx.received();
    let mut ids: Vec<_> = got.iter().map(|r| r.delivery_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (30, 30), "each delivered once");
    drop((a, b));
    // The file and SQLite's write-ahead log beside it.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

async fn payments_announce_credited_refunded_and_disputed_orders(setup: Setup) {
    let t = buyer_on(allowing_loopback(setup), "").await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let rx = Receiver::start(Mode::Ok).await;
    let kinds = ["order.credited", "refund.created", "dispute.created"];
    subscribe(&t, &cred, &rx, &kinds).await;
    let paid = checkout(&t, "credits-1000", None).await;
    pay_json(&t, &paid.id, "4242424242424242").await;
    let path = format!("/admin/v1/orders/{}/refund", paid.id);
    let r = call(&t, Method::POST, &path, &Cred::Operator, Some(json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let disputed = checkout(&t, "credits-1000", None).await;
    pay_json(&t, &disputed.id, "4000000000000259").await;
    let credited = received(&t, &rx, "order.credited", 2).await;
    let ids: Vec<&Value> = credited.iter().map(|e| &e["data"]["id"]).collect();
    assert!(
        ids.contains(&&json!(paid.id)) && ids.contains(&&json!(disputed.id)),
        "{ids:?}"
    );
    let refund = received(&t, &rx, "refund.created", 1).await;
    assert_eq!(refund[0]["data"]["order"]["id"], json!(paid.id));
    assert_eq!(refund[0]["data"]["credits"], "1000");
    let dispute = received(&t, &rx, "dispute.created", 1).await;
    assert_eq!(dispute[0]["data"]["order"]["id"], json!(disputed.id));
    // A second report of the same payment is no new event.
    let path = format!("/admin/v1/orders/{}/recheck", paid.id);
    call(&t, Method::POST, &path, &Cred::Operator, None).await;
    deliver_due(&t.app).await;
    assert_eq!(rx.received().len(), 4, "{:?}", rx.received());
}

on_both_databases!(
    payments_announce_credited_refunded_and_disputed_orders,
    endpoints_are_validated_and_private_addresses_refused,
    the_gateway_itself_is_refused_even_when_private_urls_are_allowed,
    failing_deliveries_back_off_for_a_day_then_the_endpoint_is_disabled,
    a_receiver_that_is_down_is_retried_and_logged,
    requests_are_not_slowed_by_a_hanging_receiver,
    two_gateways_on_one_database_deliver_each_event_once,
);
