//! The upstream (Anthropic or the simulator): one HTTP client, keys used round-robin, failover to
//! the next key only when the request provably was not delivered or was refused unbilled
//! (`docs/gateway.md`): a connection that could not be made, or an explicit refusal (401, 403, 429,
//! 529). A request that may have reached the upstream (a timeout or a reset after it was
//! written, a 500/502/504) is never sent again, so it is never billed twice upstream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use bytes::Bytes;

use crate::error::ApiError;

/// Request headers copied from the client to the upstream. Everything else (the client's own key,
/// cookies, hop-by-hop headers) stays behind.
const FORWARDED_HEADERS: [&str; 4] = [
    "anthropic-version",
    "anthropic-beta",
    "content-type",
    "anthropic-user-profile-id",
];

/// Longest beta name echoed in an error.
const MAX_BETA_SHOWN: usize = 64;

/// Refuses a request that asks for an `anthropic-beta` the operator has not enabled (only betas
/// the price book bills completely can be), before any work is done for it.
pub fn check_betas(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    for value in headers.get_all("anthropic-beta") {
        let text = value
            .to_str()
            .map_err(|_| ApiError::invalid_request("anthropic-beta: must be ASCII text"))?;
        for beta in text.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            if !allowed.iter().any(|a| a == beta) {
                let shown: String = beta.chars().take(MAX_BETA_SHOWN).collect();
                return Err(ApiError::invalid_request(format!(
                    "anthropic-beta: `{shown}` is not enabled on this gateway (its costs could \
                     not be billed). Enabled betas: {}.",
                    allowed.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// The same allow-list for the body's `betas` field (the SDKs send betas as the header, but the
/// field reaches the upstream too): every entry a string the operator enabled, at most
/// [`creditgate_core::pricing::MAX_BETAS`] of them.
pub fn check_body_betas(
    scan: &creditgate_core::pricing::RequestScan,
    allowed: &[String],
) -> Result<(), ApiError> {
    if scan.betas_not_array {
        return Err(ApiError::invalid_request(
            "betas: must be an array of strings",
        ));
    }
    let Some(betas) = &scan.betas else {
        return Ok(());
    };
    if betas.len() > creditgate_core::pricing::MAX_BETAS {
        return Err(ApiError::invalid_request(format!(
            "betas: at most {} entries",
            creditgate_core::pricing::MAX_BETAS
        )));
    }
    for beta in betas {
        let Some(beta) = beta else {
            return Err(ApiError::invalid_request(
                "betas: must be an array of strings",
            ));
        };
        if !beta
            .as_str()
            .is_some_and(|b| allowed.iter().any(|a| a == b))
        {
            let shown: String = beta.head().chars().take(MAX_BETA_SHOWN).collect();
            return Err(ApiError::invalid_request(format!(
                "betas: `{shown}` is not enabled on this gateway (its costs could not be \
                 billed). Enabled betas: {}.",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Statuses after which the next upstream key is tried: refusals that did no billable work
/// (nothing has been sent to the client yet).
fn worth_failover(status: u16) -> bool {
    matches!(status, 401 | 403 | 429 | 529)
}

pub struct Upstream {
    base_url: String,
    keys: Vec<String>,
    next: AtomicUsize,
    client: reqwest::Client,
}

/// No attempt got a response. What clients are told never names the upstream's URL or the
/// transport's details; those go to the log ([`UpstreamError::detail`]) with the request id.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("The upstream API could not be reached ({what}); nothing was charged.")]
    Unreachable { what: &'static str, detail: String },
}

impl UpstreamError {
    /// The transport's own description (it may name the upstream's URL): for the log only.
    pub fn detail(&self) -> &str {
        match self {
            Self::Unreachable { detail, .. } => detail,
        }
    }
}

/// What failed, in words safe to show a client (reqwest's own messages name the URL).
pub fn failure(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "the upstream timed out"
    } else if err.is_connect() {
        "the connection to the upstream failed"
    } else if err.is_body() || err.is_decode() {
        "the upstream's response broke off"
    } else {
        "the upstream request failed"
    }
}

impl Upstream {
    pub fn new(
        base_url: &str,
        keys: Vec<String>,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(connect_timeout)
            .read_timeout(idle_timeout)
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            base_url: base_url.to_owned(),
            keys,
            next: AtomicUsize::new(0),
            client,
        })
    }

    /// Sends one request, trying each upstream key in turn while the failure happened before any
    /// response byte was passed on. Returns the last response (even an error status) or, if no
    /// attempt got a response, the last connection error.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}{}", self.base_url, path_and_query);
        let attempts = self.keys.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_err: Option<reqwest::Error> = None;
        for attempt in 0..attempts {
            let mut req = self.client.request(method.clone(), &url).body(body.clone());
            for name in FORWARDED_HEADERS {
                for value in client_headers.get_all(name) {
                    req = req.header(name, value);
                }
            }
            if let Some(key) = self.keys.get((start + attempt) % attempts) {
                req = req.header("x-api-key", key);
            }
            match req.send().await {
                Ok(resp) if attempt + 1 < attempts && worth_failover(resp.status().as_u16()) => {
                    tracing::warn!(
                        status = resp.status().as_u16(),
                        "upstream refused; failing over"
                    );
                }
                Ok(resp) => return Ok(resp),
                // Not even connected: the request was not delivered.
                Err(err) if err.is_connect() => {
                    tracing::warn!(error = %err, "upstream unreachable; failing over");
                    last_err = Some(err);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "upstream failed after the request was sent; not retried");
                    return Err(UpstreamError::Unreachable {
                        what: failure(&err),
                        detail: err.to_string(),
                    });
                }
            }
        }
        Err(match last_err {
            Some(err) => UpstreamError::Unreachable {
                what: failure(&err),
                detail: err.to_string(),
            },
            None => UpstreamError::Unreachable {
                what: "no upstream key answered",
                detail: "no response".into(),
            },
        })
    }
}
