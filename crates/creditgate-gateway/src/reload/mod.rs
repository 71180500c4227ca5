//! Auto-reload (`docs/auto-reload.md`): when a settlement leaves an organization's *available*
//! credit below its threshold, a reload is bought off-session with the saved card, off the
//! request path (a spawned task). One reload is in flight per organization across replicas:
//! the settings row is a lease taken by a conditional UPDATE. Each attempt's idempotency key
//! is stored before the provider is called, so an attempt cut short is retried with the same
//! key and never charges twice. Declines back off 1 h, 6 h and 24 h and pause auto-reload
//! when the third retry is declined; "authentication required" pauses at once; the monthly
//! limit and 10 reloads a day are never exceeded. The billing members are emailed each time.

pub mod advice;
pub mod routes;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::{FailureCode, Order, OrderStatus, Quote};
use creditgate_storage::payments::{ReloadOutcome, ReloadSettings, ReloadStatus};

use crate::auth::TtlCache;
use crate::error::ApiError;
use crate::payments::saved::off_session_order_id;
use crate::App;

/// Waits after the 1st, 2nd and 3rd declined attempt in a row; a 4th decline pauses.
pub const BACKOFF_MS: [i64; 3] = [3_600_000, 6 * 3_600_000, 24 * 3_600_000];
/// Most reloads in any 24 hours.
pub const MAX_RELOADS_PER_DAY: i64 = 10;
/// How long a replica holds an organization's reload before another may take it over.
const LEASE_MS: i64 = 5 * 60_000;
const DAY_MS: i64 = 86_400_000;
/// How often each replica looks for reloads due without a settlement (backoffs that ended).
const DUE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a replica trusts the threshold it read (the settings saved here apply at once).
const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// This replica's view of auto-reload: the cached thresholds and the tasks running.
pub struct Reloads {
    /// The organization's threshold while auto-reload is active; `None` when it is not.
    thresholds: TtlCache<OrganizationId, Option<NanoCredits>>,
    running: AtomicUsize,
}

impl Default for Reloads {
    fn default() -> Self {
        Self {
            thresholds: TtlCache::new(SETTINGS_TTL),
            running: AtomicUsize::new(0),
        }
    }
}

impl Reloads {
    /// Reload tasks running on this replica.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    pub(crate) fn remember(&self, s: &ReloadSettings) {
        let active = (s.status == ReloadStatus::Active).then_some(s.threshold);
        self.thresholds.put(s.org.clone(), active);
    }
}

