//! Tax by billing country (`docs/tax.md`) over HTTP on loopback: a French buyer with
//! `FR = "0.20"` buys the 10,000 pack for 5,000 + 1,000 tax = 6,000 cents through the sandbox
//! and through the fake Stripe (whose Checkout total is computed from the line items it
//! receives); prices that include tax; manual payments split by the same rule; a country
//! without a rate pays no tax; an unknown country code is refused and changes nothing.

use creditgate_core::accounts::Role;
use creditgate_core::ids::OrderId;
use creditgate_core::ledger::LedgerStore;
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{call, member, Cred};
use crate::helpers::{credits, JsonReply, Setup, TestApp};
use crate::payments::{fake_pay, fake_stripe, profile, stripe_setup};

crate::on_both_databases!(
    a_french_buyer_pays_5000_plus_1000_tax_through_the_sandbox,
    the_stripe_checkout_carries_the_tax_as_its_own_line,
    prices_that_include_tax_are_split_not_raised,
);

const TAX: &str = "[tax]\nrates = { FR = \"0.20\", DE = \"0.19\" }\n";
const SELLER: &str = "[payments.seller]\nname = \"Seller SAS\"\ntax_id = \"FR99SELLER\"\n";

async fn taxed_shop(base: Setup, tax: &str) -> TestApp {
    TestApp::spawn_with(Setup {
        credits: creditgate_core::money::NanoCredits::ZERO,
        extra_toml: format!("{tax}{SELLER}"),
        ..base
    })
    .await
}

fn split(order: &Value) -> (i64, i64, i64, &str) {
    (
        order["subtotal_cents"].as_i64().unwrap(),
        order["tax_cents"].as_i64().unwrap(),
        order["amount_cents"].as_i64().unwrap(),
        order["tax_rate"].as_str().unwrap(),
    )
}

async fn buy(t: &TestApp, cred: &Cred, plan: &str) -> JsonReply {
    let pick = json!({ "plan_id": plan });
    call(t, Method::POST, "/v1/billing/checkout", cred, Some(pick)).await
}

async fn receipt(t: &TestApp, id: &str) -> String {
    let r = t.client.get(t.url(&format!("/receipts/{id}"))).send();
    r.await.unwrap().text().await.unwrap()
}

