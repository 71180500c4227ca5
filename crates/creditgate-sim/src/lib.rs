//! A simulated Anthropic Messages API upstream, for the demo, the gateway's tests and the
//! benchmarks.
//!
//! It speaks the wire format of `api.anthropic.com` (JSON and SSE, error envelopes, headers)
//! and behaves deterministically, so every number it reports can be predicted from the request.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let (addr, sim, _task) = creditgate_sim::spawn(creditgate_sim::SimConfig::default()).await?;
//! // point a client at http://{addr} ... then:
//! assert_eq!(sim.stats().messages, 0);
//! # Ok(()) }
//! ```
//!
//! # Routes
//!
//! Query strings such as `?beta=true` are accepted and ignored. Every response carries a
//! `request-id: req_sim_…` header; error bodies use the envelope
//! `{"type":"error","error":{"type":…,"message":…},"request_id":"req_sim_…"}`.
//!
//! | Route | Answer |
//! |---|---|
//! | `POST /v1/messages` | a `Message` (`id` `msg_sim_…`, `model` echoing the request), or SSE with `"stream": true` |
//! | `POST /v1/messages/count_tokens` | `{"input_tokens": N}`, with the same tokenizer |
//! | `GET /v1/models` | a page of the catalogue: `limit` (1–1000, default 20), `after_id`, `before_id`; `data`, `has_more`, `first_id`, `last_id` |
//! | `GET /v1/models/{id}` | one model by id or undated alias, else 404 `not_found_error` |
//! | `GET /_sim/stats` | [`SimStats`] as JSON |
//! | `GET /_sim/requests` | the last 100 [`RecordedRequest`]s (all routes except `/_sim/…`), oldest first |
//!
//! Other paths answer 404 `not_found_error`; a known path with the wrong method answers 405.
//!
//! The catalogue holds the active, legacy and deprecated models of the price book, newest first:
//! claude-haiku-5-5, claude-sonnet-5-5, claude-opus-5-5, claude-fable-5-1, claude-mythos-5-1,
//! claude-opus-5, claude-sonnet-5, claude-fable-5, claude-mythos-5, claude-opus-4-8,
//! claude-opus-4-7-20260416, claude-sonnet-4-6, claude-opus-4-6-20260205,
//! claude-opus-4-5-20251101, claude-haiku-4-5-20251001, claude-sonnet-4-5-20250929. Dated
//! snapshots are listed under their dated id and found by their alias too. Dates, limits and
//! capabilities are illustrative. `POST /v1/messages` accepts any model name.
//!
//! # Validation
//!
//! On `/v1/…` routes, in this order:
//! - a body over 32 MiB → 413 `request_too_large` (on every route);
//! - with [`SimConfig::api_key`] set, `x-api-key` (or `Authorization: Bearer`) must equal it,
//!   else 401 `authentication_error`;
//! - no `anthropic-version` header → 400 `invalid_request_error` (any value is accepted);
//! - for messages and count_tokens, 400 `invalid_request_error` when the body is not a JSON
//!   object, `model` is missing or empty, `messages` is missing or empty, a message's `role` is
//!   not `user`/`assistant` or its `content` is neither a string nor a list; for messages also
//!   when `max_tokens` is missing, negative or not an integer, `thinking.type` is unknown or
//!   `enabled` lacks `budget_tokens`, a `cache_control` is not `{"type":"ephemeral"}` with `ttl`
//!   `"5m"`/`"1h"`, or more than 4 breakpoints are given; and when a directive is malformed.
//!
//! # Tokenizer
//!
//! [`tokenizer::count_text`]: each maximal run of ASCII letters and digits costs
//! `ceil(run_len / 4)`; every other non-whitespace character (Unicode scalar value) costs 1;
//! whitespace is free.
//!
//! [`tokenizer::count_request`]: 3 base tokens, plus
//! - each tool: name + description + `input_schema` as compact JSON; a server tool (any `type`
//!   other than `custom`, such as `web_search_20250305`): its name only;
//! - `system`: the string, or its blocks;
//! - each message: 4 + its content: a string, or the sum of its blocks:
//!   `text` → its text; `tool_use` → name + `input` as compact JSON; `tool_result` → its
//!   `content` (string, or blocks by these same rules); `thinking` → the thinking text;
//!   `image` → 1,600 flat; `document` with a `text` source → its `data` text, with a `content`
//!   source → its blocks, any other document → `ceil(len(source.data) / 4)` (0 without data);
//!   any other block type → its compact JSON without `cache_control`.
//!
//! Compact JSON here has its object keys sorted; the count does not depend on key order.
//!
//! # Replies
//!
//! The text is made of words of 1–4 lowercase ASCII letters separated by single spaces, so each
//! word is exactly one token. Words come from a fixed list, driven by a seed: the SHA-256 of the
//! request body (keys sorted, `stream` left out, so streamed and plain forms agree). Default
//! length: `16 + seed % 48` words; the `output_tokens=N` directive overrides it.
//!
//! **Thinking**: `thinking: {"type": "enabled", "budget_tokens": B}` gives `min(B, 64)` thinking
//! tokens, `{"type": "adaptive"}` gives 24, `thinking_tokens=N` overrides either (and is ignored
//! without thinking). A `thinking` block (thinking text in the same word scheme, and a
//! signature) comes first; with `"display": "omitted"` its text is empty but its tokens count, and
//! with `thinking_shown=N` only N of them are shown (a summary) but all count.
//! `usage.output_tokens_details.thinking_tokens` reports the thinking tokens.
//!
//! **max_tokens**: thinking is served first, then the text, and together they never exceed
//! `max_tokens`; when either was cut, `stop_reason` is `"max_tokens"`, else `"end_turn"`.
//! `max_tokens: 0` gives no content at all (no blocks, no searches) and `output_tokens` 0.
//! Blocks with no tokens (a text of 0 words) are left out.
//!
//! **Web search**: when a tool's `type` starts with `web_search_`, the reply makes N searches
//! (`web_search=N`, default 1, capped at the tool's `max_uses`), each a `server_tool_use` block
//! (`srvtoolu_sim_…`, input `{"query": …}`) then a `web_search_tool_result` block with two
//! results, after any thinking and before the text. The query words are not counted as output.
//! Each search adds 200 input tokens, reported in the JSON `usage.input_tokens` and the final
//! `message_delta`'s `input_tokens`, but not in `message_start`. `usage.server_tool_use` is
//! `{"web_search_requests": N, "web_fetch_requests": 0}` whenever the tool is present.
//!
//! **Usage** (JSON response): `input_tokens`, `cache_creation_input_tokens`,
//! `cache_read_input_tokens`, `cache_creation` (`ephemeral_5m_input_tokens`,
//! `ephemeral_1h_input_tokens`), `output_tokens` (thinking + text), `output_tokens_details` (with
//! thinking), `server_tool_use` (with web search), `service_tier` `"standard"`, `inference_geo`
//! (the request's, else `"global"`) and `speed`: `"fast"` when the request has
//! `"speed": "fast"` and the model is claude-opus-5-5, claude-opus-5 or claude-opus-4-8, else
//! `"standard"`.
//!
//! # Streaming
//!
//! Response headers `content-type: text/event-stream; charset=utf-8` and
//! `cache-control: no-cache`; frames `event: <name>\ndata: <json>\n\n` in this order:
//! 1. `message_start`: the message with `content: []`, `stop_reason: null` and the input side
//!    of the usage (`input_tokens` before searches, cache fields with the `cache_creation`
//!    split, `service_tier`, `inference_geo`, `speed`) and a placeholder `output_tokens: 1`;
//! 2. per block: `content_block_start`, then a `ping` after the first block's start only, then
//!    deltas (`thinking_delta`s and one `signature_delta`; for `server_tool_use` two
//!    `input_json_delta`s, `""` and the whole input; none for `web_search_tool_result`, whose
//!    start carries the results; `text_delta`s), then `content_block_stop`;
//! 3. one `message_delta` with `stop_reason` and the cumulative usage: `input_tokens` (with
//!    searches), `cache_creation_input_tokens`, `cache_read_input_tokens`, `output_tokens`, and
//!    `output_tokens_details` / `server_tool_use` when relevant;
//! 4. `message_stop`.
//!
//! Each `text_delta` and `thinking_delta` carries `chunk_tokens` words (default 2): a 40-token
//! answer is 20 text deltas, and the deltas concatenate to the JSON response's text. The
//! streamed and plain forms of one request report identical usage (given the same cache state).
//! Frames are produced one at a time as the client reads ([`SimConfig::chunk_latency`] before
//! each content delta), so a slow reader applies backpressure.
//!
//! # Prompt caching
//!
//! In memory, per simulator, keyed by model. Breakpoints are the blocks carrying
//! `cache_control`, in the order tools → system blocks → message blocks; a top-level
//! `cache_control` adds one on the last block (unless that block has its own). Each breakpoint
//! closes a prefix: the SHA-256 of the model and the canonical JSON of every piece up to it
//! (`cache_control` removed, string content treated as one text block) and its token count
//! (the tokenizer's running total). Then:
//! - the longest prefix present and not expired is read: `cache_read_input_tokens` = its
//!   tokens, and its expiry is pushed back by its TTL;
//! - each later breakpoint whose prefix has at least [`SimConfig::cache_min_tokens`] tokens is
//!   written at its `ttl` (`"5m"` default, or `"1h"`): the tokens between the previous read or
//!   written point and the breakpoint count as written, in
//!   `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`, and
//!   `cache_creation_input_tokens` is their sum;
//! - `input_tokens` = total − read − written.
//!
//! Entries expire on the wall clock, 5 minutes or 1 hour after their last write or read.
//! `count_tokens` never touches the cache.
//!
//! # Directives and fault injection
//!
//! Per request, from the header `x-sim-fault: key=value;key=value` and from
//! `[[sim key=value key=value]]` anywhere in the text of the last user message (its string
//! content, text blocks and tool-result text). The header wins on conflicts; an unknown key or
//! bad value is a 400. Keys:
//!
//! | Key | Effect |
//! |---|---|
//! | `latency_ms=N` | sleep N ms (at most 60,000) before each SSE frame, or before the JSON or error response |
//! | `status=S` | answer S before any byte, with the proper envelope: 400 `invalid_request_error`, 429 `rate_limit_error`, 500 `api_error`, 529 `overloaded_error` (also 401, 402, 403, 404, 413, 504); 429 and 529 add `retry-after: 1` and `x-should-retry: true` |
//! | `error_after=N` | streams: after N content deltas (0: right after `message_start`), send `event: error` with `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}` and end; no `message_delta`/`message_stop` |
//! | `reset_after=N` | streams: after N content deltas, abort the connection mid-body (no clean end of the chunked body) |
//! | `linger_ms=N` | streams: keep the body open N ms (at most 60,000) after `message_stop` before ending it |
//! | `overrun=N` | report `output_tokens` = produced + N, even beyond `max_tokens` |
//! | `output_tokens=N` | text length in tokens (still capped by `max_tokens`) |
//! | `thinking_tokens=N` | thinking length when thinking is on |
//! | `thinking_shown=N` | summarized thinking: only the first N thinking tokens are shown (streamed and in the JSON block), all of them are billed, as the real API bills the full reasoning behind a summary |
//! | `web_search=N` | number of searches when the web search tool is present |
//! | `chunk_tokens=N` | words per streamed delta (at least 1) |
//! | `hostile=negative\|huge\|missing\|string` | every integer of the final usage (JSON `usage`, last `message_delta`'s `usage`, nested ones included) becomes −5, 10^15, is left out, or becomes the string `"12"`; `message_start` is untouched |
//!
//! A content delta is any `content_block_delta` frame. When a stream has fewer than N content
//! deltas, `error_after`/`reset_after` never fire. `status`, `latency_ms` and the directive
//! syntax also apply to `count_tokens`. Injected statuses, error events and resets count in
//! [`SimStats::errors_injected`].

