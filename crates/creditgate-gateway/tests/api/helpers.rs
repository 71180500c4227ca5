//! The `TestApp`: a real gateway on a loopback port, a fresh SQLite file, the simulated upstream,
//! one funded organization with a key, and typed methods to talk to all of it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use creditgate_core::clock::{Clock, ManualClock, SystemClock, Timestamp};
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::ledger::{
    Balance, GrantRequest, HoldResolution, LedgerStore, LotCategory, LotSource,
};
use creditgate_core::money::NanoCredits;
use creditgate_core::pricing::{cost, hold_estimate, CostOptions, HoldEstimate, Usage};
use creditgate_core::usage::DisconnectPolicy;
use creditgate_gateway::config::Config;
use creditgate_gateway::App;
use creditgate_sim::{SimConfig, Simulator};
use creditgate_storage::Database;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

/// The model most tests use: cheap, served, and in the built-in price book.
pub const MODEL: &str = "claude-haiku-4-5";
/// The upstream key the simulator demands (a client must never see or need it).
pub const UPSTREAM_KEY: &str = "sk-ant-sim-upstream-key-for-tests";
/// The operator's admin key; never valid on inference routes.
pub const ADMIN_KEY: &str = "cg-admin-test-0123456789abcdef0123456789abcdef";
/// Longest a test waits for a settlement that happens after the response (disconnects).
pub const SETTLE_WAIT: Duration = Duration::from_secs(20);

/// How to build a [`TestApp`]; `Default` gives 1,000 credits and the example config's limits.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Credits granted to the organization (none when zero).
    pub credits: NanoCredits,
    /// The gateway's upstream keys (default: the one the simulator accepts).
    pub upstream_keys: Vec<String>,
    /// Overrides the upstream base URL (default: the simulator).
    pub upstream_base_url: Option<String>,
    pub first_slice_tokens: u64,
    pub slice_tokens: u64,
    pub max_body_bytes: u64,
    pub drain_timeout_ms: u64,
    pub hold_timeout_ms: u64,
    pub sweep_interval_ms: u64,
    pub upstream_idle_timeout_ms: u64,
    pub disconnect_policy: &'static str,
    pub sim: SimConfig,
    /// Overrides the database (default: a fresh SQLite file).
    pub database_url: Option<String>,
    /// TOML appended to the config (e.g. a `[payments]` section).
    pub extra_toml: String,
    /// `[accounts] signup = "open"` instead of invitations only.
    pub signup_open: bool,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub max_connections: u64,
    pub max_body_bytes_in_flight: u64,
    pub auth_failures_per_minute: u64,
    /// `[email] smtp_url` (default: none, mail goes to the outbox directory).
    pub smtp_url: Option<String>,
    /// `[accounts] trial_credits` for open sign-up (default: none).
    pub trial_credits: Option<&'static str>,
    /// A test clock the app reads instead of the system's (default: the system clock).
    pub clock: Option<ManualClock>,
    /// Admit against a credit lease (default: `CREDITGATE_TEST_CREDIT_LEASE=true` in the
    /// environment, so the whole suite can run either way).
    pub credit_lease: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            credits: credits("1000"),
            upstream_keys: vec![UPSTREAM_KEY.to_owned()],
            upstream_base_url: None,
            first_slice_tokens: 1024,
            slice_tokens: 1024,
            max_body_bytes: 1024 * 1024,
            drain_timeout_ms: 60_000,
            hold_timeout_ms: 900_000,
            sweep_interval_ms: 30_000,
            upstream_idle_timeout_ms: 600_000,
            disconnect_policy: "drain",
            database_url: None,
            extra_toml: String::new(),
            signup_open: false,
            header_read_timeout_ms: 20_000,
            body_read_timeout_ms: 120_000,
            max_connections: 2_048,
            max_body_bytes_in_flight: 256 * 1024 * 1024,
            // Tests that send many bad keys on purpose are not throttled unless they ask to be.
            auth_failures_per_minute: 100_000,
            smtp_url: None,
            trial_credits: None,
            clock: None,
            credit_lease: std::env::var("CREDITGATE_TEST_CREDIT_LEASE").is_ok_and(|v| v == "true"),
            sim: SimConfig {
                api_key: Some(UPSTREAM_KEY.to_owned()),
                ..SimConfig::default()
            },
        }
    }
}

