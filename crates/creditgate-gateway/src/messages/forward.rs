//! Forwarding a complete (non-streaming) answer, or any upstream error, back to the client.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use creditgate_core::usage::{ReceiptStatus, ReportedUsage};
use serde_json::Value;

use super::Admitted;
use crate::config::MAX_UPSTREAM_JSON_BYTES;
use crate::error::ApiError;
use crate::metrics::UpstreamWait;
use crate::upstream::UpstreamResponse;

impl Admitted {
    /// A complete (non-streaming) response, or any upstream error response.
    pub(super) async fn json(self, resp: UpstreamResponse) -> Response {
        let status = resp.status();
        let mut out_headers = HeaderMap::with_capacity(ANSWER_HEADERS);
        copy_response_headers(resp.headers(), &mut out_headers);
        let body = match self
            .unless_cut(read_limited(
                resp,
                MAX_UPSTREAM_JSON_BYTES,
                self.request_id.as_str(),
            ))
            .await
        {
            Some(Ok(b)) => b,
            None => return self.cut_before_answer().await,
            Some(Err(reason)) => {
                self.settle_with_retries(ReceiptStatus::Free, None, &reason)
                    .await;
                return ApiError::upstream_unreachable(format!(
                    "The upstream response failed: {reason}"
                ))
                .with_request_id(self.request_id.as_str())
                .into_response();
            }
        };
        let waited = UpstreamWait(self.upstream_sent.elapsed());
        let settled = if status.is_success() {
            let (status, usage, note) = self.observed_usage(&body);
            // The edge: the upstream's usage is parsed here, once, into its typed form.
            let usage = ReportedUsage::parse(&usage);
            self.settle_with_retries(status, Some(usage), note).await
        } else {
            self.settle_with_retries(ReceiptStatus::Free, None, "upstream error")
                .await
        };
        self.cost_headers(&mut out_headers, &settled);
        let mut resp = answer(status, out_headers, body);
        resp.extensions_mut().insert(waited);
        resp
    }

    /// The usage of a successful answer. When the upstream did not state the counts (no usage,
    /// or no `input_tokens`/`output_tokens` in it), they are estimated (the input from the
    /// request, the output from the answer's content) and the receipt says `estimated`; the
    /// charge is then capped at the hold. Output is never free for lack of a usage object.
    fn observed_usage(&self, body: &[u8]) -> (ReceiptStatus, Value, &'static str) {
        let stated = |u: &Value, field: &str| u.get(field).is_some_and(|v| !v.is_null());
        let complete = |u: &Value| stated(u, "input_tokens") && stated(u, "output_tokens");
        // The usual answer states both counts: its usage object is all that is built of it.
        if let Some(usage) = usage_object(body).filter(complete) {
            return (ReceiptStatus::Settled, usage, "");
        }
        let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let mut usage = match answer.get("usage") {
            Some(u @ Value::Object(_)) => u.clone(),
            _ => Value::Object(Default::default()),
        };
        if complete(&usage) {
            return (ReceiptStatus::Settled, usage, "");
        }
        if !stated(&usage, "input_tokens") {
            usage["input_tokens"] = Value::from(self.estimate.input_tokens());
        }
        if !stated(&usage, "output_tokens") {
            let output = match answer.get("content") {
                Some(content) => content_tokens(content),
                None => crate::sse::estimate_text_tokens(&String::from_utf8_lossy(body)),
            };
            usage["output_tokens"] = Value::from(output);
        }
        let note = "the upstream's answer did not state its usage; estimated";
        (ReceiptStatus::Estimated, usage, note)
    }
}

/// An answer's `usage` field alone; its other fields are checked as JSON but not built.
#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<Value>,
}

/// The answer's `usage` object, when the answer is a JSON object that has it once (what a whole
/// parse of the answer would find there); `None` for anything else, which the whole parse
/// then reads.
fn usage_object(body: &[u8]) -> Option<Value> {
    // A struct may also be read from an array; an answer that is not an object has no usage.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    // A repeated `usage` is an error here (the whole parse keeps the last one).
    let answer: UsageOnly = serde_json::from_slice(body).ok()?;
    answer.usage.filter(Value::is_object)
}

/// Estimated output tokens of an answer's content blocks: text, thinking, tool inputs.
fn content_tokens(content: &Value) -> u64 {
    let Some(blocks) = content.as_array() else {
        return 0;
    };
    let count = crate::sse::estimate_text_tokens;
    blocks
        .iter()
        .map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") => count(b["text"].as_str().unwrap_or_default()),
            Some("thinking") => count(b["thinking"].as_str().unwrap_or_default()),
            Some("tool_use") | Some("server_tool_use") => count(&b["input"].to_string()),
            _ => 0,
        })
        .sum()
}

/// Room for the headers of an answer (the upstream's kept ones, ours, a key's rate limits), so
/// the map is not grown header by header.
pub(super) const ANSWER_HEADERS: usize = 24;

/// The answer `(status, headers, body).into_response()` makes (a body without a
/// `content-type` is `application/octet-stream`), with the map moved in rather than copied.
fn answer(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> Response {
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

pub(super) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Response headers passed back from the upstream; its `request-id` is kept as
/// `x-upstream-request-id` (ours replaces it).
pub(super) fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let n = name.as_str();
        if n == "content-type"
            || n == "cache-control"
            || n == "retry-after"
            || n == "x-should-retry"
            || n.starts_with("anthropic-ratelimit-")
        {
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                to.append(
                    axum::http::HeaderName::from_bytes(n.as_bytes()).expect("valid"),
                    v,
                );
            }
        } else if n == "request-id" {
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                to.insert("x-upstream-request-id", v);
            }
        }
    }
}

/// The whole upstream body, or a reason safe to show the client (the details are logged).
async fn read_limited(
    resp: UpstreamResponse,
    limit: usize,
    request_id: &str,
) -> Result<Bytes, String> {
    match resp.bytes(limit).await {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err(format!("response larger than {limit} bytes")),
        Err(err) => {
            tracing::warn!(request_id, error = %err, "upstream response broke");
            Err(crate::upstream::failure(&err).to_owned())
        }
    }
}
