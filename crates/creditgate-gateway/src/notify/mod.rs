//! Alerts and signed outbound webhooks (`docs/alerts.md`): events are recorded with a pending
//! delivery to each subscribed endpoint (`emit`), delivered off the request path by a worker
//! on every replica (each delivery claimed by a conditional UPDATE, so never sent twice at
//! once), retried with backoff for 24 hours; the alerts (`alerts`) fire once each through a
//! mark in the database and are emailed to the billing members and the alert settings' emails.

pub mod alerts;
pub mod delivery;
pub mod routes;
pub mod ssrf;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use creditgate_core::accounts::Action;
use creditgate_core::ids::OrganizationId;
use creditgate_core::money::NanoCredits;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::TtlCache;
use crate::App;

/// Every event type an endpoint may subscribe to (`docs/alerts.md`).
pub const EVENT_TYPES: [&str; 11] = [
    "credits.low",
    "credits.depleted",
    "credits.expiring",
    "order.credited",
    "order.failed",
    "auto_reload.succeeded",
    "auto_reload.failed",
    "auto_reload.paused",
    "api_key.limit_reached",
    "refund.created",
    "dispute.created",
];

/// How long a replica trusts the alert thresholds it read (a save on this replica applies at
/// once).
const SETTINGS_TTL: Duration = Duration::from_secs(5);
/// How long a replica stays quiet about an alert it has just checked: a top-up re-arms an alert
/// for the settlements (or refusals) after this.
const QUIET_TTL: Duration = Duration::from_secs(1);

/// This replica's side of alerts and webhooks.
pub struct Notify {
    /// The organization's low-balance thresholds, highest first.
    thresholds: TtlCache<OrganizationId, Arc<Vec<NanoCredits>>>,
    /// Alerts checked a moment ago (`low:<org>` → thresholds crossed, `depleted:<org>`, a key's
    /// limit): a settlement or refusal right after does not ask the database again.
    quiet: TtlCache<String, usize>,
    running: AtomicUsize,
    /// Wakes the delivery worker when an event was recorded.
    wake: tokio::sync::Notify,
    /// The address this replica listens on (the SSRF guard refuses it).
    listening: OnceLock<SocketAddr>,
}

impl Default for Notify {
    fn default() -> Self {
        Self {
            thresholds: TtlCache::new(SETTINGS_TTL),
            quiet: TtlCache::new(QUIET_TTL),
            running: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            listening: OnceLock::new(),
        }
    }
}

impl Notify {
    /// Alert tasks running on this replica.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Records the address the gateway listens on (called by `serve`).
    pub fn listening_on(&self, addr: SocketAddr) {
        let _ = self.listening.set(addr);
    }

    pub(crate) fn listening(&self) -> Option<SocketAddr> {
        self.listening.get().copied()
    }
}

/// Counts a running alert task until dropped.
struct Running(Arc<App>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.notify.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `job` as a task: the request that caused it never waits for it.
fn spawn<F, Fut>(app: &Arc<App>, job: F)
where
    F: FnOnce(Arc<App>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    app.notify.running.fetch_add(1, Ordering::SeqCst);
    let guard = Running(app.clone());
    tokio::spawn(async move {
        let app = guard.0.clone();
        job(app).await;
        drop(guard);
    });
}

/// An event id: derived from its cause when it has one (so a second report of the same cause,
/// on any replica, is the same event), else fresh.
fn event_id(org: &OrganizationId, kind: &str, cause: Option<&str>) -> String {
    match cause {
        Some(cause) => {
            let digest = Sha256::digest(format!("{org}\n{kind}\n{cause}").as_bytes());
            format!("evt_{}", hex::encode(&digest[..16]))
        }
        None => crate::ids::fresh("evt"),
    }
}

/// Records an event and its deliveries, and wakes the delivery worker. A failure is logged:
/// what caused the event (a payment, a settlement) is never undone by it.
pub async fn emit(app: &App, org: &OrganizationId, kind: &str, cause: Option<&str>, data: Value) {
    let now = app.clock.now();
    let id = event_id(org, kind, cause);
    let body = json!({
        "id": id,
        "type": kind,
        "created_at": now.to_rfc3339(),
        "organization_id": org,
        "data": data,
    })
    .to_string();
    match app.db.record_event(&id, org, kind, &body, now).await {
        Ok(()) => app.notify.wake.notify_one(),
        Err(e) => tracing::warn!(org = %org, kind, error = %e, "event not recorded"),
    }
}

/// The addresses told about `org`: its members whose role may do `action`, then the alert
/// settings' emails, each once.
pub async fn recipients(app: &App, org: &OrganizationId, action: Action) -> Vec<String> {
    let mut to: Vec<String> = match app.db.members(org, None).await {
        Ok(members) => members
            .iter()
            .filter(|m| m.role.may(action))
            .map(|m| m.user.email.as_str().to_owned())
            .collect(),
        Err(e) => {
            tracing::warn!(org = %org, error = %e, "members unreadable for an email");
            Vec::new()
        }
    };
    if action == Action::ManageBilling {
        match app.db.alert_settings(org).await {
            Ok(s) => to.extend(s.emails),
            Err(e) => tracing::warn!(org = %org, error = %e, "alert settings unreadable"),
        }
    }
    let mut seen = std::collections::HashSet::new();
    to.retain(|a| seen.insert(a.to_lowercase()));
    to
}

/// Emails `subject` and `body` to each address; a failure to send is logged.
pub async fn send_all(app: &App, to: &[String], subject: &str, body: &str) {
    for address in to {
        if let Err(e) = app.mailer.send(address, subject, body.to_owned()).await {
            tracing::warn!(error = %e, "alert email not sent");
        }
    }
}
