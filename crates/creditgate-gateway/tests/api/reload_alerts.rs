//! Auto-reload end to end with its alerts, with the sandbox and with the fake Stripe, on both
//! databases (`docs/auto-reload.md`, `docs/alerts.md`): spending below the threshold buys the
//! reload once — on Stripe even when the answer to the charge is lost after Stripe charged (the
//! retry with the same idempotency key charges nothing more) — the balance and the receipt show
//! it, and signed webhooks reach a local receiver; a card that declines every charge pauses
//! after the tries (a test clock), with the emails in the outbox and the events sent.

use std::sync::atomic::Ordering;

use creditgate_core::accounts::Role;
use creditgate_core::clock::ManualClock;
use creditgate_core::money::NanoCredits;
use creditgate_sim::stripe::FakeStripe;
use reqwest::Method;
use serde_json::json;

use crate::accounts::{add_member, admin_key, call, Cred};
use crate::alerts::{allowing_loopback, put_alerts, received, subscribe};
use crate::auto_reload::{orders, plan_1000, put, reload_mail, reloads_done};
use crate::helpers::{body, credits, now, Setup, TestApp};
use crate::metrics::{sample, scrape};
use crate::on_both_databases;
use crate::payments::{buyer_on, fake_pay, stripe_buyer_on};
use crate::receiver::{Mode, Receiver};
use crate::saved_cards::sandbox_card;

const BILLING_EMAIL: &str = "billing@example.com";
const HOUR_MS: i64 = 3_600_000;

/// A gateway on the sandbox or the fake Stripe, with 10 credits, a billing member, loopback
/// receivers allowed, and `card` saved. Answers the admin key and the fake (if Stripe).
async fn gateway(setup: Setup, stripe: bool, card: &str) -> (TestApp, Cred, Option<FakeStripe>) {
    let setup = allowing_loopback(setup);
    let (t, fake) = if stripe {
        let (t, fake) = stripe_buyer_on(setup).await;
        (t, Some(fake))
    } else {
        (buyer_on(setup, "").await, None)
    };
    t.grant(credits("10")).await;
    add_member(&t, &t.org, BILLING_EMAIL, Role::Billing).await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    match &fake {
        None => {
            sandbox_card(&t, &cred, card).await;
        }
        Some(_) => stripe_card(&t, &cred, card).await,
    }
    (t, cred, fake)
}

