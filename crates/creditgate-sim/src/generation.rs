//! Deterministic replies: which blocks a request gets, their words, and the usage it reports.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::cache::CacheOutcome;
use crate::directives::{Directives, Hostile};
use crate::tokenizer::canonical_json;

/// The vocabulary of replies: every word is 1–4 ASCII letters, so exactly one token.
const WORDS: [&str; 64] = [
    "the", "sun", "rose", "over", "calm", "sea", "and", "a", "bird", "sang", "its", "old", "song",
    "to", "wind", "we", "saw", "blue", "sky", "far", "from", "home", "each", "day", "new", "path",
    "lay", "open", "for", "all", "who", "walk", "slow", "by", "the", "tide", "rain", "fell",
    "soft", "on", "red", "roof", "time", "is", "kind", "when", "you", "stay", "near", "fire",
    "warm", "hand", "held", "mine", "at", "dusk", "moon", "rise", "high", "cold", "air", "with",
    "star", "glow",
];
/// Default reply length is `TEXT_BASE_TOKENS + seed % TEXT_SPREAD_TOKENS` words.
const TEXT_BASE_TOKENS: u64 = 16;
const TEXT_SPREAD_TOKENS: u64 = 48;
/// Default thinking for `enabled` is `min(budget_tokens, THINKING_ENABLED_CAP)`.
const THINKING_ENABLED_CAP: u64 = 64;
/// Default thinking for `adaptive`.
const THINKING_ADAPTIVE_TOKENS: u64 = 24;
/// Words per streamed delta unless `chunk_tokens` says otherwise.
const DEFAULT_CHUNK_TOKENS: u64 = 2;
/// Input tokens each web search adds (the results fed back to the model).
const WEB_SEARCH_INPUT_TOKENS: u64 = 200;
/// Results listed per simulated web search.
const RESULTS_PER_SEARCH: u64 = 2;
/// Words in a simulated search query.
const QUERY_WORDS: u64 = 3;
/// Models whose `speed: "fast"` requests really run fast.
const FAST_MODELS: [&str; 3] = ["claude-opus-5-5", "claude-opus-5", "claude-opus-4-8"];

/// The 64-bit seed of a request: a hash of its body without `stream`, so that the streamed and
/// the plain form of a request produce the same reply.
pub(crate) fn request_seed(body: &Value) -> u64 {
    let digest = Sha256::digest(canonical_json(body, Some("stream")).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// A splitmix64 generator: small, fast and the same on every platform.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Text of a block, produced a chunk of words at a time; chunks after the first start with the
/// space that separates them from the previous word.
#[derive(Clone, Debug)]
pub(crate) struct Chunks {
    rng: Rng,
    remaining: u64,
    per_chunk: u64,
    first: bool,
}

impl Chunks {
    pub(crate) fn new(seed: u64, words: u64, per_chunk: u64) -> Self {
        Self {
            rng: Rng(seed),
            remaining: words,
            per_chunk: per_chunk.max(1),
            first: true,
        }
    }
}

impl Iterator for Chunks {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(self.per_chunk);
        self.remaining -= n;
        let mut chunk = String::new();
        for _ in 0..n {
            if !std::mem::take(&mut self.first) || !chunk.is_empty() {
                chunk.push(' ');
            }
            chunk.push_str(WORDS[(self.rng.next() % WORDS.len() as u64) as usize]);
        }
        Some(chunk)
    }
}

fn words(seed: u64, count: u64) -> String {
    Chunks::new(seed, count, count.max(1)).collect()
}

/// One content block of a reply.
#[derive(Clone, Debug)]
pub(crate) enum Block {
    Thinking {
        seed: u64,
        /// Thinking tokens shown as text: all of those billed (`usage`), a summary of fewer,
        /// or none (omitted).
        shown: u64,
        signature: String,
    },
    ServerToolUse {
        id: String,
        query: String,
    },
    WebSearchResult {
        tool_use_id: String,
        results: Value,
    },
    Text {
        seed: u64,
        tokens: u64,
    },
}

impl Block {
    /// The block as it appears in a non-streamed `Message`.
    pub(crate) fn full_json(&self, chunk_tokens: u64) -> Value {
        match self {
            Block::Thinking {
                seed,
                shown,
                signature,
                ..
            } => {
                let text: String = Chunks::new(*seed, *shown, chunk_tokens).collect();
                json!({"type": "thinking", "thinking": text, "signature": signature})
            }
            Block::ServerToolUse { id, query } => json!({
                "type": "server_tool_use", "id": id, "name": "web_search", "input": {"query": query}
            }),
            Block::WebSearchResult { .. } => self.start_json(),
            Block::Text { seed, tokens } => {
                let text: String = Chunks::new(*seed, *tokens, chunk_tokens).collect();
                json!({"type": "text", "text": text})
            }
        }
    }

    /// The block as `content_block_start` announces it.
    pub(crate) fn start_json(&self) -> Value {
        match self {
            Block::Thinking { .. } => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::ServerToolUse { id, .. } => {
                json!({"type": "server_tool_use", "id": id, "name": "web_search", "input": {}})
            }
            Block::WebSearchResult {
                tool_use_id,
                results,
            } => json!({
                "type": "web_search_tool_result", "tool_use_id": tool_use_id, "content": results
            }),
            Block::Text { .. } => json!({"type": "text", "text": ""}),
        }
    }
}

/// What thinking a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThinkingRequest {
    default_tokens: u64,
    omitted: bool,
}

