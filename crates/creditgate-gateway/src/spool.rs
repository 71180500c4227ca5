//! The settlement spool: settlements the database could not take, kept in a local file until
//! they are applied, exactly once (`docs/gateway.md`).
//!
//! The file is append-only JSON lines, each written and `fsync`ed before the request that
//! produced it is told anything: `{"settle": <SettleRequest>, "org": …, "at": …}` when a
//! settlement is spooled, `{"applied": <settle transfer id>}` once the ledger took it (or
//! `{"applied": …, "refused": <reason>}` when the ledger can never take it). A settle is
//! idempotent on its transfer id, so a crash between applying and recording `applied` only
//! makes the next apply a replay. On open the file is read back; a torn last line (a crash in
//! the middle of an append) was never acknowledged and is dropped; any other unreadable line
//! stops the gateway from starting, since it may be a charge. The file is locked for one
//! process; when nothing is pending it is emptied.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::ledger::{LedgerError, LedgerStore, SettleRequest, Settlement};
use serde::{Deserialize, Serialize};

/// A settlement waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spooled {
    pub settle: SettleRequest,
    pub org: OrganizationId,
    /// When it was spooled (Unix milliseconds).
    pub at: i64,
}

/// One line of the spool file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Spooled(Spooled),
    Applied {
        applied: TransferId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("settlement spool {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("settlement spool {path}: line {line} is unreadable ({reason}); it may be a charge, so the gateway will not start until an operator looks at it")]
    Corrupt {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("settlement spool {path} is in use by another process; give each gateway process its own spool_path")]
    Locked { path: String },
}

/// What one [`Spool::apply`] pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub applied: usize,
    pub refused: usize,
    /// Still pending (the database is still unavailable).
    pub remaining: usize,
}

/// The spool of one gateway process. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    /// Serialises apply passes (the background task, shutdown, startup).
    applying: tokio::sync::Mutex<()>,
}

struct State {
    file: File,
    /// Pending settlements by the settle's transfer id, oldest first within a hold.
    pending: BTreeMap<TransferId, Spooled>,
    /// Lines in the file (to know when emptying it is worth it).
    lines: usize,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.inner.path)
            .field("depth", &self.depth())
            .finish()
    }
}

