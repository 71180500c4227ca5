//! The Postgres backend, for several gateway replicas sharing one database.
//!
//! A connection pool; each money operation is one transaction that first locks its
//! organization's `org_state` row (`SELECT … FOR UPDATE`), so admission stays exact across
//! processes: a hot organization serialises on its row while others proceed in parallel.
//! Modules added beside [`ledger`] (API keys, receipts) take a pooled connection with
//! [`PgStore::client`], open a transaction on it (`client.transaction()`, statements through
//! `prepare_cached`), map driver errors with [`pg_error`], and add their tables as numbered
//! migrations in [`MIGRATIONS`].

pub(crate) mod ledger;
pub mod tls;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use creditgate_core::clock::Clock;
use creditgate_core::ledger::{LedgerError, LedgerResult};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// The Postgres migrations, applied in order on connect and recorded in `schema_migrations`.
/// Add a module's tables by appending `(version, name, include_str!(…))`.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_ledger",
        include_str!("../../migrations/postgres/0001_ledger.sql"),
    ),
    (
        2,
        "0002_gateway",
        include_str!("../../migrations/postgres/0002_gateway.sql"),
    ),
    (
        3,
        "0003_no_truncate",
        include_str!("../../migrations/postgres/0003_no_truncate.sql"),
    ),
    (
        4,
        "0004_accounts",
        include_str!("../../migrations/postgres/0004_accounts.sql"),
    ),
    (
        6,
        "0006_payments",
        include_str!("../../migrations/postgres/0006_payments.sql"),
    ),
    (
        7,
        "0007_usage_records",
        include_str!("../../migrations/postgres/0007_usage_records.sql"),
    ),
    (
        8,
        "0008_usage_rollups",
        include_str!("../../migrations/postgres/0008_usage_rollups.sql"),
    ),
    (
        10,
        "0010_payment_methods",
        include_str!("../../migrations/postgres/0010_payment_methods.sql"),
    ),
    (
        11,
        "0011_auto_reload",
        include_str!("../../migrations/postgres/0011_auto_reload.sql"),
    ),
    (
        12,
        "0012_alerts",
        include_str!("../../migrations/postgres/0012_alerts.sql"),
    ),
    (
        13,
        "0013_webhooks",
        include_str!("../../migrations/postgres/0013_webhooks.sql"),
    ),
    (
        14,
        "0014_order_tax",
        include_str!("../../migrations/postgres/0014_order_tax.sql"),
    ),
    (
        15,
        "0015_credit_lines",
        include_str!("../../migrations/postgres/0015_credit_lines.sql"),
    ),
    (
        16,
        "0016_invoices",
        include_str!("../../migrations/postgres/0016_invoices.sql"),
    ),
    (
        17,
        "0017_invoice_orders",
        include_str!("../../migrations/postgres/0017_invoice_orders.sql"),
    ),
];

/// Connections per process.
pub const POOL_SIZE: usize = 16;
/// How long an operation waits for a free pooled connection, and for a new one to open.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an operation is tried when it lost a race to another replica (a transfer id
/// inserted concurrently, a serialization failure, a deadlock).
pub(crate) const MAX_ATTEMPTS: u32 = 5;
/// Key of the advisory lock that serialises migrations across replicas starting together.
const MIGRATION_LOCK: i64 = 0x6372_6564_6974; // "credit"

/// The Postgres ledger store. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`, with TLS as its
    /// `sslmode` says: see [`tls`]), and applies pending migrations.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> LedgerResult<Self> {
        let (driver_url, tls_mode) = tls::split_url(url)?;
        let mut config = tokio_postgres::Config::from_str(&driver_url)
            .map_err(|e| LedgerError::Unavailable(format!("invalid Postgres URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        let recycling = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls::client_config(&tls_mode)? {
            None => Manager::from_config(config, NoTls, recycling()),
            Some(client) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client);
                Manager::from_config(config, tls, recycling())
            }
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| LedgerError::Unavailable(format!("postgres pool: {e}")))?;
        let store = Self { pool, clock };
        store.migrate().await?;
        Ok(store)
    }

    /// A pooled connection; `Unavailable` when the database cannot be reached.
    pub(crate) async fn client(&self) -> LedgerResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| LedgerError::Unavailable(format!("postgres: {e}")))
    }

    /// Whether this store's connections are encrypted (Postgres's own `pg_stat_ssl` for the
    /// connection asking).
    pub async fn uses_tls(&self) -> LedgerResult<bool> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.get(0))
    }

    /// The clock this store reads "now" from.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    async fn migrate(&self) -> LedgerResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version     BIGINT PRIMARY KEY,
                 name        TEXT NOT NULL,
                 applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(pg_error)?;
        for &(version, name, sql) in MIGRATIONS {
            let applied = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[&version],
                )
                .await
                .map_err(pg_error)?
                .is_some();
            if !applied {
                tx.batch_execute(sql).await.map_err(|e| {
                    LedgerError::Unavailable(format!("migration {name} failed: {e}"))
                })?;
                if name.ends_with(crate::usage::BACKFILL_MIGRATION) {
                    crate::usage::backfill_postgres(&tx).await?;
                }
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[&version, &name],
                )
                .await
                .map_err(pg_error)?;
            }
        }
        tx.commit().await.map_err(pg_error)
    }
}

pub(crate) use crate::statement::pg_error;

/// Whether a transaction could not even begin because its connection had died while it sat in
/// the pool (the server restarted or terminated it): nothing ran, so another connection may be
/// tried.
pub(crate) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || matches!(
            e.code(),
            Some(c) if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        )
}

/// Whether an error means the transaction lost a race and may simply be tried again.
pub(crate) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}
