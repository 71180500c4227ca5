//! The report routes over HTTP: `usage_report/messages`, `cost_report` and `cache_report` for an
//! organization (admin key), the operator's `/admin/v1/reports/*`, CSV, paging, `GET /v1/key`'s
//! periods, and every bad input a clear 400 that changes nothing. Numbers are checked against
//! the receipts of real requests through the gateway, on SQLite and on Postgres.

use creditgate_core::clock::Timestamp;
use creditgate_core::money::{CreditUnit, Decimal, NanoCredits};
use creditgate_core::reports::{usd_cents, BucketWidth};
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{admin_key, call, Cred};
use crate::helpers::*;

const SONNET: &str = "claude-sonnet-4-5";

fn words(n: usize, salt: &str) -> String {
    (0..n)
        .map(|i| format!("{salt}{}", i % 97))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A request with both cache TTLs in its system prompt: the first call writes, a repeat reads.
fn cached(model: &str, salt: &str) -> Value {
    let mut b = body_for(model, 128, "output_tokens=12");
    b["system"] = json!([
        {"type": "text", "text": words(1200, salt), "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": words(1200, &format!("{salt}x")), "cache_control": {"type": "ephemeral", "ttl": "5m"}}
    ]);
    b
}

/// What the receipts of a run add up to.
#[derive(Debug, Default)]
struct Expected {
    requests: u64,
    charged: NanoCredits,
    input: u64,
    write_5m: u64,
    write_1h: u64,
    read: u64,
    output: u64,
}

impl Expected {
    fn add(&mut self, r: &Receipt) {
        let u = r.usage();
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        self.requests += 1;
        self.charged = self.charged.checked_add(r.charged()).unwrap();
        self.input += n(&u["input_tokens"]);
        self.write_5m += n(&u["cache_creation"]["ephemeral_5m_input_tokens"]);
        self.write_1h += n(&u["cache_creation"]["ephemeral_1h_input_tokens"]);
        self.read += n(&u["cache_read_input_tokens"]);
        self.output += n(&u["output_tokens"]);
    }
}

/// Sends a mix of models, streams and cache writes and reads; returns the receipts' sums.
async fn traffic(t: &TestApp, key: &str) -> Expected {
    let mut expected = Expected::default();
    let salt = random_hex(3);
    let bodies = [
        body_for(MODEL, 64, "output_tokens=7"),
        body_for(SONNET, 64, "output_tokens=9"),
        cached(MODEL, &salt),
        cached(MODEL, &salt),
        cached(SONNET, &salt),
    ];
    for (i, b) in bodies.iter().enumerate() {
        let id = if i == 1 {
            let s = t.stream_as(key, b).await;
            assert_eq!(s.status, 200, "{}", s.raw);
            s.request_id()
        } else {
            let r = t.message_as(key, b).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.request_id()
        };
        expected.add(&t.final_receipt_as(key, &id).await);
    }
    assert!(expected.read > 0 && expected.write_1h > 0 && expected.write_5m > 0);
    expected
}

fn credits_in(v: &Value) -> NanoCredits {
    v.as_str()
        .unwrap_or_else(|| panic!("a decimal string: {v}"))
        .parse()
        .unwrap()
}

/// Every result of every page of `path` (following `next_page`), with the report's buckets.
async fn all_results(t: &TestApp, cred: &Cred, path: &str) -> (Vec<Value>, usize) {
    let (mut results, mut buckets, mut page) = (Vec::new(), 0, None::<String>);
    loop {
        let url = match &page {
            Some(p) => format!("{path}&page={p}"),
            None => path.to_owned(),
        };
        let r = call(t, Method::GET, &url, cred, None).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        for b in r.body["data"].as_array().unwrap() {
            buckets += 1;
            results.extend(b["results"].as_array().unwrap().iter().cloned());
        }
        match r.body["next_page"].as_str() {
            Some(next) => {
                assert_eq!(r.body["has_more"], true);
                page = Some(next.to_owned());
            }
            None => {
                assert_eq!(r.body["has_more"], false);
                return (results, buckets);
            }
        }
    }
}

fn sum(results: &[Value], f: impl Fn(&Value) -> u64) -> u64 {
    results.iter().map(f).sum()
}

fn sum_credits(results: &[Value], pointer: &str) -> NanoCredits {
    NanoCredits::checked_sum(
        results
            .iter()
            .map(|r| credits_in(r.pointer(pointer).unwrap())),
    )
    .unwrap()
}

/// A window around now: a day before to a day after, in buckets of `width`.
fn window(width: BucketWidth) -> String {
    let now = now();
    let span = match width {
        BucketWidth::Day => 86_400_000,
        BucketWidth::Hour => 3 * 3_600_000,
        BucketWidth::Minute => 10 * 60_000,
    };
    format!(
        "starting_at={}&ending_at={}&bucket_width={}",
        now.plus_millis(-span).to_rfc3339(),
        now.plus_millis(span).to_rfc3339(),
        width.as_str()
    )
}

async fn check_usage_report(t: &TestApp, cred: &Cred, e: &Expected) {
    for width in BucketWidth::ALL {
        for group in [
            "",
            "&group_by[]=model&group_by[]=api_key_id",
            "&group_by[]=service_tier",
        ] {
            let path = format!(
                "/v1/organizations/usage_report/messages?{}&limit=1{group}",
                window(width)
            );
            let (r, _) = all_results(t, cred, &path).await;
            assert_eq!(sum_credits(&r, "/credits"), e.charged, "{path}");
            assert_eq!(sum(&r, |v| v["requests"].as_u64().unwrap()), e.requests);
            assert_eq!(
                sum(&r, |v| v["uncached_input_tokens"].as_u64().unwrap()),
                e.input
            );
            assert_eq!(sum(&r, |v| v["output_tokens"].as_u64().unwrap()), e.output);
            assert_eq!(
                sum(&r, |v| v["cache_read_input_tokens"].as_u64().unwrap()),
                e.read
            );
            let w5 = |v: &Value| {
                v["cache_creation"]["ephemeral_5m_input_tokens"]
                    .as_u64()
                    .unwrap()
            };
            let w1 = |v: &Value| {
                v["cache_creation"]["ephemeral_1h_input_tokens"]
                    .as_u64()
                    .unwrap()
            };
            assert_eq!((sum(&r, w5), sum(&r, w1)), (e.write_5m, e.write_1h));
            if group.contains("model") {
                assert!(r
                    .iter()
                    .all(|v| v["model"].is_string() && v["api_key_id"].is_string()));
            } else {
                assert!(r.iter().all(|v| v["model"].is_null()), "{r:?}");
            }
        }
    }
}

async fn check_cost_and_cache_reports(t: &TestApp, cred: &Cred, e: &Expected) {
    let unit = CreditUnit::reseller_default();
    for group in ["", "&group_by[]=description", "&group_by[]=model"] {
        let path = format!(
            "/v1/organizations/cost_report?{}{group}",
            window(BucketWidth::Day)
        );
        let (r, _) = all_results(t, cred, &path).await;
        assert_eq!(sum_credits(&r, "/credits"), e.charged, "{path}");
        let cents = r.iter().fold(Decimal::ZERO, |acc, v| {
            acc.checked_add(v["amount"].as_str().unwrap().parse().unwrap())
                .unwrap()
        });
        assert_eq!(cents, usd_cents(e.charged, &unit).unwrap(), "{path}");
        assert!(r
            .iter()
            .all(|v| v["currency"] == "USD" && v["list_amount"].is_string()));
        if group.contains("description") {
            let types: Vec<&str> = r.iter().filter_map(|v| v["token_type"].as_str()).collect();
            assert!(
                types.contains(&"cache_creation.ephemeral_1h_input_tokens"),
                "{types:?}"
            );
            assert!(types.contains(&"cache_read_input_tokens"), "{types:?}");
        }
    }
    let path = format!(
        "/v1/organizations/cache_report?{}",
        window(BucketWidth::Hour)
    );
    let (r, _) = all_results(t, cred, &path).await;
    assert_eq!(sum_credits(&r, "/credits/total"), e.charged);
    assert_eq!(
        sum(&r, |v| v["cache_read_input_tokens"].as_u64().unwrap()),
        e.read
    );
    assert!(sum_credits(&r, "/saved_by_reads").is_positive(), "{r:?}");
    // Every write is still within its TTL: none is counted as unread yet.
    assert_eq!(sum_credits(&r, "/unread_writes/total"), NanoCredits::ZERO);
}

/// The CSV of the usage report: a header row, then one row per bucket and result whose credits
/// add up to the same total; asked for by `format=csv` or by `Accept: text/csv`.
async fn check_csv(t: &TestApp, admin: &str, e: &Expected) {
    let path = format!(
        "/v1/organizations/usage_report/messages?{}&group_by[]=model",
        window(BucketWidth::Hour)
    );
    for (url, accept) in [
        (format!("{path}&format=csv"), "*/*"),
        (path.clone(), "text/csv"),
    ] {
        let resp = t
            .client
            .get(t.url(&url))
            .header("x-api-key", admin)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let text = resp.text().await.unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(&header[..3], &["starting_at", "ending_at", "api_key_id"]);
        let col = header.iter().position(|h| *h == "credits").unwrap();
        let total = NanoCredits::checked_sum(lines.map(|l| {
            l.split(',')
                .nth(col)
                .unwrap()
                .parse::<NanoCredits>()
                .unwrap()
        }))
        .unwrap();
        assert_eq!(total, e.charged, "{text}");
    }
}

/// `GET /v1/key`: today's, this week's and this month's usage from the same records.
async fn check_key_periods(t: &TestApp, e: &Expected) {
    let r = t.get("/v1/key").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for period in ["day", "week", "month"] {
        let p = &r.body["usage"]["periods"][period];
        assert_eq!(p["requests"], e.requests, "{period}: {p}");
        assert_eq!(credits_in(&p["credits"]), e.charged, "{period}");
        assert_eq!(p["output_tokens"], e.output, "{period}");
    }
    let day = &r.body["usage"]["periods"]["day"];
    let start = Timestamp::parse_rfc3339(day["starting_at"].as_str().unwrap()).unwrap();
    assert_eq!(start, BucketWidth::Day.floor(now()));
}

async fn reports_match_the_receipts(t: TestApp) {
    let admin = admin_key(&t, &t.org).await;
    let cred = Cred::Key(admin.clone());
    let expected = traffic(&t, &t.api_key.clone()).await;
    check_usage_report(&t, &cred, &expected).await;
    check_cost_and_cache_reports(&t, &cred, &expected).await;
    check_csv(&t, &admin, &expected).await;
    check_key_periods(&t, &expected).await;
    t.assert_ledger_clean().await;
}

#[tokio::test]
async fn reports_over_http_match_the_receipts() {
    reports_match_the_receipts(TestApp::spawn().await).await;
}

#[tokio::test]
async fn reports_over_http_match_the_receipts_on_postgres() {
    let Some(db) = crate::report_exactness::postgres_database().await else {
        return;
    };
    let t = TestApp::spawn_with(Setup {
        database_url: Some(db.url.clone()),
        ..Setup::default()
    })
    .await;
    reports_match_the_receipts(t).await;
    db.drop().await;
}

fn assert_400(r: &JsonReply, needle: &str, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.body);
    assert_eq!(r.body["type"], "error", "{what}");
    assert_eq!(r.body["error"]["type"], "invalid_request_error", "{what}");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{what}: {message}");
}