/// Saves `card` through Stripe's setup session on the fake.
async fn stripe_card(t: &TestApp, cred: &Cred, card: &str) {
    let r = call(t, Method::POST, "/v1/billing/payment_methods", cred, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["payment_method"]["id"].as_str().unwrap();
    let m = t.app.db.payment_method(id).await.unwrap().unwrap();
    let base = &t.app.cfg.payments.stripe.as_ref().unwrap().api_base;
    fake_pay(t, base, &m.setup_ref.unwrap(), card).await;
    let m = t.app.db.payment_method(id).await.unwrap().unwrap();
    assert_eq!(m.status.as_str(), "active");
}

async fn one_reload_with_signed_webhooks(setup: Setup, stripe: bool) {
    let (t, cred, fake) = gateway(setup, stripe, "4242424242424242").await;
    let rx = Receiver::start(Mode::Ok).await;
    let events = ["auto_reload.succeeded", "order.credited", "credits.low"];
    subscribe(&t, &cred, &rx, &events).await;
    let alerts = json!({"low_balance_thresholds": ["100"], "emails": []});
    assert_eq!(put_alerts(&t, &cred, alerts).await.status, 200);
    let r = put(&t, &cred, plan_1000("100000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    if let Some(fake) = &fake {
        // Stripe charges, and its answer never arrives.
        fake.lose_intent_answers.store(1, Ordering::SeqCst);
    }
    let reply = t.message(&body(10, "")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reloads_done(&t).await;
    if fake.is_some() {
        // The cut attempt kept its key; the due-reload loop finishes it with the same key.
        let due = creditgate_gateway::reload::start_due(&t.app).await.unwrap();
        assert_eq!(due, 1, "the attempt whose answer was lost is unfinished");
        reloads_done(&t).await;
    }
    let all = orders(&t, &cred).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["status"], "credited", "{}", all[0]);
    let expected = credits("1010").checked_sub(reply.charged()).unwrap();
    assert_eq!(
        t.balance().await.posted,
        expected,
        "the reload credited once"
    );
    let receipt = t
        .client
        .get(all[0]["receipt_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(receipt.status(), 200);
    assert!(receipt.text().await.unwrap().contains("1000"));
    if let Some(fake) = &fake {
        let charges = fake
            .events()
            .into_iter()
            .filter(|e| e["type"] == "payment_intent.succeeded")
            .count();
        assert_eq!(charges, 1, "Stripe charged once");
    }
    let done = received(&t, &rx, "auto_reload.succeeded", 1).await;
    assert_eq!(done[0]["data"]["order_id"], all[0]["id"]);
    let credited = received(&t, &rx, "order.credited", 1).await;
    assert_eq!(credited[0]["data"]["id"], all[0]["id"]);
    received(&t, &rx, "credits.low", 1).await;
    assert_eq!(reload_mail(&t, BILLING_EMAIL).len(), 1);
}

async fn a_declining_card_pauses_with_emails_and_events(setup: Setup, stripe: bool) {
    let clock = ManualClock::new(now());
    let setup = Setup {
        clock: Some(clock.clone()),
        credits: NanoCredits::ZERO,
        ..setup
    };
    let (t, cred, _fake) = gateway(setup, stripe, "4000000000000341").await;
    let rx = Receiver::start(Mode::Ok).await;
    subscribe(
        &t,
        &cred,
        &rx,
        &["auto_reload.failed", "auto_reload.paused", "order.failed"],
    )
    .await;
    let r = put(&t, &cred, plan_1000("100000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reply = t.message(&body(10, "")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reloads_done(&t).await;
    for wait in [1, 6, 24] {
        clock.advance(wait * HOUR_MS);
        assert_eq!(
            creditgate_gateway::reload::start_due(&t.app).await.unwrap(),
            1
        );
        reloads_done(&t).await;
    }
    let s = call(&t, Method::GET, "/v1/billing/auto_reload", &cred, None).await;
    assert_eq!(s.body["status"], "paused", "{}", s.body);
    let mails = reload_mail(&t, BILLING_EMAIL);
    assert_eq!(mails.len(), 4, "{mails:?}");
    assert_eq!(mails[3], "Auto-reload is paused");
    received(&t, &rx, "auto_reload.failed", 3).await;
    received(&t, &rx, "auto_reload.paused", 1).await;
    let failed = received(&t, &rx, "order.failed", 4).await;
    assert_eq!(
        failed[0]["data"]["failure"]["code"], "card_declined",
        "{}",
        failed[0]
    );
    let (_, _, text) = scrape(&t, &Cred::Operator).await;
    let count = |outcome| {
        sample(
            &text,
            "creditgate_auto_reloads_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(
        (count("card_declined"), count("succeeded")),
        (Some(4), None),
        "{text}"
    );
    let left = credits("10").checked_sub(reply.charged()).unwrap();
    assert_eq!(t.balance().await.posted, left, "nothing was credited");
}

async fn sandbox_reload_with_signed_webhooks(setup: Setup) {
    one_reload_with_signed_webhooks(setup, false).await
}

async fn stripe_reload_survives_a_lost_answer_with_signed_webhooks(setup: Setup) {
    one_reload_with_signed_webhooks(setup, true).await
}

async fn sandbox_declining_card_pauses_with_emails_and_events(setup: Setup) {
    a_declining_card_pauses_with_emails_and_events(setup, false).await
}

async fn stripe_declining_card_pauses_with_emails_and_events(setup: Setup) {
    a_declining_card_pauses_with_emails_and_events(setup, true).await
}

on_both_databases!(
    sandbox_reload_with_signed_webhooks,
    stripe_reload_survives_a_lost_answer_with_signed_webhooks,
    sandbox_declining_card_pauses_with_emails_and_events,
    stripe_declining_card_pauses_with_emails_and_events,
);
