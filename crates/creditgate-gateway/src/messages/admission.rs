//! Admission: authenticate, read and parse the body, estimate the worst case and place the hold.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::ledger::{HoldRequest, LedgerError, LedgerStore};
use creditgate_core::money::{Decimal, NanoCredits};
use creditgate_core::pricing::{self, HoldEstimate, RequestScan, ScanError};
use creditgate_core::usage::Admission;

use super::{limits, read_body, Admitted};
use crate::error::{ApiError, Refusal};
use crate::lifecycle::Live;
use crate::metrics::AdmittedModel;
use crate::request_id::RequestId;
use crate::App;

/// What the request asked for, read from its body (which is forwarded unchanged).
pub(super) struct Parsed {
    pub(super) model: String,
    pub(super) max_tokens: u64,
    pub(super) stream: bool,
    /// `thinking.budget_tokens` when extended thinking is enabled with a budget.
    pub(super) thinking_budget: Option<u64>,
}

impl Parsed {
    /// The output a stream's first slice covers: the configured first slice, plus the thinking
    /// budget when thinking is on (thinking is billed in full even when only a summary, or
    /// nothing, is streamed, so the hold cannot learn it from the deltas); never past
    /// `max_tokens`.
    pub(super) fn first_slice(&self, first_slice_tokens: u64) -> u64 {
        first_slice_tokens
            .saturating_add(self.thinking_budget.unwrap_or(0))
            .min(self.max_tokens)
    }
}

/// The request's fields from the one-pass scan of its body (nothing of the body is kept).
fn parse_request(scan: &RequestScan) -> Result<Parsed, ApiError> {
    let model = scan
        .model
        .as_ref()
        .ok_or_else(|| ApiError::invalid_request("model: Field required"))?;
    // Before any work on it, and without echoing it: a huge name costs nothing but this check.
    if model.len() > pricing::MAX_MODEL_NAME_CHARS {
        return Err(ApiError::invalid_request(format!(
            "model: must be at most {} characters; this one has {} bytes",
            pricing::MAX_MODEL_NAME_CHARS,
            model.len()
        )));
    }
    let model = model.head().to_owned();
    let max_tokens = scan
        .max_tokens
        .ok_or_else(|| ApiError::invalid_request("max_tokens: must be a non-negative integer"))?;
    let stream = match scan.stream {
        None => false,
        Some(Ok(b)) => b,
        Some(Err(())) => return Err(ApiError::invalid_request("stream: must be a boolean")),
    };
    Ok(Parsed {
        model,
        max_tokens,
        stream,
        thinking_budget: scan.thinking_budget,
    })
}

/// What admission learns from a body before any limit or hold: the request's fields, the
/// worst-case estimate and the first hold (the whole worst case, or a stream's first slice).
/// Shared with `POST /v1/messages/quote`, which answers the same questions without a hold.
pub(super) struct Examined {
    pub(super) parsed: Parsed,
    pub(super) estimate: HoldEstimate,
    pub(super) first_hold: NanoCredits,
}

/// Scans and checks the body as `POST /v1/messages` does and estimates its cost.
pub(super) fn examine(app: &App, key: &ApiKeyRecord, bytes: &[u8]) -> Result<Examined, ApiError> {
    // One pass over the bytes, keeping nothing of the body (a parsed tree costs many times it).
    let scan = RequestScan::read(bytes, Decimal::ONE).map_err(|e| match e {
        ScanError::NotAnObject => ApiError::invalid_request(e.to_string()),
        ScanError::Json(e) => {
            ApiError::invalid_request(format!("The request body is not valid JSON: {e}"))
        }
    })?;
    crate::unique_keys::check(bytes)
        .map_err(|e| ApiError::invalid_request(format!("The request body is ambiguous: {e}")))?;
    crate::upstream::check_body_betas(&scan, &app.cfg.upstream_allowed_betas)?;
    let parsed = parse_request(&scan)?;
    limits::check_model(key, &parsed.model)?;
    let estimate = pricing::hold_estimate_scanned(&app.book, bytes, &scan, &app.pricing)?;
    let first_output = if parsed.stream {
        parsed.first_slice(app.cfg.first_slice_tokens)
    } else {
        parsed.max_tokens
    };
    let amount = estimate.with_output(first_output).map_err(|_| {
        ApiError::invalid_request(format!(
            "max_tokens: {} is too large to be priced",
            parsed.max_tokens
        ))
    })?;
    Ok(Examined {
        parsed,
        estimate,
        first_hold: amount,
    })
}

pub(super) async fn admit(
    app: Arc<App>,
    key: ApiKeyRecord,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
    request_id: &RequestId,
) -> Result<Response, ApiError> {
    crate::upstream::check_betas(&headers, &app.cfg.upstream_allowed_betas)?;
    let (bytes, _in_flight) = read_body(&app, body).await?;
    let Examined {
        parsed,
        estimate,
        first_hold: amount,
    } = examine(&app, &key, &bytes)?;
    let tokens = estimate.input_tokens().saturating_add(parsed.max_tokens);
    let model = AdmittedModel(parsed.model.clone());
    let rate = match limits::take_rate(&app, &key, tokens, request_id.as_str()).await? {
        limits::Rate::Refused(mut refused) => {
            refused.extensions_mut().insert(model);
            return Ok(refused);
        }
        limits::Rate::Taken(window) => Some(window),
        limits::Rate::Unlimited => None,
    };
    let path = uri
        .path_and_query()
        .map_or("/v1/messages", |p| p.as_str())
        .to_owned();
    let request = Request {
        key,
        parsed,
        estimate,
        amount,
        rate: rate.clone(),
    };
    let answer = hold_and_run(app.clone(), request, path, headers, bytes, request_id).await;
    // Every answer of a key with a per-minute limit says where its window stands.
    let mut resp = match answer {
        Ok(resp) => resp,
        Err(err) => {
            // Refused before the upstream: the request used no tokens.
            if let Some(window) = &rate {
                window.correct(&app, 0, request_id.as_str()).await;
            }
            err.with_request_id(request_id.as_str()).into_response()
        }
    };
    if let Some(window) = &rate {
        window.stamp(resp.headers_mut());
    }
    resp.extensions_mut().insert(model);
    Ok(resp)
}

