//! Saved cards and off-session charges, on the sandbox and on the fake Stripe (SetupIntents on
//! the organization's Customer, off-session PaymentIntents, their webhooks), and the dispute
//! card `4000 0000 0000 0259` on both.

use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::{FailureCode, OrderStatus, Quote};
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{admin_key, call, Cred};
use crate::helpers::{credits, Setup, TestApp};
use crate::payments::{buyer_on, checkout, fake_pay, pay_json, stripe_buyer_on};

crate::on_both_databases!(
    the_sandbox_saves_cards_and_charges_them_off_session_once_per_key,
    stripe_saves_a_card_with_a_setup_intent_and_charges_it_off_session,
    the_sandbox_dispute_card_claws_back_and_a_won_dispute_restores,
    the_dispute_card_at_stripe_is_clawed_back_through_the_webhook,
);

fn pack_1000() -> Quote {
    Quote {
        plan_id: Some("credits-1000".to_owned()),
        credits: credits("1000"),
        amount_cents: 500,
        expires_in_days: None,
    }
}

async fn start_setup(t: &TestApp, cred: &Cred) -> (String, String) {
    let r = call(t, Method::POST, "/v1/billing/payment_methods", cred, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["payment_method"]["status"], "pending");
    (
        r.body["payment_method"]["id"].as_str().unwrap().to_owned(),
        r.body["setup_url"].as_str().unwrap().to_owned(),
    )
}

