//! Auto-reload over HTTP on both databases: the settings and their validation, one reload
//! for 50 concurrent settlements crossing the threshold, a declining card backing off 1 h,
//! 6 h, 24 h then pausing (a test clock, emails in the outbox), an authentication-required
//! card pausing at once, and the monthly limit stopping a reload.

use std::time::Duration;

use creditgate_core::accounts::Role;
use creditgate_core::clock::{Clock, ManualClock};
use creditgate_core::money::NanoCredits;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{add_member, admin_key, call, member, outbox, Cred};
use crate::helpers::{body, credits, now, JsonReply, Setup, TestApp};
use crate::on_both_databases;
use crate::payments::profile;
use crate::saved_cards::sandbox_card;

const HOUR_MS: i64 = 3_600_000;
const BILLING_EMAIL: &str = "billing@example.com";
const DEVELOPER_EMAIL: &str = "dev@example.com";

/// A gateway with 10 credits, a test clock, a billing member and a developer, and `card`
/// saved on the sandbox. Answers the admin key's credentials and the card's id.
async fn reloader(setup: Setup, card: &str) -> (TestApp, ManualClock, Cred, String) {
    let clock = ManualClock::new(now());
    let t = TestApp::spawn_with(Setup {
        credits: credits("10"),
        clock: Some(clock.clone()),
        ..setup
    })
    .await;
    profile(&t, "FR").await;
    add_member(&t, &t.org, BILLING_EMAIL, Role::Billing).await;
    add_member(&t, &t.org, DEVELOPER_EMAIL, Role::Developer).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let card = sandbox_card(&t, &cred, card).await;
    (t, clock, cred, card)
}

pub(crate) async fn put(t: &TestApp, cred: &Cred, settings: Value) -> JsonReply {
    call(
        t,
        Method::PUT,
        "/v1/billing/auto_reload",
        cred,
        Some(settings),
    )
    .await
}

