//! Buying credits end to end: the sandbox checkout page over HTTP, and the Stripe provider
//! against the fake Stripe of `creditgate-sim` delivering signed events to `/webhooks/stripe`.

use std::net::Ipv4Addr;

use creditgate_core::accounts::Actor;
use creditgate_core::ids::OrderId;
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::{BillingProfile, Order, OrderStatus};
use creditgate_gateway::payments::CheckoutRequest;
use creditgate_sim::stripe::FakeStripe;
use serde_json::{json, Value};

use crate::helpers::{credits, Setup, TestApp};

crate::on_both_databases!(
    the_sandbox_sells_the_10000_pack_once_with_a_receipt,
    declined_cards_change_nothing_and_say_why,
    checkouts_are_refused_with_a_reason,
    stripe_checkout_credits_once_through_the_signed_webhook,
    forged_and_mismatched_webhooks_credit_nothing,
    refunds_and_disputes_at_stripe_claw_back_once,
);

pub(crate) const STRIPE_KEY: &str = "sk_test_fake_key";
pub(crate) const WEBHOOK_SECRET: &str = "whsec_fake_secret";

/// A gateway with the sandbox provider, no credits, and a billing profile in France, on the
/// database of `base` (see `on_both_databases!`).
pub(crate) async fn buyer_on(base: Setup, served: &str) -> TestApp {
    let t = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        extra_toml: format!(
            "[payments]\nserved_countries = [{served}]\n{}",
            base.extra_toml
        ),
        ..base
    })
    .await;
    profile(&t, "FR").await;
    t
}

pub(crate) async fn profile(t: &TestApp, country: &str) {
    let p = BillingProfile {
        name: Some("Ada <Lovelace>".to_owned()),
        country: Some(country.to_owned()),
        ..Default::default()
    };
    t.app.db.put_billing_profile(&t.org, &p).await.unwrap();
}

pub(crate) async fn checkout(t: &TestApp, plan: &str, success_url: Option<&str>) -> Order {
    let req = CheckoutRequest {
        plan_id: Some(plan.to_owned()),
        success_url: success_url.map(str::to_owned),
        ..Default::default()
    };
    let (order, _url) = t.app.payments.checkout(&t.app, &t.org, req).await.unwrap();
    order
}

pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn pay_json(t: &TestApp, order: &OrderId, card: &str) -> Value {
    let resp = t
        .client
        .post(format!("{}/sandbox/checkout/{order}", t.address))
        .json(&json!({"card": card}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn the_sandbox_sells_the_10000_pack_once_with_a_receipt(setup: Setup) {
    let t = buyer_on(setup, "").await;
    let order = checkout(&t, "credits-10000", Some("https://shop.example/thanks")).await;
    let page = t
        .client
        .get(format!("{}/sandbox/checkout/{}", t.address, order.id))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("10000 credits for $50.00"));

    let resp = no_redirects()
        .post(format!("{}/sandbox/checkout/{}", t.address, order.id))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("card=4242+4242+4242+4242")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "https://shop.example/thanks");
    assert_eq!(t.balance().await.posted, credits("10000"));

    // Paying again changes nothing.
    let again = pay_json(&t, &order.id, "4242424242424242").await;
    assert_eq!(again["order"]["status"], "credited");
    assert_eq!(t.balance().await.posted, credits("10000"));

    let stored = t.app.db.order(&order.id).await.unwrap().unwrap();
    let number = stored.receipt_number.clone().unwrap();
    assert!(
        number.starts_with("CG-") && number.ends_with("-000001"),
        "{number}"
    );
    let receipt = t
        .client
        .get(format!("{}/receipts/{}", t.address, order.id))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        number.as_str(),
        "10000 credit",
        "$50.00",
        "visa •••• 4242",
        "Ada &lt;Lovelace&gt;",
        "FR",
    ] {
        assert!(receipt.contains(want), "{want} missing from the receipt");
    }
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn declined_cards_change_nothing_and_say_why(setup: Setup) {
    let t = buyer_on(setup, "").await;
    for (card, code, words) in [
        ("4000000000000002", "card_declined", "declined"),
        (
            "4000000000009995",
            "insufficient_funds",
            "insufficient funds",
        ),
    ] {
        let order = checkout(&t, "credits-1000", None).await;
        let body = pay_json(&t, &order.id, card).await;
        assert_eq!(body["order"]["status"], "failed", "{body}");
        assert_eq!(body["order"]["failure"]["code"], code);
        let message = body["order"]["failure"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
        assert_eq!(body["order"]["receipt_url"], Value::Null);
    }
    // A card that needs the bank's confirmation: nothing until confirmed.
    let order = checkout(&t, "credits-1000", None).await;
    let body = pay_json(&t, &order.id, "4000002760003184").await;
    assert_eq!(body["next_action"], "confirm");
    assert_eq!(body["order"]["status"], "open");
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    let resp = t
        .client
        .post(format!("{}/sandbox/checkout/{}", t.address, order.id))
        .json(&json!({"card": "4000002760003184", "confirm": "true"}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["order"]["status"], "credited");
    assert_eq!(t.balance().await.posted, credits("1000"));
    // Not a test card: refused, the order stays open.
    let order = checkout(&t, "credits-1000", None).await;
    let resp = t
        .client
        .post(format!("{}/sandbox/checkout/{}", t.address, order.id))
        .json(&json!({"card": "4111111111111111"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let stored = t.app.db.order(&order.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Open);
    // The same from the page's form: the form again, the reason beside the field, no JSON.
    for (path, typed) in [
        (
            format!("/sandbox/checkout/{}", order.id),
            "4111 1111 1111 1111",
        ),
        (format!("/sandbox/checkout/{}", order.id), "12ab"),
        ("/sandbox/checkout/ord_nope".to_owned(), "4242424242424242"),
    ] {
        let resp = t
            .client
            .post(format!("{}{path}", t.address))
            .form(&[("card", typed)])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let page = resp.text().await.unwrap();
        assert!(!page.contains("\"error\""), "{page}");
        if path.ends_with("ord_nope") {
            assert_eq!(status, 404);
            assert!(
                page.contains("There is no sandbox checkout here."),
                "{page}"
            );
            continue;
        }
        assert_eq!(status, 400);
        assert!(page.contains("aria-describedby=\"card-error\""), "{page}");
        assert!(page.contains(&format!("value=\"{typed}\"")), "{page}");
        let beside = page.split("id=\"card-error\"").nth(1).unwrap();
        assert!(beside.contains("test cards"), "{page}");
    }
    let stored = t.app.db.order(&order.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Open);
    // Unknown orders have no page (a page saying so, not JSON).
    let missing = t
        .client
        .get(format!("{}/sandbox/checkout/ord_nope", t.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing
        .text()
        .await
        .unwrap()
        .contains("<p class=\"failure\" role=\"alert\">"));
}

async fn checkouts_are_refused_with_a_reason(setup: Setup) {
    let t = buyer_on(setup, "\"DE\", \"FR\"").await;
    let ask = |plan: Option<&str>, credits: Option<&str>| CheckoutRequest {
        plan_id: plan.map(str::to_owned),
        credits: credits.map(str::to_owned),
        ..Default::default()
    };
    let refused = |r: CheckoutRequest| {
        let t = &t;
        async move {
            t.app
                .payments
                .checkout(&t.app, &t.org, r)
                .await
                .unwrap_err()
                .message
        }
    };
    assert!(refused(ask(Some("nope"), None)).await.contains("no plan"));
    assert!(refused(ask(Some("credits-1000"), Some("5")))
        .await
        .contains("not both"));
    assert!(refused(ask(None, Some("5000")))
        .await
        .contains("Custom amounts"));
    // An archived plan is no longer sold, but an open checkout for it still pays.
    let open = checkout(&t, "credits-1000", None).await;
    let mut plan = t.app.db.plan("credits-1000").await.unwrap().unwrap();
    plan.archived = true;
    t.app.db.update_plan(&plan).await.unwrap();
    assert!(refused(ask(Some("credits-1000"), None))
        .await
        .contains("no longer sold"));
    let body = pay_json(&t, &open.id, "4242424242424242").await;
    assert_eq!(body["order"]["status"], "credited");
    profile(&t, "US").await;
    let msg = refused(ask(Some("credits-10000"), None)).await;
    assert!(msg.contains("US") && msg.contains("not available"), "{msg}");
    t.app
        .db
        .put_billing_profile(&t.org, &BillingProfile::default())
        .await
        .unwrap();
    assert!(refused(ask(Some("credits-10000"), None))
        .await
        .contains("country"));
    assert_eq!(t.balance().await.posted, credits("1000"));
}

/// A gateway whose checkouts go to a fake Stripe that delivers events to its webhook, on the
/// database of `base`.
pub(crate) async fn stripe_buyer_on(base: Setup) -> (TestApp, FakeStripe) {
    let (fake, fake_addr) = fake_stripe().await;
    let t = TestApp::spawn_with(stripe_setup(base, fake_addr, "")).await;
    fake.set_webhook_url(&format!("{}/webhooks/stripe", t.address));
    profile(&t, "FR").await;
    (t, fake)
}

/// A fake Stripe serving on a loopback port.
pub(crate) async fn fake_stripe() -> (FakeStripe, std::net::SocketAddr) {
    let fake = FakeStripe::new(STRIPE_KEY, WEBHOOK_SECRET);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let fake_addr = listener.local_addr().unwrap();
    tokio::spawn(creditgate_sim::stripe::serve(listener, fake.clone()));
    (fake, fake_addr)
}

/// `base` with no credits and the Stripe provider pointed at the fake at `fake_addr`;
/// `payments` are more lines of the `[payments]` section.
pub(crate) fn stripe_setup(base: Setup, fake_addr: std::net::SocketAddr, payments: &str) -> Setup {
    Setup {
        credits: NanoCredits::ZERO,
        extra_toml: format!(
            "[payments]\nprovider = \"stripe\"\n{payments}\n[payments.stripe]\napi_base = \
             \"http://{fake_addr}\"\nsecret_key = \"{STRIPE_KEY}\"\nwebhook_secrets = \
             [\"whsec_old\", \"{WEBHOOK_SECRET}\"]\n{}",
            base.extra_toml
        ),
        ..base
    }
}

pub(crate) async fn fake_pay(t: &TestApp, fake_base: &str, session: &str, card: &str) -> Value {
    t.client
        .post(format!("{fake_base}/_test/checkout/sessions/{session}/pay"))
        .json(&json!({"card": card}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn stripe_checkout_credits_once_through_the_signed_webhook(setup: Setup) {
    let (t, fake) = stripe_buyer_on(setup).await;
    let base = t.app.cfg.payments.stripe.as_ref().unwrap().api_base.clone();
    let order = checkout(&t, "credits-10000", None).await;
    let session = order.provider_ref.clone().expect("a checkout session");
    // A declined card: Stripe keeps the session open; nothing is credited.
    fake_pay(&t, &base, &session, "4000000000000002").await;
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    let paid = fake_pay(&t, &base, &session, "4242424242424242").await;
    assert_eq!(paid["session"]["payment_status"], "paid");
    assert_eq!(t.balance().await.posted, credits("10000"));
    let stored = t.app.db.order(&order.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Credited);

    // The same event delivered ten times at once, then again: credited once.
    let event = paid["event"].clone();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (fake, event) = (fake.clone(), event.clone());
        tasks.push(tokio::spawn(async move { fake.deliver(&event).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), Some(200));
    }
    assert_eq!(t.balance().await.posted, credits("10000"));

    // The operator refunds the unspent remainder through Stripe: clawed back once.
    let (refunded, cents) = t
        .app
        .payments
        .refund(&t.app, &order.id, &Actor::operator())
        .await
        .unwrap();
    assert_eq!((refunded.status, cents), (OrderStatus::Refunded, 5_000));
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    assert!(t
        .app
        .payments
        .refund(&t.app, &order.id, &Actor::operator())
        .await
        .is_err());
    let kinds: Vec<String> = fake
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"charge.refunded".to_owned()), "{kinds:?}");
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn forged_and_mismatched_webhooks_credit_nothing(setup: Setup) {
    let (t, fake) = stripe_buyer_on(setup).await;
    let base = t.app.cfg.payments.stripe.as_ref().unwrap().api_base.clone();
    let order = checkout(&t, "credits-10000", None).await;
    let hook = format!("{}/webhooks/stripe", t.address);
    let body = json!({"id": "evt_forged", "type": "checkout.session.completed",
        "data": {"object": {"id": order.provider_ref}}})
    .to_string();
    let now = chrono_secs();
    let send = |sig: String| {
        let (client, hook, body) = (t.client.clone(), hook.clone(), body.clone());
        async move {
            client
                .post(hook)
                .header("stripe-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let sign = |secret: &str, at: i64| {
        creditgate_core::payments::signature::header(secret, at, body.as_bytes())
    };
    assert_eq!(send(sign("whsec_wrong", now)).await, 400, "bad signature");
    assert_eq!(send(sign(WEBHOOK_SECRET, now - 301)).await, 400, "stale");
    assert_eq!(send(String::new()).await, 400, "no signature");
    // A correctly signed event for an open session: the session is fetched again and is not
    // paid, so nothing is credited.
    assert_eq!(send(sign(WEBHOOK_SECRET, now)).await, 200);
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);

    // Sessions made at Stripe that point at our order with another organization or amount,
    // and one for an order that does not exist: paid at Stripe, ignored here (answered 200).
    // Also one in another currency, and one naming an order of another provider (sandbox).
    let mut sandbox_order = order.clone();
    sandbox_order.id = OrderId::parse("ord_sandbox_one").unwrap();
    sandbox_order.provider = creditgate_core::payments::Provider::Sandbox;
    sandbox_order.provider_ref = None;
    t.app.db.create_order(&sandbox_order).await.unwrap();
    let mut forged_events = Vec::new();
    for (org, amount, currency, order_id) in [
        ("org_evil", "5000", "usd", order.id.as_str()),
        (t.org.as_str(), "500", "usd", order.id.as_str()),
        (t.org.as_str(), "5000", "eur", order.id.as_str()),
        (t.org.as_str(), "5000", "usd", "ord_sandbox_one"),
        (t.org.as_str(), "5000", "usd", "ord_missing"),
    ] {
        let s: Value = t
            .client
            .post(format!("{base}/v1/checkout/sessions"))
            .bearer_auth(STRIPE_KEY)
            .header("Stripe-Version", "2024-06-20")
            .header(
                "Idempotency-Key",
                format!("forge-{org}-{amount}-{currency}-{order_id}"),
            )
            .form(&[
                ("client_reference_id", order_id),
                ("metadata[order_id]", order_id),
                ("metadata[organization_id]", org),
                ("line_items[0][quantity]", "1"),
                ("line_items[0][price_data][currency]", currency),
                ("line_items[0][price_data][unit_amount]", amount),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let paid = fake_pay(&t, &base, s["id"].as_str().unwrap(), "4242424242424242").await;
        forged_events.push(paid["event"].clone());
    }
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    // Each was answered 200 (Stripe stops retrying) and logged with the reason.
    for e in &forged_events {
        assert_eq!(fake.deliver(e).await, Some(200));
        let id = e["id"].as_str().unwrap();
        let logged = t
            .app
            .db
            .provider_event_outcome(creditgate_core::payments::Provider::Stripe, id)
            .await
            .unwrap()
            .unwrap();
        assert!(logged.starts_with("ignored: "), "{id}: {logged}");
    }
    let untouched = t.app.db.order(&sandbox_order.id).await.unwrap().unwrap();
    assert_eq!(untouched.status, OrderStatus::Open);
    let stored = t.app.db.order(&order.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Open);
    // Expiry at Stripe: the order says so.
    t.client
        .post(format!(
            "{base}/_test/checkout/sessions/{}/expire",
            order.provider_ref.unwrap()
        ))
        .send()
        .await
        .unwrap();
    let stored = t.app.db.order(&order.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Expired);
    assert!(stored.failure.unwrap().message.contains("expired"));
}

fn chrono_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn refunds_and_disputes_at_stripe_claw_back_once(setup: Setup) {
    let (t, fake) = stripe_buyer_on(setup).await;
    let base = t.app.cfg.payments.stripe.as_ref().unwrap().api_base.clone();
    let order = checkout(&t, "credits-10000", None).await;
    let session = order.provider_ref.clone().unwrap();
    let paid = fake_pay(&t, &base, &session, "4242424242424242").await;
    let pi = paid["session"]["payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(t.balance().await.posted, credits("10000"));

    // A partial refund made in Stripe's dashboard: $25 of $50 takes back 5,000 credits.
    let refund = t
        .client
        .post(format!("{base}/v1/refunds"))
        .bearer_auth(STRIPE_KEY)
        .header("Stripe-Version", "2024-06-20")
        .header("Idempotency-Key", "dashboard-refund-1")
        .form(&[("payment_intent", pi.as_str()), ("amount", "2500")])
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), 200);
    assert_eq!(t.balance().await.posted, credits("5000"));
    let refunded_event = fake.events().last().unwrap().clone();
    assert_eq!(refunded_event["type"], "charge.refunded");
    assert_eq!(fake.deliver(&refunded_event).await, Some(200));
    assert_eq!(t.balance().await.posted, credits("5000"));

    // The operator refunds the rest: clawed back once, and Stripe's cumulative total that
    // follows takes nothing more.
    let (after, cents) = t
        .app
        .payments
        .refund(&t.app, &order.id, &Actor::operator())
        .await
        .unwrap();
    assert_eq!(cents, 2_500);
    assert_eq!(after.refunded_cents, 5_000);
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    assert_eq!(t.balance().await.debt, NanoCredits::ZERO);
    assert_eq!(t.app.db.order_clawbacks(&order.id).await.unwrap().len(), 2);

    // Another purchase is disputed: what the lot has is clawed back; winning restores it.
    let second = checkout(&t, "credits-10000", None).await;
    let paid = fake_pay(
        &t,
        &base,
        second.provider_ref.as_ref().unwrap(),
        "4242424242424242",
    )
    .await;
    let pi = paid["session"]["payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(t.balance().await.posted, credits("10000"));
    let created: Value = t
        .client
        .post(format!("{base}/_test/charges/{pi}/dispute"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    let stored = t.app.db.order(&second.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Disputed);
    let dispute = created["data"]["object"]["id"].as_str().unwrap().to_owned();
    t.client
        .post(format!("{base}/_test/disputes/{dispute}/close"))
        .json(&json!({"won": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(t.balance().await.posted, credits("10000"));
    // The dispute's event again changes nothing.
    assert_eq!(fake.deliver(&created).await, Some(200));
    assert_eq!(t.balance().await.posted, credits("10000"));
    let stored = t.app.db.order(&second.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Credited);
    assert!(t.app.db.verify().await.unwrap().is_clean());
}
