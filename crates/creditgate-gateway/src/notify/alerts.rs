//! The alerts (`docs/alerts.md`): low balance at the organization's thresholds (once per
//! crossing, re-armed by a top-up), the first 402 since the last top-up, a key reaching its
//! spend limit (once per limit period), lots expiring in 30 and 7 days (once each), and what
//! auto-reload did. Each fires through a mark in the database, so once across replicas.

use std::sync::Arc;
use std::time::Duration;

use creditgate_core::accounts::Action;
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::ledger::LedgerError;
use creditgate_core::money::NanoCredits;
use creditgate_storage::payments::{ReloadOutcome, ReloadStatus};
use serde_json::json;

use super::{emit, recipients, send_all, spawn};
use crate::error::ApiError;
use crate::jobs::LeasedJob;
use crate::App;

const DAY_MS: i64 = 86_400_000;
/// Lots are announced this many days before they expire, once per window.
pub const EXPIRY_WINDOWS_DAYS: [i64; 2] = [30, 7];
/// How often each replica offers to run the expiry scan; one replica at a time runs it.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);
/// How long the replica that took the expiry scan keeps it.
const EXPIRY_LEASE_MS: i64 = 50_000;

/// The organization's low-balance thresholds, highest first, read from the database (and
/// cached per replica).
async fn read_thresholds(
    app: &App,
    org: &OrganizationId,
) -> Result<Arc<Vec<NanoCredits>>, ApiError> {
    let t = Arc::new(app.db.alert_settings(org).await?.thresholds);
    app.notify.thresholds.put(org.clone(), t.clone());
    Ok(t)
}

/// Caches the thresholds just saved on this replica; the next settlement checks them afresh.
pub(crate) fn remember(app: &App, org: &OrganizationId, thresholds: Vec<NanoCredits>) {
    app.notify.thresholds.put(org.clone(), Arc::new(thresholds));
    app.notify.quiet.put(format!("low:{org}"), usize::MAX);
}

/// Called after every settlement with the available credit it left: when it is below a
/// threshold not yet announced, a task announces it. Never waits, and decides from memory: the
/// thresholds are read by one settlement's task per TTL (the settlements meanwhile see none,
/// and the first one after that task sees a crossing it missed).
pub fn after_settlement(app: &Arc<App>, org: &OrganizationId, available: NanoCredits) {
    let known = app.notify.thresholds.get_or_claim(org, Arc::default());
    if let Some(t) = &known {
        let crossed = t.iter().filter(|t| available < **t).count();
        if crossed == 0 || app.notify.quiet.get(&format!("low:{org}")) == Some(crossed) {
            return;
        }
    }
    let org = org.clone();
    spawn(app, move |app| async move {
        if let Err(e) = low_balance(&app, &org, known, available).await {
            tracing::warn!(org = %org, error = %e.message, "low-balance alert failed");
        }
    });
}

/// Announces the thresholds `available` is below (`known`, or read when the cache had none).
async fn low_balance(
    app: &App,
    org: &OrganizationId,
    known: Option<Arc<Vec<NanoCredits>>>,
    available: NanoCredits,
) -> Result<(), ApiError> {
    let t = match known {
        Some(t) => t,
        None => read_thresholds(app, org).await?,
    };
    let crossed: Vec<NanoCredits> = t.iter().copied().filter(|t| available < *t).collect();
    let now = app.clock.now();
    for threshold in &crossed {
        let mark = threshold.nanos().to_string();
        if !app
            .db
            .fire_alert(org, "credits.low", &mark, true, now)
            .await?
        {
            continue;
        }
        let data = json!({"threshold": threshold.to_string(), "available": available.to_string()});
        emit(app, org, "credits.low", None, data).await;
        let subject = format!("Credits low: {available} left");
        let body = format!(
            "The available credit of organization {org} is {available} credits, below your \
             alert threshold of {threshold} credits. Buy credits in Billing, or turn on \
             auto-reload (Billing > Auto-reload) so it never runs out. This alert fires once \
             per crossing; a top-up re-arms it (Billing > Alerts sets the thresholds)."
        );
        send_all(
            app,
            &recipients(app, org, Action::ManageBilling).await,
            &subject,
            &body,
        )
        .await;
    }
    app.notify.quiet.put(format!("low:{org}"), crossed.len());
    Ok(())
}

/// Called when the ledger refused a request's hold (a 402): the first refusal for lack of
/// credit since the last top-up, or a key's spend limit reached, is announced by a task.
pub fn refused(app: &Arc<App>, key: &ApiKeyRecord, err: &LedgerError) {
    let now = app.clock.now();
    let (kind, mark, quiet, data) = match err {
        LedgerError::Insufficient { .. } => (
            "credits.depleted",
            String::new(),
            format!("depleted:{}", key.org),
            json!({"api_key_id": key.id}),
        ),
        LedgerError::LimitExceeded { cap, .. } => {
            let Some(period) = key.limits.period_of(*cap) else {
                return;
            };
            let resets = period.resets_at(now);
            let mark = format!(
                "{}:{}:{}",
                key.id,
                period.as_str(),
                resets.map_or(0, |t| t.millis())
            );
            let data = json!({"api_key_id": key.id, "api_key_name": key.name,
                "period": period.as_str(), "limit": cap.to_string(),
                "resets_at": resets.map(|t| t.to_rfc3339())});
            ("api_key.limit_reached", mark.clone(), mark, data)
        }
        _ => return,
    };
    if app.notify.quiet.get(&quiet).is_some() {
        return;
    }
    app.notify.quiet.put(quiet, 1);
    let org = key.org.clone();
    spawn(app, move |app| async move {
        if let Err(e) = announce_refusal(&app, &org, kind, &mark, data).await {
            tracing::warn!(org = %org, kind, error = %e.message, "refusal alert failed");
        }
    });
}

