//! Alerts over HTTP on both databases: the settings and their validation, low balance once per
//! crossing and re-armed by a top-up, the first 402 once until a top-up, a key's spend limit
//! once per period, and expiry warnings 30 and 7 days ahead once each (a test clock); each
//! emailed to the billing members and the settings' addresses, and sent to a signed webhook.

use std::time::{Duration, Instant};

use creditgate_core::accounts::Role;
use creditgate_core::clock::{Clock, ManualClock};
use creditgate_core::ids::{LotId, TransferId};
use creditgate_core::ledger::{GrantRequest, LedgerStore, LotCategory, LotSource};
use creditgate_core::money::NanoCredits;
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{add_member, admin_key, call, member, outbox, Cred};
use crate::helpers::{body, credits, now, random_hex, JsonReply, Setup, TestApp};
use crate::on_both_databases;
use crate::receiver::{Mode, Receiver};

const BILLING_EMAIL: &str = "billing@example.com";
const EXTRA_EMAIL: &str = "oncall@example.com";
const DAY_MS: i64 = 86_400_000;

/// Loopback receivers are allowed (the SSRF guard's operator switch).
pub fn allowing_loopback(setup: Setup) -> Setup {
    Setup {
        extra_toml: format!(
            "{}\n[webhooks]\nallow_private_urls = true\ntimeout_ms = 1000\n",
            setup.extra_toml
        ),
        ..setup
    }
}

pub async fn put_alerts(t: &TestApp, cred: &Cred, settings: Value) -> JsonReply {
    call(t, Method::PUT, "/v1/billing/alerts", cred, Some(settings)).await
}