/// Counts a running task until dropped.
struct Running(Arc<App>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.reloads.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Called after every settlement with the available credit it left: starts a reload task when
/// it is below the threshold, or when the threshold is not cached (one settlement per TTL
/// starts that task, which reads the settings and reloads if due; the settlements meanwhile
/// leave it to it). Never waits.
pub fn after_settlement(app: &Arc<App>, org: &OrganizationId, available: NanoCredits) {
    match app.reloads.thresholds.get_or_claim(org, None) {
        Some(None) => return,
        Some(Some(threshold)) if available >= threshold => return,
        _ => {}
    }
    spawn(app, org.clone());
}

fn spawn(app: &Arc<App>, org: OrganizationId) {
    app.reloads.running.fetch_add(1, Ordering::SeqCst);
    let guard = Running(app.clone());
    tokio::spawn(async move {
        let app = guard.0.clone();
        if let Err(e) = run(&app, &org).await {
            tracing::warn!(org = %org, error = %e.message, "auto-reload attempt failed");
        }
        drop(guard);
    });
}

/// Starts the reloads that are due without a settlement on this replica (a backoff that
/// ended, an attempt cut short); waits for none of them.
pub async fn start_due(app: &Arc<App>) -> Result<usize, ApiError> {
    let due = app.db.due_auto_reloads(app.clock.now()).await?;
    for org in &due {
        spawn(app, org.clone());
    }
    Ok(due.len())
}

/// Looks for due reloads forever.
pub async fn due_forever(app: Arc<App>) {
    let mut tick = tokio::time::interval(DUE_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = start_due(&app).await {
            tracing::warn!(error = %e.message, "looking for due auto-reloads failed");
        }
    }
}

/// One try: take the lease, reload if still needed and allowed, give the lease back.
async fn run(app: &App, org: &OrganizationId) -> Result<(), ApiError> {
    let owner = crate::ids::fresh("lease");
    let now = app.clock.now();
    let claimed = app.db.claim_auto_reload(org, &owner, now, LEASE_MS).await?;
    let Some(s) = claimed else {
        if let Some(s) = app.db.auto_reload(org).await? {
            app.reloads.remember(&s);
        } else {
            app.reloads.thresholds.put(org.clone(), None);
        }
        return Ok(());
    };
    app.reloads.remember(&s);
    let result = attempt(app, &s, &owner).await;
    if result.is_err() {
        // The key of an unfinished attempt stays: the next try reuses it.
        app.db.release_auto_reload(org, &owner).await?;
    }
    result
}

async fn attempt(app: &App, s: &ReloadSettings, owner: &str) -> Result<(), ApiError> {
    let now = app.clock.now();
    let quote = match reload_quote(app, s).await {
        Ok(q) => q,
        Err(e) => return pause(app, s, owner, "unavailable", &e.message).await,
    };
    if s.pending_key.is_none() {
        if app.balance(&s.org).await?.available >= s.threshold {
            app.db.release_auto_reload(&s.org, owner).await?;
            return Ok(());
        }
        if let Some(stop) = limit_reached(app, s, &quote, now).await? {
            return finish(app, s, owner, stop).await;
        }
    }
    let Some(method) = s.payment_method_id.as_deref() else {
        let why = "There is no saved card to charge.";
        return pause(app, s, owner, "no_payment_method", why).await;
    };
    let key = app
        .db
        .begin_auto_reload(&s.org, owner)
        .await?
        .ok_or_else(|| ApiError::internal("the auto-reload lease was lost"))?;
    let order_id = off_session_order_id(&s.org, &key);
    app.db
        .record_auto_reload_attempt(&s.org, order_id.as_str(), quote.credits, now)
        .await?;
    let charged = app
        .payments
        .charge_saved(app, &s.org, method, &quote, &key)
        .await;
    let order = match charged {
        Ok(order) => order,
        // The card is gone: the order was never charged; the attempt ends there.
        Err(e) if e.status.as_u16() == 400 => {
            let o = paused_outcome(s, "no_payment_method", &e.message, Some(order_id.as_str()));
            return finish(app, s, owner, o).await;
        }
        Err(e) => return Err(e),
    };
    finish(app, s, owner, outcome_of(s, &order, now)).await
}

/// The plan or credits each reload buys, priced now (a plan archived since is refused).
async fn reload_quote(app: &App, s: &ReloadSettings) -> Result<Quote, ApiError> {
    let credits = s.amount.map(|a| a.to_string());
    app.payments
        .quote(app, s.plan_id.as_deref(), credits.as_deref())
        .await
}

/// Why no reload may start now, if a limit stops it: the monthly limit (until next month)
/// or 10 reloads in 24 hours (checked again in an hour).
async fn limit_reached(
    app: &App,
    s: &ReloadSettings,
    quote: &Quote,
    now: Timestamp,
) -> Result<Option<ReloadOutcome>, ApiError> {
    let (month, day) = app
        .db
        .auto_reload_totals(&s.org, now.month_start(), now.plus_millis(-DAY_MS))
        .await?;
    let over_month = month
        .checked_add(quote.credits)
        .map_or(true, |total| total > s.monthly_limit);
    let (outcome, retry_at) = if over_month {
        ("monthly_limit", now.next_month_start())
    } else if day >= MAX_RELOADS_PER_DAY {
        ("daily_limit", now.plus_millis(BACKOFF_MS[0]))
    } else {
        return Ok(None);
    };
    Ok(Some(ReloadOutcome {
        status: ReloadStatus::Active,
        paused_reason: None,
        failures: s.failures,
        retry_at: Some(retry_at),
        outcome: outcome.to_owned(),
        order: None,
    }))
}

/// What the charged order means for the settings: success resets the failures; a decline
/// backs off or, after the last backoff, pauses; authentication required pauses at once.
fn outcome_of(s: &ReloadSettings, order: &Order, now: Timestamp) -> ReloadOutcome {
    let id = order.id.as_str();
    let code = match order.status {
        OrderStatus::Open => None,
        OrderStatus::Failed | OrderStatus::Expired => Some(
            order
                .failure
                .as_ref()
                .map_or(FailureCode::PaymentFailed, |f| f.code),
        ),
        _ => {
            return ReloadOutcome {
                status: ReloadStatus::Active,
                paused_reason: None,
                failures: 0,
                retry_at: None,
                outcome: "succeeded".to_owned(),
                order: Some(id.to_owned()),
            }
        }
    };
    let Some(code) = code else {
        // Still open at the provider: the same key is asked again at the first backoff.
        return ReloadOutcome {
            status: ReloadStatus::Active,
            paused_reason: None,
            failures: s.failures,
            retry_at: Some(now.plus_millis(BACKOFF_MS[0])),
            outcome: "pending".to_owned(),
            order: None,
        };
    };
    if code == FailureCode::AuthenticationRequired {
        return paused_outcome(s, code.as_str(), code.message(), Some(id));
    }
    let failures = s.failures + 1;
    match BACKOFF_MS.get(usize::try_from(failures - 1).unwrap_or(usize::MAX)) {
        Some(wait) => ReloadOutcome {
            status: ReloadStatus::Active,
            paused_reason: None,
            failures,
            retry_at: Some(now.plus_millis(*wait)),
            outcome: code.as_str().to_owned(),
            order: Some(id.to_owned()),
        },
        None => {
            let mut o = paused_outcome(s, code.as_str(), code.message(), Some(id));
            o.failures = failures;
            o
        }
    }
}

fn paused_outcome(
    s: &ReloadSettings,
    outcome: &str,
    why: &str,
    order: Option<&str>,
) -> ReloadOutcome {
    ReloadOutcome {
        status: ReloadStatus::Paused,
        paused_reason: Some(why.to_owned()),
        failures: s.failures,
        retry_at: None,
        outcome: outcome.to_owned(),
        order: order.map(str::to_owned),
    }
}

async fn pause(
    app: &App,
    s: &ReloadSettings,
    owner: &str,
    outcome: &str,
    why: &str,
) -> Result<(), ApiError> {
    finish(app, s, owner, paused_outcome(s, outcome, why, None)).await
}

/// Records the outcome, gives the lease back and tells the billing members.
async fn finish(
    app: &App,
    s: &ReloadSettings,
    owner: &str,
    o: ReloadOutcome,
) -> Result<(), ApiError> {
    let now = app.clock.now();
    if !app.db.finish_auto_reload(&s.org, owner, &o, now).await? {
        return Err(ApiError::internal("the auto-reload lease was lost"));
    }
    app.metrics.reload(&o.outcome);
    if let Some(fresh) = app.db.auto_reload(&s.org).await? {
        app.reloads.remember(&fresh);
    }
    mails::tell_billing_members(app, s, &o).await;
    crate::notify::alerts::reload_outcome(app, &s.org, &o).await;
    Ok(())
}

mod mails;
