//! Reports add up to the ledger exactly: random settlements (random keys, models, services,
//! token counts, per-line credits) at random times over three days through the storage's real
//! settle path, on SQLite and on Postgres; then every report, for every bucket width and
//! grouping, paged through, must sum to the ledger's charges (`sys:revenue` entries) of the same
//! organization and window, to the nano-credit. Buckets are UTC and half-open; a request counts
//! in the bucket of its settlement time.

use std::sync::Arc;

use creditgate_core::clock::{ManualClock, Timestamp};
use creditgate_core::ids::{ApiKeyId, LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{account, GrantRequest, HoldRequest, LedgerStore, SettleRequest};
use creditgate_core::money::{CreditUnit, Decimal, NanoCredits};
use creditgate_core::reports::{usd_cents, BucketWidth};
use creditgate_core::usage::{
    DisconnectPolicy, Lines, PicoUsd, ReceiptStatus, Service, Tokens, UsageRecord,
};
use creditgate_gateway::reports::{build, page_json, ReportKind, ReportQuery, Scope};
use creditgate_storage::Database;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::helpers::random_hex;

/// 2026-01-01T00:00:00Z.
const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);
const DAY_MS: i64 = 86_400_000;
/// Days the random settlements spread over.
const DAYS: i64 = 3;
const SETTLEMENTS: usize = 240;
const MODELS: [&str; 3] = ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1"];
const KEYS: [&str; 3] = [
    "key_aaaaaaaaaaaaaaaa",
    "key_bbbbbbbbbbbbbbbb",
    "key_cccccccccccccccc",
];

/// What to remove after a run: a SQLite directory, or a Postgres database (admin URL, name).
pub enum Cleanup {
    Dir(std::path::PathBuf),
    Postgres(String, String),
}

