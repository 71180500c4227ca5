//! Test harness: a fresh database per test on SQLite (a temporary file) or on Postgres (a new,
//! uniquely named database on `CREDITGATE_TEST_POSTGRES_URL`, dropped afterwards), driven by a
//! manual clock.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use creditgate_core::clock::{ManualClock, Timestamp};
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    GrantRequest, HoldRequest, LedgerStore, ReleaseRequest, SettleRequest, DEFAULT_HOLD_TIMEOUT_MS,
};
use creditgate_core::money::NanoCredits;
use creditgate_storage::Database;
use rand::Rng;

/// The variable naming an admin URL of a Postgres server for the Postgres tests.
pub const POSTGRES_URL_VAR: &str = "CREDITGATE_TEST_POSTGRES_URL";
/// Where every test clock starts: 2026-01-01T00:00:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database.
pub struct Harness {
    pub db: Database,
    pub clock: ManualClock,
    pub url: String,
    pub backend: Backend,
}

impl Harness {
    /// Another `Database` on the same data with its own pool or writer: a second replica.
    pub async fn replica(&self) -> Database {
        Database::connect(&self.url, Arc::new(self.clock.clone()))
            .await
            .expect("second connection")
    }
}

/// Runs `scenario` against a fresh database of `backend`. Postgres scenarios print that they
/// were skipped and pass when `CREDITGATE_TEST_POSTGRES_URL` is unset.
pub async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Harness) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let clock = ManualClock::new(START);
    match backend {
        Backend::Sqlite => {
            let dir = TempDir::new();
            let url = format!("sqlite://{}", dir.path.join("ledger.db").display());
            let db = Database::connect(&url, Arc::new(clock.clone()))
                .await
                .expect("open sqlite");
            let harness = Harness {
                db,
                clock,
                url,
                backend,
            };
            let outcome = tokio::spawn(scenario(harness)).await;
            drop(dir);
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        Backend::Postgres => {
            let Ok(admin) = std::env::var(POSTGRES_URL_VAR) else {
                announce_postgres_skipped();
                return;
            };
            let name = format!("cg_test_{:016x}", rand::thread_rng().gen::<u64>());
            admin_exec(&admin, &format!("CREATE DATABASE {name}")).await;
            let url = with_database(&admin, &name);
            let db = Database::connect(&url, Arc::new(clock.clone()))
                .await
                .expect("connect postgres");
            let harness = Harness {
                db,
                clock,
                url,
                backend,
            };
            let outcome = tokio::spawn(scenario(harness)).await;
            admin_exec(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

/// Says once per test binary, past the test harness's output capture, that the Postgres
/// scenarios were skipped (they pass without running).
fn announce_postgres_skipped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: {POSTGRES_URL_VAR} is not set: the Postgres scenarios of this suite were skipped"
        );
    });
}

pub async fn admin_exec(admin_url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
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

/// A directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "creditgate-test-{:016x}",
            rand::thread_rng().gen::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Declares one test per backend for each scenario function `name(Harness)`.
#[macro_export]
macro_rules! contract {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::common::run($crate::common::Backend::Sqlite, super::$name).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::common::run($crate::common::Backend::Postgres, super::$name).await;
                }
            )+
        }
    };
}

pub fn org(s: &str) -> OrganizationId {
    OrganizationId::parse(s).unwrap()
}

pub fn tid(s: &str) -> TransferId {
    TransferId::parse(s).unwrap()
}

pub fn lot(s: &str) -> LotId {
    LotId::parse(s).unwrap()
}

pub fn nc(n: i64) -> NanoCredits {
    NanoCredits::from_nanos(n)
}

pub fn grant_req(org_id: &str, id: &str, amount: i64) -> GrantRequest {
    GrantRequest::purchase(
        tid(&format!("grant-{id}")),
        org(org_id),
        lot(&format!("lot-{id}")),
        nc(amount),
    )
}

pub fn hold_req(org_id: &str, id: &str, amount: i64) -> HoldRequest {
    HoldRequest {
        transfer_id: tid(id),
        org: org(org_id),
        amount: nc(amount),
        timeout_ms: DEFAULT_HOLD_TIMEOUT_MS,
        scope: None,
        limits: Vec::new(),
        memo: None,
    }
}

pub fn settle_req(hold: &str, id: &str, amount: i64) -> SettleRequest {
    SettleRequest {
        transfer_id: tid(id),
        hold: tid(hold),
        amount: nc(amount),
        memo: None,
        usage: None,
        leased: None,
    }
}

pub fn release_req(hold: &str, id: &str) -> ReleaseRequest {
    ReleaseRequest {
        transfer_id: tid(id),
        hold: tid(hold),
    }
}

/// Creates an organization holding `amount` nano-credits in one paid lot.
pub async fn funded(db: &Database, org_id: &str, amount: i64) {
    db.create_organization(org(org_id), format!("Org {org_id}"))
        .await
        .unwrap();
    if amount > 0 {
        db.grant(grant_req(org_id, org_id, amount)).await.unwrap();
    }
}

/// Asserts that `verify` finds nothing wrong.
pub async fn assert_clean(db: &Database) {
    let report = db.verify().await.unwrap();
    assert!(report.is_clean(), "verify found: {:#?}", report.problems);
}
