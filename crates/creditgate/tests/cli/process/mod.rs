//! The process harness of the tests that run the real `creditgate serve` binary over real
//! sockets: a world (a database on SQLite or Postgres, the simulated upstream in the test
//! process, an organization and its key), the gateway process, raw HTTP/1.1 requests read at the
//! test's own pace, and a database outage (SQLite: its write lock held from another connection;
//! Postgres: the database made read-only and its sessions cut), each undone when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use creditgate_core::clock::{Clock, SystemClock, Timestamp};
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{Balance, GrantRequest, LedgerStore};
use creditgate_core::money::{CreditUnit, Decimal, NanoCredits};
use creditgate_core::pricing::{cost, hold_estimate, CostOptions, PriceBook, PricingConfig, Usage};
use creditgate_core::receipt::Receipt;
use creditgate_gateway::account::receipt_json;
use creditgate_sim::{SimConfig, Simulator};
use creditgate_storage::Database;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const MODEL: &str = "claude-haiku-4-5";
pub const UPSTREAM_KEY: &str = "sk-ant-sim-durability-upstream-key";
pub const ADMIN_KEY: &str = "cg-admin-durability-0123456789abcdef01234567";
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// One test's world: a directory with the ledger file, the simulated upstream, an organization
/// and its key, written through the storage API before the gateway starts.
pub struct World {
    pub dir: PathBuf,
    pub backend: Backend,
    /// The SQLite file, or the Postgres database's name.
    pub db_path: PathBuf,
    pub database_url: String,
    pub db: Database,
    pub org: OrganizationId,
    pub key: String,
    pub sim: Simulator,
    pub sim_addr: std::net::SocketAddr,
    pub book: PriceBook,
    pub pricing: PricingConfig,
    /// Postgres: the admin URL the database was created from (dropped with the world).
    admin_url: Option<String>,
}

/// Where the ledger lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The variable naming an admin URL of a Postgres server for the Postgres runs.
pub const POSTGRES_URL_VAR: &str = "CREDITGATE_TEST_POSTGRES_URL";

impl World {
    /// A world on SQLite.
    pub async fn new() -> Self {
        Self::on(Backend::Sqlite)
            .await
            .expect("SQLite is always there")
    }

