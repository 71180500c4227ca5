//! A key's limits at admission: the models it may use, requests and tokens per minute (429 with
//! Anthropic's `anthropic-ratelimit-*` headers), and the wording of a refused spend cap (402).
//! The spend caps themselves are checked by the ledger in the hold's own atomic step.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use creditgate_core::accounts::LimitPeriod;
use creditgate_core::clock::Timestamp;
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::ledger::LedgerError;

use crate::error::ApiError;
use crate::App;

/// The rate-limit window: requests and tokens are counted per UTC minute.
const WINDOW_MS: i64 = 60_000;

/// 403 when the key's allow-list does not name the model.
pub(super) fn check_model(key: &ApiKeyRecord, model: &str) -> Result<(), ApiError> {
    if key.limits.allows_model(model) {
        return Ok(());
    }
    Err(ApiError::permission(format!(
        "This API key may not use the model {model}."
    )))
}

/// Counts the request and its `tokens` (estimated input plus `max_tokens`) against the key's
/// per-minute limits in one conditional write, so every replica shares the count and
/// concurrent requests cannot pass it. A refusal is a complete 429 response.
pub(super) async fn take_rate(
    app: &App,
    key: &ApiKeyRecord,
    tokens: u64,
    request_id: &str,
) -> Result<Option<Response>, ApiError> {
    let rpm = key.limits.requests_per_minute.map(clamp);
    let tpm = key.limits.tokens_per_minute.map(clamp);
    if rpm.is_none() && tpm.is_none() {
        return Ok(None);
    }
    let now = app.clock.now();
    let start = Timestamp::from_millis(now.millis() - now.millis().rem_euclid(WINDOW_MS));
    let reset = start.plus_millis(WINDOW_MS);
    let taken = app
        .db
        .take_rate(&key.id, start, clamp(tokens), rpm, tpm)
        .await?;
    let Err((requests, used)) = taken else {
        return Ok(None);
    };
    let retry = (reset.millis() - now.millis() + 999) / 1000;
    let which = if rpm.is_some_and(|r| requests >= r) {
        "requests"
    } else {
        "tokens"
    };
    let mut resp = ApiError::rate_limited(
        format!("This API key's {which}-per-minute limit is reached; retry in {retry} s."),
        retry.max(1) as u64,
    )
    // With its id already set, the error keeps the headers added here.
    .with_request_id(request_id)
    .into_response();
    let h = resp.headers_mut();
    let reset_text = HeaderValue::from_str(&reset.to_rfc3339()).ok();
    for (kind, limit, count) in [("requests", rpm, requests), ("tokens", tpm, used)] {
        if let Some(limit) = limit {
            let names = [
                format!("anthropic-ratelimit-{kind}-limit"),
                format!("anthropic-ratelimit-{kind}-remaining"),
                format!("anthropic-ratelimit-{kind}-reset"),
            ];
            let values = [
                Some(HeaderValue::from(limit)),
                Some(HeaderValue::from((limit - count).max(0))),
                reset_text.clone(),
            ];
            for (name, value) in names.into_iter().zip(values) {
                if let (Ok(name), Some(value)) =
                    (axum::http::HeaderName::from_bytes(name.as_bytes()), value)
                {
                    h.insert(name, value);
                }
            }
        }
    }
    Ok(Some(resp))
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A refused spend cap in the key's words: which limit, what is left, when it resets.
pub(super) fn spend_refusal(
    key: &ApiKeyRecord,
    err: &LedgerError,
    now: Timestamp,
    unit: &str,
) -> Option<ApiError> {
    let LedgerError::LimitExceeded {
        cap,
        remaining,
        needed,
        ..
    } = err
    else {
        return None;
    };
    let period = key.limits.period_of(*cap)?;
    let resets = match period.resets_at(now) {
        Some(at) => format!("It resets at {}.", at.to_rfc3339()),
        None => "A total limit does not reset; raise it to continue.".to_owned(),
    };
    let name = match period {
        LimitPeriod::Total => "total",
        p => p.as_str(),
    };
    Some(ApiError::billing(format!(
        "This API key's {name} spend limit of {cap} {unit} is reached: {} {unit} left, \
         {needed} {unit} needed. {resets}",
        (*remaining).max(creditgate_core::money::NanoCredits::ZERO)
    )))
}