async fn sandbox_save(t: &TestApp, url: &str, card: &str, confirm: bool) -> Value {
    let mut body = json!({"card": card});
    if confirm {
        body["confirm"] = json!("true");
    }
    let resp = t.client.post(url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.unwrap()
}

/// Saves `card` on the sandbox; returns the payment method's id.
pub(crate) async fn sandbox_card(t: &TestApp, cred: &Cred, card: &str) -> String {
    let (id, url) = start_setup(t, cred).await;
    let mut saved = sandbox_save(t, &url, card, false).await;
    if saved["next_action"] == "confirm" {
        assert_eq!(saved["payment_method"]["status"], "pending");
        saved = sandbox_save(t, &url, card, true).await;
    }
    assert_eq!(saved["payment_method"]["status"], "active", "{saved}");
    id
}

async fn the_sandbox_saves_cards_and_charges_them_off_session_once_per_key(setup: Setup) {
    let t = buyer_on(setup, "").await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let (pending, url) = start_setup(&t, &cred).await;
    assert_eq!(url, format!("{}/sandbox/setup/{pending}", t.address));
    let page = t.client.get(&url).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("Save card"));
    // A number that is no test card, from the page's form: the form again with the reason
    // beside the field (not the API's JSON); the setup stays pending.
    let wrong = t
        .client
        .post(&url)
        .form(&[("card", "4111 1111 1111 1111")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    let page = wrong.text().await.unwrap();
    assert!(page.contains("aria-describedby=\"card-error\""), "{page}");
    assert!(
        page.contains("test cards") && !page.contains("\"error\""),
        "{page}"
    );
    let missing = t
        .client
        .post(format!("{}/sandbox/setup/card_nope", t.address))
        .form(&[("card", "4242424242424242")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing
        .text()
        .await
        .unwrap()
        .contains("no sandbox card setup"));
    // Cards that cannot be saved say why; the method is not usable.
    let declined = sandbox_save(&t, &url, "4000000000009995", false).await;
    assert_eq!(declined["payment_method"]["status"], "failed");
    assert!(declined["payment_method"]["failure"]
        .as_str()
        .unwrap()
        .contains("insufficient funds"));
    let err = t
        .app
        .payments
        .charge_saved(&t.app, &t.org, &pending, &pack_1000(), "k0")
        .await;
    assert!(err.is_err());

    let visa = sandbox_card(&t, &cred, "4242 4242 4242 4242").await;
    let list = call(&t, Method::GET, "/v1/billing/payment_methods", &cred, None).await;
    let shown = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == visa.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (
            &shown["brand"],
            &shown["last4"],
            &shown["exp_month"],
            &shown["exp_year"]
        ),
        (&json!("visa"), &json!("4242"), &json!(12), &json!(2034))
    );
    assert!(
        !list.body.to_string().contains("4242424242424242"),
        "never a card number"
    );

    // One key, one charge, however often it is retried; another key, another charge.
    let p = &t.app.payments;
    let first = p
        .charge_saved(&t.app, &t.org, &visa, &pack_1000(), "reload-1")
        .await
        .unwrap();
    assert_eq!(first.status, OrderStatus::Credited);
    assert_eq!(first.method.as_deref(), Some("visa •••• 4242"));
    let again = p
        .charge_saved(&t.app, &t.org, &visa, &pack_1000(), "reload-1")
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(t.balance().await.posted, credits("1000"));
    p.charge_saved(&t.app, &t.org, &visa, &pack_1000(), "reload-2")
        .await
        .unwrap();
    assert_eq!(t.balance().await.posted, credits("2000"));

    // Saved but every charge declined; saved after confirming, but off-session it needs the
    // customer: both fail, saying why, and change nothing.
    for (card, code) in [
        ("4000000000000341", FailureCode::CardDeclined),
        ("4000002760003184", FailureCode::AuthenticationRequired),
    ] {
        let m = sandbox_card(&t, &cred, card).await;
        let o = p
            .charge_saved(&t.app, &t.org, &m, &pack_1000(), card)
            .await
            .unwrap();
        assert_eq!(o.status, OrderStatus::Failed, "{card}");
        assert_eq!(o.failure.as_ref().unwrap().code, code);
        assert!(o.failure.unwrap().message.contains("Nothing was charged"));
    }
    assert_eq!(t.balance().await.posted, credits("2000"));

    // Removed: listed no more, not chargeable; another organization's card is 404.
    let path = format!("/v1/billing/payment_methods/{visa}");
    let r = call(&t, Method::DELETE, &path, &cred, None).await;
    assert_eq!(r.body["type"], "payment_method_deleted", "{}", r.body);
    assert_eq!(
        call(&t, Method::DELETE, &path, &cred, None).await.status,
        404
    );
    assert!(p
        .charge_saved(&t.app, &t.org, &visa, &pack_1000(), "reload-3")
        .await
        .is_err());
    let (other, _) = t.other_org(NanoCredits::ZERO).await;
    let theirs = Cred::Key(admin_key(&t, &other).await);
    let their_card = sandbox_card(&t, &theirs, "4242424242424242").await;
    let r = call(
        &t,
        Method::DELETE,
        &format!("/v1/billing/payment_methods/{their_card}"),
        &cred,
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(p
        .charge_saved(&t.app, &t.org, &their_card, &pack_1000(), "x")
        .await
        .is_err());
    let log = call(&t, Method::GET, "/v1/organizations/audit_log", &cred, None).await;
    let text = log.body.to_string();
    assert!(text.contains("payment_method.added") && text.contains("payment_method.removed"));
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn stripe_saves_a_card_with_a_setup_intent_and_charges_it_off_session(setup: Setup) {
    let (t, fake) = stripe_buyer_on(setup).await;
    let base = t.app.cfg.payments.stripe.as_ref().unwrap().api_base.clone();
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let save = |card: &'static str| {
        let (t, base, cred) = (&t, base.clone(), cred.clone());
        async move {
            let (id, url) = start_setup(t, &cred).await;
            assert!(url.starts_with("https://checkout.fake/cs_test"), "{url}");
            let m = t.app.db.payment_method(&id).await.unwrap().unwrap();
            let session = m.setup_ref.unwrap();
            let mut r = fake_pay(t, &base, &session, card).await;
            if r["next_action"] == "confirm" {
                r = t
                    .client
                    .post(format!("{base}/_test/checkout/sessions/{session}/pay"))
                    .json(&json!({"card": card, "confirm": true}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            }
            (id, r)
        }
    };
    let (visa, _) = save("4242424242424242").await;
    let m = t.app.db.payment_method(&visa).await.unwrap().unwrap();
    assert_eq!(m.status.as_str(), "active");
    assert_eq!(m.card.unwrap().last4, "4242");
    // The setup session's own completion is acknowledged and credits nothing.
    let completed = fake
        .events()
        .into_iter()
        .find(|e| e["type"] == "checkout.session.completed")
        .unwrap();
    assert_eq!(completed["data"]["object"]["mode"], "setup");
    assert_eq!(fake.deliver(&completed).await, Some(200));
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    let customer = t.app.db.stripe_customer(&t.org).await.unwrap().unwrap();
    assert_eq!(m.customer_ref.as_deref(), Some(customer.as_str()));
    let (declined, r) = save("4000000000000002").await;
    assert!(r["declined"].is_string(), "{r}");
    let failed = t.app.db.payment_method(&declined).await.unwrap().unwrap();
    assert_eq!(failed.status.as_str(), "failed");

    let p = &t.app.payments;
    let order = p
        .charge_saved(&t.app, &t.org, &visa, &pack_1000(), "auto-1")
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Credited, "{order:?}");
    let pi = order.provider_ref.clone().unwrap();
    assert!(pi.starts_with("pi_"), "{pi}");
    let again = p
        .charge_saved(&t.app, &t.org, &visa, &pack_1000(), "auto-1")
        .await
        .unwrap();
    assert_eq!(again.id, order.id);
    assert_eq!(t.balance().await.posted, credits("1000"));
    // Rechecking an off-session order asks Stripe about its PaymentIntent.
    let path = format!("/admin/v1/orders/{}/recheck", order.id);
    let r = call(&t, Method::POST, &path, &Cred::Operator, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["outcome"], "already_credited");
    // The intent's event, delivered ten times at once: still once.
    let event = fake
        .events()
        .into_iter()
        .find(|e| {
            e["type"] == "payment_intent.succeeded" && e["data"]["object"]["id"] == pi.as_str()
        })
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (fake, event) = (fake.clone(), event.clone());
        tasks.push(tokio::spawn(async move { fake.deliver(&event).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), Some(200));
    }
    assert_eq!(t.balance().await.posted, credits("1000"));

    for (card, code) in [
        ("4000000000000341", FailureCode::CardDeclined),
        ("4000002760003184", FailureCode::AuthenticationRequired),
    ] {
        let (m, _) = save(card).await;
        let o = p
            .charge_saved(&t.app, &t.org, &m, &pack_1000(), card)
            .await
            .unwrap();
        assert_eq!(o.status, OrderStatus::Failed, "{card}: {o:?}");
        assert_eq!(o.failure.unwrap().code, code, "{card}");
    }
    assert_eq!(t.balance().await.posted, credits("1000"));

    // An off-session order refunds through its PaymentIntent.
    let (refunded, cents) = p
        .refund(
            &t.app,
            &order.id,
            &creditgate_core::accounts::Actor::operator(),
        )
        .await
        .unwrap();
    assert_eq!((refunded.status, cents), (OrderStatus::Refunded, 500));
    let r = call(
        &t,
        Method::DELETE,
        &format!("/v1/billing/payment_methods/{visa}"),
        &cred,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pm = m.provider_ref.clone().unwrap();
    let detached = t
        .client
        .get(format!("{base}/v1/payment_methods/{pm}"))
        .bearer_auth(crate::payments::STRIPE_KEY)
        .header("stripe-version", "2024-06-20")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(detached["customer"], Value::Null);
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn the_sandbox_dispute_card_claws_back_and_a_won_dispute_restores(setup: Setup) {
    let t = buyer_on(setup, "").await;
    let order = checkout(&t, "credits-10000", None).await;
    let paid = pay_json(&t, &order.id, "4000 0000 0000 0259").await;
    assert_eq!(paid["order"]["status"], "disputed", "{paid}");
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let shown = call(
        &t,
        Method::GET,
        &format!("/v1/billing/orders/{}", order.id),
        &cred,
        None,
    )
    .await;
    let clawbacks = shown.body["clawbacks"].as_array().unwrap().clone();
    assert_eq!(clawbacks.len(), 1, "{}", shown.body);
    assert_eq!(clawbacks[0]["kind"], "dispute");
    assert_eq!(clawbacks[0]["credits"], "10000");
    let close = format!("/admin/v1/orders/{}/sandbox_dispute", order.id);
    let won = call(
        &t,
        Method::POST,
        &close,
        &Cred::Operator,
        Some(json!({"won": true})),
    )
    .await;
    assert_eq!(won.status, 200, "{}", won.body);
    assert_eq!(won.body["order"]["status"], "credited");
    assert_eq!(t.balance().await.posted, credits("10000"));
    let twice = call(
        &t,
        Method::POST,
        &close,
        &Cred::Operator,
        Some(json!({"won": true})),
    )
    .await;
    assert_eq!(twice.status, 200);
    assert_eq!(t.balance().await.posted, credits("10000"), "won once");

    // Disputed and lost: what the dispute took stays taken.
    let lost = checkout(&t, "credits-1000", None).await;
    pay_json(&t, &lost.id, "4000000000000259").await;
    let close = format!("/admin/v1/orders/{}/sandbox_dispute", lost.id);
    let r = call(
        &t,
        Method::POST,
        &close,
        &Cred::Operator,
        Some(json!({"won": false})),
    )
    .await;
    assert_eq!(r.body["order"]["status"], "disputed", "{}", r.body);
    assert_eq!(t.balance().await.posted, credits("10000"));
    let none = checkout(&t, "credits-1000", None).await;
    let r = call(
        &t,
        Method::POST,
        &format!("/admin/v1/orders/{}/sandbox_dispute", none.id),
        &Cred::Operator,
        Some(json!({"won": true})),
    )
    .await;
    assert_eq!(r.status, 400, "no dispute to close: {}", r.body);
    let log = call(&t, Method::GET, "/v1/organizations/audit_log", &cred, None).await;
    let text = log.body.to_string();
    assert!(text.contains("payment.disputed") && text.contains("payment.dispute_won"));
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn the_dispute_card_at_stripe_is_clawed_back_through_the_webhook(setup: Setup) {
    let (t, _fake) = stripe_buyer_on(setup).await;
    let base = t.app.cfg.payments.stripe.as_ref().unwrap().api_base.clone();
    let order = checkout(&t, "credits-10000", None).await;
    let session = order.provider_ref.clone().unwrap();
    let r = fake_pay(&t, &base, &session, "4000000000000259").await;
    assert!(r["dispute"].is_object(), "{r}");
    let stored = t.app.db.order(&order.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Disputed);
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    let clawbacks = t.app.db.order_clawbacks(&order.id).await.unwrap();
    assert_eq!(clawbacks.len(), 1);
    assert!(clawbacks[0].transfer_id.starts_with("dispute:dp_"));
    assert!(t.app.db.verify().await.unwrap().is_clean());
}
