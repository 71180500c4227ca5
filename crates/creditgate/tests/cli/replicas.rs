//! Two `creditgate serve` processes sharing one Postgres database (reliability case B7): 300
//! concurrent streams spread over both against a balance that covers about 30 of them. Admission
//! is one atomic conditional write in the shared database, so the two replicas together never
//! overdraw it, and at the end the balance is the grants minus the sum of the receipts.
//!
//! Runs when `CREDITGATE_TEST_POSTGRES_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); it creates a uniquely named database and
//! drops it afterwards.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use creditgate_core::clock::{Clock, SystemClock};
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{GrantRequest, LedgerStore};
use creditgate_core::money::NanoCredits;
use creditgate_core::pricing::{cost, hold_estimate, CostOptions, Usage};
use creditgate_gateway::config::Config;
use creditgate_gateway::App;
use creditgate_sim::SimConfig;
use creditgate_storage::Database;
use serde_json::{json, Value};
use tokio::sync::Barrier;

const REQUESTS: usize = 300;
/// Holds the balance covers at once.
const COVERED: i64 = 30;
const MODEL: &str = "claude-haiku-4-5";
const UPSTREAM_KEY: &str = "sk-ant-sim-upstream-key-for-replicas";
const ADMIN_KEY: &str = "cg-admin-replicas-0123456789abcdef0123456789";
/// Longest a replica may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A database created for one test and dropped after it (even when the test fails).
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = format!("creditgate_test_{}", random_hex(6));
        let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .expect("connect to CREDITGATE_TEST_POSTGRES_URL");
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = conn.await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) if server.contains("://") && server.len() > "postgres://".len() => {
                format!("{server}/{name}")
            }
            _ => format!("{}/{name}", admin_url.trim_end_matches('/')),
        };
        Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let Ok((client, conn)) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// One `creditgate serve` process; killed when dropped.
struct Replica {
    child: Child,
    address: String,
}

impl Replica {
    /// Starts `creditgate serve` with `config` and its own settlement spool file.
    fn start(config: &std::path::Path, spool: &std::path::Path) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CREDITGATE_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("CREDITGATE_SPOOL_PATH", spool);
        let mut child = cmd.spawn().expect("start creditgate serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep reading to the end, so the replica never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("creditgate listening on http://").nth(1) {
                    let _ = tx.send(Ok(addr.trim().to_owned()));
                } else {
                    let _ = tx.send(Err(line));
                }
            }
        });
        let mut output = Vec::new();
        let address = loop {
            match rx.recv_timeout(START_TIMEOUT) {
                Ok(Ok(addr)) => break addr,
                Ok(Err(line)) => output.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("the replica did not start: {}", output.join("\n"));
                }
            }
        };
        Self { child, address }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one streamed request came back with.
struct Outcome {
    status: u16,
    request_id: String,
    raw: String,
}

async fn stream(client: &reqwest::Client, base: &str, key: &str, body: &Value) -> Outcome {
    let resp = client
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let raw = String::from_utf8_lossy(&resp.bytes().await.expect("body")).into_owned();
    Outcome {
        status,
        request_id,
        raw,
    }
}

