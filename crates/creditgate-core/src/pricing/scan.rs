//! Admission facts read straight from a Messages request's bytes, in one pass that keeps nothing
//! of the body (issue 7, memory): `model`, `max_tokens`, `stream`, `thinking`, `speed`,
//! `inference_geo`, `betas`, the input-token estimate, the `cache_control` triggers and the
//! web-search allowance. They are the numbers [`super::estimate_input_tokens_for`],
//! [`super::cache_triggers`] and [`super::hold_estimate`] compute from a parsed `Value`, at a
//! memory cost of the nesting depth instead of many times the body (a `Value` costs 16–32 bytes
//! per node; `[0,0,…]` is two bytes per node).
//!
//! Every value is summarised bottom-up as a [`Sum`]: the counts of its compact JSON text (what
//! `Value::to_string` would write, counted without writing it: pieces of compact JSON are
//! delimited by punctuation, so their counts add up), and its count in each role the estimator
//! gives a value (message content, content block, tool, message). An object keeps the few
//! fields its parent reads (`type`, `data`, `content`, `budget_tokens`, `max_uses`, `ttl`).
//! Bodies that repeat a key are refused before this is used (`unique_keys` in the gateway), so
//! "the last one wins" of `Value` never matters.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::book::{PriceBook, MAX_MODEL_NAME_CHARS};
use super::estimate::{
    estimate_text_tokens, price_hold, CacheTriggers, Count, HoldEstimate, HoldInputs, TextCounter,
    BASE_REQUEST_TOKENS, IMAGE_TOKENS, PER_MESSAGE_TOKENS, SERVER_TOOL_DEFINITION_TOKENS,
    TOOL_USE_SYSTEM_PROMPT_TOKENS, WEB_SEARCH_USES_WITHOUT_MAX,
};
use super::{PricingConfig, PricingError};
use crate::money::Decimal;

/// Longest string kept verbatim (model names, types, betas); a longer one keeps its first bytes
/// and its length.
const SHORT_BYTES: usize = 256;
/// Most `betas` entries read; more are refused by the caller.
pub const MAX_BETAS: usize = 64;

/// A string of the body as far as admission needs it: its first [`SHORT_BYTES`] and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Short {
    head: Box<str>,
    len: usize,
}

impl Short {
    fn of(s: &str) -> Self {
        let mut end = s.len().min(SHORT_BYTES);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            head: s[..end].into(),
            len: s.len(),
        }
    }

    /// The whole string, if it was short enough to keep.
    pub fn as_str(&self) -> Option<&str> {
        (self.head.len() == self.len).then_some(&*self.head)
    }

    /// Its first bytes (all of it when [`Self::as_str`] is `Some`).
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn is(&self, s: &str) -> bool {
        self.as_str() == Some(s)
    }
}

/// What the top level of a request body says, and its input estimate.
#[derive(Debug)]
pub struct RequestScan {
    /// The tokenizer factor the input estimate was made with.
    pub factor: Decimal,
    /// `model` when it is a string.
    pub model: Option<Short>,
    /// `max_tokens` when it is a non-negative integer.
    pub max_tokens: Option<u64>,
    /// `stream`: `None` when absent or null, `Some(Err(()))` when not a boolean.
    pub stream: Option<Result<bool, ()>>,
    /// `thinking.budget_tokens` when `thinking.type` is `enabled`.
    pub thinking_budget: Option<u64>,
    /// `speed` is `"fast"`.
    pub wants_fast: bool,
    /// `inference_geo` is `"us"`.
    pub us_geo: bool,
    /// `betas`: `None` when absent; each entry `None` when it is not a string (at most
    /// [`MAX_BETAS`] + 1 entries are kept).
    pub betas: Option<Vec<Option<Short>>>,
    /// `betas` is present and not an array (nor null).
    pub betas_not_array: bool,
    /// [`super::estimate_input_tokens_for`] of the body with `factor`.
    pub input_tokens: u64,
    /// [`super::cache_triggers`] of the body.
    pub triggers: CacheTriggers,
    /// Web searches the hold covers (each web-search tool's `max_uses`, or the default).
    pub web_search_uses: u64,
}

/// Why a body could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("The request body must be a JSON object.")]
    NotAnObject,
}

impl RequestScan {
    fn empty() -> Self {
        Self {
            factor: Decimal::ONE,
            model: None,
            max_tokens: None,
            stream: None,
            thinking_budget: None,
            wants_fast: false,
            us_geo: false,
            betas: None,
            betas_not_array: false,
            input_tokens: 0,
            triggers: CacheTriggers::default(),
            web_search_uses: 0,
        }
    }