/// Reads the request's `thinking`; `None` when absent or disabled, an error when malformed.
pub(crate) fn thinking_request(body: &Value) -> Result<Option<ThinkingRequest>, String> {
    let Some(thinking) = body.get("thinking").filter(|t| !t.is_null()) else {
        return Ok(None);
    };
    let omitted = thinking.get("display").and_then(Value::as_str) == Some("omitted");
    let default_tokens = match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") => thinking
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .ok_or("thinking.enabled.budget_tokens: Field required")?
            .min(THINKING_ENABLED_CAP),
        Some("adaptive") => THINKING_ADAPTIVE_TOKENS,
        Some("disabled") => return Ok(None),
        _ => {
            return Err("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'".into())
        }
    };
    Ok(Some(ThinkingRequest {
        default_tokens,
        omitted,
    }))
}

/// The web search tool of a request, if any, and its `max_uses`.
fn web_search_tool(body: &Value) -> Option<Option<u64>> {
    body.get("tools")?
        .as_array()?
        .iter()
        .find(|t| {
            t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|ty| ty.starts_with("web_search_"))
        })
        .map(|t| t.get("max_uses").and_then(Value::as_u64))
}

/// Everything a reply reports about token use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Uncached input before any server tool ran.
    pub input_tokens: u64,
    /// Input added by server tools, known only at the end.
    pub server_tool_input_tokens: u64,
    pub cache: CacheOutcome,
    /// Reported output, including thinking and any overrun.
    pub output_tokens: u64,
    pub thinking_tokens: Option<u64>,
    pub web_search_requests: Option<u64>,
    pub inference_geo: String,
    pub speed: &'static str,
    pub hostile: Option<Hostile>,
}

/// The placeholder `output_tokens` of `message_start`.
const START_OUTPUT_TOKENS: u64 = 1;

impl Usage {
    fn final_input(&self) -> u64 {
        self.input_tokens + self.server_tool_input_tokens
    }

    /// `usage` of a non-streamed `Message`.
    pub(crate) fn full_json(&self) -> Value {
        let mut usage = Map::new();
        usage.insert("input_tokens".into(), self.final_input().into());
        self.insert_cache_totals(&mut usage);
        usage.insert("cache_creation".into(), self.cache_split());
        usage.insert("output_tokens".into(), self.output_tokens.into());
        self.insert_output_extras(&mut usage);
        self.insert_service(&mut usage);
        corrupt(Value::Object(usage), self.hostile)
    }

    /// `usage` of `message_start`: the input side as known before any server tool ran.
    pub(crate) fn start_json(&self) -> Value {
        let mut usage = Map::new();
        usage.insert("input_tokens".into(), self.input_tokens.into());
        self.insert_cache_totals(&mut usage);
        usage.insert("cache_creation".into(), self.cache_split());
        usage.insert("output_tokens".into(), START_OUTPUT_TOKENS.into());
        self.insert_service(&mut usage);
        Value::Object(usage)
    }

