//! The upstream (Anthropic or the simulator): one HTTP client, keys used round-robin, failover to
//! the next key only when the request provably was not delivered or was refused unbilled
//! (`docs/gateway.md`): a connection that could not be made, or an explicit refusal (401, 403, 429,
//! 529). A request that may have reached the upstream (a timeout or a reset after it was
//! written, a 500/502/504) is never sent again, so it is never billed twice upstream.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

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

/// The most hyper buffers of one upstream connection's response. hyper's default (about 400 KiB)
/// fills whenever the upstream is ahead of a slow client, and with a thousand such streams that is
/// the gateway's memory (`docs/benchmarks.md`). 8 KiB is hyper's smallest allowed cap and twice
/// nginx's default `proxy_buffer_size` (one page), so it holds any response head the upstream
/// sends (Anthropic's are under 2 KiB); every piece of a stream is at most this long, so each
/// buffer the pump keeps for a slow client (the scanner's copy, the batch, the chunks waiting for
/// the client) is bounded by it too.
pub const UPSTREAM_READ_BUFFER_MAX: usize = 8 * 1024;

/// Idle keep-alive connections kept per upstream host.
const UPSTREAM_IDLE_PER_HOST: usize = 256;

/// How long an idle pooled connection is kept.
const UPSTREAM_POOL_IDLE: Duration = Duration::from_secs(90);

/// TCP keep-alive probes on upstream connections: the first after this much silence, then one
/// every [`UPSTREAM_TCP_KEEPALIVE`], at most [`UPSTREAM_TCP_KEEPALIVE_RETRIES`] unanswered.
const UPSTREAM_TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const UPSTREAM_TCP_KEEPALIVE_RETRIES: u32 = 3;

/// Written data unacknowledged this long closes the connection (Linux's `TCP_USER_TIMEOUT`).
const UPSTREAM_TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

type Connector = TimedConnect<HttpsConnector<HttpConnector>>;
type Client = hyper_util::client::legacy::Client<Connector, Full<Bytes>>;

pub struct Upstream {
    base_url: String,
    keys: Vec<String>,
    next: AtomicUsize,
    client: Client,
    idle_timeout: Duration,
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

    fn from_transport(err: TransportError) -> Self {
        Self::Unreachable {
            what: failure(&err),
            detail: err.detail,
        }
    }
}

/// What went wrong on the wire, in the categories clients are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    TimedOut,
    Connect,
    BrokeOff,
    Request,
}

/// A failed exchange with the upstream: its category and the transport's own description (for
/// the log; it may name the upstream's URL).
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct TransportError {
    kind: Failure,
    detail: String,
}

impl TransportError {
    fn new(kind: Failure, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut detail = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        Self { kind, detail }
    }

    fn timed_out(what: &str) -> Self {
        Self {
            kind: Failure::TimedOut,
            detail: format!("{what} timed out"),
        }
    }

    /// From the client: a connection that could not be made (timed out or refused) is
    /// [`Failure::Connect`]-like and safe to fail over; anything else happened after sending.
    fn from_client(err: &hyper_util::client::legacy::Error) -> Self {
        let kind = if caused_by_timeout(err) {
            Failure::TimedOut
        } else if err.is_connect() {
            Failure::Connect
        } else {
            Failure::Request
        };
        Self::new(kind, err)
    }
}

fn caused_by_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// What failed, in words safe to show a client (the transport's own messages name the URL).
pub fn failure(err: &TransportError) -> &'static str {
    match err.kind {
        Failure::TimedOut => "the upstream timed out",
        Failure::Connect => "the connection to the upstream failed",
        Failure::BrokeOff => "the upstream's response broke off",
        Failure::Request => "the upstream request failed",
    }
}

/// The upstream's answer: status and headers, then the body chunk by chunk, each read within the
/// idle timeout.
pub struct UpstreamResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    idle_timeout: Duration,
}

impl UpstreamResponse {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The next piece of the body, `None` at its end. A piece is at most
    /// [`UPSTREAM_READ_BUFFER_MAX`] bytes (it is a slice of hyper's read buffer).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        loop {
            let frame = tokio::time::timeout(self.idle_timeout, self.body.frame())
                .await
                .map_err(|_| TransportError::timed_out("reading the upstream's response"))?;
            match frame {
                None => return Ok(None),
                Some(Err(err)) => return Err(TransportError::new(Failure::BrokeOff, &err)),
                // Trailers carry nothing we pass on.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole body, at most `limit` bytes (`None` when it is longer).
    pub async fn bytes(mut self, limit: usize) -> Result<Option<Bytes>, TransportError> {
        let mut buf = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if buf.len() + chunk.len() > limit {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(Bytes::from(buf)))
    }
}

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("upstream TLS: {0}")]
pub struct ClientBuildError(#[from] rustls::Error);

/// The upstream's HTTP/1 client: the read buffer capped at [`UPSTREAM_READ_BUFFER_MAX`],
/// `TCP_NODELAY`, the keep-alive pool, and `connect_timeout` around the whole connection (TCP and
/// TLS handshake, so a handshake that hangs fails over like a refused connection). TLS trusts the
/// Mozilla roots compiled in (`webpki-roots`), as the other HTTP clients here do.
fn client(connect_timeout: Duration) -> Result<Client, ClientBuildError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(UPSTREAM_TCP_KEEPALIVE));
    http.set_keepalive_interval(Some(UPSTREAM_TCP_KEEPALIVE));
    http.set_keepalive_retries(Some(UPSTREAM_TCP_KEEPALIVE_RETRIES));
    http.set_tcp_user_timeout(Some(UPSTREAM_TCP_USER_TIMEOUT));
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let connector = TimedConnect {
        inner: https,
        timeout: connect_timeout,
    };
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(UPSTREAM_POOL_IDLE)
            .pool_max_idle_per_host(UPSTREAM_IDLE_PER_HOST)
            .http1_max_buf_size(UPSTREAM_READ_BUFFER_MAX)
            .build(connector),
    )
}