impl Cleanup {
    pub async fn run(self) {
        match self {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres(admin, name) => {
                pg_exec(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await
            }
        }
    }
}

/// A fresh database on `backend` ("sqlite" or "postgres") and a way to drop it; `None` when
/// Postgres is not configured.
pub async fn fresh(backend: &str, clock: &ManualClock) -> Option<(Database, Cleanup)> {
    if backend == "sqlite" {
        let dir = std::env::temp_dir().join(format!("cg-report-{}", random_hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("reports.db").display());
        let db = Database::connect(&url, Arc::new(clock.clone()))
            .await
            .unwrap();
        return Some((db, Cleanup::Dir(dir)));
    }
    let pg = postgres_database().await?;
    let db = Database::connect(&pg.url, Arc::new(clock.clone()))
        .await
        .unwrap();
    let (admin, name) = (pg.admin, pg.name);
    Some((db, Cleanup::Postgres(admin, name)))
}

/// A fresh, empty Postgres database on `CREDITGATE_TEST_POSTGRES_URL` (`None`, with a note,
/// when it is not set).
pub struct PgDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl PgDatabase {
    pub async fn drop(self) {
        pg_exec(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

pub async fn postgres_database() -> Option<PgDatabase> {
    let Ok(admin) = std::env::var("CREDITGATE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: CREDITGATE_TEST_POSTGRES_URL not set");
        return None;
    };
    let name = format!("cg_reports_{}", random_hex(6));
    pg_exec(&admin, &format!("CREATE DATABASE {name}")).await;
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), ""), |(b, q)| (b, q));
    let cut = base.rfind('/').unwrap();
    let sep = if query.is_empty() { "" } else { "?" };
    let url = format!("{}/{name}{sep}{query}", &base[..cut]);
    Some(PgDatabase { url, admin, name })
}

async fn pg_exec(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

pub async fn funded_org(db: &Database, name: &str) -> OrganizationId {
    let org = OrganizationId::parse(&format!("org_{name}_{}", random_hex(4))).unwrap();
    db.create_organization(org.clone(), name.into())
        .await
        .unwrap();
    db.grant(GrantRequest::purchase(
        TransferId::parse(&format!("fund-{org}")).unwrap(),
        org.clone(),
        LotId::parse(&format!("lot-{org}")).unwrap(),
        NanoCredits::from_credits(1_000_000_000).unwrap(),
    ))
    .await
    .unwrap();
    org
}

fn random_lines<T>(rng: &mut StdRng, f: fn(i64) -> T, max: i64) -> Lines<T> {
    let mut v = || {
        f(if rng.gen_bool(0.3) {
            0
        } else {
            rng.gen_range(0..max)
        })
    };
    Lines {
        input: v(),
        cache_write_5m: v(),
        cache_write_1h: v(),
        cache_read: v(),
        output: v(),
        web_search: v(),
        web_fetch: v(),
    }
}

/// A random usage record; its credits are the charge.
fn random_record(rng: &mut StdRng) -> UsageRecord {
    let pick = |rng: &mut StdRng, xs: &[&str]| xs[rng.gen_range(0..xs.len())].to_owned();
    let opt = |rng: &mut StdRng, xs: &[&str]| rng.gen_bool(0.8).then(|| pick(rng, xs));
    let mut n = || rng.gen_range(0..5_000u64);
    let tokens = Tokens {
        input: n(),
        cache_write_5m: n(),
        cache_write_1h: n(),
        cache_read: n(),
        output: n(),
        thinking: None,
        web_search_requests: n() % 4,
        web_fetch_requests: n() % 3,
    };
    UsageRecord {
        key_id: rng
            .gen_bool(0.95)
            .then(|| ApiKeyId::parse(&pick(rng, &KEYS)).unwrap()),
        model: pick(rng, &MODELS),
        tokens: rng.gen_bool(0.95).then_some(tokens),
        service: Service {
            tier: opt(rng, &["standard", "priority", "batch"]),
            inference_geo: opt(rng, &["global", "us"]),
            speed: opt(rng, &["standard", "fast"]),
            long_context: rng.gen_bool(0.2),
        },
        credits: random_lines(rng, NanoCredits::from_nanos, 5_000_000_000),
        list: random_lines(rng, PicoUsd::from_pico, 90_000_000_000),
        cache_savings: NanoCredits::from_nanos(rng.gen_range(0..1_000_000)),
        price_version: Some("test@1".into()),
        latency_ms: rng.gen_range(0..5_000),
        status: ReceiptStatus::Settled,
        stream: rng.gen_bool(0.5),
        disconnect_policy: DisconnectPolicy::Drain,
        upstream_request_id: None,
        flags: Vec::new(),
        note: None,
    }
}

/// Holds and settles one request at the clock's time.
pub async fn settle(db: &Database, org: &OrganizationId, record: UsageRecord) {
    let id = format!("req_{}", random_hex(10));
    let charge = record.credits.total().unwrap();
    db.reserve(HoldRequest {
        transfer_id: TransferId::parse(&id).unwrap(),
        org: org.clone(),
        amount: charge,
        timeout_ms: 900_000,
        scope: None,
        limits: Vec::new(),
        memo: None,
    })
    .await
    .unwrap();
    db.settle(SettleRequest {
        transfer_id: TransferId::parse(&format!("{id}-settle")).unwrap(),
        hold: TransferId::parse(&id).unwrap(),
        amount: charge,
        memo: None,
        usage: Some(Box::new(record)),
        leased: None,
    })
    .await
    .unwrap();
}

/// The ledger's charges of `org` settled in `[from, to)`.
async fn ledger_charges(db: &Database, org: &OrganizationId, from: i64, to: i64) -> NanoCredits {
    let entries = db.entries(org).await.unwrap();
    NanoCredits::checked_sum(
        entries
            .iter()
            .filter(|e| e.credit == account::REVENUE)
            .filter(|e| (from..to).contains(&e.at.millis()))
            .map(|e| e.amount),
    )
    .unwrap()
}

fn credits_of(result: &Value, kind: ReportKind) -> NanoCredits {
    let v = match kind {
        ReportKind::Cache => &result["credits"]["total"],
        _ => &result["credits"],
    };
    v.as_str()
        .expect("credits as a decimal string")
        .parse()
        .unwrap()
}

/// The whole window of `query`, page by page (following `next`), as the sums of its
/// credits and, for the cost report, of its USD amounts.
async fn report_totals(
    db: &Database,
    scope: &Scope,
    q: &ReportQuery,
    now: Timestamp,
) -> (NanoCredits, Decimal, usize) {
    let unit = CreditUnit::reseller_default();
    let (mut credits, mut cents, mut buckets) = (NanoCredits::ZERO, Decimal::ZERO, 0);
    let mut from = q.start;
    loop {
        let page = build(db, scope, q, from, q.limit, now).await.unwrap();
        let json = page_json(q, &page, &unit, *scope == Scope::Operator, None).unwrap();
        for bucket in json["data"].as_array().unwrap() {
            buckets += 1;
            for r in bucket["results"].as_array().unwrap() {
                credits = credits.checked_add(credits_of(r, q.kind)).unwrap();
                if q.kind == ReportKind::Cost {
                    let amount: Decimal = r["amount"].as_str().unwrap().parse().unwrap();
                    cents = cents.checked_add(amount).unwrap();
                }
            }
        }
        match page.next {
            Some(next) => from = next,
            None => return (credits, cents, buckets),
        }
    }
}

/// Every grouping each report takes, one at a time and all together.
fn groupings(kind: ReportKind) -> Vec<Vec<&'static str>> {
    let all: Vec<&str> = match kind {
        ReportKind::Usage => vec![
            "api_key_id",
            "workspace_id",
            "model",
            "service_tier",
            "context_window",
            "inference_geo",
            "speed",
        ],
        ReportKind::Cost => vec!["workspace_id", "description", "model"],
        ReportKind::Cache => vec!["api_key_id", "model"],
    };
    let mut out = vec![Vec::new(), all.clone()];
    out.extend(all.into_iter().map(|d| vec![d]));
    if kind != ReportKind::Cost {
        out.push(vec!["model", "api_key_id"]);
    }
    out
}

/// The windows checked for a width: the whole run for days and hours (paged), a day at a time
/// for minutes (a minute window holds at most 1,440 buckets).
fn windows(width: BucketWidth) -> Vec<(i64, i64, usize)> {
    let start = START.millis();
    match width {
        BucketWidth::Day => vec![(start, start + DAYS * DAY_MS, 2)],
        BucketWidth::Hour => vec![(start, start + DAYS * DAY_MS, 24)],
        BucketWidth::Minute => (0..DAYS)
            .map(|d| (start + d * DAY_MS, start + (d + 1) * DAY_MS, 600))
            .collect(),
    }
}

fn query(width: BucketWidth, window: (i64, i64, usize), dims: &[&str]) -> String {
    let time = |ms: i64| Timestamp::from_millis(ms).to_rfc3339();
    let mut q = format!(
        "starting_at={}&ending_at={}&bucket_width={}&limit={}",
        time(window.0),
        time(window.1),
        width.as_str(),
        window.2
    );
    for d in dims {
        q.push_str(&format!("&group_by[]={d}"));
    }
    q
}

async fn check_every_report(db: &Database, org: &OrganizationId, now: Timestamp) -> usize {
    let unit = CreditUnit::reseller_default();
    let mut checked = 0;
    for kind in [ReportKind::Usage, ReportKind::Cost, ReportKind::Cache] {
        for width in BucketWidth::ALL {
            if kind == ReportKind::Cost && width != BucketWidth::Day {
                continue;
            }
            for window in windows(width) {
                let expected = ledger_charges(db, org, window.0, window.1).await;
                for dims in groupings(kind) {
                    let text = query(width, window, &dims);
                    let q = ReportQuery::parse(kind, &text, None, false, now).unwrap();
                    let scope = Scope::Organization(org.clone());
                    let (credits, cents, buckets) = report_totals(db, &scope, &q, now).await;
                    let what = format!("{kind:?} {text}");
                    assert_eq!(credits, expected, "{what}");
                    assert_eq!(buckets, q.bucket_starts().len(), "{what}");
                    if kind == ReportKind::Cost {
                        assert_eq!(cents, usd_cents(expected, &unit).unwrap(), "{what}");
                    }
                    checked += 1;
                }
            }
        }
    }
    checked
}

async fn randomized_run(backend: &str, seed: u64) {
    let clock = ManualClock::new(START);
    let Some((db, cleanup)) = fresh(backend, &clock).await else {
        return;
    };
    eprintln!("report exactness on {backend}, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let orgs = [funded_org(&db, "a").await, funded_org(&db, "b").await];
    // Random times, in order; some exactly on bucket boundaries.
    let mut times: Vec<i64> = (0..SETTLEMENTS)
        .map(|i| match i % 10 {
            0 => START.millis() + rng.gen_range(0..DAYS * 24) * 3_600_000,
            1 => START.millis() + rng.gen_range(1..DAYS) * DAY_MS - 1,
            _ => START.millis() + rng.gen_range(0..DAYS * DAY_MS),
        })
        .collect();
    times.sort_unstable();
    for t in times {
        clock.set(Timestamp::from_millis(t));
        let org = &orgs[rng.gen_range(0..orgs.len())];
        settle(&db, org, random_record(&mut rng)).await;
    }
    let now = START.plus_millis((DAYS + 1) * DAY_MS);
    clock.set(now);
    assert!(db.verify().await.unwrap().is_clean());
    let mut checked = 0;
    for org in &orgs {
        checked += check_every_report(&db, org, now).await;
    }
    eprintln!("{checked} report windows x groupings matched the ledger exactly");
    drop(db);
    cleanup.run().await;
}

fn seed() -> u64 {
    std::env::var("CREDITGATE_REPORT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test]
async fn reports_add_up_to_the_ledger_exactly_on_sqlite() {
    randomized_run("sqlite", seed()).await;
}

#[tokio::test]
async fn reports_add_up_to_the_ledger_exactly_on_postgres() {
    randomized_run("postgres", seed()).await;
}

/// A record with only cache lines: `write_5m`/`write_1h` credits written, `read` tokens read.
fn cache_record(key: &str, write_5m: i64, write_1h: i64, read: u64) -> UsageRecord {
    let mut rng = StdRng::seed_from_u64(1);
    let mut r = random_record(&mut rng);
    r.key_id = Some(ApiKeyId::parse(key).unwrap());
    r.model = MODELS[0].to_owned();
    r.tokens = Some(Tokens {
        cache_write_5m: u64::from(write_5m > 0) * 1000,
        cache_write_1h: u64::from(write_1h > 0) * 1000,
        cache_read: read,
        ..Tokens::default()
    });
    r.credits = Lines {
        cache_write_5m: NanoCredits::from_nanos(write_5m),
        cache_write_1h: NanoCredits::from_nanos(write_1h),
        cache_read: NanoCredits::from_nanos(i64::try_from(read).unwrap()),
        ..Lines::default()
    };
    r
}

/// Writes never read within their TTL, by the documented rule (`docs/reports.md`): a write
/// counts as read when the same key reads the same model's cache from the write's minute to its
/// TTL later; writes still within their TTL are not counted yet.
#[tokio::test]
async fn the_cache_report_counts_writes_never_read_within_their_ttl() {
    let clock = ManualClock::new(START);
    let (db, cleanup) = fresh("sqlite", &clock).await.unwrap();
    let org = funded_org(&db, "cache").await;
    let at = |minutes: i64, ms: i64| Timestamp::from_millis(START.millis() + minutes * 60_000 + ms);
    for (time, rec) in [
        (at(0, 10), cache_record(KEYS[0], 100, 0, 0)), // read 4 minutes later: not wasted
        (at(4, 0), cache_record(KEYS[0], 0, 0, 500)),
        (at(10, 0), cache_record(KEYS[1], 70, 0, 0)), // key b's 5m write: never read
        (at(20, 0), cache_record(KEYS[0], 0, 40, 0)), // 1h write read 59 minutes later
        (at(79, 0), cache_record(KEYS[0], 0, 0, 9)),
        (at(30, 0), cache_record(KEYS[2], 0, 25, 0)), // read by key a only: wasted for c
        (at(170, 0), cache_record(KEYS[2], 11, 0, 0)), // still within its TTL at "now"
    ] {
        clock.set(time);
        settle(&db, &org, rec).await;
    }
    let now = at(172, 0);
    let q = ReportQuery::parse(
        ReportKind::Cache,
        "starting_at=2026-01-01T00:00:00Z&ending_at=2026-01-01T03:00:00Z&bucket_width=1h",
        None,
        false,
        now,
    )
    .unwrap();
    let scope = Scope::Organization(org.clone());
    let page = build(&db, &scope, &q, q.start, q.limit, now).await.unwrap();
    let json = page_json(&q, &page, &CreditUnit::reseller_default(), false, None).unwrap();
    let mut unread = std::collections::BTreeMap::new();
    for bucket in json["data"].as_array().unwrap() {
        for r in bucket["results"].as_array().unwrap() {
            let total: NanoCredits = r["unread_writes"]["total"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let key = r["api_key_id"].as_str().unwrap().to_owned();
            let slot = unread.entry(key).or_insert(NanoCredits::ZERO);
            *slot = slot.checked_add(total).unwrap();
        }
    }
    assert_eq!(unread[KEYS[0]], NanoCredits::ZERO, "{json}");
    assert_eq!(unread[KEYS[1]], NanoCredits::from_nanos(70), "{json}");
    assert_eq!(unread[KEYS[2]], NanoCredits::from_nanos(25), "{json}");
    drop(db);
    cleanup.run().await;
}
