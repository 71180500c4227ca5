//! The embedded SQLite backend: one file in WAL mode, one writer thread that commits queued
//! operations in groups, and a few reader connections.
//!
//! All writes go through [`SqliteStore::write`]: the closure runs on the writer thread inside a
//! `BEGIN IMMEDIATE` transaction, in its own savepoint, so a failed operation rolls back alone
//! while its neighbours in the same group commit together. Its result is delivered only after
//! the group's `COMMIT` succeeded. Reads go through [`SqliteStore::read`] on a pooled reader
//! connection inside one read transaction (a consistent snapshot). Modules added beside
//! [`ledger`] (API keys, receipts) use the same two helpers and add their tables as numbered
//! migrations in [`MIGRATIONS`].

pub(crate) mod ledger;
mod sums;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use creditgate_core::clock::{Clock, Timestamp};
use creditgate_core::ledger::{LedgerError, LedgerResult};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

/// The SQLite migrations, applied in order on connect and recorded in `schema_migrations`.
/// Add a module's tables by appending `(version, name, include_str!(…))`.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_ledger",
        include_str!("../../migrations/sqlite/0001_ledger.sql"),
    ),
    (
        2,
        "0002_gateway",
        include_str!("../../migrations/sqlite/0002_gateway.sql"),
    ),
    (
        4,
        "0004_accounts",
        include_str!("../../migrations/sqlite/0004_accounts.sql"),
    ),
    (
        6,
        "0006_payments",
        include_str!("../../migrations/sqlite/0006_payments.sql"),
    ),
    (
        7,
        "0007_usage_records",
        include_str!("../../migrations/sqlite/0007_usage_records.sql"),
    ),
    (
        8,
        "0008_usage_rollups",
        include_str!("../../migrations/sqlite/0008_usage_rollups.sql"),
    ),
    (
        10,
        "0010_payment_methods",
        include_str!("../../migrations/sqlite/0010_payment_methods.sql"),
    ),
    (
        11,
        "0011_auto_reload",
        include_str!("../../migrations/sqlite/0011_auto_reload.sql"),
    ),
    (
        12,
        "0012_alerts",
        include_str!("../../migrations/sqlite/0012_alerts.sql"),
    ),
    (
        13,
        "0013_webhooks",
        include_str!("../../migrations/sqlite/0013_webhooks.sql"),
    ),
    (
        14,
        "0014_order_tax",
        include_str!("../../migrations/sqlite/0014_order_tax.sql"),
    ),
    (
        15,
        "0015_credit_lines",
        include_str!("../../migrations/sqlite/0015_credit_lines.sql"),
    ),
    (
        16,
        "0016_invoices",
        include_str!("../../migrations/sqlite/0016_invoices.sql"),
    ),
    (
        17,
        "0017_invoice_orders",
        include_str!("../../migrations/sqlite/0017_invoice_orders.sql"),
    ),
];

/// How long a connection waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Operations waiting for the writer thread before callers wait to enqueue.
pub const WRITE_QUEUE_LEN: usize = 4096;
/// Most operations the writer commits in one transaction.
pub const MAX_WRITE_GROUP: usize = 256;
/// Reader connections kept open between reads.
pub const MAX_IDLE_READERS: usize = 8;
/// Page cache of the writer connection, in KiB: the hot pages of the ledger stay in memory.
pub const PAGE_CACHE_KIB: i64 = 32 * 1024;
/// Page cache of each reader connection, in KiB. Small on purpose: a reader drops its whole
/// cache whenever the writer committed since its last read (every read, under load), and the
/// cost of dropping grows with the cache; readers get their pages from the memory map instead.
pub const READER_PAGE_CACHE_KIB: i64 = 512;
/// How much of the database file each connection maps into memory (reads without copies).
pub const MMAP_BYTES: i64 = 256 * 1024 * 1024;
/// How often a background thread copies the WAL back into the database file. Checkpoints (and
/// their fsync) run there, not on the writer thread, so commits never wait for them. Frequent, so
/// the WAL rarely reaches the writer's own threshold below: at 500 ms it did under sustained
/// load, and the writer's checkpoint stalled every commit behind it (gateway p99 at moderate load
/// 15–22 ms; at 100 ms, 7 ms).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// WAL size (pages) at which the writer checkpoints by itself, in case the background thread
/// falls behind. (2,000 pages gave shorter stalls at saturation but cost the ledger ~15% of its
/// peak rate; the frequent background checkpoint above is the better cure.)
pub const WRITER_CHECKPOINT_PAGES: i64 = 20_000;
/// Prepared statements each connection keeps compiled.
const STATEMENT_CACHE: usize = 128;