    /// `usage` of the final `message_delta`: cumulative totals, no TTL split.
    pub(crate) fn delta_json(&self) -> Value {
        let mut usage = Map::new();
        usage.insert("input_tokens".into(), self.final_input().into());
        self.insert_cache_totals(&mut usage);
        usage.insert("output_tokens".into(), self.output_tokens.into());
        self.insert_output_extras(&mut usage);
        corrupt(Value::Object(usage), self.hostile)
    }

    fn insert_cache_totals(&self, usage: &mut Map<String, Value>) {
        usage.insert(
            "cache_creation_input_tokens".into(),
            self.cache.written().into(),
        );
        usage.insert("cache_read_input_tokens".into(), self.cache.read.into());
    }

    fn cache_split(&self) -> Value {
        json!({
            "ephemeral_5m_input_tokens": self.cache.write_5m,
            "ephemeral_1h_input_tokens": self.cache.write_1h,
        })
    }

    fn insert_output_extras(&self, usage: &mut Map<String, Value>) {
        if let Some(thinking) = self.thinking_tokens {
            usage.insert(
                "output_tokens_details".into(),
                json!({"thinking_tokens": thinking}),
            );
        }
        if let Some(searches) = self.web_search_requests {
            usage.insert(
                "server_tool_use".into(),
                json!({"web_search_requests": searches, "web_fetch_requests": 0}),
            );
        }
    }

    fn insert_service(&self, usage: &mut Map<String, Value>) {
        usage.insert("service_tier".into(), "standard".into());
        usage.insert("inference_geo".into(), self.inference_geo.clone().into());
        usage.insert("speed".into(), self.speed.into());
    }
}

/// Applies `hostile` to every integer of a usage object, however deep.
fn corrupt(value: Value, hostile: Option<Hostile>) -> Value {
    let Some(hostile) = hostile else {
        return value;
    };
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| match v {
                    Value::Number(_) => match hostile {
                        Hostile::Negative => Some((k, json!(-5))),
                        Hostile::Huge => Some((k, json!(1_000_000_000_000_000u64))),
                        Hostile::Missing => None,
                        Hostile::String => Some((k, json!("12"))),
                    },
                    other => Some((k, corrupt(other, Some(hostile)))),
                })
                .collect(),
        ),
        other => other,
    }
}

/// A fully decided reply: its blocks, why it stopped and what it used.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub id: String,
    pub model: String,
    pub blocks: Vec<Block>,
    pub stop_reason: &'static str,
    pub usage: Usage,
    pub chunk_tokens: u64,
}