mod cache;
mod directives;
mod errors;
mod generation;
mod intake;
mod messages;
mod models;
mod stream;
pub mod stripe;
pub mod tokenizer;

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{middleware, Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::PromptCache;

/// How many requests [`Simulator::recorded`] keeps.
const RECORDED_REQUESTS_LIMIT: usize = 100;
/// Default smallest prefix, in tokens, that the prompt cache stores.
const DEFAULT_CACHE_MIN_TOKENS: u64 = 1_024;
/// Hex characters of randomness in `msg_sim_…` and `req_sim_…` ids.
const ID_HEX_CHARS: usize = 24;

/// How a simulator behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// When set, `/v1/…` requests must carry this key in `x-api-key`.
    pub api_key: Option<String>,
    /// Smallest prefix, in tokens, that a cache breakpoint writes (default 1,024).
    pub cache_min_tokens: u64,
    /// Sleep before each streamed content delta (default 0).
    pub chunk_latency: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            cache_min_tokens: DEFAULT_CACHE_MIN_TOKENS,
            chunk_latency: Duration::ZERO,
        }
    }
}

/// Requests handled per route (after the key and version checks) and errors injected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// `POST /v1/messages` requests, streamed or not.
    pub messages: u64,
    /// Of those, the ones answered with an SSE stream.
    pub streams: u64,
    /// `POST /v1/messages/count_tokens` requests.
    pub count_tokens: u64,
    /// `GET /v1/models` and `GET /v1/models/{id}` requests.
    pub models: u64,
    /// Injected error statuses, stream error events and connection resets.
    pub errors_injected: u64,
}

