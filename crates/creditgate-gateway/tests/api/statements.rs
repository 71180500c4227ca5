//! `GET /v1/billing/statement`: after a randomized run of grants, purchases, requests, refunds,
//! adjustments and expiries over several days (a test clock), every statement reconciles —
//! opening plus its lines is its closing, each line's balance chains, consecutive periods join,
//! the usage lines are the requests' charges and the last closing is the ledger's balance — on
//! SQLite and Postgres. A charge belongs to the month it settled in. CSV says what JSON says.

use creditgate_core::accounts::Role;
use creditgate_core::clock::{Clock, ManualClock, Timestamp};
use creditgate_core::ids::{LotId, TransferId};
use creditgate_core::ledger::{AdjustRequest, LedgerStore};
use creditgate_core::money::NanoCredits;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{admin_key, call, member, Cred};
use crate::helpers::{body, credits, Setup, TestApp};

crate::on_both_databases!(
    a_randomized_run_reconciles_in_every_period,
    a_charge_belongs_to_the_month_it_settled_in,
    roles_csv_and_bad_periods,
);

/// 2026-03-02T00:00:00Z.
const START: Timestamp = Timestamp::from_millis(1_772_409_600_000);
const HOUR_MS: i64 = 3_600_000;

async fn shop(base: Setup, clock: &ManualClock) -> (TestApp, Cred) {
    let t = TestApp::spawn_with(Setup {
        credits: NanoCredits::ZERO,
        clock: Some(clock.clone()),
        extra_toml: "[payments]\nserved_countries = [\"FR\", \"US\"]\n".to_owned(),
        ..base
    })
    .await;
    let cred = Cred::Key(admin_key(&t, &t.org.clone()).await);
    let profile = json!({"name": "Ada", "country": "US"});
    let r = call(&t, Method::PUT, "/v1/billing/profile", &cred, Some(profile)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    (t, cred)
}

async fn statement(t: &TestApp, cred: &Cred, from: Timestamp, to: Timestamp) -> Value {
    let path = format!(
        "/v1/billing/statement?starting_at={}&ending_at={}",
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    let r = call(t, Method::GET, &path, cred, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn amount(v: &Value) -> NanoCredits {
    credits(v.as_str().unwrap_or_else(|| panic!("not an amount: {v}")))
}

/// Opening + lines = closing, and every line's `balance_after` is the running sum.
fn assert_chains(s: &Value) -> NanoCredits {
    let mut balance = amount(&s["opening_balance"]);
    for line in s["lines"].as_array().unwrap() {
        balance = balance.checked_add(amount(&line["credits"])).unwrap();
        assert_eq!(amount(&line["balance_after"]), balance, "{line}");
    }
    assert_eq!(amount(&s["closing_balance"]), balance, "{s}");
    balance
}

fn sum_of(s: &Value, kind: &str) -> (NanoCredits, usize) {
    let lines: Vec<&Value> = s["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == kind)
        .collect();
    let total = NanoCredits::checked_sum(lines.iter().map(|l| amount(&l["credits"]))).unwrap();
    (total, lines.len())
}

/// What the run did, to check the statement against.
#[derive(Default)]
struct Run {
    charged: NanoCredits,
    purchases: usize,
    orders: Vec<String>,
}

async fn step(t: &TestApp, rng: &mut StdRng, i: usize, run: &mut Run) {
    let org = t.org.clone();
    match rng.gen_range(0..6) {
        0 => {
            let days = if rng.gen_bool(0.5) {
                json!(1)
            } else {
                json!(null)
            };
            let grant = json!({"amount": format!("{}", rng.gen_range(1..400)),
                "category": "granted", "expires_in_days": days, "reference": format!("g{i}")});
            let path = format!("/admin/v1/organizations/{org}/grants");
            let r = call(t, Method::POST, &path, &Cred::Operator, Some(grant)).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        1 => {
            let pay = json!({"method": "bank_transfer", "reference": format!("wire-{i}"),
                "amount_cents": 500, "currency": "usd", "plan_id": "credits-1000"});
            let path = format!("/admin/v1/organizations/{org}/payments");
            let r = call(t, Method::POST, &path, &Cred::Operator, Some(pay)).await;
            assert_eq!(r.status, 200, "{}", r.body);
            run.purchases += 1;
            run.orders.push(r.body["id"].as_str().unwrap().to_owned());
        }
        2 if !run.orders.is_empty() => {
            let order = run.orders.remove(rng.gen_range(0..run.orders.len()));
            let path = format!("/admin/v1/orders/{order}/refund");
            let r = call(t, Method::POST, &path, &Cred::Operator, Some(json!({}))).await;
            // Nothing left to refund is a clear refusal that moves nothing.
            assert!(r.status == 200 || r.status == 400, "{}", r.body);
        }
        3 => {
            let adjust = AdjustRequest {
                transfer_id: TransferId::parse(&format!("adjust-{i}")).unwrap(),
                org,
                lot_id: LotId::parse(&format!("lot_adjust-{i}")).unwrap(),
                amount: credits(&format!("{}", rng.gen_range(1..50))),
                reason: "goodwill".into(),
            };
            t.app.db.adjust(adjust).await.expect("adjust");
        }
        _ => {
            for _ in 0..rng.gen_range(1..4) {
                let r = t.message(&body(rng.gen_range(5..60), "")).await;
                assert!(r.status == 200 || r.status == 402, "{}", r.body);
                if r.status == 200 {
                    let receipt = t.final_receipt(&r.request_id()).await;
                    run.charged = run.charged.checked_add(receipt.charged()).unwrap();
                }
            }
        }
    }
}

async fn a_randomized_run_reconciles_in_every_period(setup: Setup) {
    let clock = ManualClock::new(START);
    let (t, cred) = shop(setup, &clock).await;
    let seed: u64 = rand::random();
    eprintln!("statement run seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut run = Run::default();
    for i in 0..40 {
        step(&t, &mut rng, i, &mut run).await;
        clock.advance(rng.gen_range(1..20) * HOUR_MS);
    }
    // Every one-day lot has expired: the sweep posts their remainders.
    clock.advance(48 * HOUR_MS);
    t.app.db.sweep_expired_lots().await.expect("sweep");
    // The route reads whole seconds: a second past the last entry.
    let end = clock.now().plus_millis(1000);

    let whole = statement(&t, &cred, START, end).await;
    assert_eq!(amount(&whole["opening_balance"]), NanoCredits::ZERO);
    let closing = assert_chains(&whole);
    assert_eq!(closing, t.balance().await.posted, "the ledger's balance");
    let (usage, _) = sum_of(&whole, "usage");
    assert_eq!(usage.checked_neg().unwrap(), run.charged, "usage = charges");
    let (bought, count) = sum_of(&whole, "purchase");
    assert_eq!(
        (bought, count),
        (
            credits("1000").checked_mul(run.purchases as i64).unwrap(),
            run.purchases
        )
    );

    // Random consecutive periods: each chains, and each opens where the last closed.
    let mut from = START;
    let mut opening = NanoCredits::ZERO;
    while from < end {
        let to = from.plus_millis(rng.gen_range(1..60) * HOUR_MS).min(end);
        let s = statement(&t, &cred, from, to).await;
        assert_eq!(amount(&s["opening_balance"]), opening, "{from} to {to}");
        opening = assert_chains(&s);
        from = to;
    }
    assert_eq!(opening, closing);
    assert!(t.app.db.verify().await.unwrap().is_clean());
}

async fn a_charge_belongs_to_the_month_it_settled_in(setup: Setup) {
    let march_end = Timestamp::parse_rfc3339("2026-03-31T23:59:59Z").unwrap();
    let clock = ManualClock::new(march_end);
    let (t, cred) = shop(setup, &clock).await;
    t.grant(credits("100")).await;
    // Admitted in the last second of March, settled in the first second of April.
    let request = body(64, "output_tokens=6 chunk_tokens=1 latency_ms=150");
    let mut stream = t.open_stream(&request, None).await;
    assert_eq!(stream.read_head().await, 200);
    let april = Timestamp::parse_rfc3339("2026-04-01T00:00:01Z").unwrap();
    clock.set(april);
    let request_id = stream.header("request-id").unwrap();
    stream.read_to_end().await;
    let charged = t.final_receipt(&request_id).await.charged();
    assert!(charged.is_positive());

    let march = Timestamp::parse_rfc3339("2026-03-01").unwrap();
    let april_start = Timestamp::parse_rfc3339("2026-04-01").unwrap();
    let may = Timestamp::parse_rfc3339("2026-05-01").unwrap();
    let in_march = statement(&t, &cred, march, april_start).await;
    assert_eq!(sum_of(&in_march, "usage").1, 0, "{in_march}");
    let in_april = statement(&t, &cred, april_start, may).await;
    let (usage, lines) = sum_of(&in_april, "usage");
    assert_eq!(
        (usage, lines),
        (charged.checked_neg().unwrap(), 1),
        "{in_april}"
    );
    let line = &in_april["lines"][0];
    assert_eq!(
        (&line["date"], &line["reference"]),
        (&json!("2026-04-01"), &json!("1 request"))
    );
    assert_chains(&in_april);
    // Without bounds: the current month (April, by the test clock).
    let r = call(&t, Method::GET, "/v1/billing/statement", &cred, None).await;
    assert_eq!(r.body["starting_at"], "2026-04-01T00:00:00Z", "{}", r.body);
    assert_eq!(r.body["closing_balance"], in_april["closing_balance"]);
}

async fn roles_csv_and_bad_periods(setup: Setup) {
    let clock = ManualClock::new(START);
    let (t, cred) = shop(setup, &clock).await;
    t.grant(credits("10")).await;
    clock.advance(HOUR_MS);
    let r = t.message(&body(20, "")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.final_receipt(&r.request_id()).await;
    // The route reads whole seconds: a second past the last entry.
    let end = clock.now().plus_millis(1000);
    let json_view = statement(&t, &cred, START, end).await;

    // CSV: a header, the opening row, the lines, the closing row — the same figures.
    let path = format!(
        "/v1/billing/statement?starting_at={}&ending_at={}",
        START.to_rfc3339(),
        end.to_rfc3339()
    );
    let csv = t
        .client
        .get(t.url(&path))
        .header(
            "x-api-key",
            match &cred {
                Cred::Key(k) => k.as_str(),
                _ => unreachable!(),
            },
        )
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "date",
            "at",
            "kind",
            "credits",
            "balance_after",
            "reference"
        ]
    );
    let lines = json_view["lines"].as_array().unwrap();
    assert_eq!(rows.len(), lines.len() + 3, "{text}");
    assert_eq!(rows[1][2], "opening_balance");
    for (row, line) in rows[2..].iter().zip(lines) {
        assert_eq!(
            (row[2], row[3], row[4]),
            (
                line["kind"].as_str().unwrap(),
                line["credits"].as_str().unwrap(),
                line["balance_after"].as_str().unwrap()
            )
        );
    }
    let last = rows.last().unwrap();
    assert_eq!(
        (last[2], last[4]),
        (
            "closing_balance",
            json_view["closing_balance"].as_str().unwrap()
        )
    );

    // Owner, admin and billing read it; a developer or a user may not.
    let billing = member(&t, "billing@example.com", Role::Billing)
        .await
        .cred();
    let r = call(&t, Method::GET, &path, &billing, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (email, role) in [
        ("dev@example.com", Role::Developer),
        ("user@example.com", Role::User),
    ] {
        let who = member(&t, email, role).await.cred();
        let r = call(&t, Method::GET, &path, &who, None).await;
        r.assert_error(403, "permission_error");
    }

    // Bad periods: a clear 400 in the error envelope.
    for bad in [
        "starting_at=2026-03-05&ending_at=2026-03-01",
        "starting_at=2026-03-05&ending_at=2026-03-05",
        "starting_at=yesterday",
        "ending_at=2026-13-01",
        "format=pdf",
        "limit=5",
        "starting_at=2026-03-01&starting_at=2026-03-02",
    ] {
        let r = call(
            &t,
            Method::GET,
            &format!("/v1/billing/statement?{bad}"),
            &cred,
            None,
        )
        .await;
        r.assert_error(400, "invalid_request_error");
    }
}
