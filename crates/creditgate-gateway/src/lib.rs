//! creditgate's HTTP side: the Anthropic-compatible, metered API on axum.
//!
//! [`App`] holds the shared state; [`router`] lists every route; [`serve`] runs it with the
//! background sweeper and the settlement spool, and shuts down without abandoning a request. Handlers stay thin: money moves only through the ledger
//! ([`creditgate_core::ledger::LedgerStore`]) and prices only come from
//! [`creditgate_core::pricing`].

pub mod account;
pub mod auth;
pub mod billing;
pub mod body;
pub mod caller;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod ids;
pub mod invoices;
pub mod jobs;
pub mod lease;
pub mod lifecycle;
pub mod lists;
pub mod mail;
pub mod members;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod notify;
pub mod openapi;
pub mod operator_api;
pub mod organization_api;
pub mod passwords;
pub mod payments;
pub mod reload;
pub mod reports;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod settler;
pub mod sign_in;
pub mod spool;
pub mod sse;
pub mod statements;
#[cfg(test)]
mod testing;
pub mod throttle;
pub mod unique_keys;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use creditgate_core::clock::Clock;
use creditgate_core::ids::OrganizationId;
use creditgate_core::ledger::LedgerStore;
use creditgate_core::pricing::{PriceBook, PricingConfig};
use creditgate_storage::Database;

use crate::auth::{KeyCache, TtlCache};
use crate::config::SPOOL_RETRY_INTERVAL_MS;
use crate::config::{Config, DisconnectPolicy, API_KEY_CACHE_TTL_MS, KEY_CACHE_TTL_MS};
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::spool::Spool;
use crate::upstream::Upstream;

/// Everything a request needs, shared by all of them.
pub struct App {
    pub cfg: Config,
    pub db: Database,
    pub book: PriceBook,
    pub pricing: PricingConfig,
    pub upstream: Upstream,
    pub keys: KeyCache,
    /// Organizations' disconnect policies, read at most once per TTL per replica.
    pub policies: TtlCache<OrganizationId, DisconnectPolicy>,
    /// Whether an organization is suspended, trusted as long as a key lookup.
    pub suspended: TtlCache<OrganizationId, bool>,
    /// Settlements the database could not take, until it takes them.
    pub spool: Spool,
    /// Requests in flight, and the shutdown cut.
    pub lifecycle: Lifecycle,
    /// This replica's credit leases (`docs/ledger.md`, "Credit leases").
    pub leases: lease::Leases,
    /// Posts the settlements of requests admitted against a lease in groups.
    pub settler: Arc<settler::Settler>,
    /// Buying credits: the provider settings and the Stripe client.
    pub payments: payments::Payments,
    pub clock: Arc<dyn Clock>,
    /// Invitations and password resets (SMTP, or `.eml` files in the outbox directory).
    pub mailer: mail::Mailer,
    /// Memory of request bodies in flight, shared by all requests.
    pub bodies: body::BodyBudget,
    /// Failed authentications per client address.
    pub auth_throttle: throttle::AuthThrottle,
    /// The Prometheus registry of this instance (`/metrics`).
    pub metrics: metrics::Metrics,
    /// Auto-reload: the thresholds this replica read and the reload tasks it runs.
    pub reloads: reload::Reloads,
    /// Alerts and webhooks: the thresholds this replica read, its alert tasks, the worker's
    /// wake-up.
    pub notify: notify::Notify,
    /// The operator console's sessions, in this process's memory (`docs/dashboard.md`).
    pub operator_sessions: dashboard::operator::session::OperatorSessions,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("price book: {0}")]
    Prices(String),
    #[error("upstream client: {0}")]
    Upstream(String),
    #[error("{0}")]
    Spool(#[from] spool::SpoolError),
    #[error("payments: {0}")]
    Payments(String),
    #[error("{0}")]
    Mail(#[from] mail::MailError),
}

/// The built-in price book extended by the operator's `prices_file`, if any.
pub fn price_book(cfg: &Config) -> Result<PriceBook, StartError> {
    let mut book = PriceBook::builtin();
    if let Some(path) = &cfg.prices_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError::Prices(format!("{path}: {e}")))?;
        let extra = PriceBook::from_toml(&text).map_err(|e| StartError::Prices(e.to_string()))?;
        book.extend(extra)
            .map_err(|e| StartError::Prices(e.to_string()))?;
    }
    Ok(book)
}

