//! The HTTP routes of buying credits: `/v1/billing/*` as a signed-in member or an admin key
//! (any member reads, owner/admin/billing buy; another organization's ids are 404), and the
//! operator's `/admin/v1/orders`, `/admin/v1/plans` and manual payments. Every payment, refund
//! and dispute leaves one audit event written in the transaction that moved the money.

use creditgate_core::accounts::Role;
use creditgate_core::ids::OrganizationId;
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use creditgate_gateway::payments::CheckoutRequest;
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{admin_key, call, member, Cred};
use crate::helpers::{credits, JsonReply, Setup, TestApp};

crate::on_both_databases!(
    a_billing_member_buys_a_pack_over_the_billing_routes,
    another_organizations_orders_answer_404_like_missing_ones,
    the_operator_manages_plans_and_records_manual_payments,
    operator_refunds_over_http_are_exact_once_and_audited,
    custom_amounts_outside_the_bounds_or_not_whole_are_refused,
    a_refund_is_not_blocked_by_a_credit_leases_headroom,
);

async fn shop(base: Setup) -> TestApp {
    TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        extra_toml: "[payments]\nserved_countries = [\"FR\", \"US\"]\n".to_owned(),
        ..base
    })
    .await
}

async fn as_(
    t: &TestApp,
    cred: &Cred,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> JsonReply {
    call(t, method, path, cred, body).await
}

async fn pay_form(url: &str, card: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("card={}", card.replace(' ', "+")))
        .send()
        .await
        .unwrap()
}

