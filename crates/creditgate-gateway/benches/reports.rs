//! Reports at scale (`docs/reports.md`, issue 12), on SQLite, in one run:
//!
//! 1. **report latency**: 10 million usage records of one organization over 31 days (20 keys,
//!    5 models), bulk-inserted in one transaction with their minute, hour and day rollups; then
//!    the 31-day daily usage report grouped by model and key, built and rendered as the HTTP
//!    route does (`reports::build` + `reports::page_json`), timed over repeated runs. The cost
//!    report and a 7-day hourly report are timed too, and the cache report for one day.
//! 2. **settlement throughput with rollups vs without**: hold+settle pairs carrying a usage
//!    record, on fresh databases, alternating runs with the rollups maintained and with them
//!    switched off (a trigger that drops every rollup write), same run, same machine; the ratio
//!    is printed.
//!
//! `cargo bench -p creditgate-gateway --bench reports` (or `bench/reports.sh`). Settings:
//! `CREDITGATE_BENCH_RECORDS` (default 10,000,000), `CREDITGATE_BENCH_SECONDS` (per throughput
//! run, default 5), `CREDITGATE_BENCH_ROUNDS` (throughput runs per kind, default 3; 0 skips them); `CREDITGATE_BENCH_RECORDS=0` skips the
//! reports.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use creditgate_core::clock::{SystemClock, Timestamp};
use creditgate_core::ids::{ApiKeyId, LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    GrantRequest, HoldRequest, LedgerStore, SettleRequest, DEFAULT_HOLD_TIMEOUT_MS,
};
use creditgate_core::money::{CreditUnit, NanoCredits};
use creditgate_core::usage::{
    DisconnectPolicy, Lines, PicoUsd, ReceiptStatus, Service, Tokens, UsageRecord,
};
use creditgate_gateway::reports::{build, page_json, ReportKind, ReportQuery, Scope};
use creditgate_storage::Database;

/// 2026-10-01T00:00:00Z: the 31 days of October hold the records.
const START_MS: i64 = 1_790_812_800_000;
const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 31;
/// Keys the records and the throughput runs spread over.
const KEYS: usize = 20;
const MODELS: [&str; 5] = [
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-1",
    "claude-sonnet-4-6",
    "claude-opus-4-5",
];
const ORG: &str = "org_bench_reports";
/// Concurrent tasks in the throughput runs.
const TASKS: usize = 64;
/// Timed repetitions of each report.
const REPORT_RUNS: usize = 20;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The records: request `i` settles at `START + i × 31 days / n`, key `i % 20`, model
/// `i / 20 % 5`; credits on input and output lines, list prices to match the CHECKs.
const INSERT_RECORDS: &str = "
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
INSERT INTO usage_records (
    request_id, org, at, key_id, model, reported,
    input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
    output_tokens, thinking_tokens, web_search_requests, web_fetch_requests,
    service_tier, inference_geo, speed, long_context,
    credits, credits_input, credits_cache_write_5m, credits_cache_write_1h, credits_cache_read,
    credits_output, credits_web_search, credits_web_fetch,
    list_pico_usd, list_input, list_cache_write_5m, list_cache_write_1h, list_cache_read,
    list_output, list_web_search, list_web_fetch,
    cache_savings, price_version, latency_ms, status, stream, disconnect_policy,
    upstream_request_id, flags, note)
SELECT printf('req_%010d', i), ?2, ?3 + i * ?4 / ?1, printf('key_%016d', i % 20),
       CASE (i / 20) % 5 WHEN 0 THEN 'claude-haiku-4-5' WHEN 1 THEN 'claude-sonnet-4-5'
            WHEN 2 THEN 'claude-opus-4-1' WHEN 3 THEN 'claude-sonnet-4-6'
            ELSE 'claude-opus-4-5' END, 1,
       1000 + i % 997, (i % 3) * 100, 0, (i % 5) * 200, 50 + i % 300, NULL, i % 7 = 0, 0,
       'standard', 'global', 'standard', 0,
       3000 + i % 997 + 500 * (i % 3), 1000 + i % 997, 500 * (i % 3), 0, 0, 2000, 0, 0,
       9000, 3000, 1500, 0, 0, 4500, 0, 0,
       i % 11, 'bench@1', 900, 'settled', 0, 'drain', NULL, NULL, NULL