fn summary(raw: &str) -> Option<Value> {
    raw.lines()
        .find_map(|l| l.strip_prefix(": creditgate "))
        .and_then(|j| serde_json::from_str(j).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_postgres_never_overdraw_the_balance() {
    let Ok(admin_url) = std::env::var("CREDITGATE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: CREDITGATE_TEST_POSTGRES_URL not set");
        return;
    };
    let database = TestDatabase::create(&admin_url).await;
    let (sim_addr, sim, _sim_task) = creditgate_sim::spawn(SimConfig {
        api_key: Some(UPSTREAM_KEY.to_owned()),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");

    let config_text = format!(
        r#"
listen = "127.0.0.1:0"
database_url = "{url}"
admin_key = "{ADMIN_KEY}"
[upstream]
base_url = "http://{sim_addr}"
api_keys = ["{UPSTREAM_KEY}"]
[billing]
credit_name = "credit"
credit_usd = "0.005"
price_multiplier = "0.70"
disconnect_policy = "drain"
"#,
        url = database.url
    );
    let dir = std::env::temp_dir().join(format!("creditgate-replicas-{}", random_hex(6)));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("creditgate.toml");
    std::fs::write(&config_path, &config_text).unwrap();

    // The organization, its key and credits, written through the storage API (the database
    // also gets its schema here, before the replicas start).
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let db = Database::connect(&database.url, clock.clone())
        .await
        .expect("connect to the test database");
    let mut local_config = Config::from_toml(&config_text).unwrap();
    local_config.spool_path = dir.join("local.spool");
    let local = App::new(local_config, db, clock).unwrap();
    let org = OrganizationId::parse(&format!("org_{}", random_hex(6))).unwrap();
    local
        .db
        .create_organization(org.clone(), "Replicas".into())
        .await
        .unwrap();
    let (_, secret) = local
        .db
        .create_api_key(&org, "replicas", None)
        .await
        .unwrap();
    let key = secret.expose().to_owned();
    let body = json!({
        "model": MODEL,
        "max_tokens": 1024,
        "stream": true,
        "messages": [{"role": "user", "content": "Hi. [[sim output_tokens=20 chunk_tokens=2 latency_ms=30]]"}],
    });
    let hold = hold_estimate(&local.book, &body, &local.pricing)
        .unwrap()
        .with_output(1024)
        .unwrap();
    let granted = hold.checked_mul(COVERED).unwrap();
    local
        .db
        .grant(GrantRequest::purchase(
            TransferId::parse("replicas-grant").unwrap(),
            org.clone(),
            LotId::parse("lot_replicas").unwrap(),
            granted,
        ))
        .await
        .unwrap();

    let replicas = [
        Replica::start(&config_path, &dir.join("a.spool")),
        Replica::start(&config_path, &dir.join("b.spool")),
    ];
    let bases: Vec<String> = replicas
        .iter()
        .map(|r| format!("http://{}", r.address))
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (local, org, done) = (local.clone(), org.clone(), done.clone());
        tokio::spawn(async move {
            let mut peak_holds = 0u64;
            while !done.load(Ordering::Relaxed) {
                let b = local.db.balance(&org).await.expect("balance");
                assert!(!b.available.is_negative(), "overdrawn: {b:?}");
                peak_holds = peak_holds.max(b.active_holds);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak_holds
        })
    };

    let client = reqwest::Client::new();
    let barrier = Arc::new(Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (client, barrier, body, key) =
                (client.clone(), barrier.clone(), body.clone(), key.clone());
            let base = bases[i % bases.len()].clone();
            tokio::spawn(async move {
                barrier.wait().await;
                stream(&client, &base, &key, &body).await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let outcome = task.await.expect("request task");
        match outcome.status {
            200 => {
                assert!(
                    outcome.raw.contains("event: message_stop"),
                    "{}",
                    outcome.raw
                );
                assert!(summary(&outcome.raw).is_some(), "{}", outcome.raw);
                admitted.push(outcome);
            }
            402 => {
                assert!(outcome.raw.contains("billing_error"), "{}", outcome.raw);
                refused += 1;
            }
            other => panic!("neither completed nor refused: {other} {}", outcome.raw),
        }
    }
    done.store(true, Ordering::Relaxed);
    let peak_holds = sampler.await.expect("sampler");

    eprintln!(
        "{} admitted, {refused} refused, at most {peak_holds} holds at once",
        admitted.len()
    );
    assert_eq!(admitted.len() + refused, REQUESTS);
    assert!(
        !admitted.is_empty() && refused > 0,
        "{} admitted, {refused} refused",
        admitted.len()
    );
    assert_eq!(
        sim.stats().messages,
        admitted.len() as u64,
        "nothing forwarded when refused"
    );
    assert!(
        peak_holds <= COVERED as u64,
        "at most {COVERED} holds at once: {peak_holds}"
    );

    let mut total = NanoCredits::ZERO;
    for (i, outcome) in admitted.iter().enumerate() {
        // Receipts are read through either replica: they live in the shared database.
        let receipt: Value = client
            .get(format!(
                "{}/v1/requests/{}",
                bases[i % 2],
                outcome.request_id
            ))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(receipt["status"], "settled", "{receipt}");
        let charged: NanoCredits = receipt["charged"].as_str().unwrap().parse().unwrap();
        let (usage, _) = Usage::from_json(&receipt["usage"]);
        let expected = cost(
            &local.book,
            MODEL,
            &usage,
            &CostOptions::default(),
            &local.pricing,
        )
        .unwrap()
        .total;
        assert_eq!(charged, expected, "{receipt}");
        let comment = summary(&outcome.raw).unwrap();
        assert_eq!(comment["charged"], receipt["charged"]);
        total = total.checked_add(charged).unwrap();
    }

    let b = local.db.balance(&org).await.unwrap();
    assert_eq!(
        b.posted,
        granted.checked_sub(total).unwrap(),
        "grants − Σ receipts"
    );
    assert_eq!(b.active_holds, 0, "{b:?}");
    assert_eq!(b.held, NanoCredits::ZERO);
    let report = local.db.verify().await.unwrap();
    assert!(report.is_clean(), "ledger verify: {:?}", report.problems);

    drop(replicas);
    drop(local);
    let _ = std::fs::remove_dir_all(&dir);
}