async fn a_french_buyer_pays_5000_plus_1000_tax_through_the_sandbox(setup: Setup) {
    let t = taxed_shop(setup, TAX).await;
    let buyer = member(&t, "billing@example.com", Role::Billing)
        .await
        .cred();
    let fr = json!({"name": "Ada", "country": "FR", "tax_id": "FR40303265045"});
    let r = call(&t, Method::PUT, "/v1/billing/profile", &buyer, Some(fr)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // An unknown country code: 400 in the error envelope, the profile unchanged.
    for bad in ["XX", "UK", "F1"] {
        let body = json!({"name": "Ada", "country": bad});
        let r = call(&t, Method::PUT, "/v1/billing/profile", &buyer, Some(body)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.body["type"], "error");
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
        assert!(r.body["error"]["message"].as_str().unwrap().contains(bad));
    }
    let kept = call(&t, Method::GET, "/v1/billing/profile", &buyer, None).await;
    assert_eq!(kept.body["country"], "FR", "{}", kept.body);

    let r = buy(&t, &buyer, "credits-10000").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let order = r.body["order"].clone();
    assert_eq!(split(&order), (5_000, 1_000, 6_000, "0.20"));
    assert_eq!(order["tax_label"], "Tax (FR 20%)");
    assert_eq!(order["buyer_tax_id"], "FR40303265045");
    let id = order["id"].as_str().unwrap().to_owned();
    let url = r.body["checkout_url"].as_str().unwrap();
    let page = t
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("$60.00"), "the sandbox asks for the total");
    let paid =
        crate::payments::pay_json(&t, &OrderId::parse(&id).unwrap(), "4242424242424242").await;
    assert_eq!(paid["order"]["status"], "credited", "{paid}");
    assert_eq!(t.balance().await.posted, credits("10000"));

    // The profile changes afterwards: the order keeps the tax id it was made with.
    let other = json!({"name": "Ada", "country": "US", "tax_id": "US-EIN-1"});
    let r = call(&t, Method::PUT, "/v1/billing/profile", &buyer, Some(other)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = call(
        &t,
        Method::GET,
        &format!("/v1/billing/orders/{id}"),
        &buyer,
        None,
    )
    .await;
    assert_eq!(split(&got.body), (5_000, 1_000, 6_000, "0.20"));
    let html = receipt(&t, &id).await;
    for want in [
        "Subtotal</th><td class=\"subtotal\">$50.00",
        "Tax (FR 20%)</th><td class=\"tax\">$10.00",
        "Total paid</th><td class=\"total\">$60.00",
        "Tax ID: FR99SELLER",
        "FR40303265045",
    ] {
        assert!(
            html.contains(want),
            "{want} missing from the receipt: {html}"
        );
    }
    assert!(!html.contains("US-EIN-1"));
    // The dashboard's order page shows the same split and both tax ids.
    let Cred::Session { cookie, .. } = &buyer else {
        unreachable!()
    };
    let page = t.client.get(t.url(&format!("/orders/{id}")));
    let page = page.header("cookie", format!("cg_session={cookie}")).send();
    let page = page.await.unwrap().text().await.unwrap();
    for want in [
        "data-testid=\"order-subtotal\">$50.00",
        "Tax (FR 20%)</dt><dd data-testid=\"order-tax\">$10.00",
        "data-testid=\"order-total\">$60.00",
        "FR40303265045",
        "FR99SELLER",
    ] {
        assert!(
            page.contains(want),
            "{want} missing from the order page: {page}"
        );
    }

    // A country without a rate: no tax, and the order says so.
    let r = buy(&t, &buyer, "credits-10000").await;
    assert_eq!(split(&r.body["order"]), (5_000, 0, 5_000, "0"));
    assert_eq!(r.body["order"]["tax_label"], "No tax");

    // A manual payment is what was received, tax included: 6,000 from France splits 5,000 +
    // 1,000 (the profile is French again).
    let fr = json!({"name": "Ada", "country": "FR"});
    call(&t, Method::PUT, "/v1/billing/profile", &buyer, Some(fr)).await;
    let path = format!("/admin/v1/organizations/{}/payments", t.org);
    let pay = json!({"method": "bank_transfer", "reference": "SEPA-1", "amount_cents": 6000,
                     "currency": "usd", "plan_id": "credits-10000"});
    let r = call(&t, Method::POST, &path, &Cred::Operator, Some(pay)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(split(&r.body), (5_000, 1_000, 6_000, "0.20"));
    let listed = call(&t, Method::GET, "/admin/v1/orders", &Cred::Operator, None).await;
    let rows = listed.body["data"].as_array().unwrap();
    assert!(rows.iter().all(|o| o["subtotal_cents"].as_i64().unwrap()
        + o["tax_cents"].as_i64().unwrap()
        == o["amount_cents"].as_i64().unwrap()));
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn the_stripe_checkout_carries_the_tax_as_its_own_line(setup: Setup) {
    let (fake, fake_addr) = fake_stripe().await;
    let mut setup = stripe_setup(setup, fake_addr, "");
    setup.extra_toml = format!("{TAX}{}", setup.extra_toml);
    let t = TestApp::spawn_with(setup).await;
    fake.set_webhook_url(&format!("{}/webhooks/stripe", t.address));
    profile(&t, "FR").await;
    let order = crate::payments::checkout(&t, "credits-10000", None).await;
    assert_eq!(
        (order.subtotal_cents, order.tax_cents, order.amount_cents),
        (5_000, 1_000, 6_000)
    );
    let session_id = order.provider_ref.clone().expect("a checkout session");
    let session = fake.session(&session_id).unwrap();
    assert_eq!(session["amount_total"], 6000, "{session}");
    let lines: Vec<(i64, String)> = session["line_items"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let name = l["description"].as_str().unwrap_or_default().to_owned();
            (l["amount_total"].as_i64().unwrap(), name)
        })
        .collect();
    assert_eq!(
        lines,
        [
            (5_000, "10000 credits".to_owned()),
            (1_000, "Tax (FR 20%)".to_owned())
        ]
    );
    let base = t.app.cfg.payments.stripe.as_ref().unwrap().api_base.clone();
    let paid = fake_pay(&t, &base, &session_id, "4242424242424242").await;
    assert_eq!(paid["session"]["payment_status"], "paid", "{paid}");
    assert_eq!(t.balance().await.posted, credits("10000"));
    let stored = t.app.db.order(&order.id).await.unwrap().unwrap();
    assert!(stored.receipt_number.is_some());
    assert_eq!(stored.amount_cents, 6_000);
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn prices_that_include_tax_are_split_not_raised(setup: Setup) {
    let tax = format!("{TAX}prices_include_tax = true\n");
    let t = taxed_shop(setup, &tax).await;
    let buyer = member(&t, "billing@example.com", Role::Billing)
        .await
        .cred();
    for (country, want) in [
        // 5,000 / 1.20 = 4,166.67 → 4,167; 5,000 / 1.19 = 4,201.68 → 4,202.
        ("FR", (4_167, 833, 5_000, "0.20")),
        ("DE", (4_202, 798, 5_000, "0.19")),
        ("US", (5_000, 0, 5_000, "0")),
    ] {
        let body = json!({ "country": country });
        let r = call(&t, Method::PUT, "/v1/billing/profile", &buyer, Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = buy(&t, &buyer, "credits-10000").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(split(&r.body["order"]), want, "{country}");
    }
}