FROM n";

/// Rollups from the records (minutes), then hours from minutes and days from hours.
const ROLLUP_MINUTES: &str = "
INSERT INTO usage_rollups
SELECT 60000, at - (at % 60000), org, COALESCE(key_id, ''), model, COALESCE(service_tier, ''),
       CASE WHEN long_context <> 0 THEN '200k-1M' ELSE '0-200k' END, COALESCE(inference_geo, ''),
       COALESCE(speed, ''), COUNT(*), SUM(input_tokens), SUM(cache_write_5m_tokens),
       SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(output_tokens),
       SUM(web_search_requests), SUM(web_fetch_requests), SUM(credits_input),
       SUM(credits_cache_write_5m), SUM(credits_cache_write_1h), SUM(credits_cache_read),
       SUM(credits_output), SUM(credits_web_search), SUM(credits_web_fetch), SUM(list_input),
       SUM(list_cache_write_5m), SUM(list_cache_write_1h), SUM(list_cache_read),
       SUM(list_output), SUM(list_web_search), SUM(list_web_fetch), SUM(cache_savings)
FROM usage_records GROUP BY 2, 3, 4, 5, 6, 7, 8, 9";

const ROLLUP_COARSER: &str = "
INSERT INTO usage_rollups
SELECT ?1, bucket - (bucket % ?1), org, key_id, model, service_tier, context_window,
       inference_geo, speed, SUM(requests), SUM(input_tokens), SUM(cache_write_5m_tokens),
       SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(output_tokens),
       SUM(web_search_requests), SUM(web_fetch_requests), SUM(credits_input),
       SUM(credits_cache_write_5m), SUM(credits_cache_write_1h), SUM(credits_cache_read),
       SUM(credits_output), SUM(credits_web_search), SUM(credits_web_fetch), SUM(list_input),
       SUM(list_cache_write_5m), SUM(list_cache_write_1h), SUM(list_cache_read),
       SUM(list_output), SUM(list_web_search), SUM(list_web_fetch), SUM(cache_savings)
FROM usage_rollups WHERE width = ?2 GROUP BY 2, 3, 4, 5, 6, 7, 8, 9";

