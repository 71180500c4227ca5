//! The lives of admitted requests: how many are in flight, each one's hold keep-alive, and the
//! shutdown cut that ends those still running at the shutdown deadline.
//!
//! A request is live from the moment its hold is placed until its settlement is posted (or
//! spooled). While it lives, a keep-alive task pushes its hold's expiry forward, whatever the
//! request is waiting on (the upstream, a slow client, a settle retry), so the sweeper never
//! frees credit that a live request holds (`docs/gateway.md`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use creditgate_core::ids::TransferId;
use creditgate_core::ledger::{ExtendHoldRequest, LedgerError, LedgerStore};
use creditgate_core::money::NanoCredits;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::App;

/// Requests in flight and the shutdown cut.
pub struct Lifecycle {
    live: AtomicUsize,
    idle: Notify,
    cut: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            live: AtomicUsize::new(0),
            idle: Notify::new(),
            cut: watch::Sender::new(false),
        }
    }
}

impl Lifecycle {
    /// Admitted requests not yet settled.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until no request is live or `deadline` passes; `true` if none is left.
    pub async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.idle.notified();
            if self.live() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.live() == 0;
            }
        }
    }

    /// Tells every live request to stop where it is and settle what it observed.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Resolves when [`Self::cut`] was called (at once if it already was).
    pub fn until_cut(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.cut.subscribe();
        async move {
            let _ = rx.wait_for(|cut| *cut).await;
        }
    }
}

/// One live request: counted until dropped, its hold kept alive until then.
pub struct Live {
    app: Arc<App>,
    keep_alive: Option<tokio::task::JoinHandle<()>>,
}

impl Live {
    /// Starts the life of the request whose hold is `hold`.
    pub fn start(app: Arc<App>, hold: TransferId) -> Self {
        app.lifecycle.live.fetch_add(1, Ordering::SeqCst);
        let keep_alive = Some(tokio::spawn(keep_alive(app.clone(), hold)));
        Self { app, keep_alive }
    }

    /// Starts the life of a request admitted against a credit lease: counted only, since the
    /// lease is kept alive for all its requests (`crate::lease`).
    pub fn counted(app: Arc<App>) -> Self {
        app.lifecycle.live.fetch_add(1, Ordering::SeqCst);
        Self {
            app,
            keep_alive: None,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(task) = &self.keep_alive {
            task.abort();
        }
        if self.app.lifecycle.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.app.lifecycle.idle.notify_waiters();
        }
    }
}

/// How often a live request pushes its hold's expiry forward: a third of the hold timeout.
pub fn refresh_period(hold_timeout_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(hold_timeout_ms / 3).unwrap_or(1).max(1))
}

/// Extends the hold by nothing every [`refresh_period`] until the request ends (the task is
/// aborted) or the hold is resolved. A failed extension (the database is down) is tried again
/// at the next tick.
async fn keep_alive(app: Arc<App>, hold: TransferId) {
    let period = refresh_period(app.cfg.hold_timeout_ms);
    let mut n: u64 = 0;
    loop {
        tokio::time::sleep(period).await;
        n += 1;
        let Ok(transfer_id) = TransferId::parse(&format!("{hold}:keepalive:{n}")) else {
            return;
        };
        let req = ExtendHoldRequest {
            transfer_id,
            hold: hold.clone(),
            amount: NanoCredits::ZERO,
            timeout_ms: app.cfg.hold_timeout_ms,
            limits: Vec::new(),
        };
        // Boxed: the database call's future exists only while it runs, not in every resting
        // keep-alive task (one per live request).
        match Box::pin(app.db.extend_hold(req)).await {
            Ok(_) => {}
            Err(LedgerError::HoldResolved { .. }) => return,
            Err(err) => {
                tracing::warn!(request_id = %hold, error = %err, "hold keep-alive failed")
            }
        }
    }
}
