//! Orders, provider events and receipts on SQLite and on Postgres (when
//! `CREDITGATE_TEST_POSTGRES_URL` is set): an order is credited once, by one event, after its
//! report matches; replays, forgeries and races change nothing.

use crate::common::*;
use creditgate_core::accounts::Actor;
use creditgate_core::ids::OrderId;
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::{
    FailureCode, Order, OrderStatus, PaymentState, Provider, ProviderPayment, CURRENCY,
};
use creditgate_storage::payments::{OrderFilter, PaymentOutcome, ProviderClawback, ProviderEvent};
use creditgate_storage::Database;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

contract!(
    seeded_plans_are_the_reseller_packs,
    a_paid_report_credits_once_with_a_gapless_receipt,
    the_same_event_ten_times_at_once_credits_once,
    mismatched_reports_credit_nothing,
    declines_and_expiry_say_why_and_change_nothing,
    manual_payments_are_idempotent_on_their_reference,
    a_refund_claws_back_the_remainder_once,
    provider_refunds_are_cumulative_and_the_rest_becomes_debt,
    a_dispute_claws_back_and_a_win_restores,
    a_refund_racing_requests_never_goes_negative,
    purchases_refunds_disputes_requests_and_expiry_keep_the_ledger_whole,
    payments_refunds_and_disputes_are_audited_once_with_their_transfer,
    a_partial_refund_takes_at_most_what_is_left_and_not_held,
    saved_cards_activate_once_and_keep_no_number,
    orders_from_before_tax_get_subtotal_equal_to_amount,
);

const CREDITS_10K: i64 = 10_000 * 1_000_000_000;

fn order(id: &str, org_id: &str, provider: Provider) -> Order {
    Order {
        id: OrderId::parse(id).unwrap(),
        org: org(org_id),
        status: OrderStatus::Open,
        plan_id: Some("credits-10000".to_owned()),
        credits: nc(CREDITS_10K),
        amount_cents: 5_000,
        currency: CURRENCY.to_owned(),
        provider,
        provider_ref: None,
        method: None,
        expires_in_days: None,
        success_url: None,
        cancel_url: None,
        created_at: START,
        paid_at: None,
        lot_id: None,
        receipt_number: None,
        failure: None,
        refunded_cents: 0,
        subtotal_cents: 5_000,
        tax_cents: 0,
        tax_rate: "0".to_owned(),
        buyer_country: None,
        buyer_tax_id: None,
    }
}

fn paid(o: &Order) -> ProviderPayment {
    ProviderPayment {
        provider: o.provider,
        order: o.id.clone(),
        org: o.org.clone(),
        amount_cents: o.amount_cents,
        currency: o.currency.clone(),
        state: PaymentState::Paid,
        method: Some("visa •••• 4242".to_owned()),
        reference: None,
    }
}

fn event(id: &str) -> Option<ProviderEvent> {
    Some(ProviderEvent {
        provider: Provider::Stripe,
        id: id.to_owned(),
        kind: "checkout.session.completed".to_owned(),
    })
}

async fn posted(db: &Database, org_id: &str) -> NanoCredits {
    db.balance(&org(org_id)).await.unwrap().posted
}

async fn open_order(db: &Database, id: &str, org_id: &str) -> Order {
    let o = order(id, org_id, Provider::Stripe);
    db.create_order(&o).await.unwrap();
    o
}

