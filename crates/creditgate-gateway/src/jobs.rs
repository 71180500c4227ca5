//! Periodic jobs that run on one replica per period: every replica ticks, and the one that takes
//! the job's lease (a row in `job_leases`, `docs/alerts.md`) runs that pass.

use crate::App;

/// One replica's handle on a leased job.
pub struct LeasedJob {
    name: &'static str,
    owner: String,
    lease_ms: i64,
}

impl LeasedJob {
    /// `lease_ms` a little shorter than the job's interval, so the lease has lapsed when any
    /// replica ticks next.
    pub fn new(name: &'static str, lease_ms: i64) -> Self {
        Self {
            name,
            owner: crate::ids::fresh("lease"),
            lease_ms,
        }
    }

    /// Whether this replica runs the pass starting now; a database error skips the pass.
    pub async fn claim(&self, app: &App) -> bool {
        let now = app.clock.now();
        match app
            .db
            .claim_job(self.name, &self.owner, now, self.lease_ms)
            .await
        {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(%error, job = self.name, "job lease unavailable");
                false
            }
        }
    }
}