fn audit_actions(log: &JsonReply) -> Vec<(String, String)> {
    log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn a_billing_member_buys_a_pack_over_the_billing_routes(setup: Setup) {
    let t = shop(setup).await;
    let buyer = member(&t, "billing@example.com", Role::Billing)
        .await
        .cred();
    let dev = member(&t, "dev@example.com", Role::Developer).await.cred();

    let plans = as_(&t, &dev, Method::GET, "/v1/billing/plans", None).await;
    assert_eq!(plans.status, 200, "{}", plans.body);
    let ids: Vec<&str> = plans.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "credits-1000",
            "credits-10000",
            "credits-105000",
            "credits-275000"
        ]
    );
    assert_eq!(plans.body["data"][1]["amount_cents"], 5000);
    assert_eq!(plans.body["data"][1]["credits"], "10000");

    // No country yet: refused, saying why; then a country not served; nothing is created.
    let pick = json!({"plan_id": "credits-10000"});
    let r = as_(
        &t,
        &buyer,
        Method::POST,
        "/v1/billing/checkout",
        Some(pick.clone()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("country"));
    let de = json!({"name": "Ada", "country": "de"});
    let r = as_(&t, &buyer, Method::PUT, "/v1/billing/profile", Some(de)).await;
    assert_eq!(
        (r.status, &r.body["country"]),
        (200, &json!("DE")),
        "{}",
        r.body
    );
    let r = as_(
        &t,
        &buyer,
        Method::POST,
        "/v1/billing/checkout",
        Some(pick.clone()),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("DE"),
        "{}",
        r.body
    );
    let bad = json!({"country": "France"});
    let r = as_(&t, &buyer, Method::PUT, "/v1/billing/profile", Some(bad)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let fr = json!({"name": "Ada Lovelace", "country": "FR", "address": {"city": "Paris"}});
    let r = as_(
        &t,
        &buyer,
        Method::PUT,
        "/v1/billing/profile",
        Some(fr.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A developer reads the profile and orders but may not buy or edit.
    let r = as_(
        &t,
        &dev,
        Method::POST,
        "/v1/billing/checkout",
        Some(pick.clone()),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = as_(&t, &dev, Method::PUT, "/v1/billing/profile", Some(fr)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = as_(&t, &dev, Method::GET, "/v1/billing/profile", None).await;
    assert_eq!(r.body["address"]["city"], "Paris");
    let none: Vec<_> = t.app.db.orders(&Default::default()).await.unwrap();
    assert!(none.is_empty(), "refused checkouts create no order");

    let r = as_(&t, &buyer, Method::POST, "/v1/billing/checkout", Some(pick)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let order = r.body["order"].clone();
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["status"], "open");
    let url = r.body["checkout_url"].as_str().unwrap();
    assert_eq!(url, format!("{}/sandbox/checkout/{id}", t.address));
    let paid = pay_form(url, "4242 4242 4242 4242").await;
    assert_eq!(paid.status(), 200);
    assert_eq!(t.balance().await.posted, credits("10000"));

    let got = as_(
        &t,
        &dev,
        Method::GET,
        &format!("/v1/billing/orders/{id}"),
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["status"], "credited");
    assert_eq!(got.body["method"], "visa •••• 4242");
    let number = got.body["receipt_number"].as_str().unwrap().to_owned();
    let list = as_(&t, &dev, Method::GET, "/v1/billing/orders", None).await;
    assert_eq!(list.body["data"][0]["id"], id.as_str());
    let receipt = t
        .client
        .get(t.url(&format!("/v1/billing/orders/{id}/receipt")))
        .header("cookie", cookie_of(&dev))
        .send()
        .await
        .unwrap();
    assert_eq!(receipt.status(), 200);
    let html = receipt.text().await.unwrap();
    for want in [
        number.as_str(),
        "10000 credit",
        "$50.00",
        "Ada Lovelace",
        "Paris",
    ] {
        assert!(html.contains(want), "{want} missing from the receipt");
    }
    let credits_seen = as_(&t, &dev, Method::GET, "/v1/organizations/credits", None).await;
    assert_eq!(credits_seen.status, 200);

    let log = as_(&t, &buyer, Method::GET, "/v1/organizations/audit_log", None).await;
    let actions = audit_actions(&log);
    let credited: Vec<_> = actions
        .iter()
        .filter(|(a, target)| a == "payment.credited" && *target == id)
        .collect();
    assert_eq!(credited.len(), 1, "{actions:?}");
    assert!(actions.iter().any(|(a, _)| a == "billing_profile.updated"));
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

fn cookie_of(cred: &Cred) -> String {
    match cred {
        Cred::Session { cookie, .. } => format!("cg_session={cookie}"),
        _ => unreachable!(),
    }
}

async fn another_organizations_orders_answer_404_like_missing_ones(setup: Setup) {
    let t = shop(setup).await;
    let ours = Cred::Key(admin_key(&t, &t.org).await);
    let (other, _) = t.other_org(NanoCredits::ZERO).await;
    let theirs = their_credited_order(&t, &other).await;
    for path in [
        format!("/v1/billing/orders/{theirs}"),
        format!("/v1/billing/orders/{theirs}/receipt"),
        "/v1/billing/orders/ord_00000000000000000000000000000000".to_owned(),
        "/v1/billing/orders/not-an-id/receipt".to_owned(),
    ] {
        let r = as_(&t, &ours, Method::GET, &path, None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.body["error"]["type"], "not_found_error");
    }
    let list = as_(&t, &ours, Method::GET, "/v1/billing/orders", None).await;
    assert_eq!(list.body["data"], json!([]), "{}", list.body);
    // Theirs, as their own admin key sees it.
    let them = Cred::Key(admin_key(&t, &other).await);
    let r = as_(
        &t,
        &them,
        Method::GET,
        &format!("/v1/billing/orders/{theirs}"),
        None,
    )
    .await;
    assert_eq!((r.status, &r.body["status"]), (200, &json!("credited")));
}

async fn their_credited_order(t: &TestApp, org: &OrganizationId) -> String {
    let profile = creditgate_core::payments::BillingProfile {
        country: Some("US".to_owned()),
        ..Default::default()
    };
    t.app.db.put_billing_profile(org, &profile).await.unwrap();
    let req = CheckoutRequest {
        plan_id: Some("credits-1000".to_owned()),
        base_url: Some(t.address.clone()),
        ..Default::default()
    };
    let (order, url) = t.app.payments.checkout(&t.app, org, req).await.unwrap();
    assert_eq!(pay_form(&url, "4242424242424242").await.status(), 200);
    order.id.to_string()
}

async fn the_operator_manages_plans_and_records_manual_payments(setup: Setup) {
    let t = shop(setup).await;
    let op = Cred::Operator;
    let plan = |extra: Value| {
        let mut p = json!({"id": "team", "name": "Team pack", "credits": "50000",
                           "amount_cents": 24000, "expires_in_days": 365});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    let r = as_(
        &t,
        &op,
        Method::POST,
        "/admin/v1/plans",
        Some(plan(json!({}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = as_(
        &t,
        &op,
        Method::POST,
        "/admin/v1/plans",
        Some(plan(json!({}))),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    for bad in [
        json!({"id": "z0", "amount_cents": 0}),
        json!({"id": "z1", "amount_cents": -500}),
        json!({"id": "z2", "amount_cents": 12.5}),
        json!({"id": "z3", "credits": "0"}),
        json!({"id": "z4", "credits": "-3"}),
        json!({"id": "z5", "amount_cents": 100_000_001}),
        json!({"id": "z6", "expires_in_days": 0}),
        json!({"id": "bad id!"}),
    ] {
        let r = as_(
            &t,
            &op,
            Method::POST,
            "/admin/v1/plans",
            Some(plan(bad.clone())),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let all = as_(&t, &op, Method::GET, "/admin/v1/plans", None).await;
    assert_eq!(
        all.body["data"].as_array().unwrap().len(),
        5,
        "{}",
        all.body
    );

    // A checkout opened before the plan is archived still pays at its price.
    let buyer = Cred::Key(admin_key(&t, &t.org).await);
    let fr = json!({"country": "FR"});
    as_(&t, &buyer, Method::PUT, "/v1/billing/profile", Some(fr)).await;
    let open = as_(
        &t,
        &buyer,
        Method::POST,
        "/v1/billing/checkout",
        Some(json!({"plan_id": "team"})),
    )
    .await;
    assert_eq!(open.status, 200, "{}", open.body);
    let archive = json!({"archived": true, "amount_cents": 30000});
    let r = as_(&t, &op, Method::POST, "/admin/v1/plans/team", Some(archive)).await;
    assert_eq!(
        (r.status, &r.body["archived"]),
        (200, &json!(true)),
        "{}",
        r.body
    );
    let on_sale = as_(&t, &buyer, Method::GET, "/v1/billing/plans", None).await;
    assert!(!on_sale.body.to_string().contains("\"team\""));
    let again = as_(
        &t,
        &buyer,
        Method::POST,
        "/v1/billing/checkout",
        Some(json!({"plan_id": "team"})),
    )
    .await;
    assert_eq!(again.status, 400);
    assert!(again.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no longer sold"));
    let url = open.body["checkout_url"].as_str().unwrap();
    assert_eq!(pay_form(url, "4242424242424242").await.status(), 200);
    let id = open.body["order"]["id"].as_str().unwrap();
    let done = as_(
        &t,
        &buyer,
        Method::GET,
        &format!("/v1/billing/orders/{id}"),
        None,
    )
    .await;
    assert_eq!(done.body["status"], "credited");
    assert_eq!(done.body["amount_cents"], 24000);
    assert_eq!(t.balance().await.posted, credits("50000"));
    let r = as_(
        &t,
        &op,
        Method::POST,
        "/admin/v1/plans/nope",
        Some(json!({"archived": true})),
    )
    .await;
    assert_eq!(r.status, 404);

    // A manual payment, recorded twice: credited once.
    let path = format!("/admin/v1/organizations/{}/payments", t.org);
    let pay = json!({"method": "crypto", "reference": "0xfeed", "amount_cents": 500,
                     "currency": "usd", "plan_id": "credits-1000"});
    let first = as_(&t, &op, Method::POST, &path, Some(pay.clone())).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        (&first.body["status"], &first.body["created"]),
        (&json!("credited"), &json!(true))
    );
    assert!(first.body["receipt_number"].is_string());
    let second = as_(&t, &op, Method::POST, &path, Some(pay.clone())).await;
    assert_eq!(
        (&second.body["id"], &second.body["created"]),
        (&first.body["id"], &json!(false))
    );
    assert_eq!(t.balance().await.posted, credits("51000"));
    let mut other = pay.clone();
    other["amount_cents"] = json!(900);
    let r = as_(&t, &op, Method::POST, &path, Some(other)).await;
    assert_eq!(r.status, 400, "same reference, another amount: {}", r.body);
    for bad in [
        json!({"amount_cents": 0}),
        json!({"amount_cents": -1}),
        json!({"amount_cents": 1.5}),
        json!({"currency": "eur"}),
        json!({"method": "cash"}),
        json!({"reference": ""}),
    ] {
        let mut b = pay.clone();
        for (k, v) in bad.as_object().unwrap() {
            b[k] = v.clone();
        }
        b["reference"] = if bad.get("reference").is_some() {
            json!("")
        } else {
            json!("0xother")
        };
        let r = as_(&t, &op, Method::POST, &path, Some(b)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let nowhere = "/admin/v1/organizations/org_nothing/payments";
    assert_eq!(
        as_(&t, &op, Method::POST, nowhere, Some(pay)).await.status,
        404
    );
    assert_eq!(t.balance().await.posted, credits("51000"));

    // Listed and filtered for the operator.
    let q = format!("/admin/v1/orders?organization_id={}&provider=manual", t.org);
    let listed = as_(&t, &op, Method::GET, &q, None).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
    let r = as_(&t, &op, Method::GET, "/admin/v1/orders?status=lost", None).await;
    assert_eq!(r.status, 400);
    let log = as_(&t, &op, Method::GET, "/admin/v1/audit_log", None).await;
    let actions = audit_actions(&log);
    for want in ["plan.created", "plan.archived", "payment.credited"] {
        assert!(
            actions.iter().any(|(a, _)| a == want),
            "{want}: {actions:?}"
        );
    }
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn operator_refunds_over_http_are_exact_once_and_audited(setup: Setup) {
    let t = shop(setup).await;
    let op = Cred::Operator;
    let order = their_credited_order(&t, &t.org.clone()).await;
    let refund = |body: Value| {
        let path = format!("/admin/v1/orders/{order}/refund");
        let t = &t;
        async move { as_(t, &Cred::Operator, Method::POST, &path, Some(body)).await }
    };
    // More than the lot, zero, negative: refused, nothing moves.
    for bad in [
        json!({"credits": "1001"}),
        json!({"credits": "0"}),
        json!({"credits": "-5"}),
    ] {
        let r = refund(bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    assert_eq!(t.balance().await.posted, credits("1000"));
    let part = refund(json!({"credits": "100"})).await;
    assert_eq!(part.status, 200, "{}", part.body);
    assert_eq!(part.body["order"]["status"], "partially_refunded");
    assert_eq!(part.body["refunded_cents"], 50);
    let transfer = part.body["order"]["clawbacks"][0]["transfer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(t.balance().await.posted, credits("900"));
    let rest = refund(json!({})).await;
    assert_eq!(rest.status, 200, "{}", rest.body);
    assert_eq!(rest.body["order"]["status"], "refunded");
    assert_eq!(rest.body["order"]["refunded_cents"], 500);
    assert_eq!(rest.body["order"]["clawbacks"].as_array().unwrap().len(), 2);
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    let twice = refund(json!({})).await;
    assert_eq!(
        twice.status, 400,
        "a second refund of the lot: {}",
        twice.body
    );
    assert_eq!(t.balance().await.posted, NanoCredits::ZERO);
    let r = as_(
        &t,
        &op,
        Method::POST,
        "/admin/v1/orders/ord_nothing/refund",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = as_(
        &t,
        &op,
        Method::POST,
        &format!("/admin/v1/orders/{order}/recheck"),
        None,
    )
    .await;
    assert_eq!(
        (r.status, &r.body["order"]["status"]),
        (200, &json!("refunded")),
        "{}",
        r.body
    );

    let log = as_(&t, &op, Method::GET, "/admin/v1/audit_log", None).await;
    let refunds: Vec<_> = audit_actions(&log)
        .into_iter()
        .filter(|(a, target)| a == "payment.refunded" && *target == order)
        .collect();
    assert_eq!(refunds.len(), 2, "{:?}", log.body);
    assert!(log.body.to_string().contains(&transfer));
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn custom_amounts_outside_the_bounds_or_not_whole_are_refused(setup: Setup) {
    let t = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        extra_toml: "[payments]\n[payments.custom]\nmin_credits = \"2000\"\n\
                     max_credits = \"1000000\"\nprice_per_credit_usd = \"0.0048\"\n\
                     expiry = \"never\"\n"
            .to_owned(),
        ..setup
    })
    .await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let fr = json!({"country": "FR"});
    as_(&t, &cred, Method::PUT, "/v1/billing/profile", Some(fr)).await;
    let plans = as_(&t, &cred, Method::GET, "/v1/billing/plans", None).await;
    assert_eq!(
        plans.body["custom"]["min_credits"], "2000",
        "{}",
        plans.body
    );
    assert_eq!(plans.body["custom"]["cents_per_credit"], "0.48");
    for bad in [
        json!({"credits": "0"}),
        json!({"credits": "-2500"}),
        json!({"credits": "1999"}),
        json!({"credits": "1000001"}),
        json!({"credits": "2500.5"}),
        json!({"credits": "lots"}),
        json!({"credits": 2500}),
        json!({"credits": "2500", "plan_id": "credits-1000"}),
        json!({}),
        json!({"credits": "2500", "success_url": "javascript:alert(1)"}),
        json!({"credits": "2500", "amount_cents": 1}),
    ] {
        let r = as_(
            &t,
            &cred,
            Method::POST,
            "/v1/billing/checkout",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
    }
    assert!(t
        .app
        .db
        .orders(&Default::default())
        .await
        .unwrap()
        .is_empty());
    // Priced at credits × price, rounded up to the cent: 2501 × $0.0048 = $12.0048 → 1201¢.
    let ok = as_(
        &t,
        &cred,
        Method::POST,
        "/v1/billing/checkout",
        Some(json!({"credits": "2501"})),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["order"]["amount_cents"], 1201);
    assert_eq!(ok.body["order"]["credits"], "2501");
    assert_eq!(ok.body["order"]["plan_id"], Value::Null);
}

/// Credit leases (`docs/ledger.md`): a lot's refund is refused while holds need its credits, and
/// a lease holds headroom beyond what its requests need: the operator's refund shrinks this
/// replica's leases to what their requests hold and tries once more.
async fn a_refund_is_not_blocked_by_a_credit_leases_headroom(setup: Setup) {
    let t = shop(Setup {
        credit_lease: true,
        ..setup
    })
    .await;
    let order = their_credited_order(&t, &t.org.clone()).await;
    let r = t
        .message(&crate::helpers::body(64, "output_tokens=5"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let in_db = t.app.db.balance(&t.org).await.unwrap();
    assert!(
        in_db.held.is_positive(),
        "the lease holds headroom: {in_db:?}"
    );
    let path = format!("/admin/v1/orders/{order}/refund");
    let refunded = as_(&t, &Cred::Operator, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(refunded.status, 200, "{}", refunded.body);
    // The whole unspent remainder came back (a few credits were spent: partly refunded).
    assert_eq!(refunded.body["order"]["status"], "partially_refunded");
    let b = t.balance().await;
    assert_eq!((b.posted, b.held), (NanoCredits::ZERO, NanoCredits::ZERO));
    t.assert_ledger_clean().await;
}