/// Parses an exact decimal amount of credits.
pub fn credits(text: &str) -> NanoCredits {
    text.parse().expect("a decimal amount of credits")
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "creditgate-api-test-{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running gateway in front of a simulated upstream, with one organization and key.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` of the gateway.
    pub address: String,
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub sim: Simulator,
    pub org: OrganizationId,
    pub key: ApiKeyRecord,
    /// The organization's gateway key (`sk-cg-…`).
    pub api_key: String,
    pub client: reqwest::Client,
    sim_task: tokio::task::JoinHandle<()>,
    _shutdown: oneshot::Sender<()>,
    _dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.sim_task.abort();
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Setup::default()).await
    }

    pub async fn spawn_with(setup: Setup) -> Self {
        let (sim_addr, sim, sim_task) = creditgate_sim::spawn(setup.sim.clone())
            .await
            .expect("simulator starts");
        let dir = TempDir::new();
        let database_url = setup
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.0.join("creditgate.db").display()));
        let base_url = setup
            .upstream_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{sim_addr}"));
        let outbox = dir.0.join("outbox");
        let mut cfg = Config::from_toml(&config_toml(&setup, &database_url, &base_url, &outbox))
            .expect("test config parses");
        cfg.spool_path = dir.0.join("settlements.spool");
        cfg.credit_lease = setup.credit_lease;
        let clock: Arc<dyn Clock> = match &setup.clock {
            Some(manual) => Arc::new(manual.clone()),
            None => Arc::new(SystemClock),
        };
        let db = Database::connect(&database_url, clock.clone())
            .await
            .expect("database opens");
        let app = App::new(cfg, db, clock).expect("app builds");

        // Bound before serving: the port accepts connections as soon as this returns.
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(creditgate_gateway::serve(app.clone(), listener, async {
            let _ = stop.await;
        }));

        let org = OrganizationId::parse(&format!("org_{}", random_hex(6))).expect("org id");
        app.db
            .create_organization(org.clone(), "Test organization".into())
            .await
            .expect("organization");
        let (key, secret) = app
            .db
            .create_api_key(&org, "test key", None)
            .await
            .expect("api key");
        let test_app = Self {
            address: format!("http://{addr}"),
            addr,
            app,
            sim,
            org,
            key,
            api_key: secret.expose().to_owned(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            sim_task,
            _shutdown: shutdown,
            _dir: dir,
        };
        if setup.credits.is_positive() {
            test_app.grant(setup.credits).await;
        }
        test_app
    }

    /// The directory the gateway writes its emails to (`.eml` files).
    pub fn outbox(&self) -> PathBuf {
        self._dir.0.join("outbox")
    }

    // ----------------------------------------------------------------- money and the ledger

    /// Grants credits to the test organization as a new lot.
    pub async fn grant(&self, amount: NanoCredits) {
        self.grant_to(&self.org, amount).await;
    }

    pub async fn grant_to(&self, org: &OrganizationId, amount: NanoCredits) {
        let id = random_hex(8);
        self.app
            .db
            .grant(GrantRequest {
                transfer_id: TransferId::parse(&format!("grant_{id}")).unwrap(),
                org: org.clone(),
                lot_id: LotId::parse(&format!("lot_{id}")).unwrap(),
                amount,
                category: LotCategory::Paid,
                source: LotSource::Purchase,
                price_per_credit: None,
                expires_at: None,
                memo: Some("test grant".into()),
            })
            .await
            .expect("grant");
    }

    pub async fn balance(&self) -> Balance {
        self.balance_of(&self.org).await
    }

    /// The balance as the gateway shows it (with a credit lease, only what requests in flight
    /// hold of it counts as held: `App::balance`).
    pub async fn balance_of(&self, org: &OrganizationId) -> Balance {
        self.app.balance(org).await.expect("balance")
    }

    /// A second organization with its own key and credits.
    pub async fn other_org(&self, amount: NanoCredits) -> (OrganizationId, String) {
        let org = OrganizationId::parse(&format!("org_{}", random_hex(6))).unwrap();
        self.app
            .db
            .create_organization(org.clone(), "Other organization".into())
            .await
            .expect("organization");
        let (_, secret) = self
            .app
            .db
            .create_api_key(&org, "other key", None)
            .await
            .expect("api key");
        if amount.is_positive() {
            self.grant_to(&org, amount).await;
        }
        (org, secret.expose().to_owned())
    }

    pub async fn set_policy(&self, policy: &str) {
        self.app
            .db
            .set_disconnect_policy(
                &self.org,
                Some(DisconnectPolicy::parse(policy).expect("drain or cancel")),
            )
            .await
            .expect("set disconnect policy");
    }

    /// The exact cost of a usage object under the app's price book (the oracle).
    pub fn cost_of(&self, model: &str, usage: &Value) -> NanoCredits {
        let (usage, _) = Usage::from_json(usage);
        cost(
            &self.app.book,
            model,
            &usage,
            &CostOptions::default(),
            &self.app.pricing,
        )
        .expect("priced")
        .total
    }

    /// The input side alone of a usage object (output tokens set to zero).
    pub fn input_cost_of(&self, model: &str, usage: &Value) -> NanoCredits {
        let mut usage = usage.clone();
        usage["output_tokens"] = json!(0);
        if let Some(details) = usage.get_mut("output_tokens_details") {
            *details = json!({});
        }
        self.cost_of(model, &usage)
    }

    /// What `tokens` output tokens of `MODEL` cost (a slice, for overdraft bounds).
    pub fn output_cost(&self, tokens: u64) -> NanoCredits {
        self.cost_of(MODEL, &json!({"input_tokens": 0, "output_tokens": tokens}))
    }

    /// The gateway's own hold estimate for a body.
    pub fn estimate(&self, body: &Value) -> HoldEstimate {
        hold_estimate(&self.app.book, body, &self.app.pricing).expect("estimate")
    }

    /// INV-1..3 at quiescence: `ledger verify` clean and no hold left active.
    pub async fn assert_ledger_clean(&self) {
        // A credit lease no request uses goes back as it would when idle.
        self.app.leases.return_all(&self.app).await;
        let report = self.app.db.verify().await.expect("verify runs");
        assert!(report.is_clean(), "ledger verify: {:?}", report.problems);
        let b = self.balance().await;
        assert_eq!(b.active_holds, 0, "holds left active: {b:?}");
        assert_eq!(b.held, NanoCredits::ZERO, "credits left held: {b:?}");
        assert_eq!(b.available, b.posted);
    }

    /// The request's hold was settled once, and the journal holds exactly one charge for it,
    /// of exactly `charged`.
    pub async fn assert_settled_once(&self, request_id: &str, charged: NanoCredits) {
        let id = TransferId::parse(request_id).expect("request id");
        let (hold, resolution) = self
            .app
            .db
            .hold(&id)
            .await
            .expect("hold lookup")
            .expect("a hold exists for every admitted request");
        assert_eq!(
            resolution,
            Some(HoldResolution::Settled),
            "hold {request_id}"
        );
        assert_eq!(hold.org, self.org);
        let entries = self.app.db.entries(&self.org).await.expect("entries");
        let mine: Vec<_> = entries
            .iter()
            .filter(|e| e.transfer_id.as_str().starts_with(request_id))
            .collect();
        let mut transfers: Vec<&str> = mine.iter().map(|e| e.transfer_id.as_str()).collect();
        transfers.dedup();
        if charged.is_positive() {
            assert_eq!(
                transfers.len(),
                1,
                "one settle transfer for {request_id}: {transfers:?}"
            );
        }
        let posted = NanoCredits::checked_sum(mine.iter().map(|e| e.amount)).unwrap();
        assert_eq!(posted, charged, "journal amount of {request_id}");
    }

    // ----------------------------------------------------------------- HTTP

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `POST /v1/messages` with the test key, answering JSON.
    pub async fn message(&self, body: &Value) -> JsonReply {
        self.message_as(&self.api_key, body).await
    }

    pub async fn message_as(&self, key: &str, body: &Value) -> JsonReply {
        JsonReply::read(self.post_messages(key, body).await).await
    }

    pub async fn post_messages(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST /v1/messages` with `"stream": true`, read to its end.
    pub async fn stream(&self, body: &Value) -> StreamReply {
        self.stream_as(&self.api_key, body).await
    }

    pub async fn stream_as(&self, key: &str, body: &Value) -> StreamReply {
        let mut body = body.clone();
        body["stream"] = json!(true);
        StreamReply::read(self.post_messages(key, &body).await).await
    }

    /// `GET` a path with the test key.
    pub async fn get(&self, path: &str) -> JsonReply {
        self.get_as(&self.api_key, path).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> JsonReply {
        let resp = self
            .client
            .get(self.url(path))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .expect("request sent");
        JsonReply::read(resp).await
    }

    /// The receipt as it stands now.
    pub async fn receipt(&self, request_id: &str) -> Receipt {
        self.receipt_as(&self.api_key, request_id).await
    }

    pub async fn receipt_as(&self, key: &str, request_id: &str) -> Receipt {
        let reply = self
            .get_as(key, &format!("/v1/requests/{request_id}"))
            .await;
        assert_eq!(reply.status, 200, "receipt {request_id}: {}", reply.body);
        Receipt(reply.body)
    }

    /// The receipt once settled: polls while it is `pending` (settlement after the response).
    pub async fn final_receipt(&self, request_id: &str) -> Receipt {
        self.final_receipt_as(&self.api_key, request_id).await
    }

    pub async fn final_receipt_as(&self, key: &str, request_id: &str) -> Receipt {
        let deadline = Instant::now() + SETTLE_WAIT;
        loop {
            let r = self.receipt_as(key, request_id).await;
            if r.status() != "pending" {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "receipt {request_id} still pending after {SETTLE_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens a raw HTTP/1.1 connection and sends a streaming request, for tests that control
    /// exactly how much of the response is read (disconnects, slow readers).
    pub async fn open_stream(&self, body: &Value, recv_buffer: Option<u32>) -> RawStream {
        let mut body = body.clone();
        body["stream"] = json!(true);
        self.open_request(&body, recv_buffer).await
    }

    /// Sends `body` as is on a raw HTTP/1.1 connection (see [`Self::open_stream`]).
    pub async fn open_request(&self, body: &Value, recv_buffer: Option<u32>) -> RawStream {
        let body = body.to_string();
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let mut stream = socket.connect(self.addr).await.expect("connect");
        let head = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: {}\r\nx-api-key: {}\r\n\
             anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            self.addr,
            self.api_key,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body.as_bytes()).await.expect("write");
        RawStream {
            stream,
            buf: Vec::new(),
            body_start: None,
        }
    }
}

fn config_toml(setup: &Setup, database_url: &str, base_url: &str, outbox: &Path) -> String {
    let keys: Vec<String> = setup
        .upstream_keys
        .iter()
        .map(|k| format!("{k:?}"))
        .collect();
    format!(
        r#"
listen = "127.0.0.1:0"
database_url = "{database_url}"
admin_key = "{ADMIN_KEY}"

[upstream]
base_url = "{base_url}"
api_keys = [{keys}]
connect_timeout_ms = 2000
idle_timeout_ms = {idle}

[billing]
credit_name = "credit"
credit_usd = "0.005"
price_multiplier = "0.70"
disconnect_policy = "{policy}"

[limits]
max_body_bytes = {max_body}
first_slice_tokens = {first}
slice_tokens = {slice}
drain_timeout_ms = {drain}
hold_timeout_ms = {hold_timeout}
sweep_interval_ms = {sweep}
header_read_timeout_ms = {header_timeout}
body_read_timeout_ms = {body_timeout}
max_connections = {max_connections}
max_body_bytes_in_flight = {in_flight}
auth_failures_per_minute = {auth_failures}

[accounts]
signup = "{signup}"
{trial}

[email]
outbox_dir = "{outbox}"
{smtp}
{extra}
"#,
        signup = if setup.signup_open { "open" } else { "invite" },
        outbox = outbox.display(),
        trial = setup
            .trial_credits
            .map(|c| format!("trial_credits = {c:?}"))
            .unwrap_or_default(),
        smtp = setup
            .smtp_url
            .as_ref()
            .map(|u| format!("smtp_url = {u:?}"))
            .unwrap_or_default(),
        keys = keys.join(", "),
        policy = setup.disconnect_policy,
        max_body = setup.max_body_bytes,
        first = setup.first_slice_tokens,
        slice = setup.slice_tokens,
        drain = setup.drain_timeout_ms,
        hold_timeout = setup.hold_timeout_ms,
        sweep = setup.sweep_interval_ms,
        extra = setup.extra_toml,
        idle = setup.upstream_idle_timeout_ms,
        header_timeout = setup.header_read_timeout_ms,
        body_timeout = setup.body_read_timeout_ms,
        max_connections = setup.max_connections,
        in_flight = setup.max_body_bytes_in_flight,
        auth_failures = setup.auth_failures_per_minute,
    )
}

/// The variable naming an admin URL of a Postgres server for the Postgres runs.
pub const POSTGRES_URL_VAR: &str = "CREDITGATE_TEST_POSTGRES_URL";

/// The database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `scenario` with a default [`Setup`] on a fresh database of `backend`: a SQLite file,
/// or a new database on `CREDITGATE_TEST_POSTGRES_URL` (dropped afterwards). Without that
/// variable the Postgres run says it was skipped and passes. See [`on_both_databases!`].
pub async fn run_on<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Setup) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if backend == Backend::Sqlite {
        return scenario(Setup::default()).await;
    }
    let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("skipped: {POSTGRES_URL_VAR} not set");
        return;
    };
    let name = format!("cg_api_{}", random_hex(8));
    postgres_exec(&admin_url, &format!("CREATE DATABASE {name}")).await;
    let setup = Setup {
        database_url: Some(with_database(&admin_url, &name)),
        ..Setup::default()
    };
    let outcome = tokio::spawn(scenario(setup)).await;
    postgres_exec(&admin_url, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares `scenario::sqlite` and `scenario::postgres` tests of an `async fn scenario(Setup)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            use $crate::helpers::{run_on, Backend};

            #[tokio::test]
            async fn sqlite() {
                run_on(Backend::Sqlite, super::$scenario).await
            }

            #[tokio::test]
            async fn postgres() {
                run_on(Backend::Postgres, super::$scenario).await
            }
        }
    )+};
}

