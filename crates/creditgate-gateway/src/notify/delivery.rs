//! Delivering webhook events (`docs/alerts.md`): each due delivery is claimed by a conditional
//! UPDATE of its lease (so replicas sharing the database never send it twice at once), checked
//! against the SSRF guard again, signed (`creditgate-signature: t=…,v1=…`, the Stripe scheme of
//! `core::payments::signature`) and POSTed with a bounded timeout. Every attempt is logged;
//! failures are retried after 1 min, 5 min, 30 min, 2 h, 6 h and 12 h, the last at 24 h after
//! the event; an endpoint failing for a whole day is disabled and its admins are emailed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use creditgate_core::accounts::Action;
use creditgate_core::clock::Timestamp;
use creditgate_core::payments::signature;
use creditgate_storage::notify::{Attempt, AttemptOutcome, Delivery, DeliveryStatus, DeliveryWork};
use futures_util::StreamExt;

use super::{recipients, send_all, ssrf};
use crate::error::ApiError;
use crate::App;

/// Waits after the 1st, 2nd, … failed attempt (the last one repeats until the day is over).
pub const RETRY_AFTER_MS: [i64; 6] = [
    60_000,
    5 * 60_000,
    30 * 60_000,
    2 * 3_600_000,
    6 * 3_600_000,
    12 * 3_600_000,
];
/// A delivery is retried this long after its event; an endpoint failing this long is disabled.
pub const RETRY_FOR_MS: i64 = 86_400_000;
/// How often each replica looks for due deliveries when no event woke it.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Most deliveries one pass claims, and sends at once.
const BATCH: i64 = 64;
const CONCURRENCY: usize = 16;
/// The longest an answer's status line may take after the connection opened.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most characters of a receiver's error kept in the delivery log.
const MAX_ERROR_CHARS: usize = 300;

/// How long a claimed delivery stays with its replica: past the attempt's longest time.
fn lease_ms(app: &App) -> i64 {
    i64::try_from(app.cfg.webhooks.timeout_ms).unwrap_or(i64::MAX / 2) * 2 + 30_000
}

/// Delivers due events forever: when an event is recorded here, and every [`POLL_INTERVAL`].
pub async fn deliver_forever(app: Arc<App>) {
    loop {
        tokio::select! {
            _ = app.notify.wake.notified() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        deliver_due(&app).await;
    }
}

/// Claims and sends the deliveries due now; answers how many this replica attempted.
pub async fn deliver_due(app: &App) -> usize {
    let now = app.clock.now();
    let due = match app.db.due_deliveries(now, BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "due webhook deliveries unreadable");
            return 0;
        }
    };
    let owner = crate::ids::fresh("lease");
    futures_util::stream::iter(due)
        .map(|id| {
            let owner = owner.clone();
            async move { attempt(app, &id, &owner, false).await.ok().flatten() }
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|done| std::future::ready(done.is_some()))
        .count()
        .await
}

/// One attempt of delivery `id` if this replica can claim it (`None` if another holds it).
/// A `manual` attempt (a retry asked through the API) may send a delivered or failed one, and
/// leaves the schedule as it was when it fails.
pub async fn attempt(
    app: &App,
    id: &str,
    owner: &str,
    manual: bool,
) -> Result<Option<Delivery>, ApiError> {
    let now = app.clock.now();
    let Some(work) = app
        .db
        .claim_delivery(id, owner, now, lease_ms(app), manual)
        .await?
    else {
        return Ok(None);
    };
    let started = Instant::now();
    let (status_code, error) = send(app, &work, now).await;
    let succeeded = error.is_none();
    let (status, next_at) = next_state(&work.delivery, now, succeeded, manual);
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let outcome = AttemptOutcome {
        attempt: Attempt {
            n: work.delivery.attempts + 1,
            at: now,
            status_code,
            error,
            duration_ms,
            manual,
        },
        succeeded,
        status,
        next_at,
    };
    if !app.db.finish_delivery(id, owner, &outcome).await? {
        return Err(ApiError::internal("the delivery's lease was lost"));
    }
    app.metrics.webhook_delivery(match status {
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Pending => "retrying",
        DeliveryStatus::Failed => "failed",
    });
    if !succeeded {
        disable_if_failing(app, &work, now).await?;
    }
    Ok(Some(Delivery {
        status,
        next_at,
        attempts: outcome.attempt.n,
        delivered_at: succeeded.then_some(now).or(work.delivery.delivered_at),
        ..work.delivery
    }))
}

/// Where a delivery stands after an attempt at `now`.
fn next_state(
    d: &Delivery,
    now: Timestamp,
    succeeded: bool,
    manual: bool,
) -> (DeliveryStatus, Timestamp) {
    if succeeded {
        return (DeliveryStatus::Delivered, now);
    }
    if manual {
        return (d.status, d.next_at);
    }
    let deadline = d.created_at.plus_millis(RETRY_FOR_MS);
    if now >= deadline {
        return (DeliveryStatus::Failed, now);
    }
    let step = usize::try_from(d.attempts).unwrap_or(usize::MAX);
    let wait = RETRY_AFTER_MS[step.min(RETRY_AFTER_MS.len() - 1)];
    let next = now.plus_millis(wait);
    (
        DeliveryStatus::Pending,
        if next > deadline { deadline } else { next },
    )
}

