//! The one table that maps what went wrong to an HTTP status and Anthropic's error envelope.
//!
//! Domain errors (`LedgerError`, `PricingError`) become an [`ApiError`] only here; a caller that
//! knows more (the credit unit, what a hold was for) passes it as a [`Refusal`] and gets the same
//! sentence with those details in. Nothing here logs or creates request ids: the request-id
//! middleware (`request_id`) does both for every error answer.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use creditgate_core::ledger::LedgerError;
use creditgate_core::money::NanoCredits;
use creditgate_core::pricing::PricingError;

/// An error answered by the gateway itself (not passed through from the upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Anthropic's `error.type`.
    pub kind: &'static str,
    pub message: String,
    pub request_id: Option<String>,
    /// Seconds for a `retry-after` header (rate limits).
    pub retry_after: Option<u64>,
    /// What went wrong inside, for the log only (never sent to the client).
    pub detail: Option<String>,
}

/// What the caller of a refused ledger operation knows that the error does not: the words
/// [`ApiError::from_ledger`] adds to the one sentence each error gets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refusal<'a> {
    /// The credit unit's name, written after every amount.
    pub unit: Option<&'a str>,
    /// What the credit was needed for ("for this request", "to start this stream").
    pub purpose: Option<&'a str>,
    /// The largest `max_tokens` the available credit would cover.
    pub fits: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            request_id: None,
            retry_after: None,
            detail: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    pub fn permission(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message);
        e.retry_after = Some(retry_after);
        e
    }

    pub fn billing(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYMENT_REQUIRED, "billing_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "api_error", message)
    }

    pub fn upstream_unreachable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "api_error", message)
    }

    pub fn with_request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_owned());
        self
    }

    /// Adds what went wrong inside, for the log (the client sees only `message`).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The JSON body: `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "error",
            "error": {"type": self.kind, "message": self.message},
            "request_id": self.request_id,
        })
    }

    /// The same error as an SSE `error` event, for a stream that has already started.
    pub fn sse_event(&self) -> String {
        let data = serde_json::json!({
            "type": "error",
            "error": {"type": self.kind, "message": self.message},
        });
        format!("event: error\ndata: {data}\n\n")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        let headers = resp.headers_mut();
        if let Some(id) = self
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert("request-id", id);
        }
        // Only transient failures are worth an SDK retry; a billing refusal never is.
        let retry = matches!(self.status.as_u16(), 429 | 500 | 502 | 503 | 529);
        headers.insert(
            "x-should-retry",
            HeaderValue::from_static(if retry { "true" } else { "false" }),
        );
        if let Some(secs) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(secs));
        }
        // The request-id middleware completes the answer (its id, the log) from this copy.
        resp.extensions_mut().insert(self);
        resp
    }
}

/// A JSON request body whose every failure (not JSON, wrong shape, unknown field) is a 400 in
/// Anthropic's envelope naming what was wrong.
pub struct JsonBody<T>(pub T);

/// Largest JSON body of a management route.
pub const MAX_MANAGEMENT_BODY_BYTES: usize = 64 * 1024;

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_MANAGEMENT_BODY_BYTES)
            .await
            .map_err(|_| ApiError::too_large("The request body is too large."))?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid_request(format!("Invalid request body: {e}")))
    }
}

impl From<creditgate_core::accounts::AccountError> for ApiError {
    fn from(err: creditgate_core::accounts::AccountError) -> Self {
        use creditgate_core::accounts::AccountError::*;
        match err {
            Invalid(m) => Self::invalid_request(m),
            Forbidden(m) => Self::permission(m),
            NotFound(m) => Self::not_found(m),
            Conflict(m) => Self::new(StatusCode::CONFLICT, "invalid_request_error", m),
        }
    }
}