async fn postgres_exec(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the Postgres admin URL");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').expect("a database URL has a path");
    format!("{}/{name}{query}", &base[..cut])
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::thread_rng(), buf.as_mut_slice());
    hex::encode(buf)
}

pub fn now() -> Timestamp {
    SystemClock.now()
}

/// A Messages body whose last user message carries `directives` (`output_tokens=40 …`).
pub fn body(max_tokens: u64, directives: &str) -> Value {
    body_for(MODEL, max_tokens, directives)
}

pub fn body_for(model: &str, max_tokens: u64, directives: &str) -> Value {
    let text = if directives.is_empty() {
        "Say something short.".to_owned()
    } else {
        format!("Say something short. [[sim {directives}]]")
    };
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    })
}

// --------------------------------------------------------------------- replies

/// A complete (non-streamed) answer.
#[derive(Debug)]
pub struct JsonReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl JsonReply {
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Our `request-id` header (also the receipt's id).
    pub fn request_id(&self) -> String {
        self.header("request-id")
            .unwrap_or_else(|| panic!("no request-id header: {self:?}"))
            .to_owned()
    }

    pub fn charged(&self) -> NanoCredits {
        credits(
            self.header("x-creditgate-charged")
                .expect("x-creditgate-charged"),
        )
    }

    pub fn available(&self) -> NanoCredits {
        credits(
            self.header("x-creditgate-available")
                .expect("x-creditgate-available"),
        )
    }

    pub fn error_type(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or("")
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    /// Asserts Anthropic's error envelope with this status and `error.type`.
    pub fn assert_error(&self, status: u16, kind: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.body["type"], "error", "{}", self.body);
        assert_eq!(self.error_type(), kind, "{}", self.body);
        assert!(!self.error_message().is_empty(), "{}", self.body);
    }
}

/// One SSE event as the client saw it.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

/// A streamed answer read to its end.
#[derive(Debug)]
pub struct StreamReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub raw: String,
    pub events: Vec<Event>,
    /// The `: creditgate {…}` comment that ends a stream.
    pub summary: Option<Value>,
}