impl Reply {
    /// Decides the reply to a validated request.
    ///
    /// `thinking` is what [`thinking_request`] read from it, `total_input` its token count and
    /// `cache` what it read and wrote.
    pub(crate) fn plan(
        id: String,
        body: &Value,
        thinking: Option<ThinkingRequest>,
        directives: &Directives,
        total_input: u64,
        cache: CacheOutcome,
    ) -> Reply {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let max_tokens = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
        let seed = request_seed(body);
        let mut rng = Rng(seed);

        let wanted_thinking =
            thinking.map(|t| directives.thinking_tokens.unwrap_or(t.default_tokens));
        let wanted_text = directives
            .output_tokens
            .unwrap_or(TEXT_BASE_TOKENS + seed % TEXT_SPREAD_TOKENS);
        let thinking_tokens = wanted_thinking.map(|w| w.min(max_tokens));
        let text_tokens = wanted_text.min(max_tokens - thinking_tokens.unwrap_or(0));
        let capped = thinking_tokens != wanted_thinking || text_tokens != wanted_text;
        let produced = thinking_tokens.unwrap_or(0) + text_tokens;

        let mut blocks = Vec::new();
        if let (Some(tokens), Some(request)) = (thinking_tokens, thinking) {
            if max_tokens > 0 {
                let signature_seed = rng.next();
                let shown = if request.omitted {
                    0
                } else {
                    directives.thinking_shown.unwrap_or(tokens).min(tokens)
                };
                blocks.push(Block::Thinking {
                    seed: rng.next(),
                    shown,
                    signature: hex::encode(Sha256::digest(signature_seed.to_le_bytes())),
                });
            }
        }
        let web_search = web_search_tool(body);
        let searches = match web_search {
            Some(max_uses) if max_tokens > 0 => directives
                .web_search
                .unwrap_or(1)
                .min(max_uses.unwrap_or(u64::MAX)),
            _ => 0,
        };
        for _ in 0..searches {
            let id = format!("srvtoolu_sim_{:016x}", rng.next());
            let query = words(rng.next(), QUERY_WORDS);
            let results: Vec<Value> = (0..RESULTS_PER_SEARCH)
                .map(|_| {
                    let page = rng.next();
                    json!({
                        "type": "web_search_result",
                        "url": format!("https://example.com/sim/{page:016x}"),
                        "title": words(page, QUERY_WORDS),
                        "encrypted_content": hex::encode(Sha256::digest(page.to_le_bytes())),
                        "page_age": null,
                    })
                })
                .collect();
            blocks.push(Block::ServerToolUse {
                id: id.clone(),
                query,
            });
            blocks.push(Block::WebSearchResult {
                tool_use_id: id,
                results: Value::Array(results),
            });
        }
        if text_tokens > 0 {
            blocks.push(Block::Text {
                seed: rng.next(),
                tokens: text_tokens,
            });
        }

        let speed = if body.get("speed").and_then(Value::as_str) == Some("fast")
            && FAST_MODELS.contains(&model.as_str())
        {
            "fast"
        } else {
            "standard"
        };
        let inference_geo = body
            .get("inference_geo")
            .and_then(Value::as_str)
            .unwrap_or("global")
            .to_owned();
        let usage = Usage {
            input_tokens: total_input.saturating_sub(cache.read + cache.written()),
            server_tool_input_tokens: searches * WEB_SEARCH_INPUT_TOKENS,
            cache,
            output_tokens: produced.saturating_add(directives.overrun.unwrap_or(0)),
            thinking_tokens,
            web_search_requests: web_search.map(|_| searches),
            inference_geo,
            speed,
            hostile: directives.hostile,
        };
        Reply {
            id,
            model,
            blocks,
            stop_reason: if capped { "max_tokens" } else { "end_turn" },
            usage,
            chunk_tokens: directives.chunk_tokens.unwrap_or(DEFAULT_CHUNK_TOKENS),
        }
    }

    /// The non-streamed `Message`.
    pub(crate) fn message_json(&self) -> Value {
        let content: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| b.full_json(self.chunk_tokens))
            .collect();
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage.full_json(),
        })
    }

    /// The `Message` that `message_start` carries: no content, no stop reason yet.
    pub(crate) fn start_message_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": self.usage.start_json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::count_text;

    #[test]
    fn vocabulary_words_are_one_token_each() {
        for word in WORDS {
            assert!((1..=4).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_lowercase()));
            assert_eq!(count_text(word), 1);
        }
    }

    #[test]
    fn chunks_concatenate_to_single_spaced_words() {
        let chunks: Vec<String> = Chunks::new(7, 5, 2).collect();
        assert_eq!(chunks.len(), 3);
        let text: String = chunks.concat();
        assert_eq!(text, words(7, 5));
        assert_eq!(text.split(' ').count(), 5);
        assert!(!text.starts_with(' ') && !text.contains("  "));
        assert_eq!(count_text(&text), 5);
        assert_eq!(count_text(&chunks[1]), 2);
    }

    #[test]
    fn seed_ignores_stream_and_key_order() {
        let a = json!({"model": "m", "stream": true, "max_tokens": 5});
        let b = json!({"max_tokens": 5, "model": "m"});
        assert_eq!(request_seed(&a), request_seed(&b));
        assert_ne!(
            request_seed(&b),
            request_seed(&json!({"max_tokens": 6, "model": "m"}))
        );
    }

    #[test]
    fn hostile_rewrites_every_integer() {
        let usage = json!({"input_tokens": 3, "service_tier": "standard",
            "server_tool_use": {"web_search_requests": 1}});
        assert_eq!(
            corrupt(usage.clone(), Some(Hostile::Missing)),
            json!({"service_tier": "standard", "server_tool_use": {}})
        );
        assert_eq!(
            corrupt(usage, Some(Hostile::String)),
            json!({"input_tokens": "12", "service_tier": "standard",
                "server_tool_use": {"web_search_requests": "12"}})
        );
    }
}
