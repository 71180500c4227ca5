//! The hold keep-alive: a live request pushes its hold's expiry forward so the sweeper never
//! takes it while the request is still waiting or streaming.

use std::time::Duration;

use creditgate_core::ledger::{ExtendHoldRequest, LedgerStore};
use creditgate_core::money::NanoCredits;

use super::Admitted;

/// How often a live request pushes its hold's expiry forward: a third of the hold timeout.
pub(super) fn refresh_period(hold_timeout_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(hold_timeout_ms / 3).unwrap_or(1).max(1))
}

impl Admitted {
    /// Awaits `fut` while pushing the hold's expiry forward every third of the hold timeout, so a
    /// request that is alive (waiting on the upstream, or streaming without needing a new slice)
    /// never loses its hold to the sweeper. A silent upstream is bounded by the upstream idle
    /// timeout instead.
    pub(super) async fn keep_alive<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        let mut fut = std::pin::pin!(fut);
        loop {
            let due = *self.next_refresh.lock().unwrap_or_else(|e| e.into_inner());
            tokio::select! {
                out = &mut fut => return out,
                _ = tokio::time::sleep_until(due) => {
                    *self.next_refresh.lock().unwrap_or_else(|e| e.into_inner()) =
                        tokio::time::Instant::now() + refresh_period(self.app.cfg.hold_timeout_ms);
                    self.refresh_hold().await;
                }
            }
        }
    }

    /// Extends the hold by nothing, which pushes its expiry to now + the hold timeout.
    async fn refresh_hold(&self) {
        let n = self
            .refreshes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let Ok(transfer_id) = self.request_id.child(&format!("keepalive:{n}")) else {
            return;
        };
        let req = ExtendHoldRequest {
            transfer_id,
            hold: self.request_id.clone(),
            amount: NanoCredits::ZERO,
            timeout_ms: self.app.cfg.hold_timeout_ms,
            limits: Vec::new(),
        };
        if let Err(err) = self.app.db.extend_hold(req).await {
            tracing::warn!(request_id = %self.request_id, error = %err, "hold keep-alive failed");
        }
    }
}