async fn announce_refusal(
    app: &App,
    org: &OrganizationId,
    kind: &'static str,
    mark: &str,
    data: serde_json::Value,
) -> Result<(), ApiError> {
    let rearm = kind == "credits.depleted";
    if !app
        .db
        .fire_alert(org, kind, mark, rearm, app.clock.now())
        .await?
    {
        return Ok(());
    }
    let (subject, body) = if rearm {
        (
            "Credits used up: requests are refused".to_owned(),
            format!(
                "Organization {org} has no credit left for new requests: they are refused with \
                 402 until credits are added. Buy credits in Billing, or turn on auto-reload \
                 (Billing > Auto-reload). You are told once until the next top-up."
            ),
        )
    } else {
        let key = data["api_key_name"].as_str().unwrap_or_default();
        let period = data["period"].as_str().unwrap_or_default();
        (
            format!("API key {key} reached its {period} spend limit"),
            format!(
                "The API key {key} ({}) of organization {org} reached its {period} spend limit \
                 of {} credits; its requests are refused until {}. Raise the limit in \
                 Keys if it should spend more.",
                data["api_key_id"].as_str().unwrap_or_default(),
                data["limit"].as_str().unwrap_or_default(),
                data["resets_at"].as_str().unwrap_or("the limit is raised"),
            ),
        )
    };
    emit(app, org, kind, None, data).await;
    send_all(
        app,
        &recipients(app, org, Action::ManageBilling).await,
        &subject,
        &body,
    )
    .await;
    Ok(())
}

/// What auto-reload did, as a webhook event: succeeded, failed (a decline or a limit) or
/// paused. The billing members' emails are auto-reload's own (`reload::mails`).
pub async fn reload_outcome(app: &App, org: &OrganizationId, o: &ReloadOutcome) {
    let kind = match (o.status, o.outcome.as_str()) {
        (_, "pending") => return,
        (ReloadStatus::Paused, _) => "auto_reload.paused",
        (_, "succeeded") => "auto_reload.succeeded",
        _ => "auto_reload.failed",
    };
    let data = json!({
        "outcome": o.outcome,
        "order_id": o.order,
        "paused_reason": o.paused_reason,
        "retry_at": o.retry_at.map(|t| t.to_rfc3339()),
    });
    emit(app, org, kind, None, data).await;
}

/// Offers to run the expiry scan every minute; the replica holding the job's lease runs it.
pub async fn expiry_forever(app: Arc<App>) {
    let job = LeasedJob::new("expiry-warnings", EXPIRY_LEASE_MS);
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        tick.tick().await;
        if !job.claim(&app).await {
            continue;
        }
        if let Err(e) = scan_expiring(&app).await {
            tracing::warn!(error = %e.message, "expiry scan failed");
        }
    }
}

/// Announces the lots with credits left expiring within 30 days, and again within 7, once
/// each. Returns how many announcements it made.
pub async fn scan_expiring(app: &App) -> Result<usize, ApiError> {
    let now = app.clock.now();
    let [widest, near] = EXPIRY_WINDOWS_DAYS.map(|days| now.plus_millis(days * DAY_MS));
    let lots = app.db.expiring_lots(now, widest, near).await?;
    let mut announced = 0;
    for lot in lots {
        let days = window(now, lot.expires_at);
        let mark = format!("{}:{days}", lot.lot);
        if !app
            .db
            .fire_alert(&lot.org, "credits.expiring", &mark, false, now)
            .await?
        {
            continue;
        }
        announced += 1;
        let data = json!({"lot_id": lot.lot, "remaining": lot.remaining.to_string(),
            "expires_at": lot.expires_at.to_rfc3339(), "days": days});
        emit(app, &lot.org, "credits.expiring", Some(&mark), data).await;
        let subject = format!("{} credits expire within {days} days", lot.remaining);
        let body = format!(
            "{} credits of organization {} (lot {}) expire on {} (UTC), within {days} days. \
             Requests spend the credits that expire first, so nothing is needed if you will \
             use them by then; what is left then expires.",
            lot.remaining,
            lot.org,
            lot.lot,
            lot.expires_at.to_rfc3339()
        );
        let to = recipients(app, &lot.org, Action::ManageBilling).await;
        send_all(app, &to, &subject, &body).await;
    }
    Ok(announced)
}

/// The narrowest announcement window (in days) an expiry `at` falls in, seen at `now`.
fn window(now: Timestamp, at: Timestamp) -> i64 {
    EXPIRY_WINDOWS_DAYS
        .iter()
        .copied()
        .filter(|days| at.millis() - now.millis() <= days * DAY_MS)
        .min()
        .unwrap_or(EXPIRY_WINDOWS_DAYS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_narrowest_window_is_announced() {
        let now = Timestamp::from_millis(0);
        assert_eq!(window(now, Timestamp::from_millis(29 * DAY_MS)), 30);
        assert_eq!(window(now, Timestamp::from_millis(7 * DAY_MS)), 7);
        assert_eq!(window(now, Timestamp::from_millis(DAY_MS)), 7);
    }
}