/// A request past its checks, before its hold.
struct Request {
    key: ApiKeyRecord,
    parsed: Parsed,
    estimate: HoldEstimate,
    /// The first hold: the worst case of the whole request, or a stream's first slice.
    amount: NanoCredits,
    rate: Option<limits::RateWindow>,
}

/// Places the hold (the spend caps are checked in the same atomic step), then forwards.
async fn hold_and_run(
    app: Arc<App>,
    req: Request,
    path: String,
    headers: HeaderMap,
    bytes: bytes::Bytes,
    request_id: &RequestId,
) -> Result<Response, ApiError> {
    let Request {
        key,
        parsed,
        estimate,
        amount,
        rate,
    } = req;
    let policy = app.disconnect_policy(&key.org).await?;
    let transfer_id = request_id.transfer_id().clone();
    // What `GET /v1/requests/{id}` shows of a request in flight, until the settle writes its
    // usage record.
    let admission = Admission {
        model: parsed.model.clone(),
        key_id: key.id.clone(),
        stream: parsed.stream,
    };
    let limits = key.limits.spend_limits(&key.scope(), app.clock.now());
    let refused = |e: LedgerError| {
        // Announced off the request path (`docs/alerts.md`).
        crate::notify::alerts::refused(&app, &key, &e);
        let unit = &app.cfg.credit_unit.name;
        limits::spend_refusal(&key, &e, app.clock.now(), unit)
            .unwrap_or_else(|| refusal(e, &estimate, parsed.stream, unit))
    };
    // A key with spend limits holds per request: its limits count each scope's holds. A request
    // the lease cannot cover gets a hold of its own, which decides a refusal exactly as without
    // a lease (and may spend an invoiced organization's credit line, which is never leased).
    // While settlements wait in the spool (the ledger was away), holds of their own.
    let leased = if app.leases.enabled() && limits.is_empty() && app.spool.depth() == 0 {
        match app
            .leases
            .admit(&app, &transfer_id, admission.clone(), &key.org, amount)
            .await
        {
            Ok(lease) => Some(lease),
            Err(LedgerError::Insufficient { .. }) => None,
            Err(err) => return Err(refused(err)),
        }
    } else {
        None
    };
    let (lease, live) = if let Some(lease) = leased {
        (Some(lease), Live::counted(app.clone()))
    } else {
        let req = HoldRequest {
            transfer_id: transfer_id.clone(),
            org: key.org.clone(),
            amount,
            timeout_ms: app.cfg.hold_timeout_ms,
            scope: Some(key.scope()),
            limits,
            memo: serde_json::to_string(&admission).ok(),
        };
        let hold = match app.db.reserve(req.clone()).await {
            // The unused part of this replica's lease is the organization's too.
            Err(LedgerError::Insufficient { .. }) if app.leases.shrink(&app, &key.org).await => {
                app.db.reserve(req).await
            }
            placed => placed,
        }
        .map_err(refused)?;
        (None, Live::start(app.clone(), hold.id.clone()))
    };

    let job = Admitted {
        app: app.clone(),
        key,
        request_id: transfer_id,
        held: amount,
        lease,
        estimate,
        parsed,
        policy,
        started: std::time::Instant::now(),
        upstream_request_id: std::sync::OnceLock::new(),
        upstream_sent: std::time::Instant::now(),
        rate,
        _live: live,
    };
    Ok(job.run(path, headers, bytes).await)
}

/// Turns a refused hold into the client's answer: 402 with the numbers and the largest
/// `max_tokens` that would fit.
pub(super) fn refusal(
    err: LedgerError,
    estimate: &HoldEstimate,
    stream: bool,
    unit: &str,
) -> ApiError {
    let fits = match &err {
        LedgerError::Insufficient { available, .. } => {
            Some(estimate.max_affordable_output(*available))
        }
        _ => None,
    };
    let purpose = if stream {
        "to start this stream"
    } else {
        "for this request"
    };
    ApiError::from_ledger(
        err,
        &Refusal {
            unit: Some(unit),
            purpose: Some(purpose),
            fits,
        },
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parse_request_rejects_bad_fields() {
        let parse = |v: serde_json::Value| {
            parse_request(&RequestScan::read(v.to_string().as_bytes(), Decimal::ONE).unwrap())
        };
        assert!(parse(json!({"model": "m", "max_tokens": 5})).is_ok());
        assert!(parse(json!({"max_tokens": 5})).is_err());
        assert!(parse(json!({"model": "m", "max_tokens": -1})).is_err());
        assert!(parse(json!({"model": "m", "max_tokens": "5"})).is_err());
        assert!(parse(json!({"model": "m", "max_tokens": 5, "stream": "yes"})).is_err());
        assert!(RequestScan::read(b"[1]", Decimal::ONE).is_err());
    }
}
