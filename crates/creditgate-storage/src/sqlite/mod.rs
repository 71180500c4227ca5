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
use std::sync::atomic::{AtomicBool, Ordering};
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
/// WAL size (pages) past which the background checkpoint asks the writer to let the WAL start
/// over. Under a steady stream of commits a background pass never catches up with the writer,
/// and the WAL is written from its beginning again only once every frame in it was copied back.
/// So after a pass that found the WAL this long, the writer, between two groups, copies back
/// the few frames written during that pass (a short checkpoint: the rest is done) and its next
/// transaction starts the WAL over. Without it the WAL only started over at the writer's own
/// threshold below, 80 MB on, after a checkpoint of everything written since the last pass.
pub const RESTART_WAL_PAGES: i64 = 4_000;
/// WAL size (pages) at which the writer checkpoints by itself, in case the background thread
/// falls behind. (2,000 pages gave shorter stalls at saturation but cost the ledger ~15% of its
/// peak rate; the frequent background checkpoint above is the better cure.)
pub const WRITER_CHECKPOINT_PAGES: i64 = 20_000;
/// When the WAL is copied back into the database file: [`Checkpoints::default`] is the
/// constants above; tests shrink them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoints {
    /// [`CHECKPOINT_INTERVAL`].
    interval: Duration,
    /// [`RESTART_WAL_PAGES`].
    restart_pages: i64,
    /// [`WRITER_CHECKPOINT_PAGES`].
    writer_pages: i64,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Self {
            interval: CHECKPOINT_INTERVAL,
            restart_pages: RESTART_WAL_PAGES,
            writer_pages: WRITER_CHECKPOINT_PAGES,
        }
    }
}

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
        Self::open_with(path, clock, Checkpoints::default()).await
    }

    /// [`Self::open`] with its own checkpoint settings.
    pub(crate) async fn open_with(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        policy: Checkpoints,
    ) -> LedgerResult<Self> {
        let path = path.as_ref().to_path_buf();
        let open_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> LedgerResult<Connection> {
            let mut conn = open_connection(&open_path, false)?;
            migrate(&mut conn)?;
            conn.pragma_update(None, "wal_autocheckpoint", policy.writer_pages)
                .map_err(sqlite_error)?;
            Ok(conn)
        })
        .await
        .map_err(|e| LedgerError::Unavailable(format!("opening the database failed: {e}")))??;
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE_LEN);
        let writer_clock = clock.clone();
        let restart = Arc::new(AtomicBool::new(false));
        let writer_restart = restart.clone();
        std::thread::Builder::new()
            .name("creditgate-sqlite-writer".to_owned())
            .spawn(move || writer_loop(conn, queue, writer_clock, &writer_restart))
            .map_err(|e| LedgerError::Unavailable(format!("cannot start the writer: {e}")))?;
        let (checkpoints, stop) = std::sync::mpsc::channel();
        let checkpoint_conn = open_connection(&path, false)?;
        std::thread::Builder::new()
            .name("creditgate-sqlite-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(checkpoint_conn, stop, &restart, policy))
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

    /// [`Self::write`] for an operation that may run more than once: if another operation of its
    /// group fails after writing, the group's transaction is rolled back and every operation
    /// runs again, each in its own savepoint. Such an operation needs no savepoint of its own in
    /// the first run, which saves SQLite copying every page it touches into the savepoint's
    /// journal. `f` must depend only on the database and the time it is given: a run that was
    /// rolled back leaves nothing behind.
    ///
    /// Unless `synced`, the write may commit without its own sync of the WAL: for a write whose
    /// loss matters only while this process lives. It survives the process's crash (the WAL is in
    /// the OS's cache); only a power loss or an OS crash, which end this process too, can lose
    /// it, and then with nothing that depends on it, because the WAL is one file written in order
    /// and the next synced commit syncs everything before it. A hold is such a write: a request
    /// is forwarded only by the process that placed its hold, and its settlement is synced.
    pub(crate) async fn write_rerunnable<T, F>(&self, synced: bool, f: F) -> LedgerResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, Timestamp) -> LedgerResult<T> + Send + 'static,
    {
        self.send(Job::new(f, synced, true)).await
    }

    async fn enqueue<T, F>(&self, f: F, synced: bool) -> LedgerResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Timestamp) -> LedgerResult<T> + Send + 'static,
    {
        let mut f = Some(f);
        // Runs once: a job that is not rerunnable is never run again.
        let once = move |conn: &Connection, now| match f.take() {
            Some(f) => f(conn, now),
            None => Err(LedgerError::Corrupt(
                "a ledger operation was run twice".to_owned(),
            )),
        };
        self.send(Job::new(once, synced, false)).await
    }

    async fn send<T, F>(
        &self,
        (job, result): (Box<Job<F, T>>, oneshot::Receiver<LedgerResult<T>>),
    ) -> LedgerResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, Timestamp) -> LedgerResult<T> + Send + 'static,
    {
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
/// skips it for a group of holds alone ([`SqliteStore::write_rerunnable`]).
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
/// blocking the writer (`PASSIVE`), until the store is dropped; asks the writer to let the WAL
/// start over (`restart`) after a pass that found it [`RESTART_WAL_PAGES`] long.
fn checkpoint_loop(
    conn: Connection,
    stop: std::sync::mpsc::Receiver<()>,
    restart: &AtomicBool,
    policy: Checkpoints,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(policy.interval) {
        // A busy or failed checkpoint is retried at the next tick; the writer's own
        // checkpoint is the backstop. The second column is the WAL's length in frames.
        let frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        if frames.is_ok_and(|frames| frames >= policy.restart_pages) {
            restart.store(true, Ordering::Relaxed);
        }
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
    /// Whether it may run again after a run that was rolled back
    /// ([`SqliteStore::write_rerunnable`]).
    fn rerunnable(&self) -> bool;
}

struct Job<F, T> {
    f: F,
    result: Option<LedgerResult<T>>,
    done: oneshot::Sender<LedgerResult<T>>,
    synced: bool,
    rerunnable: bool,
}

impl<F, T> Job<F, T> {
    /// The job, and where its result will arrive.
    fn new(
        f: F,
        synced: bool,
        rerunnable: bool,
    ) -> (Box<Self>, oneshot::Receiver<LedgerResult<T>>) {
        let (done, result) = oneshot::channel();
        let job = Box::new(Job {
            f,
            result: None,
            done,
            synced,
            rerunnable,
        });
        (job, result)
    }
}

impl<F, T> WriteJob for Job<F, T>
where
    T: Send,
    F: FnMut(&Connection, Timestamp) -> LedgerResult<T> + Send,
{
    fn run(&mut self, conn: &Connection, now: Timestamp) -> bool {
        let f = &mut self.f;
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

    fn rerunnable(&self) -> bool {
        self.rerunnable
    }
}

/// The writer thread: takes every queued operation (up to [`MAX_WRITE_GROUP`]) and commits them
/// in one transaction ([`run_group`]). Grouping is what makes SQLite's per-commit cost
/// shared between concurrent requests. A group syncs its commit (`synchronous = FULL`) unless
/// every operation in it was queued unsynced ([`SqliteStore::write_rerunnable`]; `NORMAL`).
fn writer_loop(
    conn: Connection,
    mut queue: mpsc::Receiver<Box<dyn WriteJob>>,
    clock: Arc<dyn Clock>,
    restart: &AtomicBool,
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
        if restart.swap(false, Ordering::Relaxed) {
            // Outside the group's transaction: copies back what the background pass left, so
            // the next transaction writes the WAL from its beginning ([`RESTART_WAL_PAGES`]).
            // Busy (another checkpoint runs) or failed: the background asks again.
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
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

/// Commits a group in one transaction. Rerunnable operations run first, without savepoints;
/// if one of them fails after it wrote, nothing else can undo its writes, so the transaction is
/// rolled back and the whole group runs again, each operation in its own savepoint. The
/// operations of a group were queued by concurrent callers, none waiting for another, so any
/// order among them is one they could have had.
fn run_group(
    conn: &Connection,
    group: &mut [Box<dyn WriteJob>],
    clock: &dyn Clock,
) -> LedgerResult<()> {
    group.sort_by_key(|job| !job.rerunnable());
    let unguarded = group.partition_point(|job| job.rerunnable());
    let first = in_transaction(conn, |conn| {
        let (rerunnable, others) = group.split_at_mut(unguarded);
        if !run_unguarded(conn, rerunnable, clock)? {
            return Ok(false);
        }
        run_guarded(conn, others, clock)?;
        Ok(true)
    })?;
    if !first {
        in_transaction(conn, |conn| run_guarded(conn, group, clock).map(|()| true))?;
    }
    Ok(())
}

/// Runs `f` in a write transaction with the group's summed upserts, committing if it returns
/// `true` and rolling back if it returns `false` or fails.
fn in_transaction(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> LedgerResult<bool>,
) -> LedgerResult<bool> {
    exec_cached(conn, "BEGIN IMMEDIATE")?;
    sums::begin_group();
    let ran = f(conn).and_then(|commit| {
        if commit {
            sums::write_group(conn).and_then(|()| exec_cached(conn, "COMMIT"))?;
        }
        Ok(commit)
    });
    if !matches!(ran, Ok(true)) {
        sums::drop_group();
        let _ = conn.execute_batch("ROLLBACK");
    }
    ran
}

/// Runs operations without savepoints; `false` (stop, roll back) as soon as one fails after
/// changing a row. One that fails without changing any row left nothing to undo.
fn run_unguarded(
    conn: &Connection,
    group: &mut [Box<dyn WriteJob>],
    clock: &dyn Clock,
) -> LedgerResult<bool> {
    for job in group.iter_mut() {
        let before = conn.total_changes();
        let succeeded = job.run(conn, clock.now());
        if !succeeded && conn.total_changes() != before {
            return Ok(false);
        }
        sums::end_op(succeeded)?;
    }
    Ok(true)
}

/// Runs each operation in its own savepoint: one that fails rolls back alone, its summed
/// upserts dropped with it.
fn run_guarded(
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

    /// A store on a new database file in a new temporary directory (removed by the caller).
    async fn temp_store(name: &str) -> (SqliteStore, std::path::PathBuf) {
        temp_store_with(name, Checkpoints::default()).await
    }

    /// [`temp_store`] with its own checkpoint settings.
    async fn temp_store_with(name: &str, policy: Checkpoints) -> (SqliteStore, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("creditgate-{name}-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(0)));
        let store = SqliteStore::open_with(dir.join("l.db"), clock, policy)
            .await
            .unwrap();
        (store, dir)
    }

    /// `synchronous` as an operation of the writer sees it.
    async fn sync_level(store: &SqliteStore, synced: bool) -> i64 {
        let read = |conn: &Connection, _| {
            conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
                .map_err(sqlite_error)
        };
        if synced {
            store.write(read).await.unwrap()
        } else {
            store.write_rerunnable(false, read).await.unwrap()
        }
    }

    /// The writer (every commit goes through it) syncs each commit, `synchronous = FULL` (2),
    /// unless the whole group was queued unsynced (`NORMAL`, 1); the next synced write syncs
    /// again.
    #[tokio::test]
    async fn the_writer_syncs_every_commit_but_an_unsynced_group() {
        let (store, dir) = temp_store("sync").await;
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

    /// How one queued write of [`a_group`] behaves.
    #[derive(Clone, Copy)]
    enum Step {
        /// Inserts its row and succeeds.
        Writes,
        /// Inserts its row, then fails.
        WritesThenFails,
        /// Fails before writing anything.
        Fails,
    }

    /// Queues `steps` while the writer is held busy, so they commit as one group; each inserts
    /// its index into `t` (rerunnable ones through [`SqliteStore::write_rerunnable`]). Returns
    /// which succeeded, how often each ran, and the rows committed.
    async fn a_group(steps: &[(Step, bool)]) -> (Vec<bool>, Vec<usize>, Vec<i64>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (store, dir) = temp_store("group").await;
        store
            .write(|conn, _| {
                conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
                    .map_err(sqlite_error)
            })
            .await
            .unwrap();
        // The writer waits in this job until every step is queued behind it.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write(move |_, _| {
                        let _ = wait.recv();
                        Ok(())
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let runs: Vec<Arc<AtomicUsize>> = steps.iter().map(|_| Arc::default()).collect();
        let mut queued = Vec::new();
        for (i, &(step, rerunnable)) in steps.iter().enumerate() {
            let ran = runs[i].clone();
            let op = move |conn: &Connection, _| {
                ran.fetch_add(1, Ordering::SeqCst);
                if !matches!(step, Step::Fails) {
                    conn.execute("INSERT INTO t (n) VALUES (?1)", [i as i64])
                        .map_err(sqlite_error)?;
                }
                match step {
                    Step::Writes => Ok(()),
                    _ => Err(LedgerError::InvalidRequest(format!("step {i} fails"))),
                }
            };
            let store = store.clone();
            queued.push(tokio::spawn(async move {
                if rerunnable {
                    store.write_rerunnable(true, op).await
                } else {
                    store.write(op).await
                }
            }));
            // Each is in the queue before the next is sent.
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        let mut succeeded = Vec::new();
        for q in queued {
            succeeded.push(q.await.unwrap().is_ok());
        }
        let rows = store
            .read(|conn, _| {
                let mut st = conn
                    .prepare("SELECT n FROM t ORDER BY n")
                    .map_err(sqlite_error)?;
                let rows = st
                    .query_map([], |r| r.get(0))
                    .map_err(sqlite_error)?
                    .collect::<Result<Vec<i64>, _>>()
                    .map_err(sqlite_error)?;
                Ok(rows)
            })
            .await
            .unwrap();
        let runs = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        (succeeded, runs, rows)
    }

    /// A rerunnable operation that fails after writing rolls back alone: the group runs again,
    /// every operation in its own savepoint, and the others commit once, as if it had not run.
    #[tokio::test]
    async fn a_rerunnable_write_that_fails_after_writing_rolls_back_alone() {
        let (succeeded, runs, rows) = a_group(&[
            (Step::Writes, true),
            (Step::WritesThenFails, true),
            (Step::Writes, true),
            (Step::Writes, false),
            (Step::WritesThenFails, false),
        ])
        .await;
        assert_eq!(succeeded, [true, false, true, true, false]);
        assert_eq!(
            rows,
            [0, 2, 3],
            "the failed writes are rolled back, the others kept"
        );
        // The rerunnable ones ran again after the rollback; the others ran once, after them.
        assert_eq!(runs, [2, 2, 1, 1, 1]);
    }

    /// A rerunnable operation that fails before writing leaves nothing to undo: the group is
    /// not run again.
    #[tokio::test]
    async fn a_rerunnable_write_that_fails_before_writing_is_not_run_again() {
        let (succeeded, runs, rows) = a_group(&[
            (Step::Writes, true),
            (Step::Fails, true),
            (Step::Writes, true),
            (Step::WritesThenFails, false),
        ])
        .await;
        assert_eq!(succeeded, [true, false, true, false]);
        assert_eq!(rows, [0, 2]);
        assert_eq!(runs, [1, 1, 1, 1]);
    }

    /// Under a steady stream of commits the WAL starts over long before the writer's own
    /// checkpoint threshold ([`RESTART_WAL_PAGES`]): without the writer's short checkpoint the
    /// background pass never catches up and the WAL file grows to that threshold. The interval
    /// and the restart threshold are a tenth of the real ones and the writer's threshold a fifth,
    /// so the test has room to spare on a busy machine.
    #[tokio::test]
    async fn the_wal_starts_over_under_a_steady_stream_of_commits() {
        let checkpoints = Checkpoints {
            interval: Duration::from_millis(10),
            restart_pages: 400,
            writer_pages: 4_000,
        };
        let (store, dir) = temp_store_with("wal", checkpoints).await;
        store
            .write(|conn, _| {
                conn.execute_batch(
                    "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64)
                     INSERT INTO t (id, b) SELECT i, zeroblob(12000) FROM n;",
                )
                .map_err(sqlite_error)
            })
            .await
            .unwrap();
        // Each update rewrites a row's three overflow pages and its leaf: five times the
        // writer's threshold in frames, one commit after another, as fast as they go.
        for n in 0..5 * checkpoints.writer_pages / 4 {
            let id = n % 64 + 1;
            store
                .write_rerunnable(false, move |conn, _| {
                    conn.execute("UPDATE t SET b = randomblob(12000) WHERE id = ?1", [id])
                        .map_err(sqlite_error)
                })
                .await
                .unwrap();
        }
        // The WAL file is never truncated: its size is the most it ever held, a 32-byte header
        // and frames of a 24-byte header and a 4 KiB page.
        let wal = std::fs::metadata(dir.join("l.db-wal")).unwrap().len();
        let frames = (i64::try_from(wal).unwrap() - 32) / (24 + 4096);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            frames < checkpoints.writer_pages,
            "the WAL reached {frames} frames: it did not start over"
        );
    }
}
