//! End-to-end tests: a real simulator on a loopback port, driven over HTTP with reqwest.

use std::time::{Duration, Instant};

use creditgate_sim::tokenizer::{count_request, count_text};
use creditgate_sim::{spawn, RecordedRequest, SimConfig, SimStats, Simulator};
use futures_util::StreamExt;
use serde_json::{json, Value};

const MODEL: &str = "claude-sonnet-5-5";

/// A running simulator and a client pointed at it; the server task stops when this is dropped.
struct TestSim {
    base: String,
    sim: Simulator,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One parsed SSE frame.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    data: Value,
}

impl TestSim {
    async fn start() -> Self {
        Self::start_with(SimConfig::default()).await
    }

    async fn start_with(cfg: SimConfig) -> Self {
        let (addr, sim, task) = spawn(cfg).await.expect("simulator starts");
        Self {
            base: format!("http://{addr}"),
            sim,
            client: reqwest::Client::new(),
            task,
        }
    }

    /// POSTs JSON with `anthropic-version` plus the given headers.
    async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("anthropic-version", "2023-06-01")
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .expect("request sent")
    }

    /// A non-streamed message that must succeed.
    async fn message(&self, body: &Value) -> Value {
        self.message_with(body, &[]).await
    }

    async fn message_with(&self, body: &Value, headers: &[(&str, &str)]) -> Value {
        let response = self.post("/v1/messages", body, headers).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        response.json().await.expect("JSON message")
    }

    /// A streamed message that must succeed, parsed into frames.
    async fn stream(&self, body: &Value) -> Vec<Event> {
        self.stream_with(body, &[]).await
    }

    async fn stream_with(&self, body: &Value, headers: &[(&str, &str)]) -> Vec<Event> {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let response = self.post("/v1/messages", &body, headers).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream; charset=utf-8"
        );
        assert_eq!(response.headers()["cache-control"], "no-cache");
        parse_sse(&response.text().await.expect("complete stream"))
    }
}

fn parse_sse(text: &str) -> Vec<Event> {
    assert!(text.ends_with("\n\n"), "stream ends with a complete frame");
    text.split_terminator("\n\n")
        .map(|frame| {
            let mut lines = frame.lines();
            let name = lines
                .next()
                .and_then(|l| l.strip_prefix("event: "))
                .expect("event line");
            let data = lines
                .next()
                .and_then(|l| l.strip_prefix("data: "))
                .expect("data line");
            assert!(lines.next().is_none(), "two lines per frame");
            let data: Value = serde_json::from_str(data).expect("JSON data");
            assert_eq!(data["type"], name, "data repeats the event name");
            Event {
                name: name.to_owned(),
                data,
            }
        })
        .collect()
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

fn request(text: &str, max_tokens: u64) -> Value {
    json!({
        "model": MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}]
    })
}

/// Words in a reply text, checking the single-space format.
fn word_count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    assert!(!text.starts_with(' ') && !text.ends_with(' ') && !text.contains("  "));
    let words = text.split(' ').count() as u64;
    assert_eq!(count_text(text), words, "one token per word");
    words
}

fn text_of(message: &Value) -> String {
    message["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect()
}

fn delta_text(events: &[Event], delta_type: &str, field: &str) -> String {
    events
        .iter()
        .filter(|e| e.name == "content_block_delta" && e.data["delta"]["type"] == delta_type)
        .map(|e| e.data["delta"][field].as_str().unwrap().to_owned())
        .collect()
}

fn final_usage(events: &[Event]) -> Value {
    events
        .iter()
        .rev()
        .find(|e| e.name == "message_delta")
        .expect("a message_delta")
        .data["usage"]
        .clone()
}

fn start_usage(events: &[Event]) -> Value {
    assert_eq!(events[0].name, "message_start");
    events[0].data["message"]["usage"].clone()
}

/// Text `tokens` tokens long: four-letter words.
fn long_text(tokens: usize) -> String {
    vec!["abcd"; tokens].join(" ")
}

fn assert_envelope(body: &Value, error_type: &str, request_id: &str) {
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], error_type);
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(body["request_id"], request_id);
    assert!(request_id.starts_with("req_sim_"));
}

