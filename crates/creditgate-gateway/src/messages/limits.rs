//! A key's limits at admission: the models it may use, requests and tokens per minute (429 with
//! Anthropic's `anthropic-ratelimit-*` headers, which every answer of a limited key carries),
//! and the wording of a refused spend cap (402). The spend caps themselves are checked by the
//! ledger in the hold's own atomic step. A request's tokens are counted at admission as an
//! estimate and corrected to what it used when it settles.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use creditgate_core::accounts::LimitPeriod;
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::ApiKeyId;
use creditgate_core::keys::ApiKeyRecord;
use creditgate_core::ledger::LedgerError;
use creditgate_core::usage::ReportedUsage;

use super::Admitted;
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

/// A key's per-minute window as this request found it: what the `anthropic-ratelimit-*`
/// headers say, and where the settlement corrects the token count.
#[derive(Debug, Clone)]
pub(super) struct RateWindow {
    key: ApiKeyId,
    start: Timestamp,
    reset: Timestamp,
    /// Tokens counted at admission: the estimated input plus `max_tokens`.
    counted: i64,
    /// `(limit, used)` of requests and of tokens, for the limits the key has.
    requests: Option<(i64, i64)>,
    tokens: Option<(i64, i64)>,
}

impl RateWindow {
    /// Anthropic's `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` headers for
    /// the limits the key has (they replace the upstream's, which describe the operator's own
    /// Anthropic key).
    pub(super) fn stamp(&self, headers: &mut HeaderMap) {
        let reset = HeaderValue::from_str(&self.reset.to_rfc3339()).ok();
        for (kind, limit) in [("requests", self.requests), ("tokens", self.tokens)] {
            let Some((limit, used)) = limit else {
                continue;
            };
            let values = [
                ("limit", Some(HeaderValue::from(limit))),
                ("remaining", Some(HeaderValue::from((limit - used).max(0)))),
                ("reset", reset.clone()),
            ];
            for (field, value) in values {
                let name = format!("anthropic-ratelimit-{kind}-{field}");
                if let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), value) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// What the per-minute limits said about a request.
pub(super) enum Rate {
    /// The key has no per-minute limit.
    Unlimited,
    /// Counted; the window as it stands.
    Taken(RateWindow),
    /// Over a limit: the complete 429 response.
    Refused(Response),
}

/// Counts the request and its `tokens` (estimated input plus `max_tokens`) against the key's
/// per-minute limits in one conditional write, so every replica shares the count and
/// concurrent requests cannot pass it.
pub(super) async fn take_rate(
    app: &App,
    key: &ApiKeyRecord,
    tokens: u64,
    request_id: &str,
) -> Result<Rate, ApiError> {
    let rpm = key.limits.requests_per_minute.map(clamp);
    let tpm = key.limits.tokens_per_minute.map(clamp);
    if rpm.is_none() && tpm.is_none() {
        return Ok(Rate::Unlimited);
    }
    let now = app.clock.now();
    let start = Timestamp::from_millis(now.millis() - now.millis().rem_euclid(WINDOW_MS));
    let taken = app
        .db
        .take_rate(&key.id, start, clamp(tokens), rpm, tpm)
        .await?;
    let (refused, (requests, used)) = match taken {
        Ok(counts) => (false, counts),
        Err(counts) => (true, counts),
    };
    let window = RateWindow {
        key: key.id.clone(),
        start,
        reset: start.plus_millis(WINDOW_MS),
        counted: clamp(tokens),
        requests: rpm.map(|l| (l, requests)),
        tokens: tpm.map(|l| (l, used)),
    };
    if !refused {
        return Ok(Rate::Taken(window));
    }
    let retry = (window.reset.millis() - now.millis() + 999) / 1000;
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
    window.stamp(resp.headers_mut());
    Ok(Rate::Refused(resp))
}

/// The tokens a request counts against a per-minute limit once it is settled: every token it
/// processed — input, cache writes, cache reads and output (thinking included) — the same
/// measure as the admission estimate (estimated input plus `max_tokens`) that it replaces.
pub(super) fn tokens_used(usage: Option<&ReportedUsage>) -> u64 {
    usage.map_or(0, |u| {
        let u = &u.usage;
        u.input_tokens
            .saturating_add(u.cache_creation_input_tokens)
            .saturating_add(u.cache_read_input_tokens)
            .saturating_add(u.output_tokens)
    })
}

impl RateWindow {
    /// Replaces the tokens this request counted at admission by the `used` ones, in its own
    /// window. A window whose minute is over is left alone (the next minute starts from zero).
    pub(super) async fn correct(&self, app: &App, used: u64, request_id: &str) {
        if self.tokens.is_none() {
            return;
        }
        let delta = clamp(used).saturating_sub(self.counted);
        if delta == 0 {
            return;
        }
        if let Err(e) = app
            .db
            .adjust_rate_tokens(&self.key, self.start, delta)
            .await
        {
            tracing::warn!(request_id, error = %e, "rate window not corrected");
        }
    }
}

impl Admitted {
    /// At settlement: the key's window counts the tokens the request used, not its estimate.
    pub(super) async fn correct_rate(&self, usage: Option<&ReportedUsage>) {
        if let Some(window) = &self.rate {
            let used = tokens_used(usage);
            window
                .correct(&self.app, used, self.request_id.as_str())
                .await;
        }
    }
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
