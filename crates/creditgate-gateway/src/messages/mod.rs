//! `POST /v1/messages`: admit (hold), forward, meter, settle — as JSON or as a stream.
//!
//! Every admitted request ends in exactly one settle of its hold (possibly of zero, for a free
//! outcome), carrying the receipt. Each request runs in its own task, from admission to
//! settlement, so a client that hangs up can change what is charged only through the disconnect
//! policy, never by cancelling a hold placement or a settlement.
//!
//! The parts, in the order a request meets them: `admission` (authenticate, parse, estimate,
//! place the hold), `forward` (send upstream, a complete JSON answer), `stream` (the pump that
//! passes events through), `hold` (growing a stream's hold slice by slice), `settle` (the one
//! settlement, with retries, spooled when the database cannot take it) and `receipt` (what the
//! ledger and the client are told). While a request lives, [`crate::lifecycle::Live`] keeps its
//! hold alive whatever it waits on, and the shutdown deadline can cut it. The charging rules
//! themselves are in [`creditgate_core::metering`].

mod admission;
mod forward;
mod hold;
mod limits;
mod quote;
mod receipt;
mod settle;
mod stream;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use creditgate_core::ids::TransferId;
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::money::NanoCredits;
use creditgate_core::pricing::HoldEstimate;
use creditgate_core::pricing::Usage;
use creditgate_core::usage::{ReceiptStatus, ReportedUsage};

use crate::auth::ApiKeyCaller;
use crate::error::ApiError;
use crate::lifecycle::Live;
use crate::request_id::RequestId;
use crate::App;
use creditgate_core::usage::DisconnectPolicy;

use admission::Parsed;
pub use quote::quote;

/// Reads a request body within the configured size, time and memory bounds; keep the returned
/// share of the memory budget alive as long as the body.
pub async fn read_body(app: &App, body: Body) -> Result<(Bytes, crate::body::InFlight), ApiError> {
    let timeout = std::time::Duration::from_millis(app.cfg.body_read_timeout_ms);
    crate::body::read(body, app.cfg.max_body_bytes, timeout, &app.bodies).await
}

/// The request's id (from the middleware) becomes its hold's transfer id.
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    ApiKeyCaller(key): ApiKeyCaller,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Admission runs in its own task too: a client that hangs up while its hold is being placed
    // must not leave the hold without the task that settles it.
    let admission =
        tokio::spawn(
            async move { admission::admit(app, key, &uri, headers, body, &request_id).await },
        );
    match admission.await {
        Ok(Ok(resp)) => resp,
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::internal("The request task failed.").into_response(),
    }
}

/// An admitted request: it holds credits and must settle exactly once.
struct Admitted {
    app: Arc<App>,
    key: ApiKeyRecord,
    request_id: TransferId,
    held: NanoCredits,
    /// The organization's credit lease, when the request was admitted against it instead of a
    /// hold of its own (`crate::lease`).
    lease: Option<Arc<crate::lease::OrgLease>>,
    estimate: HoldEstimate,
    parsed: Parsed,
    policy: DisconnectPolicy,
    started: std::time::Instant,
    /// When the request was sent upstream (for the gateway's own latency apart from the wait).
    upstream_sent: std::time::Instant,
    /// The upstream's `request-id`, once its answer arrived.
    upstream_request_id: std::sync::OnceLock<String>,
    /// The key's per-minute window, when it has a per-minute limit (corrected at settlement).
    rate: Option<limits::RateWindow>,
    /// Counts the request as live and keeps its hold alive until it is dropped (settled).
    _live: Live,
}

/// What a settlement told the client.
struct Settled {
    charged: NanoCredits,
    available: Option<NanoCredits>,
    status: ReceiptStatus,
}

impl Admitted {
    /// Forwards the request and answers as JSON or as a stream, settling the hold either way.
    async fn run(mut self, path: String, headers: HeaderMap, body: Bytes) -> Response {
        self.upstream_sent = std::time::Instant::now();
        let sent = self
            .unless_cut(self.app.upstream.send(Method::POST, &path, &headers, body))
            .await;
        let resp = match sent {
            Some(Ok(resp)) => resp,
            None => return self.cut_before_answer().await,
            Some(Err(err)) => {
                self.app.metrics.upstream_error(None);
                self.settle_with_retries(ReceiptStatus::Free, None, "upstream unreachable")
                    .await;
                return ApiError::upstream_unreachable(err.to_string())
                    .with_detail(err.detail())
                    .with_request_id(self.request_id.as_str())
                    .into_response();
            }
        };
        if !resp.status().is_success() {
            self.app
                .metrics
                .upstream_error(Some(resp.status().as_u16()));
        }
        if let Some(id) = resp
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
        {
            let _ = self.upstream_request_id.set(id.to_owned());
        }
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if self.parsed.stream && resp.status().is_success() && is_sse {
            self.stream(resp).await
        } else {
            self.json(resp).await
        }
    }

    /// Awaits `fut` unless the shutdown deadline cuts the request first (`None`).
    async fn unless_cut<T>(&self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            out = fut => Some(out),
            () = self.app.lifecycle.until_cut() => None,
        }
    }

    /// The shutdown deadline came before the upstream answered: the request may have reached
    /// the upstream, so its input (estimated) is charged, capped at the hold, and marked
    /// estimated.
    async fn cut_before_answer(self) -> Response {
        let usage = ReportedUsage {
            usage: Usage {
                input_tokens: self.estimate.input_tokens(),
                ..Usage::default()
            },
            flags: Vec::new(),
        };
        self.settle_with_retries(
            ReceiptStatus::Estimated,
            Some(usage),
            "the gateway shut down before the upstream answered; input estimated",
        )
        .await;
        ApiError::unavailable("The gateway is shutting down.")
            .with_request_id(self.request_id.as_str())
            .into_response()
    }
}
