use super::*;
use crate::pricing::CreditPlans;

fn order() -> Order {
    Order {
        id: OrderId::parse("ord_1").unwrap(),
        org: OrganizationId::parse("org_a").unwrap(),
        status: OrderStatus::Open,
        plan_id: Some("credits-10000".to_owned()),
        credits: NanoCredits::from_credits(10_000).unwrap(),
        amount_cents: 5_000,
        currency: CURRENCY.to_owned(),
        provider: Provider::Stripe,
        provider_ref: None,
        method: None,
        expires_in_days: None,
        success_url: None,
        cancel_url: None,
        created_at: Timestamp::from_millis(0),
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

fn payment() -> ProviderPayment {
    ProviderPayment {
        provider: Provider::Stripe,
        order: OrderId::parse("ord_1").unwrap(),
        org: OrganizationId::parse("org_a").unwrap(),
        amount_cents: 5_000,
        currency: "usd".to_owned(),
        state: PaymentState::Paid,
        method: None,
        reference: None,
    }
}

#[test]
fn seed_plans_in_cents_with_exact_price_per_credit() {
    let plans: Vec<Plan> = CreditPlans::seed()
        .plans()
        .iter()
        .map(|p| Plan::from_config(p).unwrap())
        .collect();
    let got: Vec<(i64, i64)> = plans
        .iter()
        .map(|p| (p.credits.nanos() / 1_000_000_000, p.amount_cents))
        .collect();
    assert_eq!(
        got,
        [
            (1_000, 500),
            (10_000, 5_000),
            (105_000, 50_000),
            (275_000, 125_000)
        ]
    );
    let ppc = |p: &Plan| price_per_credit(p.amount_cents, p.credits).unwrap();
    assert_eq!(ppc(&plans[1]).to_string(), "0.005");
    // 1/210 has no finite decimal: rounded at 18 places; the order keeps cents and credits.
    assert_eq!(ppc(&plans[2]).to_string(), "0.004761904761904762");
}

#[test]
fn custom_amounts_are_whole_bounded_and_rounded_up_to_the_cent() {
    let custom = CustomAmount {
        min_credits: "100".parse().unwrap(),
        max_credits: Some("1000000".parse().unwrap()),
        price_per_credit_usd: "0.0048".parse().unwrap(),
        expiry: Expiry::Days(365),
    };
    let q = quote_custom(&custom, "2001".parse().unwrap()).unwrap();
    assert_eq!((q.amount_cents, q.expires_in_days), (961, Some(365)));
    for bad in ["0", "-5", "99", "1000001", "150.5"] {
        assert!(
            quote_custom(&custom, bad.parse().unwrap()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn order_state_machine() {
    use OrderStatus::*;
    assert!(Open.can_become(Credited));
    assert!(Open.can_become(Failed));
    assert!(
        Expired.can_become(Credited),
        "a late payment is still credited"
    );
    assert!(!Credited.can_become(Credited));
    assert!(!Credited.can_become(Open));
    assert!(!Failed.can_become(Expired));
    assert!(Credited.can_become(PartiallyRefunded));
    assert!(Disputed.can_become(Credited), "a dispute won");
    assert!(!Refunded.can_become(Credited));
    for s in [
        Open,
        Paid,
        Credited,
        Failed,
        Expired,
        Refunded,
        PartiallyRefunded,
        Disputed,
    ] {
        assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
    }
}

#[test]
fn a_report_must_match_the_order_in_every_field() {
    let o = order();
    assert!(check_payment(&o, &payment()).is_ok());
    let mut other_org = payment();
    other_org.org = OrganizationId::parse("org_b").unwrap();
    let mut other_amount = payment();
    other_amount.amount_cents = 4_999;
    let mut other_currency = payment();
    other_currency.currency = "eur".to_owned();
    let mut other_provider = payment();
    other_provider.provider = Provider::Sandbox;
    let mut other_order = payment();
    other_order.order = OrderId::parse("ord_2").unwrap();
    for p in [
        other_org,
        other_amount,
        other_currency,
        other_provider,
        other_order,
    ] {
        assert!(matches!(
            check_payment(&o, &p),
            Err(PaymentError::Mismatch(_))
        ));
    }
}

#[test]
fn receipt_numbers_and_profiles() {
    assert_eq!(
        receipt_number(Timestamp::parse_rfc3339("2026-11-26").unwrap(), 42),
        "CG-2026-000042"
    );
    let p = BillingProfile {
        country: Some(" fr ".to_owned()),
        name: Some("  ".to_owned()),
        ..Default::default()
    }
    .normalized()
    .unwrap();
    assert_eq!(
        (p.country.as_deref(), p.name.as_deref()),
        (Some("FR"), None)
    );
    assert!(p.check_can_buy(&[]).is_ok());
    assert!(p.check_can_buy(&["DE".to_owned(), "fr".to_owned()]).is_ok());
    let refused = p.check_can_buy(&["DE".to_owned()]).unwrap_err();
    assert!(refused.to_string().contains("FR"), "{refused}");
    assert!(BillingProfile::default().check_can_buy(&[]).is_err());
    let bad = BillingProfile {
        country: Some("FRA".to_owned()),
        ..Default::default()
    };
    assert!(bad.normalized().is_err());
}