async fn error_of(response: reqwest::Response, status: u16, error_type: &str) -> Value {
    assert_eq!(response.status(), status);
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_envelope(&body, error_type, &request_id);
    body
}

#[tokio::test]
async fn message_has_the_api_shape_and_predictable_usage() {
    let app = TestSim::start().await;
    let body = request("Hello, world!", 1024);
    let response = app.post("/v1/messages?beta=true", &body, &[]).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(request_id.starts_with("req_sim_"));
    let message: Value = response.json().await.unwrap();

    assert!(message["id"].as_str().unwrap().starts_with("msg_sim_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], MODEL);
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    assert_eq!(message["content"].as_array().unwrap().len(), 1);
    assert_eq!(message["content"][0]["type"], "text");

    let words = word_count(&text_of(&message));
    assert!((16..64).contains(&words), "{words}");
    let usage = &message["usage"];
    // 3 base + 4 message + "Hello" 2 + "," 1 + "world" 2 + "!" 1
    assert_eq!(usage["input_tokens"], 13);
    assert_eq!(usage["input_tokens"], count_request(&body));
    assert_eq!(usage["output_tokens"], words);
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["cache_read_input_tokens"], 0);
    assert_eq!(
        usage["cache_creation"],
        json!({"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0})
    );
    assert_eq!(usage["service_tier"], "standard");
    assert_eq!(usage["inference_geo"], "global");
    assert_eq!(usage["speed"], "standard");
    assert!(usage.get("server_tool_use").is_none());
    assert!(usage.get("output_tokens_details").is_none());

    // deterministic: the same request gives the same text
    let again = app.message(&body).await;
    assert_eq!(text_of(&again), text_of(&message));
    assert_ne!(again["id"], message["id"]);
}

#[tokio::test]
async fn stream_frames_come_in_order_and_match_the_json_usage() {
    let app = TestSim::start().await;
    let body = request("stream parity please", 1024);
    let message = app.message(&body).await;
    let events = app.stream(&body).await;

    let text = text_of(&message);
    let words = word_count(&text);
    let deltas = words.div_ceil(2) as usize;
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), expected);

    let start = &events[0].data["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["model"], MODEL);
    assert!(start["id"].as_str().unwrap().starts_with("msg_sim_"));
    let start_usage = start_usage(&events);
    assert_eq!(start_usage["output_tokens"], 1);
    assert_eq!(
        start_usage["input_tokens"],
        message["usage"]["input_tokens"]
    );
    assert_eq!(
        start_usage["cache_creation"]["ephemeral_5m_input_tokens"],
        0
    );
    assert_eq!(start_usage["service_tier"], "standard");
    assert_eq!(start_usage["inference_geo"], "global");

    assert_eq!(
        events[1].data["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(delta_text(&events, "text_delta", "text"), text);
    let stop = events.iter().find(|e| e.name == "message_delta").unwrap();
    assert_eq!(stop.data["delta"]["stop_reason"], "end_turn");

    let streamed = final_usage(&events);
    let plain = &message["usage"];
    for field in [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ] {
        assert_eq!(streamed[field], plain[field], "{field}");
    }
    assert_eq!(app.sim.stats().streams, 1);
    assert_eq!(app.sim.stats().messages, 2);
}

#[tokio::test]
async fn chunk_tokens_sets_words_per_delta() {
    let app = TestSim::start().await;
    let events = app
        .stream(&request("[[sim output_tokens=40]] go", 1024))
        .await;
    let deltas: Vec<&Event> = events
        .iter()
        .filter(|e| e.name == "content_block_delta")
        .collect();
    assert_eq!(deltas.len(), 20);
    for d in &deltas {
        assert_eq!(count_text(d.data["delta"]["text"].as_str().unwrap()), 2);
    }
    let events = app
        .stream_with(
            &request("[[sim output_tokens=40]] go", 1024),
            &[("x-sim-fault", "chunk_tokens=7")],
        )
        .await;
    let deltas = events
        .iter()
        .filter(|e| e.name == "content_block_delta")
        .count();
    assert_eq!(deltas, 6);
    assert_eq!(final_usage(&events)["output_tokens"], 40);
}

#[tokio::test]
async fn max_tokens_caps_output_and_sets_stop_reason() {
    let app = TestSim::start().await;
    let capped = app.message(&request("[[sim output_tokens=50]]", 7)).await;
    assert_eq!(capped["stop_reason"], "max_tokens");
    assert_eq!(capped["usage"]["output_tokens"], 7);
    assert_eq!(word_count(&text_of(&capped)), 7);

    let exact = app.message(&request("[[sim output_tokens=7]]", 7)).await;
    assert_eq!(exact["stop_reason"], "end_turn");
    assert_eq!(exact["usage"]["output_tokens"], 7);

    let empty = app.message(&request("pre-warm", 0)).await;
    assert_eq!(empty["content"], json!([]));
    assert_eq!(empty["usage"]["output_tokens"], 0);
    assert_eq!(empty["stop_reason"], "max_tokens");

    let streamed = app.stream(&request("pre-warm", 0)).await;
    assert_eq!(
        names(&streamed),
        ["message_start", "message_delta", "message_stop"]
    );
    assert_eq!(final_usage(&streamed)["output_tokens"], 0);
}

#[tokio::test]
async fn thinking_comes_first_and_counts_as_output() {
    let app = TestSim::start().await;
    let mut body = request("think about it", 4096);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    let message = app.message(&body).await;
    let content = message["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "thinking");
    assert_eq!(content[1]["type"], "text");
    assert!(!content[0]["signature"].as_str().unwrap().is_empty());
    let thinking = word_count(content[0]["thinking"].as_str().unwrap());
    assert_eq!(thinking, 64);
    let text = word_count(&text_of(&message));
    assert_eq!(message["usage"]["output_tokens"], thinking + text);
    assert_eq!(
        message["usage"]["output_tokens_details"]["thinking_tokens"],
        64
    );

    let events = app.stream(&body).await;
    assert_eq!(
        events[1].data["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(events[2].name, "ping");
    assert_eq!(
        delta_text(&events, "thinking_delta", "thinking"),
        content[0]["thinking"].as_str().unwrap()
    );
    let signatures: Vec<&Event> = events
        .iter()
        .filter(|e| e.data["delta"]["type"] == "signature_delta")
        .collect();
    assert_eq!(signatures.len(), 1);
    assert_eq!(signatures[0].data["index"], 0);
    assert_eq!(
        signatures[0].data["delta"]["signature"],
        content[0]["signature"]
    );
    let text_start = events
        .iter()
        .find(|e| e.name == "content_block_start" && e.data["index"] == 1)
        .unwrap();
    assert_eq!(text_start.data["content_block"]["type"], "text");
    assert_eq!(
        final_usage(&events)["output_tokens_details"]["thinking_tokens"],
        64
    );
    assert_eq!(final_usage(&events)["output_tokens"], thinking + text);

    let mut adaptive = request("adapt", 4096);
    adaptive["thinking"] = json!({"type": "adaptive"});
    let message = app.message(&adaptive).await;
    assert_eq!(
        message["usage"]["output_tokens_details"]["thinking_tokens"],
        24
    );

    let mut directed = request("[[sim thinking_tokens=10 output_tokens=5]]", 4096);
    directed["thinking"] = json!({"type": "adaptive"});
    let message = app.message(&directed).await;
    assert_eq!(message["usage"]["output_tokens"], 15);
    assert_eq!(
        message["usage"]["output_tokens_details"]["thinking_tokens"],
        10
    );

    // omitted thinking: no text, same tokens
    let mut omitted = body.clone();
    omitted["thinking"]["display"] = json!("omitted");
    let message = app.message(&omitted).await;
    assert_eq!(message["content"][0]["thinking"], "");
    assert_eq!(
        message["usage"]["output_tokens_details"]["thinking_tokens"],
        64
    );
    let events = app.stream(&omitted).await;
    assert_eq!(delta_text(&events, "thinking_delta", "thinking"), "");
    assert_eq!(
        final_usage(&events)["output_tokens_details"]["thinking_tokens"],
        64
    );

    // summarized thinking: a summary of 6 tokens is shown, all 400 are billed
    let mut summarized = request("[[sim thinking_tokens=400 thinking_shown=6]]", 4096);
    summarized["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let message = app.message(&summarized).await;
    let shown = message["content"][0]["thinking"].as_str().unwrap();
    assert_eq!(shown.split_whitespace().count(), 6);
    assert_eq!(
        message["usage"]["output_tokens_details"]["thinking_tokens"],
        400
    );
    let events = app.stream(&summarized).await;
    assert_eq!(
        delta_text(&events, "thinking_delta", "thinking")
            .split_whitespace()
            .count(),
        6
    );
    assert_eq!(
        final_usage(&events)["output_tokens_details"]["thinking_tokens"],
        400
    );

    // thinking eats the whole budget: no text block, stopped by max_tokens
    let mut tight = request("tight", 30);
    tight["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let message = app.message(&tight).await;
    assert_eq!(message["usage"]["output_tokens"], 30);
    assert_eq!(
        message["usage"]["output_tokens_details"]["thinking_tokens"],
        30
    );
    assert_eq!(message["content"].as_array().unwrap().len(), 1);
    assert_eq!(message["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn cache_writes_at_5m_then_reads_on_repeat() {
    let app = TestSim::start().await;
    let system = long_text(1_200);
    let body = json!({
        "model": MODEL,
        "max_tokens": 64,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "what now?"}]
    });
    let total = count_request(&body);
    let prefix = 3 + 1_200;
    let first = app.message(&body).await;
    let usage = &first["usage"];
    assert_eq!(usage["cache_creation_input_tokens"], prefix);
    assert_eq!(usage["cache_creation"]["ephemeral_5m_input_tokens"], prefix);
    assert_eq!(usage["cache_creation"]["ephemeral_1h_input_tokens"], 0);
    assert_eq!(usage["cache_read_input_tokens"], 0);
    assert_eq!(usage["input_tokens"], total - prefix);

    // a later turn with the same prefix reads it, streamed this time
    let mut next = body.clone();
    next["messages"] = json!([{"role": "user", "content": "and then?"}]);
    let events = app.stream(&next).await;
    let start = start_usage(&events);
    assert_eq!(start["cache_read_input_tokens"], prefix);
    assert_eq!(start["cache_creation_input_tokens"], 0);
    assert_eq!(start["input_tokens"], count_request(&next) - prefix);
    assert_eq!(final_usage(&events)["cache_read_input_tokens"], prefix);

    // another model does not share the cache
    let mut other = body.clone();
    other["model"] = json!("claude-opus-5-5");
    let other = app.message(&other).await;
    assert_eq!(other["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(other["usage"]["cache_creation_input_tokens"], prefix);
}

#[tokio::test]
async fn cache_splits_writes_by_ttl() {
    let app = TestSim::start().await;
    let tool = json!({
        "name": "lookup",
        "description": long_text(1_100),
        "input_schema": {"type": "object"},
        "cache_control": {"type": "ephemeral", "ttl": "1h"}
    });
    let body = json!({
        "model": MODEL,
        "max_tokens": 16,
        "tools": [tool],
        "system": [{"type": "text", "text": long_text(500), "cache_control": {"type": "ephemeral", "ttl": "5m"}}],
        "messages": [{"role": "user", "content": "hi"}]
    });
    let total = count_request(&body);
    let tool_prefix = count_request(&json!({"tools": [body["tools"][0]]}));
    let first = app.message(&body).await;
    let usage = &first["usage"];
    assert_eq!(
        usage["cache_creation"]["ephemeral_1h_input_tokens"],
        tool_prefix
    );
    assert_eq!(usage["cache_creation"]["ephemeral_5m_input_tokens"], 500);
    assert_eq!(usage["cache_creation_input_tokens"], tool_prefix + 500);
    assert_eq!(usage["input_tokens"], total - tool_prefix - 500);

    // with a new system prompt only the tools prefix is still cached
    let mut changed = body.clone();
    changed["system"][0]["text"] = json!(long_text(600));
    let second = app.message(&changed).await;
    let usage = &second["usage"];
    assert_eq!(usage["cache_read_input_tokens"], tool_prefix);
    assert_eq!(usage["cache_creation"]["ephemeral_5m_input_tokens"], 600);
    assert_eq!(usage["cache_creation"]["ephemeral_1h_input_tokens"], 0);
}

#[tokio::test]
async fn top_level_cache_control_caches_the_whole_prompt() {
    let app = TestSim::start().await;
    let body = json!({
        "model": MODEL,
        "max_tokens": 16,
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
        "messages": [{"role": "user", "content": long_text(1_100)}]
    });
    let total = count_request(&body);
    let first = app.message(&body).await;
    assert_eq!(
        first["usage"]["cache_creation"]["ephemeral_1h_input_tokens"],
        total
    );
    assert_eq!(first["usage"]["input_tokens"], 0);
    let second = app.message(&body).await;
    assert_eq!(second["usage"]["cache_read_input_tokens"], total);
    assert_eq!(second["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(second["usage"]["input_tokens"], 0);
}

#[tokio::test]
async fn prompts_below_the_minimum_are_not_cached() {
    let app = TestSim::start().await;
    let body = json!({
        "model": MODEL,
        "max_tokens": 16,
        "system": [{"type": "text", "text": long_text(900), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "short"}]
    });
    for _ in 0..2 {
        let message = app.message(&body).await;
        assert_eq!(message["usage"]["cache_creation_input_tokens"], 0);
        assert_eq!(message["usage"]["cache_read_input_tokens"], 0);
        assert_eq!(message["usage"]["input_tokens"], count_request(&body));
    }

    // the minimum is configurable
    let low = TestSim::start_with(SimConfig {
        cache_min_tokens: 100,
        ..SimConfig::default()
    })
    .await;
    let message = low.message(&body).await;
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 903);
}

#[tokio::test]
async fn web_search_counts_and_late_input_growth() {
    let app = TestSim::start().await;
    let body = json!({
        "model": MODEL,
        "max_tokens": 1024,
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
        "messages": [{"role": "user", "content": "news? [[sim web_search=5]]"}]
    });
    let base = count_request(&body);
    let message = app.message(&body).await;
    let kinds: Vec<&str> = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "server_tool_use",
            "web_search_tool_result",
            "server_tool_use",
            "web_search_tool_result",
            "server_tool_use",
            "web_search_tool_result",
            "text"
        ]
    );
    assert_eq!(
        message["content"][0]["id"],
        message["content"][1]["tool_use_id"]
    );
    assert_eq!(message["usage"]["input_tokens"], base + 3 * 200);
    assert_eq!(
        message["usage"]["server_tool_use"],
        json!({"web_search_requests": 3, "web_fetch_requests": 0})
    );

    let events = app.stream(&body).await;
    assert_eq!(start_usage(&events)["input_tokens"], base);
    let last = final_usage(&events);
    assert_eq!(last["input_tokens"], base + 600);
    assert_eq!(last["server_tool_use"]["web_search_requests"], 3);
    let input_json = delta_text(&events, "input_json_delta", "partial_json");
    assert!(input_json.contains("query"));

    // default is one search
    let mut one = body.clone();
    one["messages"] = json!([{"role": "user", "content": "news?"}]);
    let message = app.message(&one).await;
    assert_eq!(
        message["usage"]["server_tool_use"]["web_search_requests"],
        1
    );
    assert_eq!(message["usage"]["input_tokens"], count_request(&one) + 200);
}

#[tokio::test]
async fn injected_statuses_use_the_envelope_and_retry_headers() {
    let app = TestSim::start().await;
    let body = request("hello", 64);
    for (status, error_type) in [
        (400, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ] {
        let fault = format!("status={status}");
        let response = app
            .post("/v1/messages", &body, &[("x-sim-fault", fault.as_str())])
            .await;
        let retry = response.headers().get("retry-after").cloned();
        let should_retry = response.headers().get("x-should-retry").cloned();
        error_of(response, status, error_type).await;
        if status == 429 || status == 529 {
            assert_eq!(retry.unwrap(), "1");
            assert_eq!(should_retry.unwrap(), "true");
        } else {
            assert!(retry.is_none() && should_retry.is_none());
        }
    }
    // the same through the text directive, streamed: still an error before any byte
    let mut streamed = request("[[sim status=529]]", 64);
    streamed["stream"] = json!(true);
    error_of(
        app.post("/v1/messages", &streamed, &[]).await,
        529,
        "overloaded_error",
    )
    .await;
    assert_eq!(app.sim.stats().errors_injected, 5);
}

#[tokio::test]
async fn error_after_ends_the_stream_with_an_error_event() {
    let app = TestSim::start().await;
    let events = app
        .stream(&request("[[sim error_after=3 output_tokens=20]]", 1024))
        .await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        events.last().unwrap().data,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    let early = app
        .stream_with(&request("x", 1024), &[("x-sim-fault", "error_after=0")])
        .await;
    assert_eq!(names(&early), ["message_start", "error"]);
    assert_eq!(app.sim.stats().errors_injected, 2);
}

#[tokio::test]
async fn reset_after_breaks_the_body_on_the_client() {
    let app = TestSim::start().await;
    let mut body = request("[[sim reset_after=2 output_tokens=20]]", 1024);
    body["stream"] = json!(true);
    let response = app.post("/v1/messages", &body, &[]).await;
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body ends in an error, not a clean end");
    let text = String::from_utf8(received).unwrap();
    assert!(!text.contains("message_delta") && !text.contains("message_stop"));
    // the frames before the reset reach the client
    assert!(text.starts_with("event: message_start\n"));
    assert_eq!(text.matches("event: content_block_delta").count(), 2);
    assert_eq!(app.sim.stats().errors_injected, 1);

    // the simulator keeps serving
    app.message(&request("still there?", 16)).await;
}

#[tokio::test]
async fn overrun_reports_more_than_max_tokens() {
    let app = TestSim::start().await;
    let message = app
        .message(&request("[[sim overrun=7 output_tokens=50]]", 10))
        .await;
    assert_eq!(word_count(&text_of(&message)), 10);
    assert_eq!(message["usage"]["output_tokens"], 17);
    let events = app
        .stream(&request("[[sim overrun=7 output_tokens=50]]", 10))
        .await;
    assert_eq!(final_usage(&events)["output_tokens"], 17);
}

#[tokio::test]
async fn hostile_usage_is_corrupted_in_the_final_usage_only() {
    let app = TestSim::start().await;
    let body = request("hostile", 64);
    let cases = [
        ("negative", json!(-5)),
        ("huge", json!(1_000_000_000_000_000u64)),
        ("string", json!("12")),
    ];
    for (mode, value) in cases {
        let fault = format!("hostile={mode}");
        let headers = [("x-sim-fault", fault.as_str())];
        let message = app.message_with(&body, &headers).await;
        let usage = &message["usage"];
        for field in [
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ] {
            assert_eq!(usage[field], value, "{mode} {field}");
        }
        assert_eq!(usage["cache_creation"]["ephemeral_5m_input_tokens"], value);
        let events = app.stream_with(&body, &headers).await;
        assert_eq!(final_usage(&events)["output_tokens"], value, "{mode}");
        assert_eq!(start_usage(&events)["input_tokens"], count_request(&body));
    }
    let message = app
        .message_with(&body, &[("x-sim-fault", "hostile=missing")])
        .await;
    let usage = message["usage"].as_object().unwrap();
    assert!(!usage.contains_key("input_tokens") && !usage.contains_key("output_tokens"));
    assert_eq!(usage["service_tier"], "standard");
    let events = app
        .stream_with(&body, &[("x-sim-fault", "hostile=missing")])
        .await;
    assert!(final_usage(&events).get("output_tokens").is_none());
}

#[tokio::test]
async fn latency_delays_each_frame() {
    let app = TestSim::start().await;
    let started = Instant::now();
    // 7 frames: start, block start, ping, one delta, block stop, message_delta, stop
    let events = app
        .stream_with(
            &request("[[sim output_tokens=2]]", 64),
            &[("x-sim-fault", "latency_ms=15")],
        )
        .await;
    assert_eq!(events.len(), 7);
    assert!(started.elapsed() >= Duration::from_millis(7 * 15));
}

#[tokio::test]
async fn chunk_latency_paces_content_deltas() {
    let app = TestSim::start_with(SimConfig {
        chunk_latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let started = Instant::now();
    let events = app.stream(&request("[[sim output_tokens=6]]", 64)).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.name == "content_block_delta")
            .count(),
        3
    );
    assert!(started.elapsed() >= Duration::from_millis(3 * 20));
}

#[tokio::test]
async fn count_tokens_matches_uncached_message_input() {
    let app = TestSim::start().await;
    let body = json!({
        "model": MODEL,
        "max_tokens": 32,
        "system": "You are terse.",
        "tools": [{"name": "get_weather", "description": "Look up weather",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C, clear"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
            ]}
        ]
    });
    let mut counted_body = body.clone();
    counted_body.as_object_mut().unwrap().remove("max_tokens");
    let response = app
        .post("/v1/messages/count_tokens?beta=true", &counted_body, &[])
        .await;
    assert_eq!(response.status(), 200);
    let counted: Value = response.json().await.unwrap();
    assert_eq!(counted, json!({"input_tokens": count_request(&body)}));
    let message = app.message(&body).await;
    assert_eq!(message["usage"]["input_tokens"], counted["input_tokens"]);
    assert_eq!(app.sim.stats().count_tokens, 1);
}

#[tokio::test]
async fn models_page_forwards_and_backwards() {
    let app = TestSim::start().await;
    let all: Value = app.get("/v1/models").await.json().await.unwrap();
    let all_ids: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all_ids.len(), 16);
    assert_eq!(all["has_more"], false);
    assert_eq!(all["first_id"], all_ids[0].as_str());
    assert!(all_ids.contains(&"claude-opus-5-5".to_owned()));
    assert!(all_ids.contains(&"claude-sonnet-4-5-20250929".to_owned()));
    assert!(!all_ids.iter().any(|id| id.starts_with("claude-opus-4-1")));
    assert_eq!(all["data"][0]["type"], "model");

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(id) => format!("/v1/models?limit=5&after_id={id}"),
            None => "/v1/models?limit=5".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.unwrap();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 5);
        paged.extend(data.iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        if page["has_more"] == false {
            break;
        }
        after = page["last_id"].as_str().map(str::to_owned);
    }
    assert_eq!(paged, all_ids);

    let before: Value = app
        .get(&format!("/v1/models?limit=2&before_id={}", all_ids[3]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["first_id"], all_ids[1].as_str());
    assert_eq!(before["last_id"], all_ids[2].as_str());
    assert_eq!(before["has_more"], true);

    error_of(
        app.get("/v1/models?limit=0").await,
        400,
        "invalid_request_error",
    )
    .await;

    let one: Value = app
        .get("/v1/models/claude-opus-5-5")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["display_name"], "Claude Opus 5.5");
    let alias: Value = app
        .get("/v1/models/claude-haiku-4-5")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alias["id"], "claude-haiku-4-5-20251001");
    error_of(
        app.get("/v1/models/claude-nonesuch").await,
        404,
        "not_found_error",
    )
    .await;
    assert_eq!(app.sim.stats().models, 10);
}

#[tokio::test]
async fn api_key_and_version_are_enforced() {
    let app = TestSim::start_with(SimConfig {
        api_key: Some("sk-upstream".into()),
        ..SimConfig::default()
    })
    .await;
    let body = request("hi", 8);
    error_of(
        app.post("/v1/messages", &body, &[]).await,
        401,
        "authentication_error",
    )
    .await;
    error_of(
        app.post("/v1/messages", &body, &[("x-api-key", "wrong")])
            .await,
        401,
        "authentication_error",
    )
    .await;
    app.message_with(&body, &[("x-api-key", "sk-upstream")])
        .await;

    let no_version = app
        .client
        .post(format!("{}/v1/messages", app.base))
        .header("x-api-key", "sk-upstream")
        .json(&body)
        .send()
        .await
        .unwrap();
    let error = error_of(no_version, 400, "invalid_request_error").await;
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));

    // only the successful request reached the handler
    assert_eq!(app.sim.stats().messages, 1);
}

#[tokio::test]
async fn invalid_bodies_are_rejected_with_400() {
    let app = TestSim::start().await;
    let not_json = app
        .client
        .post(format!("{}/v1/messages", app.base))
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    error_of(not_json, 400, "invalid_request_error").await;
    for body in [
        json!({"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": MODEL, "max_tokens": -1, "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": MODEL, "max_tokens": 8, "messages": []}),
        json!({"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "[[sim bogus=1]]"}]}),
    ] {
        let response = app.post("/v1/messages", &body, &[]).await;
        error_of(response, 400, "invalid_request_error").await;
    }
    error_of(app.get("/v1/nowhere").await, 404, "not_found_error").await;
    assert_eq!(app.sim.stats().errors_injected, 0);
}

#[tokio::test]
async fn fast_speed_and_inference_geo_are_reported() {
    let app = TestSim::start().await;
    let mut body = request("quick", 16);
    body["speed"] = json!("fast");
    body["inference_geo"] = json!("us");
    body["model"] = json!("claude-opus-5-5");
    let message = app.message(&body).await;
    assert_eq!(message["usage"]["speed"], "fast");
    assert_eq!(message["usage"]["inference_geo"], "us");
    body["model"] = json!("claude-sonnet-5-5");
    let message = app.message(&body).await;
    assert_eq!(message["usage"]["speed"], "standard");
}

#[tokio::test]
async fn requests_are_recorded_and_stats_served() {
    let app = TestSim::start().await;
    let body = request("record me", 8);
    app.message_with(&body, &[("anthropic-beta", "fast-mode-2026-02-01")])
        .await;
    let recorded: Vec<RecordedRequest> = app.get("/_sim/requests").await.json().await.unwrap();
    assert_eq!(recorded, app.sim.recorded());
    assert_eq!(recorded.len(), 1);
    let first = &recorded[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/messages");
    assert!(first.headers.contains(&(
        "anthropic-beta".to_owned(),
        "fast-mode-2026-02-01".to_owned()
    )));
    assert_eq!(serde_json::from_str::<Value>(&first.body).unwrap(), body);

    for i in 0..105 {
        app.get(&format!("/v1/models?limit=1&n={i}")).await;
    }
    let recorded = app.sim.recorded();
    assert_eq!(recorded.len(), 100);
    assert_eq!(recorded.last().unwrap().path, "/v1/models?limit=1&n=104");

    let stats: SimStats = app.get("/_sim/stats").await.json().await.unwrap();
    assert_eq!(stats, app.sim.stats());
    assert_eq!(stats.messages, 1);
    assert_eq!(stats.models, 105);
}