impl StreamReply {
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = match resp.bytes().await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => panic!("stream body failed: {e}"),
        };
        let (events, summary) = parse_sse(&raw);
        Self {
            status,
            headers,
            raw,
            events,
            summary,
        }
    }

    pub fn request_id(&self) -> String {
        self.headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no request-id header: {:?}", self.headers))
            .to_owned()
    }

    pub fn has(&self, name: &str) -> bool {
        self.events.iter().any(|e| e.name == name)
    }

    /// The data of the stream's `error` event, if any.
    pub fn error(&self) -> Option<&Value> {
        self.events
            .iter()
            .find(|e| e.name == "error")
            .map(|e| &e.data)
    }

    /// The concatenated text (and thinking) deltas.
    pub fn text(&self) -> String {
        delta_text(&self.events)
    }

    /// Output tokens the client received, by the simulator's tokenizer.
    pub fn tokens_seen(&self) -> u64 {
        creditgate_sim::tokenizer::count_text(&self.text())
    }

    /// The summary comment's `charged`.
    pub fn charged(&self) -> NanoCredits {
        let summary = self
            .summary
            .as_ref()
            .unwrap_or_else(|| panic!("no `: creditgate` comment line in {}", self.raw));
        credits(summary["charged"].as_str().expect("charged string"))
    }
}