impl App {
    pub fn new(cfg: Config, db: Database, clock: Arc<dyn Clock>) -> Result<Arc<Self>, StartError> {
        let book = price_book(&cfg)?;
        let cfg_bodies = cfg.max_body_bytes_in_flight;
        let cfg_auth_failures = cfg.auth_failures_per_minute;
        let pricing = PricingConfig {
            multiplier: cfg.price_multiplier,
            credit_unit: cfg.credit_unit.clone(),
        };
        let upstream = Upstream::new(
            &cfg.upstream_base_url,
            cfg.upstream_api_keys.clone(),
            Duration::from_millis(cfg.upstream_connect_timeout_ms),
            Duration::from_millis(cfg.upstream_idle_timeout_ms),
        )
        .map_err(|e| StartError::Upstream(e.to_string()))?;
        let spool = Spool::open(&cfg.spool_path)?;
        let payments =
            payments::Payments::new(cfg.payments.clone()).map_err(StartError::Payments)?;
        let mailer = mail::Mailer::from_config(&cfg.accounts)?;
        let leases = lease::Leases::new(cfg.credit_lease, &cfg.spool_path);
        let metrics = metrics::Metrics::default();
        let settler = Arc::new(settler::Settler::new(db.clone(), metrics.settle_counts()));
        Ok(Arc::new(Self {
            leases,
            settler,
            metrics,
            mailer,
            cfg,
            db,
            book,
            pricing,
            upstream,
            keys: KeyCache::new(Duration::from_millis(API_KEY_CACHE_TTL_MS)),
            policies: TtlCache::new(Duration::from_millis(KEY_CACHE_TTL_MS)),
            suspended: TtlCache::new(Duration::from_millis(API_KEY_CACHE_TTL_MS)),
            spool,
            lifecycle: Lifecycle::default(),
            payments,
            clock,
            bodies: body::BodyBudget::new(cfg_bodies),
            auth_throttle: throttle::AuthThrottle::new(cfg_auth_failures),
            reloads: reload::Reloads::default(),
            notify: notify::Notify::default(),
            operator_sessions: Default::default(),
        }))
    }

    /// An organization's balance as the ledger has it, with this replica's credit lease counted
    /// as held only for what its requests in flight hold (`crate::lease`).
    pub async fn balance(
        &self,
        org: &OrganizationId,
    ) -> creditgate_core::ledger::LedgerResult<creditgate_core::ledger::Balance> {
        use creditgate_core::ledger::LedgerStore;
        // The read and the lease's books must describe the same lease: read again if it was
        // placed or replaced meanwhile (rare); failing that, the ledger's own (lower) view.
        for _ in 0..20 {
            let before = self.leases.stamp(org);
            let mut balance = self.db.balance(org).await?;
            let after = self.leases.stamp(org);
            if before == after && !before.is_some_and(|(_, busy)| busy) {
                self.leases.correct(&mut balance, self.clock.now());
                return Ok(balance);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.db.balance(org).await
    }

    /// Whether the organization is suspended (its keys get 403), as seen within the key-cache
    /// TTL of a change on any replica.
    pub async fn organization_suspended(&self, org: &OrganizationId) -> Result<bool, ApiError> {
        if let Some(s) = self.suspended.get(org) {
            return Ok(s);
        }
        let s = self.db.organization_suspended(org).await?;
        self.suspended.put(org.clone(), s);
        Ok(s)
    }

    /// The organization's disconnect policy, or the operator's default (cached for the key-cache
    /// TTL: a change made with the CLI applies to new requests within seconds).
    pub async fn disconnect_policy(
        &self,
        org: &OrganizationId,
    ) -> Result<DisconnectPolicy, ApiError> {
        if let Some(policy) = self.policies.get(org) {
            return Ok(policy);
        }
        let stored = self.db.disconnect_policy(org).await?;
        let policy = stored.unwrap_or(self.cfg.default_disconnect_policy);
        self.policies.put(org.clone(), policy);
        Ok(policy)
    }
}

/// Every route ([`routes::table`]). Each one that forwards upstream authenticates and bills
/// (no raw pass-through).
pub fn router(app: Arc<App>) -> Router {
    routes::table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        // On matched routes only: their templates are the bounded set of route labels.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track,
        ))
        .fallback(|| async { ApiError::not_found("Not found.") })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            throttle::middleware,
        ))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(app)
}