#[tokio::test]
async fn bad_report_input_is_a_clear_400() {
    let t = TestApp::spawn().await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let usage = "/v1/organizations/usage_report/messages";
    for (query, needle) in [
        (
            "starting_at=2026-11-20T00:00:00Z&ending_at=2026-11-19T00:00:00Z",
            "ending_at",
        ),
        (
            "starting_at=2026-10-01T00:00:00Z&ending_at=2026-11-02T00:00:00Z",
            "31 buckets",
        ),
        (
            "starting_at=2026-11-01T00:00:00Z&ending_at=2026-11-08T01:00:00Z&bucket_width=1h",
            "168 buckets",
        ),
        (
            "starting_at=2026-11-01T00:00:00Z&ending_at=2026-11-02T00:01:00Z&bucket_width=1m",
            "1440 buckets",
        ),
        ("starting_at=2026-11-01T00:00:00Z&limit=32", "limit"),
        (
            "starting_at=2026-11-01T00:00:00Z&group_by[]=colour",
            "group_by[]",
        ),
        (
            "starting_at=2026-11-01T00:00:00Z&api_key_ids[]=key%20x",
            "api_key_ids[]",
        ),
        (
            "starting_at=2026-11-01T00:00:00Z&api_key_ids[]=org_123",
            "api_key_ids[]",
        ),
        ("starting_at=yesterday", "starting_at"),
        ("ending_at=2026-11-01T00:00:00Z", "starting_at: required"),
        (
            "starting_at=2026-11-01T00:00:00Z&bucket_width=1w",
            "bucket_width",
        ),
    ] {
        let r = call(&t, Method::GET, &format!("{usage}?{query}"), &cred, None).await;
        assert_400(&r, needle, query);
    }
    let r = call(
        &t,
        Method::GET,
        "/v1/organizations/cost_report?starting_at=2026-11-01T00:00:00Z&bucket_width=1h",
        &cred,
        None,
    )
    .await;
    assert_400(&r, "1d", "cost report by the hour");
    let r = call(
        &t,
        Method::GET,
        "/v1/organizations/cost_report?starting_at=2026-11-01T00:00:00Z&group_by[]=api_key_id",
        &cred,
        None,
    )
    .await;
    assert_400(&r, "group_by[]", "cost report by key");
    t.assert_ledger_clean().await;
}