/// The SQLite ledger store. Cheap to clone; clones share the writer thread and readers.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    jobs: mpsc::Sender<Box<dyn WriteJob>>,
    readers: Mutex<Vec<Connection>>,
    /// Dropping this stops the checkpoint thread.
    _checkpoints: std::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, applies pending migrations and starts the
    /// writer thread.
    pub async fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> LedgerResult<Self> {
        let path = path.as_ref().to_path_buf();
        let open_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> LedgerResult<Connection> {
            let mut conn = open_connection(&open_path, false)?;
            migrate(&mut conn)?;
            conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
                .map_err(sqlite_error)?;
            Ok(conn)
        })
        .await
        .map_err(|e| LedgerError::Unavailable(format!("opening the database failed: {e}")))??;
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE_LEN);
        let writer_clock = clock.clone();
        std::thread::Builder::new()
            .name("creditgate-sqlite-writer".to_owned())
            .spawn(move || writer_loop(conn, queue, writer_clock))
            .map_err(|e| LedgerError::Unavailable(format!("cannot start the writer: {e}")))?;
        let (checkpoints, stop) = std::sync::mpsc::channel();
        let checkpoint_conn = open_connection(&path, false)?;
        std::thread::Builder::new()
            .name("creditgate-sqlite-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(checkpoint_conn, stop))
            .map_err(|e| LedgerError::Unavailable(format!("cannot start checkpoints: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                clock,
                jobs,
                readers: Mutex::new(Vec::new()),
                _checkpoints: checkpoints,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The clock this store reads "now" from.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Runs `f` on the writer thread inside a transaction (its own savepoint), with the clock's
    /// "now" taken when it starts. An `Err` from `f` rolls back what it wrote; an `Ok` is
    /// returned once the transaction committed and was synced to disk. `f` must not block on
    /// anything but SQLite.
    pub(crate) async fn write<T, F>(&self, f: F) -> LedgerResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Timestamp) -> LedgerResult<T> + Send + 'static,
    {
        self.enqueue(f, true).await
    }

    /// [`Self::write`] for a write that may commit without its own sync of the WAL: one whose
    /// loss matters only while this process lives. It survives the process's crash (the WAL is in
    /// the OS's cache); only a power loss or an OS crash, which end this process too, can lose
    /// it, and then with nothing that depends on it, because the WAL is one file written in order
    /// and the next synced commit syncs everything before it. A hold is such a write: a request
    /// is forwarded only by the process that placed its hold, and its settlement is synced.
    pub(crate) async fn write_unsynced<T, F>(&self, f: F) -> LedgerResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Timestamp) -> LedgerResult<T> + Send + 'static,
    {
        self.enqueue(f, false).await
    }

    async fn enqueue<T, F>(&self, f: F, synced: bool) -> LedgerResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Timestamp) -> LedgerResult<T> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job = Box::new(Job {
            f: Some(f),
            result: None,
            done,
            synced,
        });
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| LedgerError::Unavailable("the database writer stopped".to_owned()))?;
        result
            .await
            .map_err(|_| LedgerError::Unavailable("the database writer stopped".to_owned()))?
    }

    /// Runs `f` on a reader connection inside one read transaction, off the async runtime,
    /// with the clock's "now".
    pub(crate) async fn read<T, F>(&self, f: F) -> LedgerResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Timestamp) -> LedgerResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let idle = inner.readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match idle {
                Some(conn) => conn,
                None => open_connection(&inner.path, true)?,
            };
            let now = inner.clock.now();
            conn.execute_batch("BEGIN").map_err(sqlite_error)?;
            let result = f(&conn, now);
            let ended = conn.execute_batch("COMMIT").map_err(sqlite_error);
            if ended.is_ok() {
                if let Ok(mut idle) = inner.readers.lock() {
                    if idle.len() < MAX_IDLE_READERS {
                        idle.push(conn);
                    }
                }
            }
            let value = result?;
            ended?;
            Ok(value)
        })
        .await
        .map_err(|e| LedgerError::Unavailable(format!("a database read failed: {e}")))?
    }
}

