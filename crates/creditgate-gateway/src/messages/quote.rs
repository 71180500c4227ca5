//! `POST /v1/messages/quote`: what a Messages request would cost before sending it — its worst
//! case, the first slice a stream holds, the largest `max_tokens` that fits, and whether it is
//! affordable now. The body is checked and estimated exactly as admission does
//! ([`super::admission::examine`]); nothing is held, counted or forwarded, and it is free.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use creditgate_core::accounts::{period_start, LimitPeriod};
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use serde_json::{json, Value};

use super::admission::{examine, Examined};
use super::read_body;
use crate::auth::ApiKeyCaller;
use crate::error::ApiError;
use crate::App;

/// `POST /v1/messages/quote` with a Messages request body.
pub async fn quote(
    State(app): State<Arc<App>>,
    ApiKeyCaller(key): ApiKeyCaller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match answer(&app, &key, &headers, body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn answer(
    app: &App,
    key: &ApiKeyRecord,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    crate::upstream::check_betas(headers, &app.cfg.upstream_allowed_betas)?;
    let (bytes, _in_flight) = read_body(app, body).await?;
    let Examined {
        parsed,
        estimate,
        first_hold,
    } = examine(app, key, &bytes)?;
    let too_large = || ApiError::invalid_request("max_tokens: too large to be priced");
    let worst_case = estimate
        .with_output(parsed.max_tokens)
        .map_err(|_| too_large())?;
    let first_output = if parsed.stream {
        parsed.first_slice(app.cfg.first_slice_tokens)
    } else {
        parsed.max_tokens
    };
    let balance = app.balance(&key.org).await?;
    let (spendable, limited_by) = spendable(app, key, balance.available).await?;
    let unit = &app.cfg.credit_unit.name;
    Ok(json!({
        "type": "quote",
        "model": parsed.model,
        "stream": parsed.stream,
        "max_tokens": parsed.max_tokens,
        "input_tokens": estimate.input_tokens(),
        "worst_case": worst_case,
        "first_slice": {"output_tokens": first_output, "credits": first_hold},
        "hold": first_hold,
        "available": spendable,
        "limited_by": limited_by,
        "affordable": first_hold <= spendable,
        "affordable_in_full": worst_case <= spendable,
        "max_affordable_max_tokens": estimate.max_affordable_output(spendable),
        "unit": unit,
    }))
}

/// What the key may spend now: the organization's available credit, capped by what is left
/// under each of the key's spend limits (charges plus active holds since the period's start),
/// and which of them is the binding one (`"balance"` or `"daily spend limit"`, …).
async fn spendable(
    app: &App,
    key: &ApiKeyRecord,
    available: NanoCredits,
) -> Result<(NanoCredits, String), ApiError> {
    let now = app.clock.now();
    let mut best = (available.max(NanoCredits::ZERO), "balance".to_owned());
    for period in LimitPeriod::ALL {
        let Some(cap) = key.limits.spend.get(period) else {
            continue;
        };
        let spent = app
            .db
            .scope_spend(&key.scope(), period_start(period, now))
            .await?;
        let left = cap
            .checked_sub(spent)
            .unwrap_or(NanoCredits::ZERO)
            .max(NanoCredits::ZERO);
        if left < best.0 {
            best = (left, format!("{} spend limit", period.as_str()));
        }
    }
    Ok(best)
}