    /// Reads `bytes` once, estimating text with the tokenizer `factor`.
    pub fn read(bytes: &[u8], factor: Decimal) -> Result<Self, ScanError> {
        let counter = TextCounter::new(factor);
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let sum = Seed {
            counter: &counter,
            top: true,
            strings: false,
        }
        .deserialize(&mut de)?;
        de.end()?;
        let mut scan = *sum.top.ok_or(ScanError::NotAnObject)?;
        scan.factor = factor;
        scan.triggers = sum.triggers;
        Ok(scan)
    }
}

impl Count {
    fn plus(self, other: Count) -> Count {
        Count {
            sim: self.sim.saturating_add(other.sim),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    /// `n` punctuation characters (`{ } [ ] , :`), one token each.
    fn punct(n: u64) -> Count {
        Count { sim: n, bytes: n }
    }

    fn text(s: &str) -> Count {
        Count {
            sim: estimate_text_tokens(s),
            bytes: u64::try_from(s.len()).unwrap_or(u64::MAX),
        }
    }

    /// `s` quoted and escaped as serde_json writes it.
    fn json_str(s: &str) -> Count {
        let mut t = Tally::default();
        t.push('"');
        for c in s.chars() {
            match c {
                '"' | '\\' => t.push_all(&['\\', c]),
                '\u{8}' => t.push_all(&['\\', 'b']),
                '\u{c}' => t.push_all(&['\\', 'f']),
                '\n' => t.push_all(&['\\', 'n']),
                '\r' => t.push_all(&['\\', 'r']),
                '\t' => t.push_all(&['\\', 't']),
                c if u32::from(c) < 0x20 => format!("\\u{:04x}", u32::from(c))
                    .chars()
                    .for_each(|c| t.push(c)),
                c => t.push(c),
            }
        }
        t.push('"');
        t.count()
    }
}

/// The simulated tokenizer fed one character at a time.
#[derive(Default)]
struct Tally {
    tokens: u64,
    run: u64,
    bytes: u64,
}

impl Tally {
    fn push(&mut self, c: char) {
        self.bytes += c.len_utf8() as u64;
        if c.is_ascii_alphanumeric() {
            self.run += 1;
            return;
        }
        self.tokens += self.run.div_ceil(4);
        self.run = 0;
        if !c.is_ascii_whitespace() {
            self.tokens += 1;
        }
    }

    fn push_all(&mut self, cs: &[char]) {
        cs.iter().for_each(|c| self.push(*c));
    }

    fn count(&self) -> Count {
        Count {
            sim: self.tokens + self.run.div_ceil(4),
            bytes: self.bytes,
        }
    }
}

#[derive(Debug, Default)]
enum Kind {
    #[default]
    Null,
    Bool(bool),
    Number(Option<u64>),
    /// The string and its estimate as text.
    Str(Short, u64),
    Array(Arr),
    Object,
}

/// What an array's parent reads: its length and the sums of its elements in each role.
#[derive(Debug, Default)]
struct Arr {
    len: usize,
    blocks: u64,
    messages: u64,
    tools: u64,
    web_uses: u64,
    strings: Option<Vec<Option<Short>>>,
}

/// The fields of an object its parent reads.
#[derive(Debug, Default)]
struct Facts {
    ty: Option<Short>,
    /// `data` as a string: its length and its estimate as text.
    data: Option<(u64, u64)>,
    /// `content(get("content"))`.
    content: u64,
    budget_tokens: Option<u64>,
    max_uses: Option<u64>,
    ttl_one_hour: bool,
}

/// One value, summarised.
#[derive(Debug, Default)]
struct Sum {
    json: Count,
    /// Its compact JSON's estimate (`json(v)`).
    json_tokens: u64,
    kind: Kind,
    triggers: CacheTriggers,
    /// Its estimate as message content (`content(Some(v))`).
    content: u64,
    /// As a content block, a tool definition and a message (without the per-message tokens).
    block: u64,
    tool: u64,
    message: u64,
    /// Web searches it allows, as a tool definition.
    web_uses: u64,
    facts: Facts,
    top: Option<Box<RequestScan>>,
}

impl Sum {
    /// A value without fields: every role but content sees its compact JSON.
    fn plain(kind: Kind, json: Count, c: &TextCounter) -> Self {
        let json_tokens = c.count(json);
        let content = match &kind {
            Kind::Null => 0,
            Kind::Str(_, text) => *text,
            Kind::Array(arr) => arr.blocks,
            _ => json_tokens,
        };
        Self {
            json,
            json_tokens,
            kind,
            content,
            block: json_tokens,
            message: json_tokens,
            ..Self::default()
        }
    }

    /// `value_text(Some(v))`.
    fn value_text(&self) -> u64 {
        match &self.kind {
            Kind::Null => 0,
            Kind::Str(_, text) => *text,
            _ => self.json_tokens,
        }
    }

    fn string(&self) -> Option<&Short> {
        match &self.kind {
            Kind::Str(s, _) => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
struct Seed<'c> {
    counter: &'c TextCounter,
    /// The body itself (its fields are the request's).
    top: bool,
    /// Keep the strings of this array (`betas`).
    strings: bool,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Sum;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Sum, D::Error> {
        d.deserialize_any(self)
    }
}

fn literal(s: &str) -> Count {
    let mut t = Tally::default();
    s.chars().for_each(|c| t.push(c));
    t.count()
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Sum;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Sum, E> {
        let text = if b { "true" } else { "false" };
        Ok(Sum::plain(Kind::Bool(b), literal(text), self.counter))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Sum, E> {
        let json = literal(&n.to_string());
        Ok(Sum::plain(Kind::Number(Some(n)), json, self.counter))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Sum, E> {
        let json = literal(&n.to_string());
        Ok(Sum::plain(Kind::Number(None), json, self.counter))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Sum, E> {
        // A fractional number in the body (`temperature`, `top_p`): only printed, as `Value`
        // would print it, to count its characters; no arithmetic, and never an amount of money.
        let text = serde_json::Number::from_f64(n).map_or_else(|| "null".into(), |n| n.to_string());
        Ok(Sum::plain(Kind::Number(None), literal(&text), self.counter))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Sum, E> {
        let text = self.counter.count(Count::text(s));
        let kind = Kind::Str(Short::of(s), text);
        Ok(Sum::plain(kind, Count::json_str(s), self.counter))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Sum, E> {
        Ok(Sum::plain(Kind::Null, literal("null"), self.counter))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sum, A::Error> {
        let inner = Seed {
            counter: self.counter,
            top: false,
            strings: false,
        };
        let mut arr = Arr {
            strings: self.strings.then(Vec::new),
            ..Arr::default()
        };
        let (mut json, mut triggers) = (Count::punct(2), CacheTriggers::default());
        while let Some(item) = seq.next_element_seed(inner)? {
            if arr.len > 0 {
                json = json.plus(Count::punct(1));
            }
            arr.len += 1;
            json = json.plus(item.json);
            triggers.merge(item.triggers);
            arr.blocks = arr.blocks.saturating_add(item.block);
            arr.messages = arr
                .messages
                .saturating_add(PER_MESSAGE_TOKENS)
                .saturating_add(item.message);
            arr.tools = arr.tools.saturating_add(item.tool);
            arr.web_uses = arr.web_uses.saturating_add(item.web_uses);
            if let Some(strings) = arr.strings.as_mut().filter(|s| s.len() <= MAX_BETAS) {
                strings.push(item.string().cloned());
            }
        }
        let mut sum = Sum::plain(Kind::Array(arr), json, self.counter);
        sum.triggers = triggers;
        Ok(sum)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sum, A::Error> {
        let mut fields = Fields::default();
        let mut top = self.top.then(|| Box::new(RequestScan::empty()));
        let (mut json, mut triggers) = (Count::punct(2), CacheTriggers::default());
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            let child = map.next_value_seed(Seed {
                counter: self.counter,
                top: false,
                strings: self.top && key == "betas",
            })?;
            if !first {
                json = json.plus(Count::punct(1));
            }
            first = false;
            json = json
                .plus(Count::json_str(&key))
                .plus(Count::punct(1))
                .plus(child.json);
            if key == "cache_control" && matches!(child.kind, Kind::Object) {
                triggers.any = true;
                triggers.one_hour |= child.facts.ttl_one_hour;
            } else {
                triggers.merge(child.triggers);
            }
            if let Some(top) = top.as_mut() {
                fields.top(top, &key, &child);
            }
            fields.take(&key, child);
        }
        if let Some(scan) = top.as_mut() {
            scan.input_tokens = fields.request_tokens();
        }
        let mut sum = fields.finish(json, self.counter);
        sum.triggers = triggers;
        sum.top = top;
        Ok(sum)
    }
}

/// `Some((is a string, value_text))` of a field.
type TextField = Option<(bool, u64)>;

/// The fields of one object being read.
#[derive(Default)]
struct Fields {
    facts: Facts,
    text: TextField,
    thinking: TextField,
    name: u64,
    title: u64,
    context: u64,
    description: u64,
    input: Option<u64>,
    input_schema: Option<u64>,
    source: Option<Source>,
    // The request's own fields (top level only).
    system: u64,
    messages: u64,
    tools: u64,
}

/// A document's `source`.
struct Source {
    ty: Option<Short>,
    data: Option<(u64, u64)>,
    content: u64,
    json_tokens: u64,
}

impl Fields {
    fn take(&mut self, key: &str, child: Sum) {
        let text_field = |s: &Sum| Some((s.string().is_some(), s.value_text()));
        match key {
            "type" => self.facts.ty = child.string().cloned(),
            "text" => self.text = text_field(&child),
            "thinking" => self.thinking = text_field(&child),
            "name" => self.name = child.value_text(),
            "title" => self.title = child.value_text(),
            "context" => self.context = child.value_text(),
            "description" => self.description = child.value_text(),
            "input" => self.input = Some(child.json_tokens),
            "input_schema" => self.input_schema = Some(child.json_tokens),
            "content" => self.facts.content = child.content,
            "data" => {
                self.facts.data = match &child.kind {
                    Kind::Str(s, text) => Some((s.len() as u64, *text)),
                    _ => None,
                }
            }
            "budget_tokens" => self.facts.budget_tokens = as_u64(&child),
            "max_uses" => self.facts.max_uses = as_u64(&child),
            "ttl" => {
                self.facts.ttl_one_hour = !matches!(&child.kind, Kind::Null)
                    && !child.string().is_some_and(|s| s.is("5m"))
            }
            "source" => {
                self.source = Some(Source {
                    ty: child.facts.ty,
                    data: child.facts.data,
                    content: child.facts.content,
                    json_tokens: child.json_tokens,
                })
            }
            _ => {}
        }
    }

    /// Reads a field of the request body itself.
    fn top(&mut self, scan: &mut RequestScan, key: &str, child: &Sum) {
        match key {
            "model" => scan.model = child.string().cloned(),
            "max_tokens" => scan.max_tokens = as_u64(child),
            "stream" => {
                scan.stream = match &child.kind {
                    Kind::Null => None,
                    Kind::Bool(b) => Some(Ok(*b)),
                    _ => Some(Err(())),
                }
            }
            "thinking" if child.facts.ty.as_ref().is_some_and(|t| t.is("enabled")) => {
                scan.thinking_budget = child.facts.budget_tokens
            }
            "speed" => scan.wants_fast = child.string().is_some_and(|s| s.is("fast")),
            "inference_geo" => scan.us_geo = child.string().is_some_and(|s| s.is("us")),
            "betas" => match &child.kind {
                Kind::Array(arr) => scan.betas = arr.strings.clone(),
                Kind::Null => {}
                _ => scan.betas_not_array = true,
            },
            "system" => self.system = child.content,
            "messages" => {
                self.messages = match &child.kind {
                    Kind::Array(arr) => arr.messages,
                    _ => child.json_tokens,
                }
            }
            "tools" => {
                (self.tools, scan.web_search_uses) = match &child.kind {
                    Kind::Array(arr) if arr.len > 0 => (
                        TOOL_USE_SYSTEM_PROMPT_TOKENS.saturating_add(arr.tools),
                        arr.web_uses,
                    ),
                    Kind::Array(_) | Kind::Null => (0, 0),
                    _ => (child.json_tokens, 0),
                }
            }
            _ => {}
        }
    }

    fn request_tokens(&self) -> u64 {
        BASE_REQUEST_TOKENS
            .saturating_add(self.system)
            .saturating_add(self.messages)
            .saturating_add(self.tools)
    }

    /// The object's own summary, in every role.
    fn finish(self, json: Count, c: &TextCounter) -> Sum {
        let json_tokens = c.count(json);
        let ty = self.facts.ty.as_ref().and_then(Short::as_str).unwrap_or("");
        let block = match ty {
            "text" if self.text.is_some_and(|t| t.0) => self.text.map_or(0, |t| t.1),
            "image" => IMAGE_TOKENS,
            "tool_use" => self.name.saturating_add(self.input.unwrap_or(0)),
            "tool_result" => self.facts.content,
            "thinking" if self.thinking.is_some_and(|t| t.0) => self.thinking.map_or(0, |t| t.1),
            "document" => self.document(json_tokens),
            _ => json_tokens,
        };
        let custom = self.facts.ty.as_ref().is_none_or(|t| t.is("custom"));
        let tool = if custom {
            self.name
                .saturating_add(self.description)
                .saturating_add(self.input_schema.unwrap_or(0))
        } else {
            self.name.saturating_add(SERVER_TOOL_DEFINITION_TOKENS)
        };
        let web_search = self
            .facts
            .ty
            .as_ref()
            .is_some_and(|t| t.head().starts_with("web_search"));
        Sum {
            json,
            json_tokens,
            kind: Kind::Object,
            content: json_tokens,
            block,
            tool,
            message: self.facts.content,
            web_uses: if web_search {
                self.facts.max_uses.unwrap_or(WEB_SEARCH_USES_WITHOUT_MAX)
            } else {
                0
            },
            facts: self.facts,
            ..Sum::default()
        }
    }

    fn document(&self, json_tokens: u64) -> u64 {
        let extras = self.title.saturating_add(self.context);
        let Some(source) = &self.source else {
            return json_tokens;
        };
        let body = match (source.ty.as_ref().and_then(Short::as_str), source.data) {
            (Some("text"), Some((_, text))) => text,
            (Some("content"), _) => source.content,
            (_, Some((len, _))) => len.div_ceil(4),
            _ => source.json_tokens,
        };
        body.saturating_add(extras)
    }
}

fn as_u64(s: &Sum) -> Option<u64> {
    match s.kind {
        Kind::Number(n) => n,
        _ => None,
    }
}

/// [`super::hold_estimate`] of the body `bytes` that `scan` was read from, without parsing it into a
/// tree: the same estimate at the cost of one more pass when the model's tokenizer factor is not
/// the one `scan` was made with.
pub fn hold_estimate_scanned(
    book: &PriceBook,
    bytes: &[u8],
    scan: &RequestScan,
    cfg: &PricingConfig,
) -> Result<HoldEstimate, PricingError> {
    cfg.validate()?;
    let model = scan
        .model
        .as_ref()
        .ok_or_else(|| PricingError::InvalidRequest("`model` must be a string".into()))?;
    let Some(name) = model.as_str() else {
        // Longer than any name (the scan kept only its head): unknown, as `resolve` says.
        let cut: String = model
            .head()
            .chars()
            .take(MAX_MODEL_NAME_CHARS / 4)
            .collect();
        return Err(PricingError::UnknownModel {
            model: format!("{cut}… ({} bytes)", model.len()),
            suggestions: Vec::new(),
        });
    };
    let row = book.resolve(name)?;
    let input_tokens = if row.tokenizer_factor() == scan.factor {
        scan.input_tokens
    } else {
        RequestScan::read(bytes, row.tokenizer_factor())
            .map_err(|e| PricingError::InvalidRequest(e.to_string()))?
            .input_tokens
    };
    price_hold(
        book,
        row,
        HoldInputs {
            max_tokens: scan.max_tokens,
            input_tokens,
            web_search_uses: scan.web_search_uses,
            triggers: scan.triggers,
            wants_fast: scan.wants_fast,
            us_geo: scan.us_geo,
        },
        cfg,
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::pricing::{cache_triggers, estimate_input_tokens_for};

    /// What the `Value`-based estimator says of `body`.
    fn by_value(body: &Value, factor: Decimal) -> (u64, CacheTriggers) {
        (
            estimate_input_tokens_for(body, factor),
            cache_triggers(body),
        )
    }

    fn by_scan(bytes: &[u8], factor: Decimal) -> (u64, CacheTriggers) {
        let scan = RequestScan::read(bytes, factor).unwrap();
        (scan.input_tokens, scan.triggers)
    }

    fn factors() -> [Decimal; 2] {
        [Decimal::ONE, "1.35".parse().unwrap()]
    }

    #[test]
    fn the_request_fields_are_read() {
        let body = json!({
            "model": "claude-haiku-4-5", "max_tokens": 512, "stream": true,
            "thinking": {"budget_tokens": 2048, "type": "enabled"},
            "speed": "fast", "inference_geo": "us", "betas": ["a", 3],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                      {"type": "web_search_20250305", "name": "web_search"}],
            "messages": [{"role": "user", "content": "Hi"}],
        });
        let scan = RequestScan::read(body.to_string().as_bytes(), Decimal::ONE).unwrap();
        assert_eq!(
            scan.model.as_ref().and_then(Short::as_str),
            Some("claude-haiku-4-5")
        );
        assert_eq!(scan.max_tokens, Some(512));
        assert_eq!(scan.stream, Some(Ok(true)));
        assert_eq!(scan.thinking_budget, Some(2048));
        assert!(scan.wants_fast && scan.us_geo);
        assert_eq!(scan.betas, Some(vec![Some(Short::of("a")), None]));
        assert_eq!(scan.web_search_uses, 3 + WEB_SEARCH_USES_WITHOUT_MAX);
        assert_eq!(
            scan.input_tokens,
            estimate_input_tokens_for(&body, Decimal::ONE)
        );
        let stream = |v: &str| {
            RequestScan::read(format!("{{\"stream\":{v}}}").as_bytes(), Decimal::ONE)
                .unwrap()
                .stream
        };
        assert_eq!(stream("false"), Some(Ok(false)));
        assert_eq!(stream("null"), None);
        assert_eq!(stream("1"), Some(Err(())));
        assert!(matches!(
            RequestScan::read(b"[1]", Decimal::ONE),
            Err(ScanError::NotAnObject)
        ));
        assert!(RequestScan::read(b"{} x", Decimal::ONE).is_err());
    }

    #[test]
    fn escapes_numbers_and_long_strings_count_as_the_value_estimator_counts_them() {
        let long = "x".repeat(SHORT_BYTES * 3);
        let body = json!({
            "model": long,
            "messages": [{"role": "user", "content": [
                {"type": "weird", "v": [1.5e300, -3, 0.1, 1e5, "a\"b\\c\n\u{1}\u{7f}é"]},
                {"type": "document", "source": {"type": "base64", "data": long}},
                {"type": "document", "title": "t", "source": {"type": "content",
                 "content": [{"type": "text", "text": "in doc"}]}},
                {"type": "text", "text": 5},
                {"type": "tool_result", "content": [{"type": "image"}],
                 "cache_control": {"type": "ephemeral", "ttl": "1h", "cache_control": {}}},
            ]}, 7, null],
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}, {"type": long}],
        });
        for f in factors() {
            for bytes in [
                serde_json::to_vec(&body).unwrap(),
                serde_json::to_vec_pretty(&body).unwrap(),
            ] {
                let parsed: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(by_scan(&bytes, f), by_value(&parsed, f));
            }
        }
        let scan = RequestScan::read(body.to_string().as_bytes(), Decimal::ONE).unwrap();
        let model = scan.model.unwrap();
        assert_eq!((model.as_str(), model.len()), (None, long.len()));
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z0-9 \"\\\\\n\t\u{1}é.-]{0,12}".prop_map(Value::from),
            prop_oneof![
                Just("text"),
                Just("image"),
                Just("tool_use"),
                Just("tool_result"),
                Just("thinking"),
                Just("document"),
                Just("content"),
                Just("base64"),
                Just("custom"),
                Just("web_search_20250305"),
                Just("5m"),
                Just("1h"),
                Just("enabled"),
            ]
            .prop_map(Value::from),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("type"),
            Just("text"),
            Just("thinking"),
            Just("name"),
            Just("title"),
            Just("context"),
            Just("description"),
            Just("input"),
            Just("input_schema"),
            Just("content"),
            Just("source"),
            Just("data"),
            Just("max_uses"),
            Just("ttl"),
            Just("cache_control"),
            Just("x"),
        ]
        .prop_map(str::to_owned)
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Value> {
        let top = prop_oneof![
            Just("system"),
            Just("messages"),
            Just("tools"),
            Just("cache_control"),
            Just("model"),
            Just("other"),
        ]
        .prop_map(str::to_owned);
        prop::collection::btree_map(top, value(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]
        /// The one-pass scan and the `Value` estimator agree on any body, compact or pretty.
        #[test]
        fn the_scan_agrees_with_the_value_estimator(body in body(), pretty in any::<bool>()) {
            let bytes = if pretty {
                serde_json::to_vec_pretty(&body).unwrap()
            } else {
                serde_json::to_vec(&body).unwrap()
            };
            // The old path parsed the bytes into a `Value` (which need not round-trip floats).
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            for f in factors() {
                prop_assert_eq!(by_scan(&bytes, f), by_value(&parsed, f));
            }
        }
    }
}