/// A request as the simulator received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query string, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names (lowercase) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
}

#[derive(Debug, Default)]
struct Counters {
    messages: AtomicU64,
    streams: AtomicU64,
    count_tokens: AtomicU64,
    models: AtomicU64,
    errors_injected: AtomicU64,
}

impl Counters {
    fn bump(&self, which: impl Fn(&Counters) -> &AtomicU64) {
        which(self).fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> SimStats {
        SimStats {
            messages: self.messages.load(Ordering::Relaxed),
            streams: self.streams.load(Ordering::Relaxed),
            count_tokens: self.count_tokens.load(Ordering::Relaxed),
            models: self.models.load(Ordering::Relaxed),
            errors_injected: self.errors_injected.load(Ordering::Relaxed),
        }
    }
}

/// Unique ids: a per-simulator nonce and a counter, hashed.
#[derive(Debug)]
struct IdSource {
    nonce: u128,
    counter: AtomicU64,
}

impl IdSource {
    fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // The standard library seeds each RandomState from the OS, which keeps two simulators
        // started in the same nanosecond apart.
        let random = u128::from(RandomState::new().build_hasher().finish());
        Self {
            nonce: now ^ (random << 64),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut hasher = Sha256::new();
        hasher.update(self.nonce.to_le_bytes());
        hasher.update(n.to_le_bytes());
        let mut id = hex::encode(hasher.finalize());
        id.truncate(ID_HEX_CHARS);
        id
    }
}

struct Shared {
    config: SimConfig,
    counters: Counters,
    recorded: Mutex<VecDeque<RecordedRequest>>,
    cache: PromptCache,
    ids: IdSource,
}

/// A simulated upstream: its configuration, prompt cache, counters and recorded requests.
///
/// Cloning is cheap and clones share all state.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// A fresh simulator: empty cache, zero counters, nothing recorded.
    pub fn new(cfg: SimConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config: cfg,
                counters: Counters::default(),
                recorded: Mutex::new(VecDeque::with_capacity(RECORDED_REQUESTS_LIMIT)),
                cache: PromptCache::default(),
                ids: IdSource::new(),
            }),
        }
    }

    /// All routes (see the crate documentation), sharing this simulator's state.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/messages", post(messages::create))
            .route("/v1/messages/count_tokens", post(messages::count_tokens))
            .route("/v1/models", get(models::list))
            .route("/v1/models/{id}", get(models::get))
            .route("/_sim/stats", get(stats))
            .route("/_sim/requests", get(requests))
            .fallback(intake::not_found)
            .method_not_allowed_fallback(intake::method_not_allowed)
            .layer(middleware::from_fn_with_state(self.clone(), intake::intake))
            .with_state(self.clone())
    }

    /// The counters so far.
    pub fn stats(&self) -> SimStats {
        self.shared.counters.snapshot()
    }

    /// The last 100 requests, oldest first (the simulator's own `/_sim/…` routes excluded).
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.lock_recorded().iter().cloned().collect()
    }

    fn record(&self, request: RecordedRequest) {
        let mut recorded = self.lock_recorded();
        if recorded.len() == RECORDED_REQUESTS_LIMIT {
            recorded.pop_front();
        }
        recorded.push_back(request);
    }

    fn lock_recorded(&self) -> std::sync::MutexGuard<'_, VecDeque<RecordedRequest>> {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn stats(State(sim): State<Simulator>) -> Json<SimStats> {
    Json(sim.stats())
}

async fn requests(State(sim): State<Simulator>) -> Json<Vec<RecordedRequest>> {
    Json(sim.recorded())
}

/// Starts a simulator on `127.0.0.1:0` in a background task and returns the bound address.
///
/// Abort the task (or drop the runtime) to stop it. To listen elsewhere, bind a listener
/// yourself and call [`serve`].
pub async fn spawn(
    cfg: SimConfig,
) -> std::io::Result<(SocketAddr, Simulator, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let sim = Simulator::new(cfg);
    let served = sim.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = serve(listener, served).await {
            tracing::error!(%error, "simulated upstream stopped");
        }
    });
    Ok((addr, sim, task))
}

/// Serves the simulator on a listener, with `TCP_NODELAY` on every connection, until the task
/// is dropped or aborted.
pub async fn serve(listener: tokio::net::TcpListener, sim: Simulator) -> std::io::Result<()> {
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, sim.router()).await
}