impl Spool {
    /// Opens (creating if needed) and locks the spool file, and reads back what is pending.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SpoolError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let io = |source| SpoolError::Io {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        // An advisory lock held as long as the file is open (released by the kernel even on
        // `kill -9`): two processes applying and emptying one spool could lose a charge.
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(SpoolError::Locked { path: shown });
            }
            Err(e) => return Err(io(e.into())),
        }
        let (pending, lines, torn) = read_back(&file, &shown)?;
        if torn {
            // The torn tail was never acknowledged: cut it so later appends start on a clean
            // line.
            rewrite(&file, pending.values()).map_err(io)?;
        }
        if !pending.is_empty() {
            tracing::warn!(path = %shown, depth = pending.len(), "settlement spool has pending charges");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                state: Mutex::new(State {
                    file,
                    lines: if torn { pending.len() } else { lines },
                    pending,
                }),
                applying: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Settlements waiting for the database.
    pub fn depth(&self) -> usize {
        self.state().pending.len()
    }

    /// The pending settlement of a hold (a request id), if any.
    pub fn pending_for(&self, hold: &TransferId) -> Option<Spooled> {
        self.state()
            .pending
            .values()
            .find(|s| &s.settle.hold == hold)
            .cloned()
    }

    /// Writes a settlement durably (returns once it is on disk).
    pub async fn append(&self, spooled: Spooled) -> Result<(), SpoolError> {
        let inner = self.inner.clone();
        run_blocking(move || {
            let mut state = lock(&inner.state);
            write_line(&state.file, &Line::Spooled(spooled.clone())).map_err(|e| io(&inner, e))?;
            state.lines += 1;
            state
                .pending
                .insert(spooled.settle.transfer_id.clone(), spooled);
            Ok(())
        })
        .await
    }

    /// Applies every pending settlement to `db`, oldest first, until the database refuses for
    /// lack of availability; returns what it did. Each one applied (or refused for good) is
    /// recorded in the file; when nothing is left the file is emptied.
    pub async fn apply<S: LedgerStore>(&self, db: &S) -> Result<Applied, SpoolError> {
        let _one_pass = self.inner.applying.lock().await;
        let mut todo: Vec<Spooled> = self.state().pending.values().cloned().collect();
        todo.sort_by_key(|s| s.at);
        let mut report = Applied::default();
        for spooled in todo {
            let id = spooled.settle.transfer_id.clone();
            let refused = match db.settle(spooled.settle.clone()).await {
                Ok(settlement) => {
                    log_applied(&spooled, &settlement);
                    report.applied += 1;
                    None
                }
                Err(LedgerError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "the database is still unavailable; the spool waits");
                    break;
                }
                Err(err) => {
                    tracing::error!(request_id = %spooled.settle.hold, error = %err, "the ledger refused a spooled settlement");
                    report.refused += 1;
                    Some(err.to_string())
                }
            };
            self.mark_applied(id, refused).await?;
        }
        report.remaining = self.depth();
        Ok(report)
    }

    async fn mark_applied(
        &self,
        id: TransferId,
        refused: Option<String>,
    ) -> Result<(), SpoolError> {
        let inner = self.inner.clone();
        run_blocking(move || {
            let mut state = lock(&inner.state);
            let line = Line::Applied {
                applied: id.clone(),
                refused,
            };
            write_line(&state.file, &line).map_err(|e| io(&inner, e))?;
            state.lines += 1;
            state.pending.remove(&id);
            if state.pending.is_empty() {
                state.file.set_len(0).map_err(|e| io(&inner, e))?;
                state.file.sync_all().map_err(|e| io(&inner, e))?;
                state.lines = 0;
            }
            Ok(())
        })
        .await
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn io(inner: &Inner, source: std::io::Error) -> SpoolError {
    SpoolError::Io {
        path: inner.path.display().to_string(),
        source,
    }
}

/// File writes and `fsync` run off the async workers.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(SpoolError::Io {
            path: String::new(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

fn log_applied(spooled: &Spooled, settlement: &Settlement) {
    tracing::info!(
        request_id = %spooled.settle.hold,
        org = %spooled.org,
        charged = %settlement.charged,
        late = settlement.late,
        "applied a spooled settlement"
    );
}

/// One line, then `fsync` of the data: the line is durable when this returns.
fn write_line(mut file: &File, line: &Line) -> std::io::Result<()> {
    let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    text.push('\n');
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// Replaces the file's content with `pending` only (one line each).
fn rewrite<'a>(file: &File, pending: impl Iterator<Item = &'a Spooled>) -> std::io::Result<()> {
    file.set_len(0)?;
    for spooled in pending {
        write_line(file, &Line::Spooled(spooled.clone()))?;
    }
    file.sync_all()
}

type ReadBack = (BTreeMap<TransferId, Spooled>, usize, bool);

/// The pending settlements in the file, its line count, and whether its last line was torn.
fn read_back(file: &File, shown: &str) -> Result<ReadBack, SpoolError> {
    let mut pending = BTreeMap::new();
    let mut lines = 0;
    let mut reader = BufReader::new(file);
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader
            .read_line(&mut buf)
            .map_err(|source| SpoolError::Io {
                path: shown.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok((pending, lines, false));
        }
        lines += 1;
        let complete = buf.ends_with('\n');
        match serde_json::from_str::<Line>(buf.trim_end()) {
            Ok(Line::Spooled(s)) if complete => {
                pending.insert(s.settle.transfer_id.clone(), s);
            }
            Ok(Line::Applied { applied, .. }) if complete => {
                pending.remove(&applied);
            }
            // A last line without its newline was being written when the process died.
            _ if !complete => return Ok((pending, lines, true)),
            Ok(_) => unreachable!("complete lines are matched above"),
            Err(e) => {
                return Err(SpoolError::Corrupt {
                    path: shown.to_owned(),
                    line: lines,
                    reason: e.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use creditgate_core::money::NanoCredits;

    fn dir() -> PathBuf {
        crate::testing::temp_dir("spool")
    }

    fn spooled(n: u32) -> Spooled {
        Spooled {
            settle: SettleRequest {
                transfer_id: TransferId::parse(&format!("req_{n}:settle")).unwrap(),
                hold: TransferId::parse(&format!("req_{n}")).unwrap(),
                amount: NanoCredits::from_nanos(1_000 + i64::from(n)),
                memo: Some(format!("{{\"n\":{n}}}")),
                usage: None,
                leased: None,
            },
            org: OrganizationId::parse("org_a").unwrap(),
            at: i64::from(n),
        }
    }

    #[tokio::test]
    async fn pending_settlements_survive_a_reopen_and_a_torn_tail() {
        let d = dir();
        let path = d.join("s.spool");
        let spool = Spool::open(&path).unwrap();
        spool.append(spooled(1)).await.unwrap();
        spool.append(spooled(2)).await.unwrap();
        assert!(matches!(Spool::open(&path), Err(SpoolError::Locked { .. })));
        drop(spool);
        // A crash in the middle of the third append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"settle\":{\"transfer_id\":\"req_3:se")
            .unwrap();
        drop(f);
        let spool = Spool::open(&path).unwrap();
        assert_eq!(spool.depth(), 2);
        let hold = TransferId::parse("req_2").unwrap();
        assert_eq!(spool.pending_for(&hold), Some(spooled(2)));
        spool.append(spooled(4)).await.unwrap();
        drop(spool);
        let spool = Spool::open(&path).unwrap();
        assert_eq!(
            spool.depth(),
            3,
            "the append after the cut tail is readable"
        );
        drop(spool);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Applied exactly once: a settle the database already took (a crash between applying and
    /// recording it) is a replay; the file is emptied once nothing is pending.
    #[tokio::test]
    async fn apply_settles_each_pending_charge_exactly_once() {
        let d = dir();
        let (db, org) = crate::testing::funded_ledger(&d).await;
        for n in 1..=2 {
            crate::testing::hold(&db, &org, spooled(n).settle.hold, 5_000).await;
        }
        let path = d.join("s.spool");
        let spool = Spool::open(&path).unwrap();
        spool.append(spooled(1)).await.unwrap();
        spool.append(spooled(2)).await.unwrap();
        // The first was applied before a crash, without its `applied` line.
        db.settle(spooled(1).settle).await.unwrap();
        let done = spool.apply(&db).await.unwrap();
        assert_eq!((done.applied, done.refused, done.remaining), (2, 0, 0));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        let b = db.balance(&org).await.unwrap();
        assert_eq!(b.posted, NanoCredits::from_nanos(1_000_000 - 1_001 - 1_002));
        assert_eq!(b.held, NanoCredits::ZERO);
        assert!(db.verify().await.unwrap().is_clean());
        drop(spool);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unreadable_line_in_the_middle_stops_the_start() {
        let d = dir();
        let path = d.join("s.spool");
        std::fs::write(&path, "garbage\n{\"applied\":\"req_1:settle\"}\n").unwrap();
        assert!(matches!(
            Spool::open(&path),
            Err(SpoolError::Corrupt { line: 1, .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