/// A connector whose whole connection (TCP connect and TLS handshake) must finish in `timeout`;
/// running out is a connect error that times out, so the request fails over.
#[derive(Clone)]
struct TimedConnect<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower_service::Service<Uri> for TimedConnect<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = C::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting to the upstream timed out",
                )
                .into()),
            }
        })
    }
}

/// One attempt's request: the forwarded headers and the upstream key.
fn request(
    method: &Method,
    uri: &Uri,
    client_headers: &HeaderMap,
    body: &Bytes,
    key: Option<&String>,
) -> Result<Request<Full<Bytes>>, TransportError> {
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    let headers = req.headers_mut();
    for name in FORWARDED_HEADERS {
        for value in client_headers.get_all(name) {
            headers.append(name, value.clone());
        }
    }
    if let Some(key) = key {
        let key =
            HeaderValue::from_str(key).map_err(|e| TransportError::new(Failure::Request, &e))?;
        headers.insert("x-api-key", key);
    }
    Ok(req)
}

impl Upstream {
    pub fn new(
        base_url: &str,
        keys: Vec<String>,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Self, ClientBuildError> {
        Ok(Self {
            base_url: base_url.to_owned(),
            keys,
            next: AtomicUsize::new(0),
            client: client(connect_timeout)?,
            idle_timeout,
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
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri = Uri::try_from(format!("{}{}", self.base_url, path_and_query)).map_err(|err| {
            UpstreamError::from_transport(TransportError::new(Failure::Request, &err))
        })?;
        let attempts = self.keys.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_err: Option<TransportError> = None;
        for attempt in 0..attempts {
            let key = self.keys.get((start + attempt) % attempts);
            let req = request(&method, &uri, client_headers, &body, key)
                .map_err(UpstreamError::from_transport)?;
            // As before, the idle timeout also bounds the wait for the response's head
            // (connecting included).
            let sent = tokio::time::timeout(self.idle_timeout, self.client.request(req)).await;
            match sent {
                Ok(Ok(resp))
                    if attempt + 1 < attempts && worth_failover(resp.status().as_u16()) =>
                {
                    tracing::warn!(
                        status = resp.status().as_u16(),
                        "upstream refused; failing over"
                    );
                }
                Ok(Ok(resp)) => {
                    let (head, body) = resp.into_parts();
                    return Ok(UpstreamResponse {
                        status: head.status,
                        headers: head.headers,
                        body,
                        idle_timeout: self.idle_timeout,
                    });
                }
                // Not even connected: the request was not delivered.
                Ok(Err(err)) if err.is_connect() => {
                    let err = TransportError::from_client(&err);
                    tracing::warn!(error = %err, "upstream unreachable; failing over");
                    last_err = Some(err);
                }
                Ok(Err(err)) => {
                    let err = TransportError::from_client(&err);
                    tracing::warn!(error = %err, "upstream failed after the request was sent; not retried");
                    return Err(UpstreamError::from_transport(err));
                }
                Err(_) => {
                    let err = TransportError::timed_out("waiting for the upstream's response");
                    tracing::warn!(error = %err, "upstream failed after the request was sent; not retried");
                    return Err(UpstreamError::from_transport(err));
                }
            }
        }
        Err(match last_err {
            Some(err) => UpstreamError::from_transport(err),
            None => UpstreamError::Unreachable {
                what: "no upstream key answered",
                detail: "no response".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Long enough that hyper's default buffer (about 400 KiB) would fill many times over.
    const ANSWER_BYTES: usize = 4 * 1024 * 1024;

    /// An upstream that answers with the whole body at once, far ahead of a slow reader: every
    /// piece read is a slice of hyper's read buffer, so none may exceed the cap.
    #[tokio::test]
    async fn a_slow_reader_sees_the_read_buffer_capped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                conn.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                 transfer-encoding: chunked\r\n\r\n{ANSWER_BYTES:x}\r\n"
            )
            .into_bytes();
            answer.extend(std::iter::repeat_n(b'x', ANSWER_BYTES));
            answer.extend_from_slice(b"\r\n0\r\n\r\n");
            conn.write_all(&answer).await.unwrap();
        });
        let upstream = Upstream::new(
            &format!("http://{addr}"),
            vec!["key".into()],
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        let mut resp = upstream
            .send(
                Method::POST,
                "/v1/messages",
                &HeaderMap::new(),
                Bytes::new(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let (mut total, mut largest) = (0, 0);
        while let Some(chunk) = resp.chunk().await.unwrap() {
            total += chunk.len();
            largest = largest.max(chunk.len());
            // The client is slow: the upstream's bytes pile up in the kernel, not in hyper.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(total, ANSWER_BYTES);
        assert!(
            largest <= UPSTREAM_READ_BUFFER_MAX,
            "a piece of {largest} bytes: the read buffer outgrew its cap"
        );
    }
}