/// Serves until `shutdown` completes, with the background sweeper (expired holds, expired lots)
/// running beside it. On Postgres several replicas may sweep at once: each expiry is posted
/// exactly once by the ledger.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep_forever(app.clone()));
    let spool = tokio::spawn(apply_spool_forever(app.clone()));
    let reconcile = tokio::spawn(payments::reconcile_forever(app.clone()));
    let reloads = tokio::spawn(reload::due_forever(app.clone()));
    if let Ok(addr) = listener.local_addr() {
        app.notify.listening_on(addr);
    }
    let deliveries = tokio::spawn(notify::delivery::deliver_forever(app.clone()));
    let expiry = tokio::spawn(notify::alerts::expiry_forever(app.clone()));
    let invoicing = tokio::spawn(invoices::invoices_forever(app.clone()));
    let leases = tokio::spawn(lease::Leases::tend_forever(app.clone()));
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let limits = server::ConnectionLimits {
        max_connections: app.cfg.max_connections,
        header_read_timeout: Duration::from_millis(app.cfg.header_read_timeout_ms),
    };
    let server = server::run(listener, router(app.clone()), limits, async move {
        shutdown.await;
        let _ = signalled.send(());
    });
    let mut server = tokio::spawn(server);
    let mut on_signal = on_signal;
    // The signal first: with no connection open the server ends at once after it, and the
    // requests still live (drains) must be waited for all the same.
    let result = tokio::select! {
        biased;
        signal = &mut on_signal => match signal {
            Ok(()) => None,
            Err(_) => Some((&mut server).await),
        },
        done = &mut server => Some(done),
    };
    let result = match result {
        Some(done) => done.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        None => {
            finish_in_flight(&app).await;
            // The connections end once their requests have; a client that does not read its
            // last bytes is not waited for.
            match tokio::time::timeout(CONNECTION_CLOSE_WAIT, &mut server).await {
                Ok(done) => done.unwrap_or_else(|e| Err(std::io::Error::other(e))),
                Err(_) => {
                    server.abort();
                    Ok(())
                }
            }
        }
    };
    sweeper.abort();
    spool.abort();
    reconcile.abort();
    reloads.abort();
    deliveries.abort();
    expiry.abort();
    invoicing.abort();
    leases.abort();
    // One last offer of the spool, bounded: what the database cannot take now stays on disk
    // for the next start.
    if app.spool.depth() > 0 {
        if let Ok(Ok(done)) =
            tokio::time::timeout(SHUTDOWN_SPOOL_WAIT, app.spool.apply(&app.db)).await
        {
            tracing::info!(remaining = done.remaining, "settlement spool at shutdown");
        }
    }
    // Unused credit goes back at once rather than when the lease expires (bounded: a database
    // that cannot take it lets the lease expire).
    let _ = tokio::time::timeout(SHUTDOWN_SPOOL_WAIT, app.leases.return_all(&app)).await;
    result
}

/// How long connections may take to close once every request has settled, at shutdown.
const CONNECTION_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long the last offer of the spool to the database may take at shutdown.
const SHUTDOWN_SPOOL_WAIT: Duration = Duration::from_secs(2);
/// How long requests cut at the shutdown deadline get to settle (or spool) what they observed.
const CUT_SETTLE_WAIT: Duration = Duration::from_secs(15);

/// Shutdown, once the listener stopped accepting: lets in-flight requests and drains finish
/// until the shutdown deadline, then cuts the rest, which settle what they observed (or spool
/// it when the database cannot take it).
async fn finish_in_flight(app: &App) {
    let live = app.lifecycle.live();
    tracing::info!(live, "shutting down: waiting for requests in flight");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(app.cfg.shutdown_timeout_ms);
    if app.lifecycle.wait_idle(deadline).await {
        return;
    }
    tracing::warn!(
        live = app.lifecycle.live(),
        "shutdown deadline: settling what the remaining requests observed"
    );
    app.lifecycle.cut();
    if !app
        .lifecycle
        .wait_idle(tokio::time::Instant::now() + CUT_SETTLE_WAIT)
        .await
    {
        tracing::error!(
            live = app.lifecycle.live(),
            "requests still unsettled at exit; their holds will expire"
        );
    }
}

/// Offers the spooled settlements to the database every [`SPOOL_RETRY_INTERVAL_MS`] (at once
/// on start: a restart applies what the last run spooled).
async fn apply_spool_forever(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_millis(SPOOL_RETRY_INTERVAL_MS));
    loop {
        tick.tick().await;
        if app.spool.depth() == 0 {
            continue;
        }
        match app.spool.apply(&app.db).await {
            Ok(done) if done.applied + done.refused > 0 => {
                tracing::info!(
                    applied = done.applied,
                    refused = done.refused,
                    remaining = done.remaining,
                    "settlement spool applied"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "settlement spool failed"),
        }
    }
}

/// Expires stale holds and expired lots every sweep interval. Holds are not expired while this
/// process has spooled settlements (their holds must still be there to settle, not freed for
/// other requests to spend first), nor for one hold timeout after the database failed the
/// sweeper: during an outage no keep-alive can reach the database either, so every live hold
/// looks stale when it comes back, until the keep-alives (every third of the hold timeout) have
/// had their turn.
async fn sweep_forever(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_millis(app.cfg.sweep_interval_ms));
    let grace = Duration::from_millis(u64::try_from(app.cfg.hold_timeout_ms).unwrap_or(0));
    let mut failed_at: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let recovering = failed_at.is_some_and(|at| at.elapsed() < grace);
        if app.spool.depth() == 0 && !recovering {
            match app.db.expire_holds().await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::warn!(count = ids.len(), "expired stale holds")
                }
                Ok(_) => {}
                Err(e) => {
                    failed_at = Some(tokio::time::Instant::now());
                    tracing::error!(error = %e, "hold sweep failed")
                }
            }
        }
        match app.db.sweep_expired_lots().await {
            Ok(lots) if !lots.is_empty() => tracing::info!(count = lots.len(), "expired lots"),
            Ok(_) => {}
            Err(e) => {
                failed_at = Some(tokio::time::Instant::now());
                tracing::error!(error = %e, "lot sweep failed")
            }
        }
    }
}