/// Opens a connection with the settings every connection uses. `synchronous = FULL` syncs the
/// WAL at every commit, so a committed settlement or grant survives a power loss (`NORMAL` may
/// lose the last commits); the writer commits in groups, which spreads that fsync over them, and
/// skips it for a group of holds alone ([`SqliteStore::write_unsynced`]).
fn open_connection(path: &Path, reader: bool) -> LedgerResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = OFF;",
    )
    .map_err(sqlite_error)?;
    let cache_kib = if reader {
        READER_PAGE_CACHE_KIB
    } else {
        PAGE_CACHE_KIB
    };
    conn.pragma_update(None, "cache_size", -cache_kib)
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(sqlite_error)?;
    if reader {
        conn.execute_batch("PRAGMA query_only = ON;")
            .map_err(sqlite_error)?;
    }
    Ok(conn)
}

/// Applies the migrations not yet recorded, each in its own transaction. `BEGIN IMMEDIATE`
/// makes two processes starting together apply each migration once.
fn migrate(conn: &mut Connection) -> LedgerResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER PRIMARY KEY,
             name        TEXT NOT NULL,
             applied_at  INTEGER NOT NULL
         )",
    )
    .map_err(sqlite_error)?;
    for &(version, name, sql) in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite_error)?;
        let applied: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |row| row.get(0),
            )
            .map_err(sqlite_error)?;
        if !applied {
            tx.execute_batch(sql)
                .map_err(|e| LedgerError::Unavailable(format!("migration {name} failed: {e}")))?;
            if name.ends_with(crate::usage::BACKFILL_MIGRATION) {
                crate::usage::backfill_sqlite(&tx)?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)
                 VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
                rusqlite::params![version, name],
            )
            .map_err(sqlite_error)?;
        }
        tx.commit().map_err(sqlite_error)?;
    }
    Ok(())
}

/// Copies committed WAL frames into the database file every [`CHECKPOINT_INTERVAL`] without
/// blocking the writer (`PASSIVE`), until the store is dropped.
fn checkpoint_loop(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stop.recv_timeout(CHECKPOINT_INTERVAL)
    {
        // A busy or failed checkpoint is retried at the next tick; the writer's own
        // checkpoint is the backstop.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

/// One queued write, type-erased so jobs of any result type share the queue.
trait WriteJob: Send {
    /// Runs the operation; `true` if it succeeded (so its savepoint is kept).
    fn run(&mut self, conn: &Connection, now: Timestamp) -> bool;
    /// Delivers the result once the group's transaction has ended (`Err`: it did not commit).
    fn finish(self: Box<Self>, committed: LedgerResult<()>);
    /// Whether its commit must be synced to disk before it is answered.
    fn synced(&self) -> bool;
}

struct Job<F, T> {
    f: Option<F>,
    result: Option<LedgerResult<T>>,
    done: oneshot::Sender<LedgerResult<T>>,
    synced: bool,
}

impl<F, T> WriteJob for Job<F, T>
where
    T: Send,
    F: FnOnce(&Connection, Timestamp) -> LedgerResult<T> + Send,
{
    fn run(&mut self, conn: &Connection, now: Timestamp) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(conn, now))).unwrap_or_else(|_| {
            Err(LedgerError::Corrupt(
                "a ledger operation panicked".to_owned(),
            ))
        });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: LedgerResult<()>) {
        let out = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(LedgerError::Unavailable(
                "the operation did not run".to_owned(),
            )),
        };
        // The caller may have gone away; the outcome is in the database either way.
        let _ = self.done.send(out);
    }

    fn synced(&self) -> bool {
        self.synced
    }
}