/// Registers the receiver for `events` and tells it the secret.
pub async fn subscribe(t: &TestApp, cred: &Cred, rx: &Receiver, events: &[&str]) -> String {
    let r = call(
        t,
        Method::POST,
        "/v1/organizations/webhooks",
        cred,
        Some(json!({"url": rx.url(), "events": events})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    rx.set_secret(r.body["secret"].as_str().unwrap());
    r.body["id"].as_str().unwrap().to_owned()
}

/// Waits until no alert task runs on this gateway.
pub async fn alerts_done(t: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.app.notify.running() > 0 {
        assert!(Instant::now() < deadline, "alert task still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The subjects of the emails to `to` that start with `prefix`.
pub fn mail_to(t: &TestApp, to: &str, prefix: &str) -> Vec<String> {
    outbox(t)
        .iter()
        .filter(|m| m.contains(&format!("To: {to}")))
        .filter_map(|m| {
            let flat = m.replace("=\r\n", "").replace("\r\n", "\n");
            let subject = flat.lines().find_map(|l| l.strip_prefix("Subject: "))?;
            subject.starts_with(prefix).then(|| subject.to_owned())
        })
        .collect()
}

/// Waits (delivering what is due) until the receiver got `n` events of `kind`.
pub async fn received(t: &TestApp, rx: &Receiver, kind: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        creditgate_gateway::notify::delivery::deliver_due(&t.app).await;
        let got: Vec<_> = rx
            .received()
            .into_iter()
            .filter(|r| r.event_type == kind)
            .collect();
        if got.len() >= n {
            assert!(
                got.iter().all(|r| r.verified),
                "signature verified: {got:?}"
            );
            return got.into_iter().map(|r| r.body).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{kind}: {} of {n} received",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn spend(t: &TestApp) -> JsonReply {
    let r = t.message(&body(10, "")).await;
    alerts_done(t).await;
    r
}

async fn settings_are_validated_and_only_billing_roles_write(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let empty = json!({"type": "alert_settings", "organization_id": t.org,
        "low_balance_thresholds": [], "emails": []});
    let get = |c: Cred| {
        let t = &t;
        async move { call(t, Method::GET, "/v1/billing/alerts", &c, None).await }
    };
    assert_eq!(get(cred.clone()).await.body, empty);
    let good = json!({"low_balance_thresholds": ["10", "100.5"], "emails": [EXTRA_EMAIL]});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let eleven: Vec<String> = (1..=11).map(|n| n.to_string()).collect();
    let bad = [
        (
            with("low_balance_thresholds", json!(["0"])),
            "more than zero",
        ),
        (
            with("low_balance_thresholds", json!(["-5"])),
            "more than zero",
        ),
        (
            with("low_balance_thresholds", json!([10])),
            "expected a string",
        ),
        (with("low_balance_thresholds", json!(["10", "10"])), "twice"),
        (with("low_balance_thresholds", json!(eleven)), "at most 10"),
        (with("emails", json!(["not an email"])), "not an email"),
        (
            with("emails", json!([EXTRA_EMAIL, "ONCALL@example.com"])),
            "twice",
        ),
        (json!({"low_balance_thresholds": ["10"]}), "emails"),
        (with("colour", json!("red")), "unknown field"),
    ];
    for (b, why) in bad {
        let r = put_alerts(&t, &cred, b.clone()).await;
        r.assert_error(400, "invalid_request_error");
        assert!(r.error_message().contains(why), "{b}: {}", r.body);
        assert_eq!(
            get(cred.clone()).await.body,
            empty,
            "a refused PUT changes nothing"
        );
    }
    let dev = member(&t, "dev@example.com", Role::Developer).await;
    put_alerts(&t, &dev.cred(), good.clone())
        .await
        .assert_error(403, "permission_error");
    let billing = member(&t, BILLING_EMAIL, Role::Billing).await;
    let r = put_alerts(&t, &billing.cred(), good).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["low_balance_thresholds"],
        json!(["100.5", "10"]),
        "highest first"
    );
    assert_eq!(get(dev.cred()).await.body, r.body, "any member reads");
    let audit = call(&t, Method::GET, "/v1/organizations/audit_log", &cred, None).await;
    assert!(
        audit.body.to_string().contains("alerts.updated"),
        "{}",
        audit.body
    );
}

async fn low_balance_fires_once_per_crossing_and_a_top_up_rearms_it(setup: Setup) {
    let t = TestApp::spawn_with(allowing_loopback(Setup {
        credits: credits("10"),
        ..setup
    }))
    .await;
    add_member(&t, &t.org, BILLING_EMAIL, Role::Billing).await;
    add_member(&t, &t.org, "dev@example.com", Role::Developer).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let rx = Receiver::start(Mode::Ok).await;
    subscribe(&t, &cred, &rx, &["credits.low"]).await;
    let settings = json!({"low_balance_thresholds": ["10", "0.000001"], "emails": [EXTRA_EMAIL]});
    assert_eq!(put_alerts(&t, &cred, settings).await.status, 200);
    // Each request leaves the balance below 10 (but above the lower threshold).
    for _ in 0..3 {
        assert_eq!(spend(&t).await.status, 200);
    }
    let events = received(&t, &rx, "credits.low", 1).await;
    assert_eq!(events[0]["data"]["threshold"], "10", "{}", events[0]);
    assert_eq!(events[0]["organization_id"], json!(t.org));
    assert_eq!(mail_to(&t, BILLING_EMAIL, "Credits low").len(), 1);
    assert_eq!(mail_to(&t, EXTRA_EMAIL, "Credits low").len(), 1);
    assert!(
        mail_to(&t, "dev@example.com", "Credits low").is_empty(),
        "billing roles only"
    );
    // A top-up (still below 10) re-arms it: the next settlement announces it again, once.
    t.grant(credits("0.000001")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..3 {
        assert_eq!(spend(&t).await.status, 200);
    }
    let events = received(&t, &rx, "credits.low", 2).await;
    assert_ne!(events[0]["id"], events[1]["id"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    creditgate_gateway::notify::delivery::deliver_due(&t.app).await;
    let low: Vec<_> = rx
        .received()
        .into_iter()
        .filter(|r| r.event_type == "credits.low")
        .collect();
    assert_eq!(low.len(), 2, "{low:?}");
    assert_eq!(mail_to(&t, BILLING_EMAIL, "Credits low").len(), 2);
}

async fn the_first_402_fires_once_until_a_top_up(setup: Setup) {
    let t = TestApp::spawn_with(allowing_loopback(Setup {
        credits: credits("0.000001"),
        ..setup
    }))
    .await;
    add_member(&t, &t.org, BILLING_EMAIL, Role::Billing).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let rx = Receiver::start(Mode::Ok).await;
    subscribe(&t, &cred, &rx, &["credits.depleted"]).await;
    for _ in 0..3 {
        spend(&t).await.assert_error(402, "billing_error");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    received(&t, &rx, "credits.depleted", 1).await;
    assert_eq!(mail_to(&t, BILLING_EMAIL, "Credits used up").len(), 1);
    t.grant(credits("0.000001")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    spend(&t).await.assert_error(402, "billing_error");
    spend(&t).await.assert_error(402, "billing_error");
    received(&t, &rx, "credits.depleted", 2).await;
    assert_eq!(mail_to(&t, BILLING_EMAIL, "Credits used up").len(), 2);
    let depleted = rx
        .received()
        .into_iter()
        .filter(|r| r.event_type == "credits.depleted")
        .count();
    assert_eq!(depleted, 2);
}

async fn a_key_reaching_its_spend_limit_fires_once_per_period(setup: Setup) {
    let t = TestApp::spawn_with(setup).await;
    add_member(&t, &t.org, BILLING_EMAIL, Role::Billing).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let r = call(
        &t,
        Method::POST,
        "/v1/organizations/api_keys",
        &cred,
        Some(json!({"name": "capped", "limits": {"spend": {"daily": "0.000001"}}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        t.message_as(&secret, &body(10, ""))
            .await
            .assert_error(402, "billing_error");
        alerts_done(&t).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let mails = mail_to(
        &t,
        BILLING_EMAIL,
        "API key capped reached its daily spend limit",
    );
    assert_eq!(mails.len(), 1, "{:?}", outbox(&t));
}

/// Grants `amount` credits expiring `days` from the clock's now.
async fn grant_expiring(t: &TestApp, clock: &ManualClock, amount: &str, days: i64) {
    let id = random_hex(8);
    t.app
        .db
        .grant(GrantRequest {
            transfer_id: TransferId::parse(&format!("grant_{id}")).unwrap(),
            org: t.org.clone(),
            lot_id: LotId::parse(&format!("lot_{id}")).unwrap(),
            amount: credits(amount),
            category: LotCategory::Granted,
            source: LotSource::Promotion,
            price_per_credit: None,
            expires_at: Some(clock.now().plus_millis(days * DAY_MS)),
            memo: None,
        })
        .await
        .expect("grant");
}

async fn expiring_credits_are_announced_30_and_7_days_ahead_once_each(setup: Setup) {
    let clock = ManualClock::new(now());
    let t = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        clock: Some(clock.clone()),
        ..setup
    })
    .await;
    add_member(&t, &t.org, BILLING_EMAIL, Role::Billing).await;
    grant_expiring(&t, &clock, "25", 40).await;
    let scan = || creditgate_gateway::notify::alerts::scan_expiring(&t.app);
    assert_eq!(scan().await.unwrap(), 0, "40 days ahead: nothing yet");
    clock.advance(11 * DAY_MS);
    assert_eq!(scan().await.unwrap(), 1, "29 days ahead");
    assert_eq!(scan().await.unwrap(), 0, "once");
    clock.advance(10 * DAY_MS);
    assert_eq!(scan().await.unwrap(), 0, "19 days ahead: announced already");
    clock.advance(13 * DAY_MS);
    assert_eq!(scan().await.unwrap(), 1, "6 days ahead");
    assert_eq!(scan().await.unwrap(), 0, "once");
    let mails = mail_to(&t, BILLING_EMAIL, "25 credits expire within");
    assert_eq!(
        mails,
        [
            "25 credits expire within 30 days",
            "25 credits expire within 7 days"
        ]
    );
}

on_both_databases!(
    settings_are_validated_and_only_billing_roles_write,
    low_balance_fires_once_per_crossing_and_a_top_up_rearms_it,
    the_first_402_fires_once_until_a_top_up,
    a_key_reaching_its_spend_limit_fires_once_per_period,
    expiring_credits_are_announced_30_and_7_days_ahead_once_each,
);
