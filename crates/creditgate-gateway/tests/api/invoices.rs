//! Monthly invoices of invoiced organizations (`docs/credit-lines.md`), driven by a test clock:
//! spending on the line, the job drafting last month's invoice once (also when run twice at
//! once), the month of a request being the month of its settlement, paying by the operator,
//! and an overdue invoice suspending the line.

use std::sync::Arc;
use std::time::Duration;

use creditgate_core::accounts::Role;
use creditgate_core::clock::{ManualClock, Timestamp};
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::{Decimal, NanoCredits};
use creditgate_core::payments::invoice::amounts;
use creditgate_core::payments::tax::TaxRate;
use creditgate_gateway::invoices::run_pass;
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{actions, add_member, admin_key, call, outbox, Cred};
use crate::helpers::{body, credits, JsonReply, Setup, TestApp};
use crate::on_both_databases;

on_both_databases!(
    a_month_on_the_line_is_invoiced_once_and_paying_it_credits_the_balance_back,
    an_overdue_invoice_suspends_the_line_until_it_is_paid,
    an_invoice_is_paid_through_the_sandbox_once,
    an_invoice_is_paid_through_stripe_checkout_once,
    a_french_invoice_carries_the_configured_tax,
);

pub(crate) const BILLING_EMAIL: &str = "billing@invoiced.example";

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("a UTC time")
}

fn amount(v: &Value) -> NanoCredits {
    credits(v.as_str().unwrap_or_else(|| panic!("an amount: {v}")))
}

/// An app on a test clock at `start`, its organization invoiced with a line of three holds of
/// `request`, and an organization admin key (for the billing routes).
async fn invoiced(
    setup: Setup,
    start: &str,
    extra_toml: &str,
) -> (Arc<TestApp>, ManualClock, String) {
    let clock = ManualClock::new(at(start));
    let t = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        clock: Some(clock.clone()),
        extra_toml: format!("{}\n{extra_toml}", setup.extra_toml),
        ..setup
    })
    .await;
    let hold = t.estimate(&body(1024, "")).with_output(1024).unwrap();
    let limit = hold.checked_mul(3).unwrap();
    let path = format!("/admin/v1/organizations/{}", t.org);
    let line = json!({"billing_mode": "invoiced", "credit_limit": limit});
    let r = call(&t, Method::POST, &path, &Cred::Operator, Some(line)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    add_member(&t, &t.org, BILLING_EMAIL, Role::Billing).await;
    let key = admin_key(&t, &t.org).await;
    (Arc::new(t), clock, key)
}

async fn billing(t: &TestApp, key: &str, path: &str) -> JsonReply {
    call(t, Method::GET, path, &Cred::Key(key.to_owned()), None).await
}

async fn mark_paid(t: &TestApp, id: &str) -> JsonReply {
    let path = format!("/admin/v1/invoices/{id}/mark_paid");
    call(t, Method::POST, &path, &Cred::Operator, None).await
}

/// Spends on the line until refused; returns what was charged.
async fn spend_to_the_limit(t: &TestApp) -> NanoCredits {
    let mut spent = NanoCredits::ZERO;
    loop {
        let r = t.message(&body(1024, "output_tokens=20")).await;
        if r.status == 402 {
            return spent;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        spent = spent.checked_add(r.charged()).unwrap();
    }
}

/// A stream admitted on the last second of January whose settlement lands in February.
async fn request_across_the_month_end(t: &Arc<TestApp>, clock: &ManualClock) -> NanoCredits {
    clock.set(at("2026-01-31T23:59:59Z"));
    let mut slow = body(1024, "output_tokens=10 chunk_tokens=1 latency_ms=50");
    slow["stream"] = json!(true);
    let open = {
        let (t, slow) = (t.clone(), slow.clone());
        tokio::spawn(async move { t.stream(&slow).await })
    };
    while t.balance().await.active_holds == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    clock.set(at("2026-02-01T00:00:00Z"));
    let reply = open.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.raw);
    reply.charged()
}