/// Text of the content deltas, in order.
pub fn delta_text(events: &[Event]) -> String {
    let mut text = String::new();
    for e in events.iter().filter(|e| e.name == "content_block_delta") {
        for field in ["text", "thinking"] {
            if let Some(t) = e.data["delta"][field].as_str() {
                text.push_str(t);
            }
        }
    }
    text
}

/// Splits an SSE body into events and the gateway's summary comment.
pub fn parse_sse(raw: &str) -> (Vec<Event>, Option<Value>) {
    let mut events = Vec::new();
    let mut summary = None;
    for frame in raw.split("\n\n") {
        let mut name = None;
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(json) = line.strip_prefix(": creditgate ") {
                summary = Some(serde_json::from_str(json).expect("summary is JSON"));
            } else if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            }
        }
        if let Some(name) = name {
            let data = serde_json::from_str(&data).unwrap_or(Value::Null);
            events.push(Event { name, data });
        }
    }
    (events, summary)
}

/// A receipt from `GET /v1/requests/{id}`.
#[derive(Debug, Clone)]
pub struct Receipt(pub Value);

impl Receipt {
    pub fn status(&self) -> &str {
        self.0["status"].as_str().unwrap_or("")
    }

    fn amount(&self, field: &str) -> NanoCredits {
        match &self.0[field] {
            Value::String(s) => credits(s),
            Value::Null => NanoCredits::ZERO,
            other => panic!("receipt {field} is not a decimal string: {other}"),
        }
    }

