//! Auto-reload (`auto_reload_settings`, `auto_reload_attempts`, migration 0011): each
//! organization's settings and state, the lease that keeps one reload in flight per
//! organization across replicas, and the attempts the limits are counted from.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::ledger::{LedgerError, LedgerResult};
use creditgate_core::money::NanoCredits;

use crate::statement::{Columns, Param};
use crate::Database;

/// Whether auto-reload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadStatus {
    Active,
    /// Stopped by a failure (`paused_reason` says which) until the settings are saved again.
    Paused,
    Off,
}

impl ReloadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Off => "off",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "paused" => Self::Paused,
            "off" => Self::Off,
            _ => return None,
        })
    }
}

/// An organization's auto-reload settings and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadSettings {
    pub org: OrganizationId,
    pub status: ReloadStatus,
    pub threshold: NanoCredits,
    /// Credits bought each time, or …
    pub amount: Option<NanoCredits>,
    /// … a plan bought each time.
    pub plan_id: Option<String>,
    pub payment_method_id: Option<String>,
    pub monthly_limit: NanoCredits,
    pub paused_reason: Option<String>,
    /// Declines in a row.
    pub failures: i64,
    /// No attempt before this (backoff, or a limit reached).
    pub retry_at: Option<Timestamp>,
    /// The idempotency key of an attempt not yet finished.
    pub pending_key: Option<String>,
    pub last_at: Option<Timestamp>,
    pub last_outcome: Option<String>,
    pub last_order: Option<String>,
}

/// What an attempt ended with, written when the lease is given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    pub status: ReloadStatus,
    pub paused_reason: Option<String>,
    pub failures: i64,
    pub retry_at: Option<Timestamp>,
    /// `succeeded`, `declined`, `authentication_required`, `monthly_limit`, …
    pub outcome: String,
    pub order: Option<String>,
}

const SELECT: &str = "SELECT org, status, threshold, amount, plan_id, payment_method_id, \
     monthly_limit, paused_reason, failures, retry_at, pending_key, last_at, last_outcome, \
     last_order FROM auto_reload_settings WHERE org = $1";

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!(
        "stored auto-reload settings have an invalid {what}"
    ))
}

fn row(r: &dyn Columns) -> LedgerResult<ReloadSettings> {
    Ok(ReloadSettings {
        org: OrganizationId::parse(&r.text(0)?).map_err(|_| corrupt("organization"))?,
        status: ReloadStatus::parse(&r.text(1)?).ok_or_else(|| corrupt("status"))?,
        threshold: r.nanos(2)?,
        amount: r.opt_int(3)?.map(NanoCredits::from_nanos),
        plan_id: r.opt_text(4)?,
        payment_method_id: r.opt_text(5)?,
        monthly_limit: r.nanos(6)?,
        paused_reason: r.opt_text(7)?,
        failures: r.int(8)?,
        retry_at: r.opt_millis(9)?,
        pending_key: r.opt_text(10)?,
        last_at: r.opt_millis(11)?,
        last_outcome: r.opt_text(12)?,
        last_order: r.opt_text(13)?,
    })
}

fn text(s: &str) -> Param {
    Param::Text(s.to_owned())
}

impl Database {
    pub async fn auto_reload(&self, org: &OrganizationId) -> LedgerResult<Option<ReloadSettings>> {
        self.query_opt(SELECT, vec![text(org.as_str())], row).await
    }