/// The writer thread: takes every queued operation (up to [`MAX_WRITE_GROUP`]) and commits them
/// in one transaction, one savepoint each. Grouping is what makes SQLite's per-commit cost
/// shared between concurrent requests. A group syncs its commit (`synchronous = FULL`) unless
/// every operation in it was queued with [`SqliteStore::write_unsynced`] (`NORMAL`).
fn writer_loop(
    conn: Connection,
    mut queue: mpsc::Receiver<Box<dyn WriteJob>>,
    clock: Arc<dyn Clock>,
) {
    let mut group: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_WRITE_GROUP);
    // What the connection was opened with.
    let mut syncing = true;
    while let Some(first) = queue.blocking_recv() {
        group.push(first);
        while group.len() < MAX_WRITE_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let sync = group.iter().any(|job| job.synced());
        let committed = set_sync(&conn, &mut syncing, sync)
            .and_then(|()| run_group(&conn, &mut group, clock.as_ref()));
        for job in group.drain(..) {
            job.finish(committed.clone());
        }
    }
}

/// Makes the next commit synced or not; a group that must be synced fails if it cannot be.
fn set_sync(conn: &Connection, syncing: &mut bool, sync: bool) -> LedgerResult<()> {
    if *syncing != sync {
        let level = if sync { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", level)
            .map_err(sqlite_error)?;
        *syncing = sync;
    }
    Ok(())
}

fn run_group(
    conn: &Connection,
    group: &mut [Box<dyn WriteJob>],
    clock: &dyn Clock,
) -> LedgerResult<()> {
    exec_cached(conn, "BEGIN IMMEDIATE")?;
    sums::begin_group();
    let ran = run_ops(conn, group, clock)
        .and_then(|()| sums::write_group(conn))
        .and_then(|()| exec_cached(conn, "COMMIT"));
    if let Err(e) = ran {
        sums::drop_group();
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e);
    }
    Ok(())
}

/// Runs each operation of a group in its own savepoint: one that fails rolls back alone, its
/// summed upserts dropped with it.
fn run_ops(
    conn: &Connection,
    group: &mut [Box<dyn WriteJob>],
    clock: &dyn Clock,
) -> LedgerResult<()> {
    for job in group.iter_mut() {
        exec_cached(conn, "SAVEPOINT op")?;
        let succeeded = job.run(conn, clock.now());
        if !succeeded {
            exec_cached(conn, "ROLLBACK TO op")?;
        }
        exec_cached(conn, "RELEASE op")?;
        sums::end_op(succeeded)?;
    }
    Ok(())
}

fn exec_cached(conn: &Connection, sql: &str) -> LedgerResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(sqlite_error)
}

pub(crate) use crate::statement::sqlite_error;

#[cfg(test)]
mod tests {
    use super::*;
    use creditgate_core::clock::ManualClock;

    /// `synchronous` as an operation of the writer sees it.
    async fn sync_level(store: &SqliteStore, synced: bool) -> i64 {
        let read = |conn: &Connection, _| {
            conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
                .map_err(sqlite_error)
        };
        if synced {
            store.write(read).await.unwrap()
        } else {
            store.write_unsynced(read).await.unwrap()
        }
    }

    /// The writer (every commit goes through it) syncs each commit, `synchronous = FULL` (2),
    /// unless the whole group was queued unsynced (`NORMAL`, 1); the next synced write syncs
    /// again.
    #[tokio::test]
    async fn the_writer_syncs_every_commit_but_an_unsynced_group() {
        let dir =
            std::env::temp_dir().join(format!("creditgate-sync-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(0)));
        let store = SqliteStore::open(dir.join("l.db"), clock).await.unwrap();
        assert_eq!(
            sync_level(&store, true).await,
            2,
            "synchronous must be FULL"
        );
        assert_eq!(sync_level(&store, false).await, 1, "an unsynced group");
        assert_eq!(sync_level(&store, true).await, 2, "FULL again");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