async fn seeded_plans_are_the_reseller_packs(h: Harness) {
    let plans = h.db.plans(false).await.unwrap();
    let got: Vec<(&str, i64, i64)> = plans
        .iter()
        .map(|p| {
            (
                p.id.as_str(),
                p.credits.nanos() / 1_000_000_000,
                p.amount_cents,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("credits-1000", 1_000, 500),
            ("credits-10000", 10_000, 5_000),
            ("credits-105000", 105_000, 50_000),
            ("credits-275000", 275_000, 125_000),
        ]
    );
    let mut archived = plans[0].clone();
    archived.archived = true;
    assert!(h.db.update_plan(&archived).await.unwrap());
    assert_eq!(h.db.plans(false).await.unwrap().len(), 3);
    assert_eq!(h.db.plans(true).await.unwrap().len(), 4);
    let mut custom = plans[1].clone();
    custom.id = "team".to_owned();
    assert!(h.db.create_plan(&custom).await.unwrap());
    assert!(!h.db.create_plan(&custom).await.unwrap(), "id taken");
    assert_eq!(h.db.plans(true).await.unwrap().last().unwrap().id, "team");
}

async fn a_paid_report_credits_once_with_a_gapless_receipt(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let first = open_order(db, "ord_1", "acme").await;
    let second = open_order(db, "ord_2", "acme").await;
    let out = db
        .apply_payment(event("evt_1"), paid(&first))
        .await
        .unwrap();
    let PaymentOutcome::Credited(credited) = out else {
        panic!("{out:?}")
    };
    assert_eq!(credited.status, OrderStatus::Credited);
    assert_eq!(credited.receipt_number.as_deref(), Some("CG-2026-000001"));
    assert_eq!(posted(db, "acme").await, nc(CREDITS_10K));
    // Another event for the same order (Stripe sends several): already credited.
    let again = db
        .apply_payment(event("evt_1b"), paid(&first))
        .await
        .unwrap();
    assert!(
        matches!(again, PaymentOutcome::AlreadyCredited(_)),
        "{again:?}"
    );
    // A replay of the same event a day later: a duplicate.
    h.clock.advance(86_400_000);
    let replay = db
        .apply_payment(event("evt_1"), paid(&first))
        .await
        .unwrap();
    assert_eq!(replay, PaymentOutcome::Duplicate);
    assert_eq!(posted(db, "acme").await, nc(CREDITS_10K));
    let out = db
        .apply_payment(event("evt_2"), paid(&second))
        .await
        .unwrap();
    let PaymentOutcome::Credited(c2) = out else {
        panic!("{out:?}")
    };
    assert_eq!(c2.receipt_number.as_deref(), Some("CG-2026-000002"));
    let stored = db.order(&first.id).await.unwrap().unwrap();
    assert_eq!(stored.lot_id, credited.lot_id);
    assert_eq!(stored.method.as_deref(), Some("visa •••• 4242"));
    assert!(db.verify().await.unwrap().is_clean());
}

async fn the_same_event_ten_times_at_once_credits_once(h: Harness) {
    funded(&h.db, "acme", 0).await;
    let o = open_order(&h.db, "ord_race", "acme").await;
    let replica = h.replica().await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let db = if i % 2 == 0 {
            h.db.clone()
        } else {
            replica.clone()
        };
        let p = paid(&o);
        tasks.push(tokio::spawn(async move {
            db.apply_payment(event("evt_same"), p).await.unwrap()
        }));
    }
    let mut credited = 0;
    for t in tasks {
        match t.await.unwrap() {
            PaymentOutcome::Credited(_) => credited += 1,
            PaymentOutcome::Duplicate => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(credited, 1);
    assert_eq!(posted(&h.db, "acme").await, nc(CREDITS_10K));
    // Replayed a day later (and a week later): processed event ids are kept for good.
    for days in [1, 7] {
        h.clock.advance(days * 86_400_000);
        let again =
            h.db.apply_payment(event("evt_same"), paid(&o))
                .await
                .unwrap();
        assert_eq!(again, PaymentOutcome::Duplicate, "{days} days later");
        let other_id =
            h.db.apply_payment(event(&format!("evt_late_{days}")), paid(&o))
                .await
                .unwrap();
        assert!(
            matches!(other_id, PaymentOutcome::AlreadyCredited(_)),
            "{other_id:?}"
        );
    }
    assert_eq!(posted(&h.db, "acme").await, nc(CREDITS_10K));
    assert!(h.db.verify().await.unwrap().is_clean());
}

async fn mismatched_reports_credit_nothing(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    funded(db, "evil", 0).await;
    let o = open_order(db, "ord_1", "acme").await;
    let mut other_org = paid(&o);
    other_org.org = org("evil");
    let mut other_amount = paid(&o);
    other_amount.amount_cents = 500;
    let mut other_currency = paid(&o);
    other_currency.currency = "eur".to_owned();
    let mut other_provider = paid(&o);
    other_provider.provider = Provider::Sandbox;
    let mut no_order = paid(&o);
    no_order.order = OrderId::parse("ord_missing").unwrap();
    for (i, p) in [
        other_org,
        other_amount,
        other_currency,
        other_provider,
        no_order,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("evt_bad_{i}");
        let out = db.apply_payment(event(&id), p).await.unwrap();
        assert!(matches!(out, PaymentOutcome::Ignored(_)), "{out:?}");
        let logged = db
            .provider_event_outcome(Provider::Stripe, &id)
            .await
            .unwrap()
            .unwrap();
        assert!(logged.starts_with("ignored: "), "{logged}");
    }
    assert_eq!(posted(db, "acme").await, NanoCredits::ZERO);
    assert_eq!(posted(db, "evil").await, NanoCredits::ZERO);
    let stored = db.order(&o.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Open);
}

async fn declines_and_expiry_say_why_and_change_nothing(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let o = open_order(db, "ord_1", "acme").await;
    let mut declined = paid(&o);
    declined.state = PaymentState::Failed {
        code: FailureCode::InsufficientFunds,
    };
    let out = db.apply_payment(event("evt_f"), declined).await.unwrap();
    let PaymentOutcome::NotPaid(failed) = out else {
        panic!("{out:?}")
    };
    assert_eq!(failed.status, OrderStatus::Failed);
    let failure = failed.failure.unwrap();
    assert_eq!(failure.code, FailureCode::InsufficientFunds);
    assert!(failure.message.contains("insufficient funds"));
    let o2 = open_order(db, "ord_2", "acme").await;
    let mut expired = paid(&o2);
    expired.state = PaymentState::Expired;
    db.apply_payment(event("evt_x"), expired).await.unwrap();
    let stored = db.order(&o2.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Expired);
    assert_eq!(posted(db, "acme").await, NanoCredits::ZERO);
    // The provider later says the money was taken after all: credited, not lost.
    let late = db
        .apply_payment(event("evt_late"), paid(&o2))
        .await
        .unwrap();
    assert!(matches!(late, PaymentOutcome::Credited(_)), "{late:?}");
    let listed = db
        .orders(&OrderFilter {
            org: Some(org("acme")),
            status: Some(OrderStatus::Failed),
            limit: 20,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, o.id);
}

async fn manual_payments_are_idempotent_on_their_reference(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let mut m = order("ord_m1", "acme", Provider::Manual);
    m.provider_ref = Some("crypto:0xabc".to_owned());
    m.method = Some("crypto".to_owned());
    let (first, created) = db
        .record_manual_payment(m.clone(), &Actor::operator())
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.status, OrderStatus::Credited);
    assert!(first.receipt_number.is_some());
    let mut again = m.clone();
    again.id = OrderId::parse("ord_m2").unwrap();
    let (same, created) = db
        .record_manual_payment(again.clone(), &Actor::operator())
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(same.id, first.id);
    again.amount_cents = 1;
    assert!(db
        .record_manual_payment(again, &Actor::operator())
        .await
        .is_err());
    assert_eq!(posted(db, "acme").await, nc(CREDITS_10K));
}

async fn a_refund_claws_back_the_remainder_once(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let o = open_order(db, "ord_1", "acme").await;
    db.apply_payment(event("evt_1"), paid(&o)).await.unwrap();
    // Spend a quarter of it.
    db.reserve(hold_req("acme", "h1", CREDITS_10K / 4))
        .await
        .unwrap();
    db.settle(settle_req("h1", "s1", CREDITS_10K / 4))
        .await
        .unwrap();
    let (refunded, ledger, cents) = db.refund_order(&o.id, &Actor::operator()).await.unwrap();
    assert_eq!(ledger.amount, nc(CREDITS_10K / 4 * 3));
    assert_eq!(cents, 3_750);
    assert_eq!(refunded.status, OrderStatus::PartiallyRefunded);
    assert_eq!(refunded.refunded_cents, 3_750);
    assert!(
        db.refund_order(&o.id, &Actor::operator()).await.is_err(),
        "a second refund"
    );
    assert_eq!(posted(db, "acme").await, NanoCredits::ZERO);
    let clawbacks = db.order_clawbacks(&o.id).await.unwrap();
    assert_eq!(clawbacks.len(), 1);
    assert!(db.verify().await.unwrap().is_clean());
}

async fn credited(db: &Database, id: &str) -> Order {
    let o = open_order(db, id, "acme").await;
    let out = db
        .apply_payment(event(&format!("evt_{id}")), paid(&o))
        .await
        .unwrap();
    let PaymentOutcome::Credited(o) = out else {
        panic!("{out:?}")
    };
    *o
}

async fn spend(db: &Database, id: &str, amount: i64) {
    db.reserve(hold_req("acme", &format!("h-{id}"), amount))
        .await
        .unwrap();
    db.settle(settle_req(&format!("h-{id}"), &format!("s-{id}"), amount))
        .await
        .unwrap();
}

fn stripe_event(id: &str, kind: &str) -> Option<ProviderEvent> {
    Some(ProviderEvent {
        provider: Provider::Stripe,
        id: id.to_owned(),
        kind: kind.to_owned(),
    })
}

async fn provider_refunds_are_cumulative_and_the_rest_becomes_debt(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let o = credited(db, "ord_1").await;
    spend(db, "a", CREDITS_10K / 4).await;
    let refund = |cents| ProviderClawback::Refunded {
        cumulative_cents: cents,
    };
    let (order, moved) = db
        .apply_clawback(
            stripe_event("evt_r1", "charge.refunded"),
            &o.id,
            refund(1_000),
        )
        .await
        .unwrap()
        .unwrap();
    let moved = moved.unwrap();
    assert_eq!((moved.credits, moved.debt), (nc(CREDITS_10K / 5), nc(0)));
    assert_eq!(order.status, OrderStatus::PartiallyRefunded);
    // The same cumulative amount again (another event): nothing more.
    let (_, moved) = db
        .apply_clawback(
            stripe_event("evt_r2", "charge.refunded"),
            &o.id,
            refund(1_000),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(moved.is_none());
    // The same event again: a duplicate.
    let replay = db
        .apply_clawback(
            stripe_event("evt_r1", "charge.refunded"),
            &o.id,
            refund(1_000),
        )
        .await
        .unwrap();
    assert!(replay.is_none());
    // More than was paid: capped at the payment; what the lot no longer has becomes debt.
    let (order, moved) = db
        .apply_clawback(
            stripe_event("evt_r3", "charge.refunded"),
            &o.id,
            refund(9_999),
        )
        .await
        .unwrap()
        .unwrap();
    let moved = moved.unwrap();
    assert_eq!(moved.amount_cents, 4_000);
    assert_eq!(moved.credits, nc(CREDITS_10K / 5 * 4));
    assert_eq!(moved.debt, nc(CREDITS_10K / 4));
    assert_eq!(order.status, OrderStatus::Refunded);
    assert_eq!(order.refunded_cents, 5_000);
    let balance = db.balance(&org("acme")).await.unwrap();
    assert_eq!(balance.debt, nc(CREDITS_10K / 4));
    assert_eq!(balance.posted, nc(-CREDITS_10K / 4));
    assert!(db.verify().await.unwrap().is_clean());
}

async fn a_dispute_claws_back_and_a_win_restores(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let o = credited(db, "ord_1").await;
    spend(db, "a", CREDITS_10K / 10 * 4).await;
    let (order, moved) = db
        .apply_clawback(
            stripe_event("evt_d1", "charge.dispute.created"),
            &o.id,
            ProviderClawback::Disputed {
                dispute: "dp_1".to_owned(),
                cents: 5_000,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, OrderStatus::Disputed);
    assert_eq!(moved.unwrap().debt, nc(CREDITS_10K / 10 * 4));
    assert_eq!(posted(db, "acme").await, nc(-CREDITS_10K / 10 * 4));
    let won = ProviderClawback::DisputeWon {
        dispute: "dp_1".to_owned(),
    };
    let (order, _) = db
        .apply_clawback(
            stripe_event("evt_d2", "charge.dispute.closed"),
            &o.id,
            won.clone(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, OrderStatus::Credited);
    assert_eq!(posted(db, "acme").await, nc(CREDITS_10K / 10 * 6));
    let (_, again) = db
        .apply_clawback(stripe_event("evt_d3", "charge.dispute.closed"), &o.id, won)
        .await
        .unwrap()
        .unwrap();
    assert!(again.is_none(), "a dispute is won once");
    assert_eq!(posted(db, "acme").await, nc(CREDITS_10K / 10 * 6));
    assert_eq!(db.order_clawbacks(&o.id).await.unwrap().len(), 2);
    assert!(db.verify().await.unwrap().is_clean());
}

async fn a_refund_racing_requests_never_goes_negative(h: Harness) {
    funded(&h.db, "acme", 0).await;
    let o = credited(&h.db, "ord_1").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = h.db.clone();
        tasks.push(tokio::spawn(async move {
            let hold = format!("h{i}");
            if db
                .reserve(hold_req("acme", &hold, CREDITS_10K / 8))
                .await
                .is_ok()
            {
                db.settle(settle_req(&hold, &format!("s{i}"), CREDITS_10K / 8))
                    .await
                    .unwrap();
                CREDITS_10K / 8
            } else {
                0
            }
        }));
    }
    let refund = h.db.refund_order(&o.id, &Actor::operator()).await;
    let mut spent = 0;
    for t in tasks {
        spent += t.await.unwrap();
    }
    let refunded = match &refund {
        Ok((_, r, _)) => r.amount.nanos(),
        Err(_) => 0,
    };
    let balance = h.db.balance(&org("acme")).await.unwrap();
    assert_eq!(balance.posted.nanos(), CREDITS_10K - spent - refunded);
    assert!(balance.posted.nanos() >= 0 && balance.debt == NanoCredits::ZERO);
    assert!(h.db.refund_order(&o.id, &Actor::operator()).await.is_err() || refund.is_err());
    assert!(h.db.verify().await.unwrap().is_clean());
}

/// A seeded random mix of purchases (each event delivered twice), requests, operator refunds
/// (whole remainders and partial), provider refunds, disputes (won or not) and expiry; after every step the journal verifies
/// and the balance equals the fold of what happened. Replay with `CREDITGATE_PAYMENTS_SEED`.
async fn purchases_refunds_disputes_requests_and_expiry_keep_the_ledger_whole(h: Harness) {
    let seed = std::env::var("CREDITGATE_PAYMENTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("payments run seed {seed} (CREDITGATE_PAYMENTS_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let db = &h.db;
    funded(db, "acme", 0).await;
    let mut orders: Vec<Order> = Vec::new();
    let mut expected: i64 = 0;
    let mut credits_granted = 0;
    for step in 0..120 {
        let ctx = format!("seed {seed}, step {step}");
        match rng.gen_range(0..8) {
            0 | 1 => {
                let mut o = order(&format!("ord_{step}"), "acme", Provider::Stripe);
                o.credits = nc(rng.gen_range(1..=20) * 1_000_000_000_000);
                o.amount_cents = rng.gen_range(1..=10_000);
                o.expires_in_days = rng.gen_bool(0.3).then_some(1);
                db.create_order(&o).await.unwrap();
                for _ in 0..2 {
                    let out = db
                        .apply_payment(event(&format!("evt_{step}")), paid(&o))
                        .await
                        .unwrap();
                    if matches!(out, PaymentOutcome::Credited(_)) {
                        expected += o.credits.nanos();
                        credits_granted += 1;
                    }
                }
                orders.push(db.order(&o.id).await.unwrap().unwrap());
            }
            2 => {
                let available = db.balance(&org("acme")).await.unwrap().available.nanos();
                if available > 0 {
                    let amount = rng.gen_range(1..=available);
                    spend(db, &format!("x{step}"), amount).await;
                    expected -= amount;
                }
            }
            3 if !orders.is_empty() => {
                let o = &orders[rng.gen_range(0..orders.len())];
                if let Ok((_, r, _)) = db.refund_order(&o.id, &Actor::operator()).await {
                    expected -= r.amount.nanos();
                }
            }
            4 | 5 if !orders.is_empty() => {
                let o = orders[rng.gen_range(0..orders.len())].clone();
                let report = match rng.gen_range(0..3) {
                    0 => ProviderClawback::Refunded {
                        cumulative_cents: rng.gen_range(0..=o.amount_cents + 10),
                    },
                    1 => ProviderClawback::Disputed {
                        dispute: format!("dp_{}", o.id),
                        cents: o.amount_cents,
                    },
                    _ => ProviderClawback::DisputeWon {
                        dispute: format!("dp_{}", o.id),
                    },
                };
                let got = db
                    .apply_clawback(stripe_event(&format!("evt_c{step}"), "x"), &o.id, report)
                    .await
                    .unwrap();
                if let Some((_, Some(moved))) = got {
                    expected -= moved.credits.nanos();
                }
            }
            6 if !orders.is_empty() => {
                // The operator refunds some credits: at most what is left and not held.
                let o = &orders[rng.gen_range(0..orders.len())];
                let ask = nc(rng.gen_range(1..=5_000) * 1_000_000_000);
                let op = Actor::operator();
                if let Ok((_, r, _)) = db.refund_order_credits(&o.id, ask, &op).await {
                    assert_eq!(r.amount, ask, "{ctx}: a partial refund is exact");
                    expected -= r.amount.nanos();
                }
            }
            _ => {
                h.clock.advance(rng.gen_range(1..=2) * 43_200_000);
                let swept = db.sweep_expired_lots().await.unwrap();
                expected -= swept.iter().map(|d| d.amount.nanos()).sum::<i64>();
            }
        }
        let balance = db.balance(&org("acme")).await.unwrap();
        let lots_value: i64 = balance.lots.iter().map(|l| l.remaining.nanos()).sum();
        assert_eq!(
            balance.posted.nanos(),
            lots_value - balance.debt.nanos(),
            "{ctx}"
        );
        assert_eq!(
            balance.posted.nanos(),
            expected,
            "{ctx}: the fold of what happened"
        );
        let report = db.verify().await.unwrap();
        assert!(report.is_clean(), "{ctx}: {:?}", report.problems);
    }
    let credited = orders.iter().filter(|o| o.lot_id.is_some()).count();
    assert_eq!(
        credited, credits_granted,
        "seed {seed}: each payment credits once"
    );
}

/// Each credit, decline, refund and dispute writes one audit event in the transaction that
/// moved the money, naming the ledger transfer; replays write nothing more.
async fn payments_refunds_and_disputes_are_audited_once_with_their_transfer(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let o = credited(db, "ord_1").await;
    db.apply_payment(event("evt_ord_1"), paid(&o))
        .await
        .unwrap();
    db.apply_payment(event("evt_other"), paid(&o))
        .await
        .unwrap();
    let declined = open_order(db, "ord_2", "acme").await;
    let mut report = paid(&declined);
    report.state = PaymentState::Failed {
        code: FailureCode::CardDeclined,
    };
    db.apply_payment(event("evt_2"), report).await.unwrap();
    db.refund_order_credits(&o.id, nc(CREDITS_10K / 10), &Actor::operator())
        .await
        .unwrap();
    let dispute = ProviderClawback::Disputed {
        dispute: "dp_9".to_owned(),
        cents: 5_000,
    };
    for e in ["evt_d1", "evt_d1", "evt_d2"] {
        db.apply_clawback(
            stripe_event(e, "charge.dispute.created"),
            &o.id,
            dispute.clone(),
        )
        .await
        .unwrap();
    }
    let won = ProviderClawback::DisputeWon {
        dispute: "dp_9".to_owned(),
    };
    db.apply_clawback(stripe_event("evt_w", "charge.dispute.closed"), &o.id, won)
        .await
        .unwrap();
    let log = db.audit_log(Some(&org("acme")), None, 100).await.unwrap();
    let of = |action: &str| -> Vec<_> { log.iter().filter(|e| e.action == action).collect() };
    let credited = of("payment.credited");
    assert_eq!(credited.len(), 1, "{log:?}");
    assert_eq!(credited[0].target_id, o.id.to_string());
    assert_eq!(
        credited[0].details["transfer_id"],
        format!("order:{}", o.id)
    );
    assert_eq!(credited[0].actor.kind, "system");
    assert_eq!(of("payment.failed").len(), 1);
    assert!(of("payment.failed")[0].details["failure"]["message"]
        .as_str()
        .unwrap()
        .contains("declined"));
    assert_eq!(of("payment.disputed").len(), 1);
    assert_eq!(
        of("payment.disputed")[0].details["transfer_id"],
        "dispute:dp_9"
    );
    assert_eq!(of("payment.dispute_won").len(), 1);
    let refunded = of("payment.refunded");
    assert_eq!(refunded.len(), 1);
    assert_eq!(refunded[0].actor.kind, "operator");
    let transfers: Vec<String> = db
        .order_clawbacks(&o.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.transfer_id)
        .collect();
    assert_eq!(refunded[0].details["transfer_id"], "refund:ord_1:p1");
    assert!(
        transfers.iter().any(|t| t == "refund:ord_1:p1"),
        "{transfers:?}"
    );
    assert!(db.verify().await.unwrap().is_clean());
}

/// The operator's refund of some credits: refused above what is left or held by requests in
/// flight, and for nothing or less; each accepted one is its own transfer.
async fn a_partial_refund_takes_at_most_what_is_left_and_not_held(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let o = credited(db, "ord_1").await;
    let op = Actor::operator();
    db.reserve(hold_req("acme", "h1", CREDITS_10K / 2))
        .await
        .unwrap();
    for bad in [CREDITS_10K + 1, CREDITS_10K / 2 + 1, 0, -1] {
        assert!(
            db.refund_order_credits(&o.id, nc(bad), &op).await.is_err(),
            "{bad}"
        );
    }
    assert_eq!(posted(db, "acme").await, nc(CREDITS_10K));
    let (order, r1, cents) = db
        .refund_order_credits(&o.id, nc(CREDITS_10K / 4), &op)
        .await
        .unwrap();
    assert_eq!((r1.amount, cents), (nc(CREDITS_10K / 4), 1_250));
    assert_eq!(order.status, OrderStatus::PartiallyRefunded);
    db.refund_order_credits(&o.id, nc(CREDITS_10K / 4), &op)
        .await
        .unwrap();
    assert!(
        db.refund_order_credits(&o.id, nc(1), &op).await.is_err(),
        "what is left is held"
    );
    db.settle(settle_req("h1", "s1", CREDITS_10K / 2))
        .await
        .unwrap();
    assert_eq!(posted(db, "acme").await, NanoCredits::ZERO);
    let clawbacks = db.order_clawbacks(&o.id).await.unwrap();
    assert_eq!(clawbacks.len(), 2);
    assert_ne!(clawbacks[0].transfer_id, clawbacks[1].transfer_id);
    assert_eq!(
        db.order(&o.id).await.unwrap().unwrap().refunded_cents,
        2_500
    );
    assert!(db.verify().await.unwrap().is_clean());
}

/// A saved card: pending, then active once with brand, last four and expiry; removed by its
/// organization only; one Stripe customer per organization.
async fn saved_cards_activate_once_and_keep_no_number(h: Harness) {
    use creditgate_storage::payments::{MethodStatus, PaymentMethod, SavedCard};
    let db = &h.db;
    funded(db, "acme", 0).await;
    funded(db, "other", 0).await;
    let m = PaymentMethod {
        id: "card_1".to_owned(),
        org: org("acme"),
        provider: Provider::Stripe,
        status: MethodStatus::Pending,
        setup_ref: None,
        provider_ref: None,
        customer_ref: Some("cus_1".to_owned()),
        card: None,
        failure: None,
        created_at: db.now(),
    };
    db.create_payment_method(&m).await.unwrap();
    db.set_payment_method_setup("card_1", "cs_1").await.unwrap();
    let card = SavedCard {
        brand: "visa".to_owned(),
        last4: "4242".to_owned(),
        exp_month: 12,
        exp_year: 2034,
    };
    assert!(db
        .activate_payment_method("card_1", "pm_1", None, &card)
        .await
        .unwrap());
    assert!(!db
        .activate_payment_method("card_1", "pm_2", None, &card)
        .await
        .unwrap());
    assert!(!db.fail_payment_method("card_1", "late").await.unwrap());
    let stored = db.payment_method("card_1").await.unwrap().unwrap();
    assert_eq!(stored.status, MethodStatus::Active);
    assert_eq!(stored.card, Some(card));
    assert_eq!(stored.provider_ref.as_deref(), Some("pm_1"));
    assert_eq!(stored.customer_ref.as_deref(), Some("cus_1"));
    assert_eq!(stored.setup_ref.as_deref(), Some("cs_1"));
    assert_eq!(db.payment_methods(&org("acme")).await.unwrap().len(), 1);
    assert!(!db
        .remove_payment_method(&org("other"), "card_1")
        .await
        .unwrap());
    assert!(db
        .remove_payment_method(&org("acme"), "card_1")
        .await
        .unwrap());
    assert!(db.payment_methods(&org("acme")).await.unwrap().is_empty());
    assert_eq!(db.stripe_customer(&org("acme")).await.unwrap(), None);
    assert_eq!(
        db.set_stripe_customer(&org("acme"), "cus_a").await.unwrap(),
        "cus_a"
    );
    assert_eq!(
        db.set_stripe_customer(&org("acme"), "cus_b").await.unwrap(),
        "cus_a"
    );
}

/// Migration 0014 over orders made before it: subtotal = amount, no tax, rate "0". The tax
/// columns are dropped and the migration forgotten, then a reconnect runs it again.
async fn orders_from_before_tax_get_subtotal_equal_to_amount(h: Harness) {
    funded(&h.db, "acme", 0).await;
    open_order(&h.db, "ord_old", "acme").await;
    let sql = "ALTER TABLE orders DROP COLUMN subtotal_cents; \
               ALTER TABLE orders DROP COLUMN tax_cents; ALTER TABLE orders DROP COLUMN tax_rate; \
               ALTER TABLE orders DROP COLUMN buyer_country; \
               ALTER TABLE orders DROP COLUMN buyer_tax_id; \
               DELETE FROM schema_migrations WHERE name = '0014_order_tax';";
    match h.backend {
        Backend::Sqlite => {
            let path = h.url.strip_prefix("sqlite://").unwrap().to_owned();
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(sql).unwrap();
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&h.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = task.await;
        }
    }
    let db = h.replica().await;
    let old = db
        .order(&OrderId::parse("ord_old").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.subtotal_cents, old.tax_cents, old.tax_rate.as_str()),
        (5_000, 0, "0")
    );
    assert_eq!(old.amount_cents, 5_000);
    assert_eq!(old.tax_label(), "No tax");
}