/// Fills the database at `path` (already migrated) with `n` records and their rollups, in one
/// transaction. Returns the seconds it took.
fn generate(path: &std::path::Path, n: u64) -> f64 {
    let started = Instant::now();
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -262144; BEGIN;",
    )
    .expect("pragmas");
    conn.execute(
        "INSERT INTO organizations (id, name, created_at) VALUES (?1, 'bench', 0)",
        [ORG],
    )
    .ok();
    conn.execute(
        INSERT_RECORDS,
        rusqlite::params![n as i64, ORG, START_MS, DAYS * DAY_MS],
    )
    .expect("records");
    conn.execute(ROLLUP_MINUTES, []).expect("minute rollups");
    conn.execute(ROLLUP_COARSER, [3_600_000i64, 60_000])
        .expect("hour rollups");
    conn.execute(ROLLUP_COARSER, [DAY_MS, 3_600_000])
        .expect("day rollups");
    conn.execute_batch("COMMIT; ANALYZE;").expect("commit");
    started.elapsed().as_secs_f64()
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Times one report `REPORT_RUNS` times (after one untimed run); returns (min, median, max) in
/// milliseconds and the number of results of the last run.
async fn time_report(db: &Database, kind: ReportKind, query: &str) -> ([f64; 3], usize) {
    let now = Timestamp::from_millis(START_MS + (DAYS + 1) * DAY_MS);
    let scope = Scope::Organization(OrganizationId::parse(ORG).unwrap());
    let unit = CreditUnit::reseller_default();
    let q = ReportQuery::parse(kind, query, None, false, now).expect("query");
    let mut times = Vec::new();
    let mut results = 0;
    for run in 0..=REPORT_RUNS {
        let started = Instant::now();
        let page = build(db, &scope, &q, q.start, q.limit, now)
            .await
            .expect("report");
        let json = page_json(&q, &page, &unit, false, None).expect("json");
        let body = serde_json::to_vec(&json).expect("serialize");
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(!body.is_empty());
        results = json["data"].as_array().map_or(0, |d| {
            d.iter()
                .map(|b| b["results"].as_array().map_or(0, Vec::len))
                .sum()
        });
        if run > 0 {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    (
        [times[0], times[times.len() / 2], times[times.len() - 1]],
        results,
    )
}

async fn report_latency(dir: &std::path::Path, records: u64) {
    let path = dir.join("reports.db");
    let url = format!("sqlite://{}", path.display());
    drop(
        Database::connect(&url, Arc::new(SystemClock))
            .await
            .expect("migrate"),
    );
    println!("generating {records} usage records and their rollups ...");
    let secs = generate(&path, records);
    let rows = count(&path, "SELECT COUNT(*) FROM usage_records");
    let rollups = count(&path, "SELECT COUNT(*) FROM usage_rollups");
    println!("  {rows} records, {rollups} rollup rows, in {secs:.1} s");
    let db = Database::connect(&url, Arc::new(SystemClock))
        .await
        .expect("open");
    let oct = "starting_at=2026-10-01T00:00:00Z&ending_at=2026-11-01T00:00:00Z";
    let cases = [
        ("usage 1d x31, by model+key", ReportKind::Usage, format!("{oct}&limit=31&group_by[]=model&group_by[]=api_key_id")),
        ("usage 1d x31, ungrouped", ReportKind::Usage, format!("{oct}&limit=31")),
        ("cost 1d x31, by description", ReportKind::Cost, format!("{oct}&limit=31&group_by[]=description")),
        ("usage 1h x168, by model+key", ReportKind::Usage, "starting_at=2026-10-01T00:00:00Z&ending_at=2026-10-08T00:00:00Z&bucket_width=1h&limit=168&group_by[]=model&group_by[]=api_key_id".to_owned()),
        ("cache 1d x1 (minute scan)", ReportKind::Cache, "starting_at=2026-10-10T00:00:00Z&ending_at=2026-10-11T00:00:00Z".to_owned()),
        ("cache 1d x31 (minute scan)", ReportKind::Cache, format!("{oct}&limit=31")),
    ];
    println!();
    println!(
        "{:<32} {:>9} {:>9} {:>9} {:>8}",
        "report", "min ms", "p50 ms", "max ms", "results"
    );
    for (name, kind, query) in &cases {
        let ([min, p50, max], results) = time_report(&db, *kind, query).await;
        println!("{name:<32} {min:>9.1} {p50:>9.1} {max:>9.1} {results:>8}");
    }
}

/// A typical request's usage record (every settle of the throughput runs carries one).
fn record(t: usize) -> UsageRecord {
    UsageRecord {
        key_id: Some(ApiKeyId::parse(&format!("key_{:016}", t % KEYS)).unwrap()),
        model: MODELS[t % MODELS.len()].into(),
        tokens: Some(Tokens {
            input: 1_200,
            cache_read: 2_000,
            output: 64,
            ..Tokens::default()
        }),
        service: Service {
            tier: Some("standard".into()),
            inference_geo: Some("global".into()),
            speed: Some("standard".into()),
            long_context: false,
        },
        credits: Lines {
            input: NanoCredits::from_nanos(600_000),
            cache_read: NanoCredits::from_nanos(100_000),
            output: NanoCredits::from_nanos(200_000),
            ..Lines::default()
        },
        list: Lines {
            input: PicoUsd::from_pico(1_200_000_000),
            cache_read: PicoUsd::from_pico(200_000_000),
            output: PicoUsd::from_pico(320_000_000),
            ..Lines::default()
        },
        cache_savings: NanoCredits::from_nanos(900_000),
        price_version: Some("bench@1".into()),
        latency_ms: 12,
        status: ReceiptStatus::Settled,
        stream: false,
        disconnect_policy: DisconnectPolicy::Drain,
        upstream_request_id: None,
        flags: Vec::new(),
        note: None,
    }
}

async fn funded(db: &Database, name: &str) -> OrganizationId {
    let org = OrganizationId::parse(name).unwrap();
    db.create_organization(org.clone(), "bench".into())
        .await
        .expect("org");
    db.grant(GrantRequest::purchase(
        TransferId::parse(&format!("fund-{org}")).unwrap(),
        org.clone(),
        LotId::parse(&format!("lot-{org}")).unwrap(),
        NanoCredits::from_nanos(4_000_000_000_000_000_000),
    ))
    .await
    .expect("fund");
    org
}

/// Hold+settle pairs per second on a fresh database, `TASKS` tasks over as many organizations,
/// with the rollups maintained or switched off.
async fn settle_rate(dir: &std::path::Path, run: usize, rollups: bool, secs: u64) -> f64 {
    let path = dir.join(format!("settle-{run}.db"));
    let url = format!("sqlite://{}", path.display());
    let db = Database::connect(&url, Arc::new(SystemClock))
        .await
        .expect("open");
    if !rollups {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TRIGGER bench_no_rollups BEFORE INSERT ON usage_rollups
             BEGIN SELECT RAISE(IGNORE); END;",
        )
        .expect("trigger");
    }
    let mut orgs = Vec::new();
    for t in 0..TASKS {
        orgs.push(funded(&db, &format!("bench-{run}-{t}")).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pairs = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (t, org) in orgs.into_iter().enumerate() {
        let (db, stop, pairs) = (db.clone(), stop.clone(), pairs.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                settle_one(&db, &org, &format!("r{run}-t{t}-{n}"), record(t)).await;
                pairs.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    let rate = pairs.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let rollup_rows = count(&path, "SELECT COUNT(*) FROM usage_rollups");
    assert_eq!(rollup_rows > 0, rollups, "rollups maintained only when on");
    rate
}

async fn settle_one(db: &Database, org: &OrganizationId, id: &str, rec: UsageRecord) {
    let hold = TransferId::parse(id).unwrap();
    db.reserve(HoldRequest {
        transfer_id: hold.clone(),
        org: org.clone(),
        amount: NanoCredits::from_nanos(1_000_000),
        timeout_ms: DEFAULT_HOLD_TIMEOUT_MS,
        scope: None,
        limits: Vec::new(),
        memo: None,
    })
    .await
    .expect("hold");
    db.settle(SettleRequest {
        transfer_id: TransferId::parse(&format!("{id}-s")).unwrap(),
        hold,
        amount: NanoCredits::from_nanos(900_000),
        memo: None,
        usage: Some(Box::new(rec)),
        leased: None,
    })
    .await
    .expect("settle");
}

async fn settle_throughput(dir: &std::path::Path) {
    let secs = env_num("CREDITGATE_BENCH_SECONDS", 5);
    let rounds = env_num("CREDITGATE_BENCH_ROUNDS", 3) as usize;
    if rounds == 0 {
        return;
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    println!();
    println!("hold+settle pairs/s with a usage record, {TASKS} tasks x {TASKS} organizations, {secs} s per run");
    for round in 0..rounds {
        // Alternate which goes first, so drift in the machine's load hits both alike.
        for rollups in [round % 2 == 0, round % 2 != 0] {
            let rate = settle_rate(dir, round * 2 + usize::from(rollups), rollups, secs).await;
            println!(
                "  round {round}: rollups {:<3} {rate:>10.0}",
                if rollups { "on" } else { "off" }
            );
            if rollups {
                with.push(rate)
            } else {
                without.push(rate)
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (w, wo) = (mean(&with), mean(&without));
    println!(
        "  mean: with rollups {w:.0}/s, without {wo:.0}/s, ratio {:.3} (drop {:.1}%)",
        w / wo,
        (1.0 - w / wo) * 100.0
    );
    // Each round's two runs are back to back: their ratio cancels slow drift in the machine's load.
    let mut paired: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a / b).collect();
    paired.sort_by(f64::total_cmp);
    println!(
        "  median of the {} paired ratios (with / without): {:.3}",
        paired.len(),
        paired[paired.len() / 2]
    );
}

fn main() {
    let records = env_num("CREDITGATE_BENCH_RECORDS", 10_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("creditgate-reports-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    runtime.block_on(async {
        settle_throughput(&dir).await;
        if records > 0 {
            report_latency(&dir, records).await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
