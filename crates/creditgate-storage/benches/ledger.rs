//! Ledger throughput: hold+settle pairs per second, on SQLite and (when
//! `CREDITGATE_TEST_POSTGRES_URL` is set) on Postgres, for one hot organization and for many,
//! with concurrent tasks. Each case runs for a bounded time (`CREDITGATE_BENCH_SECONDS`, default
//! 3) and the results are printed as a table. On Postgres the 64-task cases with usage records
//! and the leased ones (alone and grouped) also run as two replicas: two stores, each with its own connection pool as two gateway
//! processes would have, sharing one database, the tasks split between them.
//!
//! Holds are named as the gateway names requests (`TransferId::for_request`: the time first,
//! then random bits); on SQLite the 64-task cases with usage records run a second time with
//! wholly random ids, as the gateway made them before, to show what the ids' order is worth.
//!
//! `cargo bench -p creditgate-storage`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use creditgate_core::clock::{SystemClock, Timestamp};
use creditgate_core::ids::{ApiKeyId, LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    GrantRequest, HoldRequest, LeasedHold, LedgerStore, SettleRequest, DEFAULT_HOLD_TIMEOUT_MS,
};
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::{
    DisconnectPolicy, Lines, PicoUsd, ReceiptStatus, Service, Tokens, UsageRecord,
};
use creditgate_storage::Database;

/// Concurrent tasks placing and settling holds.
const TASKS: usize = 64;
/// Organizations in the "many" cases.
const MANY_ORGS: usize = 64;
const HOLD: i64 = 1_000_000;
const CHARGE: i64 = 900_000;
/// Credit each organization starts with: enough for any run.
const FUNDS: i64 = 4_000_000_000_000_000_000;

#[derive(Clone, Copy)]
struct Case {
    backend: &'static str,
    orgs: usize,
    tasks: usize,
    settle: SettleKind,
    /// Stores (each its own pool, like a replica) sharing the database; the tasks alternate.
    replicas: usize,
    /// How the holds are named.
    ids: Ids,
}

/// How the benchmark names its holds (and so where their rows land in each table's b-tree).
#[derive(Clone, Copy, PartialEq)]
enum Ids {
    /// As the gateway names requests now: time first, then random bits.
    Ordered,
    /// 96 random bits, as the gateway named requests before.
    Random,
}

impl Ids {
    fn name(self) -> &'static str {
        match self {
            Self::Ordered => "ordered",
            Self::Random => "random",
        }
    }

    fn hold(self) -> TransferId {
        match self {
            Self::Ordered => {
                let millis = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_millis();
                TransferId::for_request(millis as u64, rand::random())
            }
            Self::Random => TransferId::parse(&format!(
                "req_cg_{}",
                hex::encode(rand::random::<[u8; 12]>())
            ))
            .unwrap(),
        }
    }
}

/// What each settle carries.
#[derive(Clone, Copy, PartialEq)]
enum SettleKind {
    /// Nothing: the ledger alone.
    Bare,
    /// The receipt as a JSON memo on the charge (what the gateway wrote before usage records).
    Memo,
    /// A typed usage record, written with its three rollup rows (what the gateway writes now).
    Record,
    /// A request admitted against a credit lease: no hold placed, its settle records the hold
    /// with the charge and the usage record (`docs/ledger.md`, "Credit leases"; the lease's own
    /// replacement, once per many requests, is not counted).
    Leased,
    /// Leased settles posted [`GROUP`] at a time in one transaction, as the gateway's settler
    /// posts the ones queued together (`LedgerStore::settle_leased_group`).
    Grouped,
}

/// Leased settles per group in the grouped cases.
const GROUP: usize = 16;

impl SettleKind {
    const ALL: [SettleKind; 5] = [
        Self::Bare,
        Self::Memo,
        Self::Record,
        Self::Leased,
        Self::Grouped,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Memo => "memo",
            Self::Record => "record",
            Self::Leased => "leased",
            Self::Grouped => "grouped",
        }
    }
}

/// The cases of one backend: one hot organization alone, one hot organization under 64 tasks,
/// 64 organizations under 64 tasks; each with every kind of settle.
fn cases(backend: &'static str) -> Vec<Case> {
    let mut out = Vec::new();
    for (orgs, tasks) in [(1, 1), (1, TASKS), (MANY_ORGS, TASKS)] {
        for settle in SettleKind::ALL {
            out.push(Case {
                backend,
                orgs,
                tasks,
                settle,
                replicas: 1,
                ids: Ids::Ordered,
            });
        }
        if backend == "sqlite" && tasks == TASKS {
            out.push(Case {
                backend,
                orgs,
                tasks,
                settle: SettleKind::Record,
                replicas: 1,
                ids: Ids::Random,
            });
        }
        if backend == "postgres" && tasks == TASKS {
            for settle in [SettleKind::Record, SettleKind::Leased, SettleKind::Grouped] {
                out.push(Case {
                    backend,
                    orgs,
                    tasks,
                    settle,
                    replicas: 2,
                    ids: Ids::Ordered,
                });
            }
        }
    }
    out
}