async fn a_month_on_the_line_is_invoiced_once_and_paying_it_credits_the_balance_back(setup: Setup) {
    let (t, clock, key) = invoiced(setup, "2026-01-20T10:00:00Z", "").await;
    let mut january = NanoCredits::ZERO;
    for _ in 0..2 {
        let r = t.message(&body(1024, "output_tokens=20")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        january = january.checked_add(r.charged()).unwrap();
    }
    assert_eq!(
        t.balance().await.debt,
        january,
        "spent past zero on the line"
    );
    // Nothing to invoice yet: December had no usage, January is not over.
    assert!(run_pass(&t.app).await.unwrap().drafted.is_empty());
    let mut february = request_across_the_month_end(&t, &clock).await;

    // The job runs on the 1st, twice at once (two replicas): one invoice.
    clock.set(at("2026-02-01T00:00:05Z"));
    let (a, b) = tokio::join!(run_pass(&t.app), run_pass(&t.app));
    let drafted: Vec<_> = a
        .unwrap()
        .drafted
        .into_iter()
        .chain(b.unwrap().drafted)
        .collect();
    assert_eq!(drafted.len(), 1, "{drafted:?}");
    assert!(
        run_pass(&t.app).await.unwrap().drafted.is_empty(),
        "and not again"
    );
    let id = check_january_invoice(&t, &key, january).await;

    // In February the line runs out: refused, nothing forwarded, never past the limit.
    february = february.checked_add(spend_to_the_limit(&t).await).unwrap();
    let owed = t.balance().await.debt;
    assert_eq!(owed, january.checked_add(february).unwrap());

    // The operator marks January paid: its credits come back as a lot that repays the debt.
    let paid = mark_paid(&t, &id).await;
    assert_eq!(
        (
            paid.status,
            paid.body["status"].as_str(),
            paid.body["paid_now"].as_bool()
        ),
        (200, Some("paid"), Some(true)),
        "{}",
        paid.body
    );
    let again = mark_paid(&t, &id).await;
    assert_eq!(
        (again.status, again.body["paid_now"].as_bool()),
        (200, Some(false))
    );
    assert_eq!(
        t.balance().await.debt,
        february,
        "what is left owed is February's"
    );
    // The journal: issued to the invoice's lot, which repaid the debt with all of it.
    let lot = format!("lot:{}", paid.body["lot_id"].as_str().unwrap());
    let moved: Vec<(String, String, NanoCredits)> = t
        .app
        .db
        .entries(&t.org)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.transfer_id.as_str() == format!("invoice-paid:{id}"))
        .map(|e| (e.debit, e.credit, e.amount))
        .collect();
    let overdraft = format!("overdraft:{}", t.org);
    assert_eq!(
        moved,
        [
            ("sys:issuance".to_owned(), lot.clone(), january),
            (lot, overdraft, january)
        ]
    );
    let r = t.message(&body(1024, "output_tokens=20")).await;
    assert_eq!(r.status, 200, "the line admits again: {}", r.body);
    february = february.checked_add(r.charged()).unwrap();

    // February's invoice holds the request settled on its first second.
    clock.set(at("2026-03-01T00:00:01Z"));
    let feb = run_pass(&t.app).await.unwrap().drafted;
    assert_eq!(feb.len(), 1);
    assert_eq!(
        (feb[0].credits, feb[0].number.as_str()),
        (february, "INV-2026-000002")
    );
    t.assert_ledger_clean().await;
    let path = format!("/admin/v1/audit_log?organization_id={}", t.org);
    let acts = actions(&call(&t, Method::GET, &path, &Cred::Operator, None).await);
    assert_eq!(
        acts.iter().filter(|a| *a == "invoice.drafted").count(),
        2,
        "{acts:?}"
    );
    assert_eq!(
        acts.iter().filter(|a| *a == "invoice.paid").count(),
        1,
        "{acts:?}"
    );
    refusals(&t, &key, &id).await;
}

