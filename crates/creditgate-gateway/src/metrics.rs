//! Prometheus `/metrics` (OpenMetrics text, `prometheus-client`), one registry per [`crate::App`]:
//! requests by route, status and model; the gateway's own latency apart from the upstream's;
//! credits charged; upstream errors; holds in flight and the settlement spool's depth.
//!
//! Labels are route templates (`/v1/requests/{id}`, never the id), status codes, and model names
//! the price book knows (a request is labelled with its model only once admission accepted it),
//! so their number is bounded and no secret, key or id can appear in one. The route is served
//! to the operator key only (`Authorization: Bearer <admin_key>`), as Prometheus's
//! `authorization` scrape setting sends it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use creditgate_core::money::NanoCredits;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::caller::Operator;
use crate::error::ApiError;
use crate::App;

/// Latency buckets: 1 ms to ~65 s, doubling.
const LATENCY_BUCKETS: (f64, f64, u16) = (0.001, 2.0, 17);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

fn latency_histogram() -> Histogram {
    let (start, factor, n) = LATENCY_BUCKETS;
    Histogram::new(exponential_buckets(start, factor, n))
}

/// The model a `/v1/messages` answer was for, put in the response's extensions by admission
/// (after the price book accepted it) for the request counter.
#[derive(Clone, Debug)]
pub struct AdmittedModel(pub String);

/// How long the gateway waited for the upstream before it could answer (a JSON answer: until
/// the upstream's whole answer; a stream: until its response headers), in the response's
/// extensions; the rest of the time to the response is the gateway's own.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamWait(pub Duration);

/// The registry and the series.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    gateway_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    upstream_seconds: Family<ModelLabels, Histogram, fn() -> Histogram>,
    charged: Family<ModelLabels, Counter>,
    upstream_errors: Family<ErrorLabels, Counter>,
    reloads: Family<OutcomeLabels, Counter>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    holds_in_flight: Gauge,
    spool_depth: Gauge,
    settle: SettleCounts,
}

/// How leased settlements were posted (`crate::settler`): groups of two or more, settlements
/// posted in them, and settlements posted on their own.
#[derive(Clone, Default)]
pub struct SettleCounts {
    pub groups: Counter,
    pub grouped: Counter,
    pub alone: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("creditgate"),
            requests: Family::default(),
            gateway_seconds: Family::new_with_constructor(latency_histogram),
            upstream_seconds: Family::new_with_constructor(latency_histogram),
            charged: Family::default(),
            upstream_errors: Family::default(),
            reloads: Family::default(),
            webhook_deliveries: Family::default(),
            holds_in_flight: Gauge::default(),
            spool_depth: Gauge::default(),
            settle: SettleCounts::default(),
        };
        let r = &mut m.registry;
        r.register(
            "requests",
            "Requests answered, by route template, status and model (inference only)",
            m.requests.clone(),
        );
        r.register("gateway_seconds", "The gateway's own time to answer (admission, hold, settlement), without the wait for the upstream", m.gateway_seconds.clone());
        r.register(
            "upstream_seconds",
            "Time waiting for the upstream: a JSON answer to its end, a stream to its headers",
            m.upstream_seconds.clone(),
        );
        r.register(
            "charged_nanocredits",
            "Credits charged, in nano-credits (1e-9 credit), by model",
            m.charged.clone(),
        );
        r.register("upstream_errors", "Upstream failures: unreachable, an error status (http_429, http_4xx, http_529, http_5xx), or a stream that failed after it began (stream_broken, stream_error_event, stream_ended_early)", m.upstream_errors.clone());
        r.register(
            "auto_reloads",
            "Auto-reload attempts finished on this replica, by outcome (succeeded, card_declined, monthly_limit, …; docs/auto-reload.md)",
            m.reloads.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts made by this replica: delivered, retrying (failed, tried again later) or failed (given up; docs/alerts.md)",
            m.webhook_deliveries.clone(),
        );
        r.register(
            "holds_in_flight",
            "Requests holding credits right now (on this replica)",
            m.holds_in_flight.clone(),
        );
        r.register(
            "settlement_spool_depth",
            "Settlements waiting in the local spool for the database",
            m.spool_depth.clone(),
        );
        r.register(
            "leased_settle_groups",
            "Groups of two or more settlements of leased requests posted in one transaction",
            m.settle.groups.clone(),
        );
        r.register(
            "leased_settlements_grouped",
            "Settlements of leased requests posted in those groups",
            m.settle.grouped.clone(),
        );
        r.register(
            "leased_settlements_alone",
            "Settlements of leased requests posted on their own (alone in the queue, or from a refused group)",
            m.settle.alone.clone(),
        );
        m
    }
}

impl Metrics {
    /// The counters the settler of leased settlements counts its groups in.
    pub fn settle_counts(&self) -> SettleCounts {
        self.settle.clone()
    }

    /// Counts a charge (settled or spooled).
    pub fn charged(&self, model: &str, amount: NanoCredits) {
        if let Ok(n) = u64::try_from(amount.nanos()) {
            self.charged
                .get_or_create(&ModelLabels {
                    model: model.to_owned(),
                })
                .inc_by(n);
        }
    }

    /// Counts a finished auto-reload attempt by its outcome.
    pub fn reload(&self, outcome: &str) {
        let outcome = outcome.to_owned();
        self.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts a webhook delivery attempt: `delivered`, `retrying` or `failed`.
    pub fn webhook_delivery(&self, outcome: &'static str) {
        let outcome = outcome.to_owned();
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts an upstream failure: `None` when it could not be reached, else its status.
    pub fn upstream_error(&self, status: Option<u16>) {
        self.upstream_failure(match status {
            None => "unreachable",
            Some(429) => "http_429",
            Some(529) => "http_529",
            Some(s) if s >= 500 => "http_5xx",
            Some(_) => "http_4xx",
        });
    }

    /// Counts an upstream failure of a fixed kind (`stream_broken`, `stream_error_event`,
    /// `stream_ended_early` for a stream that failed after it began).
    pub fn upstream_failure(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&ErrorLabels { kind: kind.into() })
            .inc();
    }

    fn observe(&self, route: &str, resp: &Response, elapsed: Duration) {
        let model = resp.extensions().get::<AdmittedModel>();
        let labels = RequestLabels {
            route: route.to_owned(),
            status: resp.status().as_u16(),
            model: model.map(|m| m.0.clone()).unwrap_or_default(),
        };
        self.requests.get_or_create(&labels).inc();
        let wait = resp.extensions().get::<UpstreamWait>().map(|w| w.0);
        if let (Some(wait), Some(model)) = (wait, model) {
            self.upstream_seconds
                .get_or_create(&ModelLabels {
                    model: model.0.clone(),
                })
                .observe(wait.as_secs_f64());
        }
        let own = elapsed.saturating_sub(wait.unwrap_or_default());
        self.gateway_seconds
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(own.as_secs_f64());
    }
}

/// Middleware on every matched route: counts the answer and times it.
pub async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let started = Instant::now();
    let resp = next.run(req).await;
    app.metrics.observe(&route, &resp, started.elapsed());
    resp
}

/// `GET /metrics` (operator key): the OpenMetrics text exposition.
pub async fn serve(State(app): State<Arc<App>>, _op: Operator) -> Result<Response, ApiError> {
    let m = &app.metrics;
    m.holds_in_flight
        .set(i64::try_from(app.lifecycle.live()).unwrap_or(i64::MAX));
    m.spool_depth
        .set(i64::try_from(app.spool.depth()).unwrap_or(i64::MAX));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