struct Measured {
    pairs: u64,
    elapsed: Duration,
}

fn main() {
    let seconds: u64 = std::env::var("CREDITGATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let duration = Duration::from_secs(seconds);
        let mut rows = Vec::new();
        let dir = std::env::temp_dir().join(format!("creditgate-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (i, case) in cases("sqlite").into_iter().enumerate() {
            let url = format!("sqlite://{}", dir.join(format!("bench-{i}.db")).display());
            let db = Database::connect(&url, Arc::new(SystemClock))
                .await
                .expect("sqlite");
            let measured = run_case(std::slice::from_ref(&db), i, &case, duration).await;
            let report = db.verify().await.expect("verify");
            assert!(report.is_clean(), "{:?}", report.problems);
            rows.push((case, measured));
        }
        let _ = std::fs::remove_dir_all(&dir);

        match std::env::var("CREDITGATE_TEST_POSTGRES_URL") {
            Ok(admin) => {
                let name = format!("cg_bench_{}", std::process::id());
                admin_exec(&admin, &format!("DROP DATABASE IF EXISTS {name}")).await;
                admin_exec(&admin, &format!("CREATE DATABASE {name}")).await;
                let url = with_database(&admin, &name);
                {
                    let mut replicas = Vec::new();
                    for _ in 0..2 {
                        let db = Database::connect(&url, Arc::new(SystemClock))
                            .await
                            .expect("postgres");
                        replicas.push(db);
                    }
                    for (i, case) in cases("postgres").into_iter().enumerate() {
                        let dbs = &replicas[..case.replicas];
                        let measured = run_case(dbs, 100 + i, &case, duration).await;
                        rows.push((case, measured));
                    }
                    let report = replicas[0].verify().await.expect("verify");
                    assert!(report.is_clean(), "{:?}", report.problems);
                }
                admin_exec(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
            }
            Err(_) => {
                eprintln!("Postgres skipped: set CREDITGATE_TEST_POSTGRES_URL to benchmark it too")
            }
        }

        println!();
        println!(
            "hold+settle pairs per second ({seconds} s per case, {} cores)",
            cores()
        );
        println!(
            "{:<10} {:>5} {:>6} {:>8} {:>7} {:>8} {:>10} {:>12} {:>10}",
            "backend", "orgs", "tasks", "replicas", "settle", "ids", "pairs", "pairs/s", "vs memo"
        );
        let rate = |m: &Measured| m.pairs as f64 / m.elapsed.as_secs_f64();
        for (case, m) in &rows {
            // The same shape's memo run: what settling cost before usage records.
            let memo = rows.iter().find(|(c, _)| {
                c.backend == case.backend
                    && c.orgs == case.orgs
                    && c.tasks == case.tasks
                    && c.settle == SettleKind::Memo
                    && c.ids == Ids::Ordered
            });
            // Two replicas are compared with one replica's run of the same shape instead.
            let one = rows.iter().find(|(c, _)| {
                c.backend == case.backend
                    && c.orgs == case.orgs
                    && c.tasks == case.tasks
                    && c.settle == case.settle
                    && c.replicas == 1
                    && c.ids == Ids::Ordered
            });
            let (base, base_name) = if case.replicas > 1 {
                (one, "x 1 replica")
            } else if case.ids != Ids::Ordered {
                (one, "x ordered ids")
            } else {
                (memo, "")
            };
            println!(
                "{:<10} {:>5} {:>6} {:>8} {:>7} {:>8} {:>10} {:>12.0} {:>10.3} {base_name}",
                case.backend,
                case.orgs,
                case.tasks,
                case.replicas,
                case.settle.name(),
                case.ids.name(),
                m.pairs,
                rate(m),
                base.map_or(f64::NAN, |(_, b)| rate(m) / rate(b))
            );
        }
    });
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Creates and funds the case's organizations, then runs `tasks` loops of hold+settle, task
/// `t` on organization `t % orgs` through store `t % dbs.len()`, for `duration`.
async fn run_case(dbs: &[Database], case_no: usize, case: &Case, duration: Duration) -> Measured {
    let db = &dbs[0];
    let orgs: Vec<OrganizationId> = (0..case.orgs)
        .map(|o| OrganizationId::parse(&format!("bench-{case_no}-org-{o}")).unwrap())
        .collect();
    for org in &orgs {
        db.create_organization(org.clone(), "bench".into())
            .await
            .expect("org");
        db.grant(GrantRequest::purchase(
            TransferId::parse(&format!("fund-{org}")).unwrap(),
            org.clone(),
            LotId::parse(&format!("lot-{org}")).unwrap(),
            NanoCredits::from_nanos(FUNDS),
        ))
        .await
        .expect("fund");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pairs = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..case.tasks {
        let db = dbs[t % dbs.len()].clone();
        let org = orgs[t % orgs.len()].clone();
        let stop = stop.clone();
        let pairs = pairs.clone();
        let kind = case.settle;
        let ids = case.ids;
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let hold = ids.hold();
                if kind == SettleKind::Grouped {
                    let group = (0..GROUP)
                        .map(|_| leased_settle(&org, ids.hold()))
                        .collect();
                    db.settle_leased_group(group).await.expect("leased group");
                    pairs.fetch_add(GROUP as u64, Ordering::Relaxed);
                    continue;
                }
                if kind == SettleKind::Leased {
                    db.settle(leased_settle(&org, hold))
                        .await
                        .expect("leased settle");
                    pairs.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                db.reserve(HoldRequest {
                    transfer_id: hold.clone(),
                    org: org.clone(),
                    amount: NanoCredits::from_nanos(HOLD),
                    timeout_ms: DEFAULT_HOLD_TIMEOUT_MS,
                    scope: None,
                    limits: Vec::new(),
                    memo: None,
                })
                .await
                .expect("hold");
                db.settle(SettleRequest {
                    transfer_id: hold.child("settle").unwrap(),
                    memo: (kind == SettleKind::Memo).then(|| receipt_memo(&hold)),
                    hold,
                    amount: NanoCredits::from_nanos(CHARGE),
                    usage: (kind == SettleKind::Record).then(|| Box::new(record())),
                    leased: None,
                })
                .await
                .expect("settle");
                pairs.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    Measured {
        pairs: pairs.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

/// The settle of a request admitted against a lease: its hold recorded with its charge.
fn leased_settle(org: &OrganizationId, hold: TransferId) -> SettleRequest {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    SettleRequest {
        transfer_id: hold.child("settle").unwrap(),
        hold,
        amount: NanoCredits::from_nanos(CHARGE),
        memo: None,
        usage: Some(Box::new(record())),
        leased: Some(LeasedHold {
            org: org.clone(),
            amount: NanoCredits::from_nanos(HOLD),
            created_at: Timestamp::from_millis(millis as i64),
            scope: None,
            memo: None,
        }),
    }
}

/// A typical request's usage: a key, a model, every token category, a few lines.
fn record() -> UsageRecord {
    UsageRecord {
        key_id: Some(ApiKeyId::parse("key_0123456789abcdef").unwrap()),
        model: "claude-haiku-4-5".into(),
        tokens: Some(Tokens {
            input: 1_200,
            cache_write_5m: 0,
            cache_write_1h: 0,
            cache_read: 2_000,
            output: 64,
            thinking: None,
            web_search_requests: 0,
            web_fetch_requests: 0,
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
        price_version: Some("claude-haiku-4-5@2025-10-01".into()),
        latency_ms: 12,
        status: ReceiptStatus::Settled,
        stream: false,
        disconnect_policy: DisconnectPolicy::Drain,
        upstream_request_id: Some("req_011CVx7s1ZqS2mH3nQ4pW5rT".into()),
        flags: Vec::new(),
        note: None,
    }
}

/// The receipt JSON the gateway stored in the charge's memo before usage records.
fn receipt_memo(id: &TransferId) -> String {
    format!(
        r#"{{"id":"{id}","model":"claude-haiku-4-5","usage":{{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":2000,"cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}},"output_tokens":64,"service_tier":"standard","inference_geo":"global","speed":"standard"}},"held":"0.001","charged":"0.0009","unit":"credit","price_version":"claude-haiku-4-5@2025-10-01","status":"settled","disconnect_policy":"drain","stream":false,"key_id":"key_0123456789abcdef","lines":[{{"category":"input","quantity":1200,"rate":"1","list_usd":"0.0012","charged_usd":"0.00084","credits":"0.0006"}},{{"category":"cache_read","quantity":2000,"rate":"0.1","list_usd":"0.0002","charged_usd":"0.00014","credits":"0.0001"}},{{"category":"output","quantity":64,"rate":"5","list_usd":"0.00032","charged_usd":"0.000224","credits":"0.0002"}}],"list_usd":"0.00172","flags":[],"note":null,"latency_ms":12}}"#
    )
}

async fn admin_exec(admin_url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect to Postgres");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    match query {
        Some(q) => format!("{}/{name}?{q}", &base[..host_end]),
        None => format!("{}/{name}", &base[..host_end]),
    }
}