/// January's invoice as the billing routes show it; returns its id.
async fn check_january_invoice(t: &TestApp, key: &str, january: NanoCredits) -> String {
    let list = billing(t, key, "/v1/billing/invoices").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let data = list.body["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 1, "{}", list.body);
    let inv = &data[0];
    // January's usage: everything settled in January, not the request settled on Feb 1.
    assert_eq!(amount(&inv["credits"]), january);
    let a = amounts(
        january,
        "0.005".parse::<Decimal>().unwrap(),
        TaxRate::ZERO,
        false,
    )
    .unwrap();
    assert_eq!(inv["number"], "INV-2026-000001");
    assert_eq!(
        (inv["subtotal_cents"].as_i64(), inv["tax_cents"].as_i64()),
        (Some(a.subtotal_cents), Some(0))
    );
    assert_eq!(inv["amount_cents"].as_i64(), Some(a.amount_cents));
    assert_eq!(
        (inv["period_start"].as_str(), inv["period_end"].as_str()),
        (Some("2026-01-01T00:00:00Z"), Some("2026-02-01T00:00:00Z"))
    );
    assert_eq!(
        (inv["status"].as_str(), inv["due_at"].as_str()),
        (Some("open"), Some("2026-03-03T00:00:05Z"))
    );
    let id = inv["id"].as_str().unwrap().to_owned();
    let one = billing(t, key, &format!("/v1/billing/invoices/{id}")).await;
    assert_eq!(one.body, *inv);
    let html = billing(t, key, &format!("/v1/billing/invoices/{id}/html")).await;
    let page = html.body.as_str().unwrap_or_default();
    assert!(
        page.contains("Invoice INV-2026-000001") && page.contains("Total due"),
        "{page}"
    );
    let mails = outbox(t);
    assert!(
        mails
            .iter()
            .any(|m| m.contains("Invoice INV-2026-000001 is ready")),
        "{mails:?}"
    );
    id
}

/// Unknown or foreign invoices answer 404; a developer may not read invoices.
async fn refusals(t: &TestApp, key: &str, id: &str) {
    assert_eq!(mark_paid(t, "inv_nope").await.status, 404);
    let (other, _) = t.other_org(NanoCredits::ZERO).await;
    let other_key = admin_key(t, &other).await;
    assert_eq!(
        billing(t, &other_key, &format!("/v1/billing/invoices/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        billing(t, &other_key, &format!("/v1/billing/invoices/{id}/html"))
            .await
            .status,
        404
    );
    let r = call(
        t,
        Method::POST,
        &format!("/admin/v1/invoices/{id}/mark_paid"),
        &Cred::Key(key.to_owned()),
        None,
    )
    .await;
    assert_eq!(r.status, 401, "only the operator marks paid: {}", r.body);
}

async fn an_overdue_invoice_suspends_the_line_until_it_is_paid(setup: Setup) {
    let toml = "[invoices]\nsuspend_when_overdue = true\ndue_days = 10\n";
    let (t, clock, _key) = invoiced(setup, "2026-01-20T10:00:00Z", toml).await;
    assert_eq!(t.message(&body(1024, "output_tokens=20")).await.status, 200);
    clock.set(at("2026-02-01T01:00:00Z"));
    let pass = run_pass(&t.app).await.unwrap();
    assert_eq!((pass.drafted.len(), pass.suspended.len()), (1, 0));
    let id = pass.drafted[0].id.to_string();
    // The line still has room for two more holds while the invoice is not yet due.
    assert_eq!(t.message(&body(1024, "output_tokens=20")).await.status, 200);

    clock.set(at("2026-02-11T01:00:00Z"));
    let pass = run_pass(&t.app).await.unwrap();
    assert_eq!(pass.suspended, vec![t.org.clone()]);
    assert!(
        run_pass(&t.app).await.unwrap().suspended.is_empty(),
        "suspended once"
    );
    let refused = t.message(&body(1024, "output_tokens=20")).await;
    refused.assert_error(402, "billing_error");
    let c = t.get("/v1/credits").await.body;
    assert_eq!(c["credit_line_suspended_at"], "2026-02-11T01:00:00Z");
    assert_eq!(amount(&c["spendable"]), amount(&c["available"]));
    let mails = outbox(&t);
    assert!(
        mails
            .iter()
            .any(|m| m.contains(BILLING_EMAIL) && m.contains("is overdue")),
        "{mails:?}"
    );

    // Paying lifts the suspension: the line admits again.
    assert_eq!(mark_paid(&t, &id).await.status, 200);
    assert!(t.get("/v1/credits").await.body["credit_line_suspended_at"].is_null());
    assert_eq!(t.message(&body(1024, "output_tokens=20")).await.status, 200);
    t.assert_ledger_clean().await;
}

/// An invoiced organization with January's invoice drafted; returns the app, the invoice's id
/// and credits, and the organization admin key.
pub(crate) async fn with_january_invoice(
    setup: Setup,
) -> (Arc<TestApp>, ManualClock, String, NanoCredits, String) {
    let (t, clock, key) = invoiced(setup, "2026-01-20T10:00:00Z", "").await;
    let r = t.message(&body(1024, "output_tokens=20")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    clock.set(at("2026-02-01T00:00:05Z"));
    let drafted = run_pass(&t.app).await.unwrap().drafted;
    assert_eq!(drafted.len(), 1);
    let (id, credits) = (drafted[0].id.to_string(), drafted[0].credits);
    assert_eq!(credits, r.charged());
    (t, clock, id, credits, key)
}

async fn invoice_checkout(t: &TestApp, key: &str, id: &str) -> JsonReply {
    let path = format!("/v1/billing/invoices/{id}/checkout");
    call(
        t,
        Method::POST,
        &path,
        &Cred::Key(key.to_owned()),
        Some(json!({})),
    )
    .await
}

/// After the provider's verified payment: the invoice is paid once, by the provider, its
/// credits repaid the debt, and neither the operator nor a second checkout pays it again.
async fn assert_paid_once(t: &TestApp, key: &str, id: &str, by: &str, order: &str) {
    let inv = billing(t, key, &format!("/v1/billing/invoices/{id}"))
        .await
        .body;
    assert_eq!(
        (inv["status"].as_str(), inv["paid_by"].as_str()),
        (Some("paid"), Some(by)),
        "{inv}"
    );
    assert_eq!(t.balance().await.debt, NanoCredits::ZERO);
    let order = billing(t, key, &format!("/v1/billing/orders/{order}"))
        .await
        .body;
    assert_eq!(order["status"], "credited", "{order}");
    assert_eq!(order["lot_id"], inv["lot_id"]);
    let again = mark_paid(t, id).await;
    assert_eq!(
        (again.status, again.body["paid_now"].as_bool()),
        (200, Some(false))
    );
    invoice_checkout(t, key, id)
        .await
        .assert_error(409, "invalid_request_error");
    t.assert_ledger_clean().await;
}

async fn an_invoice_is_paid_through_the_sandbox_once(setup: Setup) {
    let (t, _clock, id, credits, key) = with_january_invoice(setup).await;
    assert_eq!(t.balance().await.debt, credits);
    let r = invoice_checkout(&t, &key, &id).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let order = r.body["order"]["id"].as_str().unwrap().to_owned();
    let inv = billing(&t, &key, &format!("/v1/billing/invoices/{id}"))
        .await
        .body;
    assert_eq!(r.body["order"]["amount_cents"], inv["amount_cents"]);
    assert_eq!(amount(&r.body["order"]["credits"]), credits);
    let order_id = creditgate_core::ids::OrderId::parse(&order).unwrap();
    // A declined card pays nothing: the order fails, the invoice stays open for another try.
    let declined = crate::payments::pay_json(&t, &order_id, "4000000000000002").await;
    assert_eq!(declined["order"]["status"], "failed", "{declined}");
    assert_eq!(t.balance().await.debt, credits);
    let r = invoice_checkout(&t, &key, &id).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let order = r.body["order"]["id"].as_str().unwrap().to_owned();
    let order_id = creditgate_core::ids::OrderId::parse(&order).unwrap();
    let paid = crate::payments::pay_json(&t, &order_id, "4242424242424242").await;
    assert_eq!(paid["order"]["status"], "credited", "{paid}");
    assert_paid_once(&t, &key, &id, "sandbox", &order).await;
}

async fn an_invoice_is_paid_through_stripe_checkout_once(setup: Setup) {
    let (fake, fake_addr) = crate::payments::fake_stripe().await;
    let setup = crate::payments::stripe_setup(setup, fake_addr, "");
    let (t, clock, id, credits, key) = with_january_invoice(setup).await;
    fake.set_webhook_url(&format!("{}/webhooks/stripe", t.address));
    // Stripe signs its events with the real time: the gateway's clock goes back to it.
    clock.set(crate::helpers::now());
    let r = invoice_checkout(&t, &key, &id).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let order = r.body["order"]["id"].as_str().unwrap().to_owned();
    let stored = t
        .app
        .db
        .order(&creditgate_core::ids::OrderId::parse(&order).unwrap())
        .await
        .unwrap()
        .unwrap();
    let session = stored.provider_ref.expect("a checkout session");
    let base = format!("http://{fake_addr}");
    let paid = crate::payments::fake_pay(&t, &base, &session, "4242424242424242").await;
    assert_eq!(paid["session"]["payment_status"], "paid", "{paid}");
    assert_eq!(
        t.balance().await.debt,
        NanoCredits::ZERO,
        "owed {credits}, repaid"
    );
    // The event again: nothing more.
    assert_eq!(fake.deliver(&paid["event"]).await, Some(200));
    assert_paid_once(&t, &key, &id, "stripe", &order).await;
}

async fn a_french_invoice_carries_the_configured_tax(setup: Setup) {
    let toml = "[tax]\nrates = { FR = \"0.20\" }\n[invoices]\nusd_per_credit = \"5\"\n";
    let (t, clock, key) = invoiced(setup, "2026-01-20T10:00:00Z", toml).await;
    crate::payments::profile(&t, "FR").await;
    let r = t.message(&body(1024, "output_tokens=20")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    clock.set(at("2026-02-01T00:00:05Z"));
    let inv = run_pass(&t.app).await.unwrap().drafted.remove(0);
    let rate = TaxRate::parse("0.20").unwrap();
    let charged = t.final_receipt(&r.request_id()).await.charged();
    let a = amounts(charged, "5".parse::<Decimal>().unwrap(), rate, false).unwrap();
    assert!(a.tax_cents > 0, "{a:?}");
    assert_eq!(
        (inv.subtotal_cents, inv.tax_cents, inv.amount_cents),
        (a.subtotal_cents, a.tax_cents, a.amount_cents)
    );
    assert_eq!(inv.amount_cents, inv.subtotal_cents + inv.tax_cents);
    assert_eq!(inv.tax_rate, "0.20");
    let path = format!("/v1/billing/invoices/{}/html", inv.id);
    let page = billing(&t, &key, &path).await.body;
    assert!(page.as_str().unwrap().contains("Tax (FR 20%)"), "{page}");
}