/// POSTs the signed event; answers the receiver's status (if one came) and the error (`None`
/// for a 2xx answer).
async fn send(app: &App, work: &DeliveryWork, now: Timestamp) -> (Option<i64>, Option<String>) {
    // Checked again at every attempt: the host may resolve elsewhere than when registered.
    let target = match ssrf::check(app, &work.url).await {
        Ok(t) => t,
        Err(why) => return (None, Some(format!("refused: {why}"))),
    };
    let timeout = Duration::from_millis(app.cfg.webhooks.timeout_ms);
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(CONNECT_TIMEOUT));
    if let Some(host) = &target.host {
        // Connect to the address the guard checked, not to a second lookup's answer.
        client = client.resolve(host, target.addr);
    }
    let client = match client.build() {
        Ok(c) => c,
        Err(e) => return (None, Some(format!("client: {e}"))),
    };
    let t = now.millis().div_euclid(1000);
    let sent = client
        .post(target.url)
        .header("content-type", "application/json")
        .header("user-agent", "creditgate-webhooks")
        .header(
            "creditgate-signature",
            signature::header(&work.secret, t, work.body.as_bytes()),
        )
        .header("creditgate-delivery", &work.delivery.id)
        .header("creditgate-event", &work.delivery.event_type)
        .body(work.body.clone())
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => (Some(i64::from(resp.status().as_u16())), None),
        Ok(resp) => {
            let code = resp.status().as_u16();
            (
                Some(i64::from(code)),
                Some(format!("the receiver answered {code}")),
            )
        }
        Err(e) if e.is_timeout() => (
            None,
            Some(format!(
                "no answer within {} ms",
                app.cfg.webhooks.timeout_ms
            )),
        ),
        Err(e) => {
            let mut why = format!("not delivered: {e}");
            if let Some(source) = std::error::Error::source(&e) {
                why = format!("{why} ({source})");
            }
            (None, Some(why.chars().take(MAX_ERROR_CHARS).collect()))
        }
    }
}

/// Disables the endpoint once it has failed for a whole day, and emails the organization's
/// owner and admins (once: the replica whose UPDATE disabled it).
async fn disable_if_failing(
    app: &App,
    work: &DeliveryWork,
    now: Timestamp,
) -> Result<(), ApiError> {
    let since = now.plus_millis(-RETRY_FOR_MS);
    let endpoint = &work.delivery.endpoint_id;
    if !app
        .db
        .disable_failing_endpoint(endpoint, since, now)
        .await?
    {
        return Ok(());
    }
    tracing::warn!(org = %work.org, endpoint = %endpoint, "webhook endpoint disabled after a day of failures");
    let subject = "Webhook endpoint disabled after a day of failures";
    let body = format!(
        "The webhook endpoint {endpoint} ({}) of organization {} has failed every delivery for \
         24 hours and is now disabled: no more events are sent to it. See each attempt's error \
         with GET /v1/organizations/webhooks/{endpoint}/deliveries. Once the receiver works, \
         retry a delivery (POST …/deliveries/{{id}}/retry): a success enables the endpoint \
         again. Or delete it and register a new one.",
        work.url, work.org
    );
    let to = recipients(app, &work.org, Action::ManageMembers).await;
    send_all(app, &to, subject, &body).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(attempts: i64, created: i64) -> Delivery {
        Delivery {
            id: "dlv_1".into(),
            endpoint_id: "whe_1".into(),
            event_id: "evt_1".into(),
            event_type: "credits.low".into(),
            status: DeliveryStatus::Pending,
            attempts,
            next_at: Timestamp::from_millis(created),
            created_at: Timestamp::from_millis(created),
            delivered_at: None,
        }
    }

    #[test]
    fn failures_back_off_then_fail_after_a_day() {
        let mut now = 0;
        let mut times = Vec::new();
        for attempts in 0.. {
            let (status, next) = next_state(
                &delivery(attempts, 0),
                Timestamp::from_millis(now),
                false,
                false,
            );
            if status == DeliveryStatus::Failed {
                break;
            }
            now = next.millis();
            times.push(now);
        }
        let minutes: Vec<i64> = times.iter().map(|t| t / 60_000).collect();
        assert_eq!(minutes, [1, 6, 36, 156, 516, 1236, 1440]);
        assert_eq!(now, RETRY_FOR_MS);
        let (status, _) = next_state(&delivery(0, 0), Timestamp::from_millis(5), true, false);
        assert_eq!(status, DeliveryStatus::Delivered);
        let (status, next) = next_state(
            &delivery(9, 0),
            Timestamp::from_millis(RETRY_FOR_MS * 2),
            false,
            true,
        );
        assert_eq!(
            (status, next.millis()),
            (DeliveryStatus::Pending, 0),
            "a manual failure changes no schedule"
        );
    }
}