#[tokio::test]
async fn page_tokens_are_bound_to_the_organization_and_cannot_be_altered() {
    let t = TestApp::spawn().await;
    let ours = Cred::Key(admin_key(&t, &t.org).await);
    let (other_org, _) = t.other_org(credits("10")).await;
    let theirs = Cred::Key(admin_key(&t, &other_org).await);
    let path = format!(
        "/v1/organizations/usage_report/messages?{}&limit=2",
        window(BucketWidth::Hour)
    );
    let first = call(&t, Method::GET, &path, &ours, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["has_more"], true);
    let token = first.body["next_page"].as_str().unwrap().to_owned();
    let next = call(
        &t,
        Method::GET,
        &format!("{path}&page={token}"),
        &ours,
        None,
    )
    .await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_ne!(
        next.body["data"][0]["starting_at"],
        first.body["data"][0]["starting_at"]
    );

    let foreign = call(
        &t,
        Method::GET,
        &format!("{path}&page={token}"),
        &theirs,
        None,
    )
    .await;
    assert_400(&foreign, "page", "another organization's token");
    let (ms, tag) = token.split_once('_').unwrap();
    let moved = format!("{}_{tag}", ms.parse::<i64>().unwrap() + 3_600_000);
    let flipped = format!(
        "{ms}_{}{}",
        &tag[..tag.len() - 1],
        if tag.ends_with('0') { '1' } else { '0' }
    );
    for bad in [moved, flipped, "garbage".to_owned(), format!("{token}0")] {
        let r = call(&t, Method::GET, &format!("{path}&page={bad}"), &ours, None).await;
        assert_400(&r, "page", &bad);
    }
    let regrouped = format!("{path}&group_by[]=model&page={token}");
    let r = call(&t, Method::GET, &regrouped, &ours, None).await;
    assert_400(&r, "page", "a token of another query");
}