async fn get(t: &TestApp, cred: &Cred) -> Value {
    let r = call(t, Method::GET, "/v1/billing/auto_reload", cred, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Threshold 100 credits, the 1,000-credit plan, a monthly limit of `limit` credits.
pub(crate) fn plan_1000(limit: &str) -> Value {
    json!({"enabled": true, "threshold": "100", "plan_id": "credits-1000", "monthly_limit": limit})
}

/// Waits (generously: the machine is busy) until this gateway runs no reload task.
pub(crate) async fn reloads_done(t: &TestApp) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while t.app.reloads.running() > 0 {
        assert!(std::time::Instant::now() < deadline, "reload still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One settled request, then the reload it may have started.
async fn spend(t: &TestApp) -> NanoCredits {
    let r = t.message(&body(10, "")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    reloads_done(t).await;
    r.charged()
}

pub(crate) async fn orders(t: &TestApp, cred: &Cred) -> Vec<Value> {
    let r = call(t, Method::GET, "/v1/billing/orders?limit=100", cred, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

/// The auto-reload emails (subjects) sent to `to`, oldest first.
pub(crate) fn reload_mail(t: &TestApp, to: &str) -> Vec<String> {
    outbox(t)
        .iter()
        .filter(|m| m.contains(&format!("To: {to}")) && m.contains("Subject: Auto-reload"))
        .map(|m| {
            let flat = m.replace("=\r\n", "").replace("\r\n", "\n");
            flat.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn settings_are_validated_and_only_billing_roles_write(setup: Setup) {
    let t = TestApp::spawn_with(Setup {
        credits: credits("10"),
        ..setup
    })
    .await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let off = get(&t, &cred).await;
    assert_eq!(
        (&off["status"], &off["enabled"]),
        (&json!("off"), &json!(false))
    );
    // No saved card yet.
    let r = put(&t, &cred, plan_1000("5000")).await;
    r.assert_error(400, "invalid_request_error");
    assert!(r.error_message().contains("saved card"), "{}", r.body);
    let card = sandbox_card(&t, &cred, "4242 4242 4242 4242").await;
    let op = Cred::Operator;
    let archived = json!({"archived": true});
    let r = call(
        &t,
        Method::POST,
        "/admin/v1/plans/credits-10000",
        &op,
        Some(archived),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let base = plan_1000("5000");
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let bad = [
        (with("threshold", json!("0")), "threshold"),
        (with("threshold", json!("-5")), "threshold"),
        (with("monthly_limit", json!("0")), "monthly_limit"),
        (with("monthly_limit", json!("999")), "monthly limit"),
        (with("plan_id", json!("credits-10000")), "no longer sold"),
        (with("plan_id", json!("nope")), "no plan"),
        (with("amount", json!("0")), "amount"),
        (with("amount", json!("500")), "not both"),
        (with("payment_method_id", json!("card_nope")), "saved card"),
        (with("threshold", json!(100)), "expected a string"),
    ];
    for (body, why) in bad {
        let r = put(&t, &cred, body.clone()).await;
        r.assert_error(400, "invalid_request_error");
        assert!(r.error_message().contains(why), "{body}: {}", r.body);
        assert_eq!(get(&t, &cred).await, off, "a refused PUT changes nothing");
    }
    let dev = member(&t, DEVELOPER_EMAIL, Role::Developer).await;
    let r = put(&t, &dev.cred(), base.clone()).await;
    r.assert_error(403, "permission_error");
    assert_eq!(get(&t, &dev.cred()).await, off, "any member reads");
    let billing = member(&t, BILLING_EMAIL, Role::Billing).await;
    let r = put(&t, &billing.cred(), base.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["status"],
            &r.body["payment_method_id"],
            &r.body["threshold"]
        ),
        (&json!("active"), &json!(card), &json!("100"))
    );
    assert_eq!(get(&t, &dev.cred()).await, r.body);
    let audit = call(&t, Method::GET, "/v1/organizations/audit_log", &cred, None).await;
    assert!(
        audit.body.to_string().contains("auto_reload.updated"),
        "{}",
        audit.body
    );
    let r = put(&t, &cred, with("enabled", json!(false))).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("off")),
        "{}",
        r.body
    );
}

async fn fifty_settlements_crossing_the_threshold_start_one_reload(setup: Setup) {
    let (t, _clock, cred, _card) = reloader(setup, "4242424242424242").await;
    let r = put(&t, &cred, plan_1000("100000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let request = body(10, "");
    let replies = join_all((0..50).map(|_| t.message(&request))).await;
    let mut spent = NanoCredits::ZERO;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        spent = spent.checked_add(r.charged()).unwrap();
    }
    reloads_done(&t).await;
    let orders = orders(&t, &cred).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["status"], "credited");
    let expected = credits("1010").checked_sub(spent).unwrap();
    assert_eq!(t.balance().await.posted, expected);
    let s = get(&t, &cred).await;
    assert_eq!(s["last_attempt"]["outcome"], "succeeded");
    assert_eq!(s["last_attempt"]["order_id"], orders[0]["id"]);
    // Above the threshold now: more settlements buy nothing.
    spend(&t).await;
    assert_eq!(self::orders(&t, &cred).await.len(), 1);
    assert_eq!(
        reload_mail(&t, BILLING_EMAIL),
        ["Auto-reload bought the plan credits-1000"]
    );
    t.assert_ledger_clean().await;
}

async fn a_declining_card_backs_off_then_pauses_with_emails(setup: Setup) {
    let (t, clock, cred, _card) = reloader(setup, "4000000000000341").await;
    let r = put(&t, &cred, plan_1000("100000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let start = clock.now();
    let declined = |n: usize| {
        let t = &t;
        let cred = &cred;
        async move {
            let all = orders(t, cred).await;
            assert!(all.iter().all(|o| o["status"] == "failed"), "{all:?}");
            assert_eq!(all.len(), n, "{all:?}");
        }
    };
    spend(&t).await;
    declined(1).await;
    let s = get(&t, &cred).await;
    assert_eq!(s["last_attempt"]["outcome"], "card_declined");
    assert_eq!(
        s["retry_at"],
        json!(start.plus_millis(HOUR_MS).to_rfc3339())
    );
    // Not before the backoff ends, even with settlements below the threshold.
    clock.advance(HOUR_MS - 60_000);
    spend(&t).await;
    declined(1).await;
    clock.advance(60_000);
    spend(&t).await;
    declined(2).await;
    clock.advance(6 * HOUR_MS - 1);
    spend(&t).await;
    declined(2).await;
    clock.advance(1);
    spend(&t).await;
    declined(3).await;
    // The last retry comes without a settlement: the due reloads are looked for.
    clock.advance(24 * HOUR_MS);
    assert_eq!(
        creditgate_gateway::reload::start_due(&t.app).await.unwrap(),
        1
    );
    reloads_done(&t).await;
    declined(4).await;
    let s = get(&t, &cred).await;
    assert_eq!(
        (&s["status"], &s["enabled"]),
        (&json!("paused"), &json!(true)),
        "{s}"
    );
    assert!(
        s["paused_reason"].as_str().unwrap().contains("declined"),
        "{s}"
    );
    clock.advance(48 * HOUR_MS);
    spend(&t).await;
    assert_eq!(
        creditgate_gateway::reload::start_due(&t.app).await.unwrap(),
        0
    );
    declined(4).await;
    let mails = reload_mail(&t, BILLING_EMAIL);
    assert_eq!(mails.len(), 4, "{mails:?}");
    assert!(
        mails[..3].iter().all(|m| m.contains("declined")),
        "{mails:?}"
    );
    assert_eq!(mails[3], "Auto-reload is paused");
    assert!(
        reload_mail(&t, DEVELOPER_EMAIL).is_empty(),
        "developers are not billing"
    );
    assert!(
        t.balance().await.posted < credits("10"),
        "nothing was credited"
    );
    // Saving the settings again resumes it.
    let r = put(&t, &cred, plan_1000("100000")).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("active")),
        "{}",
        r.body
    );
}

async fn an_authentication_required_card_pauses_at_once(setup: Setup) {
    let (t, _clock, cred, _card) = reloader(setup, "4000002760003184").await;
    let r = put(&t, &cred, plan_1000("100000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    spend(&t).await;
    let s = get(&t, &cred).await;
    assert_eq!(s["status"], "paused", "{s}");
    assert_eq!(s["last_attempt"]["outcome"], "authentication_required");
    assert_eq!(orders(&t, &cred).await.len(), 1);
    spend(&t).await;
    assert_eq!(
        orders(&t, &cred).await.len(),
        1,
        "paused: no second attempt"
    );
    assert_eq!(reload_mail(&t, BILLING_EMAIL), ["Auto-reload is paused"]);
}

async fn the_monthly_limit_stops_a_reload(setup: Setup) {
    let (t, _clock, cred, _card) = reloader(setup, "4242424242424242").await;
    // Threshold above what one reload brings: every settlement wants another.
    let settings = json!({"enabled": true, "threshold": "5000", "plan_id": "credits-1000",
        "monthly_limit": "1500"});
    let r = put(&t, &cred, settings).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let spent_first = spend(&t).await;
    assert_eq!(orders(&t, &cred).await.len(), 1);
    let spent_second = spend(&t).await;
    assert_eq!(
        orders(&t, &cred).await.len(),
        1,
        "a second 1,000 would pass 1,500"
    );
    let s = get(&t, &cred).await;
    assert_eq!(
        (&s["status"], &s["last_attempt"]["outcome"]),
        (&json!("active"), &json!("monthly_limit"))
    );
    let spent = spent_first.checked_add(spent_second).unwrap();
    assert_eq!(
        t.balance().await.posted,
        credits("1010").checked_sub(spent).unwrap()
    );
    let mails = reload_mail(&t, BILLING_EMAIL);
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1], "Auto-reload stopped: monthly limit reached");
}

async fn credits_forecast_runway_and_settings_recommend_from_recent_spend(setup: Setup) {
    let (t, _clock, cred, _card) = reloader(setup, "4242424242424242").await;
    let before = t.get("/v1/credits").await;
    assert_eq!(
        before.body["forecast"],
        Value::Null,
        "no spend, no forecast"
    );
    assert_eq!(get(&t, &cred).await["recommendation"], Value::Null);
    let mut spent = NanoCredits::ZERO;
    for _ in 0..3 {
        spent = spent.checked_add(spend(&t).await).unwrap();
    }
    // Spend today only: averaged over the minimum of three days, rounded up to the nano.
    let avg = (spent.nanos() + 2) / 3;
    let available = t.balance().await.available.nanos();
    let tenths = i128::from(available) * 10 / i128::from(avg);
    let credits_now = t.get("/v1/credits").await;
    let f = &credits_now.body["forecast"];
    assert_eq!(
        f["days_of_runway"],
        json!(format!("{}.{}", tenths / 10, tenths % 10)),
        "{f}"
    );
    assert_eq!(f["basis_days"], 3);
    assert_eq!(
        f["average_daily_spend"],
        json!(NanoCredits::from_nanos(avg).to_string())
    );
    let r = &get(&t, &cred).await["recommendation"];
    // Two busiest days (today's spend, under a credit) rounded up to a whole credit; a week
    // of average spend is under the smallest plan, which is recommended.
    assert_eq!(
        (
            &r["threshold"],
            &r["amount"],
            &r["plan_id"],
            &r["basis_days"]
        ),
        (
            &json!("1"),
            &json!("1000"),
            &json!("credits-1000"),
            &json!(3)
        ),
        "{r}"
    );
}

async fn two_gateways_on_one_database_start_one_reload(setup: Setup) {
    // SQLite: one file both gateways open; Postgres: one database.
    let file = std::env::temp_dir().join(format!("cg-reload-{}.db", crate::helpers::random_hex(6)));
    let url = setup
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", file.display()));
    let shared = Setup {
        database_url: Some(url),
        ..setup
    };
    let (a, _clock, cred, _card) = reloader(shared.clone(), "4242424242424242").await;
    let b = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        ..shared
    })
    .await;
    let r = put(&a, &cred, plan_1000("100000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let request = body(10, "");
    let on_a = (0..20).map(|_| a.message(&request));
    let on_b = (0..20).map(|_| b.message_as(&a.api_key, &request));
    let (ra, rb) = tokio::join!(join_all(on_a), join_all(on_b));
    let mut spent = NanoCredits::ZERO;
    for r in ra.iter().chain(rb.iter()) {
        assert_eq!(r.status, 200, "{}", r.body);
        // The receipt, not the response's header: under load a settlement may go through the
        // spool, and then the answer carries no `x-creditgate-charged`.
        let charged = a.final_receipt(&r.request_id()).await.charged();
        spent = spent.checked_add(charged).unwrap();
    }
    reloads_done(&a).await;
    reloads_done(&b).await;
    let all = orders(&a, &cred).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let expected = credits("1010").checked_sub(spent).unwrap();
    assert_eq!(a.balance().await.posted, expected);
    drop((a, b));
    let _ = std::fs::remove_file(&file);
}

async fn an_attempt_cut_after_the_charge_is_finished_with_its_key_and_credited_once(setup: Setup) {
    let (t, clock, cred, card) = reloader(setup, "4242424242424242").await;
    let r = put(&t, &cred, plan_1000("100000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A replica takes the lease, stores the key, is charged, and dies before recording it.
    let db = &t.app.db;
    let claimed = db
        .claim_auto_reload(&t.org, "dead", clock.now(), 300_000)
        .await;
    assert!(claimed.unwrap().is_some());
    let key = db.begin_auto_reload(&t.org, "dead").await.unwrap().unwrap();
    let quote = t
        .app
        .payments
        .quote(&t.app, Some("credits-1000"), None)
        .await
        .unwrap();
    let order = t
        .app
        .payments
        .charge_saved(&t.app, &t.org, &card, &quote, &key)
        .await
        .unwrap();
    db.record_auto_reload_attempt(&t.org, order.id.as_str(), quote.credits, clock.now())
        .await
        .unwrap();
    assert_eq!(t.balance().await.posted, credits("1010"));
    // While its lease lives nobody else starts one; once it lapses the same key finishes it.
    assert_eq!(
        creditgate_gateway::reload::start_due(&t.app).await.unwrap(),
        0
    );
    clock.advance(300_001);
    assert_eq!(
        creditgate_gateway::reload::start_due(&t.app).await.unwrap(),
        1
    );
    reloads_done(&t).await;
    let all = orders(&t, &cred).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(t.balance().await.posted, credits("1010"), "credited once");
    let s = get(&t, &cred).await;
    assert_eq!(s["last_attempt"]["outcome"], "succeeded");
    assert_eq!(s["last_attempt"]["order_id"], json!(order.id.as_str()));
}

on_both_databases!(
    an_attempt_cut_after_the_charge_is_finished_with_its_key_and_credited_once,
    two_gateways_on_one_database_start_one_reload,
    credits_forecast_runway_and_settings_recommend_from_recent_spend,
    settings_are_validated_and_only_billing_roles_write,
    fifty_settlements_crossing_the_threshold_start_one_reload,
    a_declining_card_backs_off_then_pauses_with_emails,
    an_authentication_required_card_pauses_at_once,
    the_monthly_limit_stops_a_reload,
);
