//! Forwarding a complete (non-streaming) answer, or any upstream error, back to the client.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use creditgate_core::usage::ReceiptStatus;
use serde_json::Value;

use super::Admitted;
use crate::config::MAX_UPSTREAM_JSON_BYTES;
use crate::error::ApiError;

impl Admitted {
    /// A complete (non-streaming) response, or any upstream error response.
    pub(super) async fn json(self, resp: reqwest::Response) -> Response {
        let status = resp.status();
        let mut out_headers = HeaderMap::new();
        copy_response_headers(resp.headers(), &mut out_headers);
        let body = match self
            .unless_cut(read_limited(resp, MAX_UPSTREAM_JSON_BYTES))
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
        let usage = if status.is_success() {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("usage").cloned())
        } else {
            None
        };
        let settled = match usage {
            Some(u) => {
                self.settle_with_retries(ReceiptStatus::Settled, Some(u), "")
                    .await
            }
            None => {
                let why = if status.is_success() {
                    "response without usage"
                } else {
                    "upstream error"
                };
                self.settle_with_retries(ReceiptStatus::Free, None, why)
                    .await
            }
        };
        self.cost_headers(&mut out_headers, &settled);
        let code = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        (code, out_headers, body).into_response()
    }
}

pub(super) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Response headers passed back from the upstream; its `request-id` is kept as
/// `x-upstream-request-id` (ours replaces it).
pub(super) fn copy_response_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
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

async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if buf.len() + chunk.len() > limit {
            return Err(format!("response larger than {limit} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}