#[tokio::test]
async fn another_organizations_key_ids_match_nothing() {
    let t = TestApp::spawn().await;
    let cred = Cred::Key(admin_key(&t, &t.org).await);
    let (other_org, other_key) = t.other_org(credits("10")).await;
    assert_eq!(t.message(&body(64, "output_tokens=5")).await.status, 200);
    assert_eq!(
        t.message_as(&other_key, &body(64, "output_tokens=5"))
            .await
            .status,
        200
    );
    let their_id = t.app.db.api_keys(Some(&other_org)).await.unwrap()[0]
        .id
        .clone();
    let base = format!(
        "/v1/organizations/usage_report/messages?{}",
        window(BucketWidth::Day)
    );
    let mine = call(
        &t,
        Method::GET,
        &format!("{base}&api_key_ids[]={}", t.key.id),
        &cred,
        None,
    )
    .await;
    let results = mine.body["data"].as_array().unwrap();
    let n: usize = results
        .iter()
        .map(|b| b["results"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 1, "{}", mine.body);
    let theirs = call(
        &t,
        Method::GET,
        &format!("{base}&api_key_ids[]={their_id}"),
        &cred,
        None,
    )
    .await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    for b in theirs.body["data"].as_array().unwrap() {
        assert_eq!(b["results"], json!([]), "{}", theirs.body);
    }
}

#[tokio::test]
async fn the_operator_reports_across_organizations() {
    let t = TestApp::spawn().await;
    let (other_org, other_key) = t.other_org(credits("10")).await;
    let a = t.message(&body(64, "output_tokens=5")).await;
    let b = t.message_as(&other_key, &body(64, "output_tokens=9")).await;
    let charged_a = t.final_receipt(&a.request_id()).await.charged();
    let charged_b = t
        .final_receipt_as(&other_key, &b.request_id())
        .await
        .charged();
    let path = format!(
        "/admin/v1/reports/usage?{}&group_by[]=organization_id",
        window(BucketWidth::Day)
    );
    let (r, _) = all_results(&t, &Cred::Operator, &path).await;
    let of = |org: &str| {
        sum_credits(
            &r.iter()
                .filter(|v| v["organization_id"] == org)
                .cloned()
                .collect::<Vec<_>>(),
            "/credits",
        )
    };
    assert_eq!(of(t.org.as_str()), charged_a);
    assert_eq!(of(other_org.as_str()), charged_b);
    let only = format!("{path}&organization_ids[]={other_org}");
    let (r, _) = all_results(&t, &Cred::Operator, &only).await;
    assert_eq!(sum_credits(&r, "/credits"), charged_b);
    for kind in ["cost", "cache"] {
        let path = format!("/admin/v1/reports/{kind}?{}", window(BucketWidth::Day));
        let (r, _) = all_results(&t, &Cred::Operator, &path).await;
        let pointer = if kind == "cache" {
            "/credits/total"
        } else {
            "/credits"
        };
        assert_eq!(
            sum_credits(&r, pointer),
            charged_a.checked_add(charged_b).unwrap()
        );
    }
    let secret = admin_key(&t, &t.org).await;
    let r = call(&t, Method::GET, &path, &Cred::Key(secret.clone()), None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // Recent Anthropic SDKs send an admin key as a Bearer token: it reads its own reports.
    let own = format!(
        "/v1/organizations/usage_report/messages?{}",
        window(BucketWidth::Day)
    );
    let resp = t
        .client
        .get(t.url(&own))
        .header("authorization", format!("Bearer {secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let buckets = body["data"].as_array().unwrap();
    let results: Vec<Value> = buckets
        .iter()
        .flat_map(|b| b["results"].as_array().unwrap().clone())
        .collect();
    assert_eq!(sum_credits(&results, "/credits"), charged_a);
    let r = call(
        &t,
        Method::GET,
        "/v1/organizations/usage_report/messages?starting_at=2026-11-01T00:00:00Z",
        &Cred::Key(t.api_key.clone()),
        None,
    )
    .await;
    assert_eq!(
        r.status, 401,
        "an inference key cannot read reports: {}",
        r.body
    );
}