impl ApiError {
    /// The table for ledger errors, worded with what the caller knows (`Refusal::default()`
    /// when it knows nothing more).
    pub fn from_ledger(err: LedgerError, known: &Refusal<'_>) -> Self {
        let amount = |n: &NanoCredits| match known.unit {
            Some(unit) => format!("{n} {unit}"),
            None => n.to_string(),
        };
        match &err {
            LedgerError::Insufficient { available, needed } => {
                let purpose = known.purpose.map(|p| format!(" {p}")).unwrap_or_default();
                let fits = known.fits.map_or(String::new(), |n| {
                    format!(" The largest max_tokens that would fit is {n}.")
                });
                Self::billing(format!(
                    "Your credit balance is too low: {} available, {} needed{purpose}.{fits}",
                    amount(available),
                    amount(needed),
                ))
            }
            LedgerError::LimitExceeded {
                scope,
                remaining,
                needed,
                cap,
            } => Self::billing(format!(
                "The spend limit of {scope} ({}) is reached: {} left, {} needed.",
                amount(cap),
                amount(remaining),
                amount(needed),
            )),
            LedgerError::Unavailable(_) => {
                Self::unavailable("The billing database is unavailable; nothing was forwarded.")
                    .with_detail(err.to_string())
            }
            LedgerError::UnknownOrganization(_)
            | LedgerError::UnknownHold(_)
            | LedgerError::UnknownLot(_) => Self::not_found(err.to_string()),
            LedgerError::IdempotencyConflict(_)
            | LedgerError::HoldResolved { .. }
            | LedgerError::OrganizationExists(_)
            | LedgerError::LotExists(_)
            | LedgerError::AlreadyRefunded(_) => Self::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                err.to_string(),
            ),
            LedgerError::InvalidAmount(_)
            | LedgerError::InvalidRequest(_)
            | LedgerError::Money(_) => Self::invalid_request(err.to_string()),
            LedgerError::Corrupt(_) => {
                Self::internal("Internal ledger error.").with_detail(err.to_string())
            }
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(err: LedgerError) -> Self {
        Self::from_ledger(err, &Refusal::default())
    }
}

/// A request the price book cannot price (unknown model, missing fields) is the client's error.
impl From<PricingError> for ApiError {
    fn from(err: PricingError) -> Self {
        Self::invalid_request(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use creditgate_core::money::NanoCredits;

    /// Snapshot of the public error bodies: a change here is a change to the wire.
    #[test]
    fn envelopes_match_anthropic() {
        let e = ApiError::from(LedgerError::Insufficient {
            available: NanoCredits::from_nanos(1_500_000_000),
            needed: NanoCredits::from_nanos(2_000_000_000),
        })
        .with_request_id("req_cg_1");
        assert_eq!(e.status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(
            e.body().to_string(),
            r#"{"error":{"message":"Your credit balance is too low: 1.5 available, 2 needed.","type":"billing_error"},"request_id":"req_cg_1","type":"error"}"#
        );
        let unavailable = ApiError::from(LedgerError::Unavailable("down".into()));
        assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !unavailable.message.contains("down"),
            "internal detail must not leak"
        );
        assert_eq!(
            ApiError::too_large("x").sse_event(),
            "event: error\ndata: {\"error\":{\"message\":\"x\",\"type\":\"request_too_large\"},\"type\":\"error\"}\n\n"
        );
    }

    /// A refusal at admission and the plain mapping are the same sentence, with the caller's
    /// details added.
    #[test]
    fn refusals_add_details_to_the_same_wording() {
        let err = || LedgerError::Insufficient {
            available: NanoCredits::from_nanos(1_500_000_000),
            needed: NanoCredits::from_nanos(2_000_000_000),
        };
        let known = Refusal {
            unit: Some("credits"),
            purpose: Some("for this request"),
            fits: Some(42),
        };
        assert_eq!(
            ApiError::from_ledger(err(), &known).message,
            "Your credit balance is too low: 1.5 credits available, 2 credits needed for this \
             request. The largest max_tokens that would fit is 42."
        );
        let limit = || LedgerError::LimitExceeded {
            scope: "key:k1".into(),
            cap: NanoCredits::from_nanos(3_000_000_000),
            remaining: NanoCredits::from_nanos(1_000_000_000),
            needed: NanoCredits::from_nanos(2_000_000_000),
        };
        assert_eq!(
            ApiError::from(limit()).message,
            "The spend limit of key:k1 (3) is reached: 1 left, 2 needed."
        );
        assert_eq!(
            ApiError::from_ledger(limit(), &known).message,
            "The spend limit of key:k1 (3 credits) is reached: 1 credits left, 2 credits needed."
        );
        let corrupt = ApiError::from(LedgerError::Corrupt("hash mismatch".into()));
        assert_eq!(corrupt.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!corrupt.message.contains("hash") && corrupt.detail.is_some());
    }
}