    pub fn charged(&self) -> NanoCredits {
        self.amount("charged")
    }

    pub fn held(&self) -> NanoCredits {
        self.amount("held")
    }

    pub fn overrun(&self) -> NanoCredits {
        self.amount("overrun")
    }

    pub fn usage(&self) -> &Value {
        &self.0["usage"]
    }

    pub fn output_tokens(&self) -> u64 {
        self.usage()["output_tokens"].as_u64().unwrap_or(0)
    }
}

// --------------------------------------------------------------------- raw connections

/// A raw HTTP/1.1 connection carrying one streaming request; dropping it hangs up.
pub struct RawStream {
    stream: TcpStream,
    buf: Vec<u8>,
    body_start: Option<usize>,
}

impl RawStream {
    /// Reads until the response head is complete; returns the status code.
    pub async fn read_head(&mut self) -> u16 {
        while self.body_start.is_none() {
            self.fill().await.expect("response head");
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                self.body_start = Some(i + 4);
            }
        }
        let head = String::from_utf8_lossy(&self.buf[..self.body_start.unwrap()]).into_owned();
        head.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code")
    }

    /// A response header (after [`Self::read_head`]).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = String::from_utf8_lossy(&self.buf[..self.body_start?]).into_owned();
        head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// Reads until the body contains `count` occurrences of `needle` (or the stream ends).
    pub async fn read_until_count(&mut self, needle: &str, count: usize) {
        while occurrences(self.body(), needle.as_bytes()) < count {
            if self.fill().await.is_none() {
                return;
            }
        }
    }

    /// Reads exactly one byte; `None` at the end.
    pub async fn read_byte(&mut self) -> Option<u8> {
        let mut one = [0u8; 1];
        match self.stream.read(&mut one).await {
            Ok(1) => {
                self.buf.push(one[0]);
                Some(one[0])
            }
            _ => None,
        }
    }

    /// Reads to the end of the connection's response (the last chunk).
    pub async fn read_to_end(&mut self) {
        while !self.buf.ends_with(b"\r\n0\r\n\r\n") {
            if self.fill().await.is_none() {
                return;
            }
        }
    }

    /// The body so far, still in chunked transfer coding.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body_start.unwrap_or(self.buf.len())..]
    }

    /// Bytes received so far, head included.
    pub fn received(&self) -> usize {
        self.buf.len()
    }

    /// The decoded body so far, as events.
    pub fn events(&self) -> (Vec<Event>, Option<Value>) {
        parse_sse(&String::from_utf8_lossy(&dechunk(self.body())))
    }

    async fn fill(&mut self) -> Option<usize> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(n)
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Decodes `Transfer-Encoding: chunked` (as far as it is complete).
pub fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(body, b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
            break;
        };
        let start = eol + 2;
        if size == 0 || body.len() < start + size {
            break;
        }
        out.extend_from_slice(&body[start..start + size]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    out
}

/// A port on which nothing listens.
pub async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}