    /// A world on `backend`; `None` (the caller returns, passing) for Postgres when
    /// `CREDITGATE_TEST_POSTGRES_URL` is unset.
    pub async fn on(backend: Backend) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("creditgate-process-{}", random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let (db_path, database_url, admin_url) = match backend {
            Backend::Sqlite => {
                let path = dir.join("ledger.db");
                let url = format!("sqlite://{}", path.display());
                (path, url, None)
            }
            Backend::Postgres => {
                let Ok(admin) = std::env::var(POSTGRES_URL_VAR) else {
                    eprintln!("note: {POSTGRES_URL_VAR} is not set: the Postgres run was skipped");
                    let _ = std::fs::remove_dir_all(&dir);
                    return None;
                };
                let name = format!("cg_process_{}", random_hex(6));
                pg_exec(&admin, &format!("CREATE DATABASE {name}")).await;
                let url = with_database(&admin, &name);
                (PathBuf::from(name), url, Some(admin))
            }
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let db = Database::connect(&database_url, clock).await.unwrap();
        let org = OrganizationId::parse(&format!("org_{}", random_hex(6))).unwrap();
        db.create_organization(org.clone(), "Durability".into())
            .await
            .unwrap();
        let (_, secret) = db.create_api_key(&org, "durability", None).await.unwrap();
        let (sim_addr, sim, _task) = creditgate_sim::spawn(SimConfig {
            api_key: Some(UPSTREAM_KEY.to_owned()),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let unit = CreditUnit::new("credit", "0.005".parse::<Decimal>().unwrap()).unwrap();
        let pricing = PricingConfig::new("0.70".parse().unwrap(), unit).unwrap();
        Some(Self {
            dir,
            backend,
            db_path,
            database_url,
            db,
            org,
            key: secret.expose().to_owned(),
            sim,
            sim_addr,
            book: PriceBook::builtin(),
            pricing,
            admin_url,
        })
    }

    /// Writes the gateway's configuration with these `[limits]` lines; returns its path.
    pub fn config(&self, limits: &str) -> PathBuf {
        self.config_for(self.sim_addr, UPSTREAM_KEY, limits)
    }

    /// [`Self::config`] with another upstream and upstream key.
    pub fn config_for(
        &self,
        sim: std::net::SocketAddr,
        upstream_key: &str,
        limits: &str,
    ) -> PathBuf {
        let text = format!(
            r#"
listen = "127.0.0.1:0"
database_url = "{db}"
spool_path = "{spool}"
admin_key = "{ADMIN_KEY}"
[upstream]
base_url = "http://{sim}"
api_keys = ["{upstream_key}"]
[billing]
credit_name = "credit"
credit_usd = "0.005"
price_multiplier = "0.70"
disconnect_policy = "drain"
[limits]
{limits}
"#,
            db = self.database_url,
            spool = self.spool_path().display(),
        );
        let path = self.dir.join("creditgate.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn spool_path(&self) -> PathBuf {
        self.dir.join("settlements.spool")
    }

    /// Makes the database unable to take writes (reads still work) until the outage is dropped.
    pub async fn outage(&self) -> Outage {
        match self.backend {
            Backend::Sqlite => Outage {
                sqlite: Some(WriteLock::take(&self.db_path)),
                postgres: None,
            },
            Backend::Postgres => {
                let admin = self.admin_url.clone().expect("postgres admin url");
                let name = self.db_path.display().to_string();
                read_only(&admin, &name, true).await;
                Outage {
                    sqlite: None,
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    pub async fn grant(&self, amount: NanoCredits) {
        let id = random_hex(6);
        self.db
            .grant(GrantRequest::purchase(
                TransferId::parse(&format!("grant-{id}")).unwrap(),
                self.org.clone(),
                LotId::parse(&format!("lot-{id}")).unwrap(),
                amount,
            ))
            .await
            .unwrap();
    }

    /// What the gateway holds for `body` with `output` output tokens.
    pub fn hold_for(&self, body: &Value, output: u64) -> NanoCredits {
        hold_estimate(&self.book, body, &self.pricing)
            .unwrap()
            .with_output(output)
            .unwrap()
    }

    pub fn cost_of(&self, usage: &Value) -> NanoCredits {
        let (usage, _) = Usage::from_json(usage);
        cost(
            &self.book,
            MODEL,
            &usage,
            &CostOptions::default(),
            &self.pricing,
        )
        .unwrap()
        .total
    }

    /// The request's receipt from the stored rows. A request admitted against a credit lease
    /// that never settled (its replica was killed, or its settlement waits in the spool) has no
    /// hold in the ledger: it reads as a hold placed and not resolved, with no charge.
    pub async fn receipt(&self, id: &str) -> Receipt {
        let id = TransferId::parse(id).unwrap();
        match self.db.receipt(&self.org, &id).await.unwrap() {
            Some(receipt) => receipt,
            None if std::env::var("CREDITGATE_TEST_CREDIT_LEASE").is_ok_and(|v| v == "true") => {
                Receipt {
                    id,
                    org: self.org.clone(),
                    admission: None,
                    created_at: Timestamp::from_millis(0),
                    held: NanoCredits::ZERO,
                    resolution: None,
                    charge: None,
                    record: None,
                }
            }
            None => panic!("the request's hold exists"),
        }
    }

    /// The request's stored receipt, if its hold is in the ledger (a request admitted against a
    /// credit lease has none until it settles).
    pub async fn stored(&self, id: &str) -> Option<Receipt> {
        self.db
            .receipt(&self.org, &TransferId::parse(id).unwrap())
            .await
            .unwrap()
    }

    /// Waits until the request's hold carries a charge; returns the receipt (as
    /// `GET /v1/requests/{id}` shows it, from the stored rows) and the amount charged.
    pub async fn settled(&self, id: &str, within: Duration) -> (Value, NanoCredits) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(record) = self.stored(id).await {
                if let Some(charge) = &record.charge {
                    return (receipt_json(&record, "credit"), charge.charged);
                }
            }
            assert!(
                Instant::now() < deadline,
                "{id} was not settled in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no hold is active and `gw`'s spool is empty (expired holds swept, spooled
    /// settlements applied); returns the balance then.
    pub async fn quiet(&self, gw: &Gateway, within: Duration) -> Balance {
        let deadline = Instant::now() + within;
        loop {
            let b = self.db.balance(&self.org).await.unwrap();
            let depth = gw.spool_depth().await;
            if b.active_holds == 0 && depth == Some(0) {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "not quiet after {within:?}: {b:?}, spool depth {depth:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn assert_clean(&self) {
        let report = self.db.verify().await.unwrap();
        assert!(report.is_clean(), "verify: {:#?}", report.problems);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(admin) = self.admin_url.clone() {
            // Off the test's runtime (which may be gone): a thread with its own.
            let sql = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_path.display()
            );
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(pg_exec(&admin, &sql))
            })
            .join();
        }
    }
}

/// Runs `sql` on the Postgres server of `admin_url`.
pub async fn pg_exec(admin_url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect to CREDITGATE_TEST_POSTGRES_URL");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Makes the database `name` read-only for new sessions (or writable again) and cuts its open
/// sessions, so every pooled connection comes back under the new rule.
async fn read_only(admin: &str, name: &str, on: bool) {
    let set = if on {
        format!("ALTER DATABASE {name} SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE {name} RESET default_transaction_read_only")
    };
    pg_exec(admin, &set).await;
    pg_exec(
        admin,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
    )
    .await;
}

/// A database that cannot take writes, until dropped (or [`Outage::end`]ed).
pub struct Outage {
    sqlite: Option<WriteLock>,
    /// The admin URL and the database's name.
    postgres: Option<(String, String)>,
}

impl Outage {
    pub async fn end(mut self) {
        self.sqlite.take();
        if let Some((admin, name)) = self.postgres.take() {
            read_only(&admin, &name, false).await;
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(read_only(&admin, &name, false))
            })
            .join();
        }
    }
}

pub fn body(max_tokens: u64, directives: &str, stream: bool) -> Value {
    json!({
        "model": MODEL,
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": format!("Hello. [[sim {directives}]]")}],
    })
}

/// One `creditgate serve` process; killed when dropped.
pub struct Gateway {
    pub child: Child,
    pub address: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    pub fn start(config: &Path) -> Self {
        Self::start_logging(config, "info")
    }

    /// [`Self::start`] with this `CREDITGATE_LOG` filter; stdout and stderr both go to the log.
    pub fn start_logging(config: &Path, filter: &str) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CREDITGATE_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("CREDITGATE_LOG", filter);
        // The whole suite can run with credit leases (`docs/ledger.md`).
        if std::env::var("CREDITGATE_TEST_CREDIT_LEASE").is_ok_and(|v| v == "true") {
            cmd.env("CREDITGATE_CREDIT_LEASE", "true");
        }
        let mut child = cmd.spawn().expect("start creditgate serve");
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let out_lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out_lines.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("creditgate listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let Ok(address) = rx.recv_timeout(START_TIMEOUT) else {
            let _ = child.kill();
            panic!("the gateway did not start: {:?}", log.lock().unwrap());
        };
        Self {
            child,
            address,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Stops the process with SIGTERM and returns everything it printed.
    pub fn stop(mut self) -> Vec<String> {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(60));
        let log = self.log.clone();
        drop(self);
        // The reader threads hold the log until they have read the closed pipes to the end.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&log) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let lines = log.lock().unwrap().clone();
        lines
    }

    /// The spool depth `/readyz` reports (`None` if it did not answer).
    pub async fn spool_depth(&self) -> Option<u64> {
        let ready: Value = reqwest::get(self.url("/readyz"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        ready["spool_depth"].as_u64()
    }

    /// Waits for the process to exit; panics with its log after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit in {within:?}: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 request whose response the test reads at its own pace.
pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Raw {
    pub async fn open(gw: &Gateway, key: &str, body: &Value, recv_buffer: Option<u32>) -> Self {
        Self::try_open(&gw.address, key, body, recv_buffer)
            .await
            .expect("connect to the gateway")
    }

    /// [`Self::open`] to `address`; `None` if nothing accepts the connection or the request
    /// cannot be written.
    pub async fn try_open(
        address: &str,
        key: &str,
        body: &Value,
        recv_buffer: Option<u32>,
    ) -> Option<Self> {
        let body = body.to_string();
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(address.parse().unwrap()).await.ok()?;
        let head = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: {}\r\nx-api-key: {key}\r\n\
             anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            address,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(body.as_bytes()).await.ok()?;
        Some(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// Reads until `needle` has arrived; `false` if the response ended first.
    pub async fn wait_for(&mut self, needle: &str) -> bool {
        while !self.text().contains(needle) {
            if !self.fill().await {
                return false;
            }
        }
        true
    }

    /// The response's status, once its head has arrived.
    pub fn status(&self) -> Option<u16> {
        self.text()
            .lines()
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// The `request-id` header, if the head carried one.
    pub fn try_request_id(&self) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next()?;
        head.lines()
            .find_map(|l| l.strip_prefix("request-id: "))
            .map(|v| v.trim().to_owned())
    }

    pub async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    pub async fn read_until(&mut self, needle: &str) {
        while !self.text().contains(needle) {
            assert!(self.fill().await, "the response ended before {needle:?}");
        }
    }

    /// Reads to the end of the chunked body (or of the connection).
    pub async fn read_to_end(&mut self) {
        while !self.buf.ends_with(b"\r\n0\r\n\r\n") {
            if !self.fill().await {
                return;
            }
        }
    }

    pub fn request_id(&self) -> String {
        let text = self.text();
        text.lines()
            .find_map(|l| l.strip_prefix("request-id: "))
            .expect("request-id header")
            .trim()
            .to_owned()
    }

    /// The closing `: creditgate {…}` comment.
    pub fn summary(&self) -> Option<Value> {
        self.text()
            .lines()
            .find_map(|l| l.strip_prefix(": creditgate "))
            .and_then(|j| serde_json::from_str(j).ok())
    }
}

/// Holds SQLite's write lock on the ledger file (readers still read) until dropped: to the
/// gateway, a database that cannot take writes.
pub struct WriteLock {
    release: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WriteLock {
    pub fn take(path: &Path) -> Self {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (release, wait) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ = wait.recv();
            conn.execute_batch("ROLLBACK").unwrap();
        });
        Self {
            release: Some(release),
            thread: Some(thread),
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