    /// Saves the settings (status `active` or `off`), clearing a pause and its backoff. An
    /// attempt in flight and the key of an unfinished one are kept.
    pub async fn put_auto_reload(&self, s: &ReloadSettings) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO auto_reload_settings (org, status, threshold, amount, plan_id, \
             payment_method_id, monthly_limit, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (org) DO UPDATE SET status = $2, threshold = $3, amount = $4, \
             plan_id = $5, payment_method_id = $6, monthly_limit = $7, updated_at = $8, \
             paused_reason = NULL, failures = 0, retry_at = NULL",
            vec![
                text(s.org.as_str()),
                text(s.status.as_str()),
                Param::Int(s.threshold.nanos()),
                Param::OptInt(s.amount.map(|a| a.nanos())),
                Param::OptText(s.plan_id.clone()),
                Param::OptText(s.payment_method_id.clone()),
                Param::Int(s.monthly_limit.nanos()),
                Param::Int(self.now().millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Takes the organization's reload lease for `lease_ms` if auto-reload is active, not
    /// backing off, and no other holder's lease is live: a conditional UPDATE, so of any
    /// number of replicas asking at once exactly one gets it. Answers the settings as claimed.
    pub async fn claim_auto_reload(
        &self,
        org: &OrganizationId,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
    ) -> LedgerResult<Option<ReloadSettings>> {
        let n = self
            .execute(
                "UPDATE auto_reload_settings SET lease_until = $3, lease_owner = $2 \
                 WHERE org = $1 AND status = 'active' \
                 AND (lease_until IS NULL OR lease_until <= $4) \
                 AND (retry_at IS NULL OR retry_at <= $4 OR pending_key IS NOT NULL)",
                vec![
                    text(org.as_str()),
                    text(owner),
                    Param::Int(now.millis() + lease_ms),
                    Param::Int(now.millis()),
                ],
            )
            .await?;
        if n != 1 {
            return Ok(None);
        }
        self.auto_reload(org).await
    }

    /// Gives the key of the attempt about to start (a new one unless one is unfinished),
    /// stored before the provider is called. `None` if `owner` no longer holds the lease.
    pub async fn begin_auto_reload(
        &self,
        org: &OrganizationId,
        owner: &str,
    ) -> LedgerResult<Option<String>> {
        self.execute(
            "UPDATE auto_reload_settings SET \
             pending_key = COALESCE(pending_key, 'auto-reload:' || (attempts + 1)), \
             attempts = CASE WHEN pending_key IS NULL THEN attempts + 1 ELSE attempts END \
             WHERE org = $1 AND lease_owner = $2",
            vec![text(org.as_str()), text(owner)],
        )
        .await?;
        self.query_opt(
            "SELECT pending_key FROM auto_reload_settings WHERE org = $1 AND lease_owner = $2",
            vec![text(org.as_str()), text(owner)],
            |r| r.opt_text(0),
        )
        .await
        .map(Option::flatten)
    }

    /// Records an attempt (its order) as `pending`: counted against the limits from now on.
    pub async fn record_auto_reload_attempt(
        &self,
        org: &OrganizationId,
        order: &str,
        credits: NanoCredits,
        at: Timestamp,
    ) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO auto_reload_attempts (order_id, org, credits, outcome, started_at) \
             VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (order_id) DO NOTHING",
            vec![
                text(order),
                text(org.as_str()),
                Param::Int(credits.nanos()),
                Param::Int(at.millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Records how the lease holder's attempt ended (or why none was made) and gives the
    /// lease back; the unfinished key is cleared only when `outcome.order` is final.
    pub async fn finish_auto_reload(
        &self,
        org: &OrganizationId,
        owner: &str,
        o: &ReloadOutcome,
        at: Timestamp,
    ) -> LedgerResult<bool> {
        if let Some(order) = &o.order {
            let done = if o.outcome == "succeeded" {
                "succeeded"
            } else {
                "failed"
            };
            self.execute(
                "UPDATE auto_reload_attempts SET outcome = $2 WHERE order_id = $1",
                vec![text(order), text(done)],
            )
            .await?;
        }
        let n = self
            .execute(
                "UPDATE auto_reload_settings SET status = $3, paused_reason = $4, failures = $5, \
                 retry_at = $6, last_at = $7, last_outcome = $8, \
                 last_order = COALESCE($9, last_order), \
                 pending_key = CASE WHEN $9 IS NULL THEN pending_key ELSE NULL END, \
                 lease_until = NULL, lease_owner = NULL \
                 WHERE org = $1 AND lease_owner = $2",
                vec![
                    text(org.as_str()),
                    text(owner),
                    text(o.status.as_str()),
                    Param::OptText(o.paused_reason.clone()),
                    Param::Int(o.failures),
                    Param::OptInt(o.retry_at.map(|t| t.millis())),
                    Param::Int(at.millis()),
                    text(&o.outcome),
                    Param::OptText(o.order.clone()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives the lease back without recording anything (no reload was needed).
    pub async fn release_auto_reload(&self, org: &OrganizationId, owner: &str) -> LedgerResult<()> {
        self.execute(
            "UPDATE auto_reload_settings SET lease_until = NULL, lease_owner = NULL \
             WHERE org = $1 AND lease_owner = $2",
            vec![text(org.as_str()), text(owner)],
        )
        .await?;
        Ok(())
    }

    /// Credits bought (or being bought) by auto-reload since `month_start`, and the number of
    /// reloads since `day_start`; declined attempts count in neither.
    pub async fn auto_reload_totals(
        &self,
        org: &OrganizationId,
        month_start: Timestamp,
        day_start: Timestamp,
    ) -> LedgerResult<(NanoCredits, i64)> {
        let totals = self
            .query_opt(
                "SELECT CAST(COALESCE(SUM(CASE WHEN started_at >= $2 THEN credits ELSE 0 END), 0) \
                 AS BIGINT), CAST(COUNT(CASE WHEN started_at >= $3 THEN 1 END) AS BIGINT) \
                 FROM auto_reload_attempts WHERE org = $1 AND outcome <> 'failed' \
                 AND started_at >= $4",
                vec![
                    text(org.as_str()),
                    Param::Int(month_start.millis()),
                    Param::Int(day_start.millis()),
                    Param::Int(month_start.millis().min(day_start.millis())),
                ],
                |r| Ok((r.nanos(0)?, r.int(1)?)),
            )
            .await?;
        Ok(totals.unwrap_or((NanoCredits::ZERO, 0)))
    }

    /// Organizations whose reload is due without a settlement to start it: a backoff that
    /// ended, or an attempt cut short (its lease lapsed with its key unfinished).
    pub async fn due_auto_reloads(&self, now: Timestamp) -> LedgerResult<Vec<OrganizationId>> {
        self.query(
            "SELECT org FROM auto_reload_settings WHERE status = 'active' \
             AND (lease_until IS NULL OR lease_until <= $1) \
             AND ((retry_at IS NOT NULL AND retry_at <= $1) OR pending_key IS NOT NULL)",
            vec![Param::Int(now.millis())],
            |r| OrganizationId::parse(&r.text(0)?).map_err(|_| corrupt("organization")),
        )
        .await
    }
}
