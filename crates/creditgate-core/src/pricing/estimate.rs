//! The worst-case cost of a request before it runs: an input-token estimate from the body, priced
//! at the highest rate the request could trigger, plus output and server-tool fees.

use serde_json::Value;

use super::book::{ModelPrice, PriceBook, Rates};
use super::cost::{token_factor, token_line_usd, NanoFractions};
use super::{PricingConfig, PricingError};
use crate::money::{div_ceil_i128, Decimal, MoneyError, NanoCredits};

/// Tokens every request costs on the simulated upstream.
pub const BASE_REQUEST_TOKENS: u64 = 3;
/// Tokens every message costs on the simulated upstream.
pub const PER_MESSAGE_TOKENS: u64 = 4;
/// An image: the simulated upstream's flat count, and Anthropic's documented ceiling
/// (≈ 1,600 tokens once the long edge is downscaled to 1,568 px).
pub const IMAGE_TOKENS: u64 = 1_600;
/// The byte rule: at least one token per this many UTF-8 bytes of text (the dense end of real
/// tokenizers' 3–4 bytes per token), times the model's tokenizer factor.
pub const BYTES_PER_TOKEN: u64 = 3;
/// Anthropic adds a hidden tool-use system prompt when tools are defined (a few hundred tokens
/// per model in its pricing table).
pub const TOOL_USE_SYSTEM_PROMPT_TOKENS: u64 = 600;
/// A server tool (web search, bash, text editor, …) brings a hidden definition of several hundred
/// tokens.
pub const SERVER_TOOL_DEFINITION_TOKENS: u64 = 1_000;
/// Web searches held for a web-search tool without `max_uses` (Anthropic sets no limit then;
/// more searches than this are a documented overrun).
pub const WEB_SEARCH_USES_WITHOUT_MAX: u64 = 10;
/// Input tokens held per possible web search: search results come back as input of the next
/// sampling step (the simulated upstream adds 200; a recorded real request with one search
/// reported 11,306 input tokens for a short prompt).
pub const WEB_SEARCH_INPUT_TOKENS: u64 = 12_000;

/// Whether `c` is free on the simulated tokenizer. Only ASCII whitespace is free here, so the
/// count is at least the simulator's whichever whitespace definition it uses.
fn is_free_whitespace(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// The gateway's estimate of a text's tokens, used for holds and for output it relayed without
/// a usage report: ⌈len/4⌉ per maximal run of ASCII alphanumerics, 1 per other non-whitespace
/// scalar. It never counts fewer tokens than the repository's upstream simulator does.
pub fn estimate_text_tokens(text: &str) -> u64 {
    let mut tokens: u64 = 0;
    let mut run: u64 = 0;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run += 1;
            continue;
        }
        tokens += run.div_ceil(4);
        run = 0;
        if !is_free_whitespace(c) {
            tokens += 1;
        }
    }
    tokens + run.div_ceil(4)
}

/// The estimator's count of one text: the larger of the simulated count and the byte rule.
pub(super) struct TextCounter {
    /// Tokenizer factor as `units / 10^scale`.
    factor_units: u128,
    factor_scale: u32,
}

impl TextCounter {
    pub(super) fn new(factor: Decimal) -> Self {
        Self {
            factor_units: u128::try_from(factor.units()).unwrap_or(1),
            factor_scale: factor.scale(),
        }
    }

    fn text(&self, text: &str) -> u64 {
        self.count(Count {
            sim: estimate_text_tokens(text),
            bytes: u64::try_from(text.len()).unwrap_or(u64::MAX),
        })
    }

    /// The estimate of a text from its simulated tokens and its bytes.
    pub(super) fn count(&self, count: Count) -> u64 {
        let bytes = u128::from(count.bytes);
        let den = u128::from(BYTES_PER_TOKEN) * 10u128.pow(self.factor_scale);
        let by_bytes = bytes.saturating_mul(self.factor_units).div_ceil(den);
        count.sim.max(u64::try_from(by_bytes).unwrap_or(u64::MAX))
    }

    fn value_text(&self, v: Option<&Value>) -> u64 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) => self.text(s),
            Some(other) => self.json(other),
        }
    }

    /// Anything without a known shape: its compact JSON text, which counts at least as much as
    /// the strings inside it.
    fn json(&self, v: &Value) -> u64 {
        self.text(&v.to_string())
    }

    fn content(&self, v: Option<&Value>) -> u64 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) => self.text(s),
            Some(Value::Array(blocks)) => blocks
                .iter()
                .fold(0u64, |acc, b| acc.saturating_add(self.block(b))),
            Some(other) => self.json(other),
        }
    }

    fn block(&self, b: &Value) -> u64 {
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" if b.get("text").is_some_and(Value::is_string) => self.value_text(b.get("text")),
            "image" => IMAGE_TOKENS,
            "tool_use" => self
                .value_text(b.get("name"))
                .saturating_add(b.get("input").map_or(0, |i| self.json(i))),
            "tool_result" => self.content(b.get("content")),
            "thinking" if b.get("thinking").is_some_and(Value::is_string) => {
                self.value_text(b.get("thinking"))
            }
            "document" => self.document(b),
            _ => self.json(b),
        }
    }

    fn document(&self, b: &Value) -> u64 {
        let extras = self
            .value_text(b.get("title"))
            .saturating_add(self.value_text(b.get("context")));
        let Some(source) = b.get("source") else {
            return self.json(b);
        };
        let body = match (
            source.get("type").and_then(Value::as_str),
            source.get("data"),
        ) {
            (Some("text"), Some(Value::String(text))) => self.text(text),
            (Some("content"), _) => self.content(source.get("content")),
            // Base64 PDFs and other binary documents: the simulator's ⌈len/4⌉ of the data.
            (_, Some(Value::String(data))) => {
                u64::try_from(data.len().div_ceil(4)).unwrap_or(u64::MAX)
            }
            _ => self.json(source),
        };
        body.saturating_add(extras)
    }

    fn tool(&self, t: &Value) -> u64 {
        let custom = match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => true,
            Some(_) => false,
        };
        let name = self.value_text(t.get("name"));
        if custom {
            name.saturating_add(self.value_text(t.get("description")))
                .saturating_add(t.get("input_schema").map_or(0, |s| self.json(s)))
        } else {
            name.saturating_add(SERVER_TOOL_DEFINITION_TOKENS)
        }
    }

    fn request(&self, body: &Value) -> u64 {
        let mut total = BASE_REQUEST_TOKENS;
        if let Some(system) = body.get("system") {
            total = total.saturating_add(self.content(Some(system)));
        }
        match body.get("messages") {
            Some(Value::Array(messages)) => {
                for m in messages {
                    let content = if m.is_object() {
                        self.content(m.get("content"))
                    } else {
                        self.json(m)
                    };
                    total = total
                        .saturating_add(PER_MESSAGE_TOKENS)
                        .saturating_add(content);
                }
            }
            Some(other) => total = total.saturating_add(self.json(other)),
            None => {}
        }
        match body.get("tools") {
            Some(Value::Array(tools)) if !tools.is_empty() => {
                total = total.saturating_add(TOOL_USE_SYSTEM_PROMPT_TOKENS);
                for t in tools {
                    total = total.saturating_add(self.tool(t));
                }
            }
            Some(Value::Array(_)) | None | Some(Value::Null) => {}
            Some(other) => total = total.saturating_add(self.json(other)),
        }
        total
    }
}

/// The documented input estimate of a Messages request body, for the Claude ≤ 4.6 tokenizer.
///
/// Each text (message text, system text, thinking text, tool names, descriptions, the compact
/// JSON of tool inputs and schemas, text documents) counts the larger of the simulated
/// upstream's tokens and ⌈bytes / 3⌉; images count 1,600; other documents ⌈len(data) / 4⌉;
/// blocks of other types their compact JSON. Plus 3 per request, 4 per message, 600 when tools
/// are defined and 1,000 per server tool. Never below the simulated upstream's count.
///
/// ```
/// use creditgate_core::pricing::estimate_input_tokens;
/// let body = serde_json::json!({"messages": [{"role": "user", "content": "Hello, world"}]});
/// // 3 + 4 + max(simulated 2+1+2 = 5, ⌈12 bytes / 3⌉ = 4)
/// assert_eq!(estimate_input_tokens(&body), 12);
/// ```
pub fn estimate_input_tokens(body: &Value) -> u64 {
    TextCounter::new(Decimal::ONE).request(body)
}

/// [`estimate_input_tokens`] for a model whose tokenizer makes `factor` times as many tokens
/// (the byte rule is scaled; the simulated count is not).
pub fn estimate_input_tokens_for(body: &Value, factor: Decimal) -> u64 {
    TextCounter::new(factor).request(body)
}

/// Which cache writes a body's `cache_control` markers could cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheTriggers {
    /// Any marker: 5-minute writes and cache reads are possible.
    pub any: bool,
    /// A marker with `ttl: "1h"` (or an unrecognised ttl, taken as the dearer one).
    pub one_hour: bool,
}

impl CacheTriggers {
    /// Both sets of markers.
    pub fn merge(&mut self, other: CacheTriggers) {
        self.any |= other.any;
        self.one_hour |= other.one_hour;
    }
}

/// Scans the whole body (top level, system, tools, messages, nested tool results) for
/// `cache_control` markers.
pub fn cache_triggers(body: &Value) -> CacheTriggers {
    let mut found = CacheTriggers::default();
    let mut stack = vec![body];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "cache_control" && child.is_object() {
                        found.any = true;
                        match child.get("ttl") {
                            None | Some(Value::Null) => {}
                            Some(Value::String(ttl)) if ttl == "5m" => {}
                            Some(_) => found.one_hour = true,
                        }
                    } else if child.is_object() || child.is_array() {
                        stack.push(child);
                    }
                }
            }
            Value::Array(items) => {
                stack.extend(items.iter().filter(|c| c.is_object() || c.is_array()))
            }
            _ => {}
        }
    }
    found
}

/// The worst-case cost of a request before it runs (`docs/ledger.md`, holds), in credits.
#[derive(Debug, Clone)]
pub struct HoldEstimate {
    model: ModelPrice,
    price_version: String,
    input_tokens: u64,
    max_tokens: u64,
    web_search_uses: u64,
    input_rate: Decimal,
    output_rate: Decimal,
    /// Exact nano-credits: input side = `input_numerator / denominator`; each output token adds
    /// `output_numerator / denominator`.
    input_numerator: i128,
    output_numerator: i128,
    denominator: i128,
}

impl HoldEstimate {
    /// Estimated input tokens at the highest input-side rate the request's `cache_control`
    /// could trigger, plus web-search fees up to `max_uses`; rounded up.
    pub fn input_side(&self) -> NanoCredits {
        let n = div_ceil_i128(self.input_numerator, self.denominator).unwrap_or(i128::MAX);
        NanoCredits::from_nanos(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// The input side plus `output_tokens` at the worst output rate, rounded up once.
    pub fn with_output(&self, output_tokens: u64) -> Result<NanoCredits, PricingError> {
        let n = i128::from(output_tokens)
            .checked_mul(self.output_numerator)
            .and_then(|o| o.checked_add(self.input_numerator))
            .ok_or(MoneyError::Overflow)?;
        let nanos = div_ceil_i128(n, self.denominator)?;
        Ok(NanoCredits::from_nanos(
            i64::try_from(nanos).map_err(|_| MoneyError::Overflow)?,
        ))
    }

    /// The full worst case: `with_output(max_tokens)`.
    pub fn worst_case(&self) -> Result<NanoCredits, PricingError> {
        self.with_output(self.max_tokens)
    }

    /// `max_tokens` from the body.
    pub fn max_tokens(&self) -> u64 {
        self.max_tokens
    }

    /// The largest output allowance `n ≤ max_tokens` with `with_output(n) ≤ available`
    /// (0 if even the input side does not fit).
    pub fn max_affordable_output(&self, available: NanoCredits) -> u64 {
        let fits = |n: u64| self.with_output(n).is_ok_and(|c| c <= available);
        if !fits(0) {
            return 0;
        }
        let (mut lo, mut hi) = (0u64, self.max_tokens);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    pub fn model(&self) -> &ModelPrice {
        &self.model
    }

    pub fn price_version(&self) -> &str {
        &self.price_version
    }

    /// The estimated input tokens (search allowance included).
    pub fn input_tokens(&self) -> u64 {
        self.input_tokens
    }

    /// Web searches held for.
    pub fn web_search_uses(&self) -> u64 {
        self.web_search_uses
    }

    /// The input-side rate used (USD per MTok, before batch and geo).
    pub fn input_rate(&self) -> Decimal {
        self.input_rate
    }

    /// The output rate used (USD per MTok, before geo).
    pub fn output_rate(&self) -> Decimal {
        self.output_rate
    }
}

/// Prices the worst case of a Messages request body for the hold: the input estimate
/// ([`estimate_input_tokens_for`] with the model's tokenizer factor, plus
/// [`WEB_SEARCH_INPUT_TOKENS`] per web search held) at the highest input-side
/// rate `cache_control` could trigger (uncached input; plus 5-minute writes and reads if any
/// marker; plus 1-hour writes if a 1h marker), with fast rates if the body asks for
/// `speed: "fast"`, the prompt tier if the estimate exceeds its threshold, the geo multiplier if
/// it asks for `inference_geo: "us"`; the worst output rate per output token; and web-search
/// fees up to each web-search tool's `max_uses` ([`WEB_SEARCH_USES_WITHOUT_MAX`] without one).
/// Never discounted for batch.
///
/// Guarantee: `with_output(max_tokens) ≥ cost(usage)` for any usage the request can produce
/// whose prompt (input + cache reads + writes) is at most the estimate, whose output is at most
/// `max_tokens` and whose searches are at most those held.
pub fn hold_estimate(
    book: &PriceBook,
    body: &Value,
    cfg: &PricingConfig,
) -> Result<HoldEstimate, PricingError> {
    cfg.validate()?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| PricingError::InvalidRequest("`model` must be a string".into()))?;
    let row = book.resolve(model)?;
    let max_tokens = body.get("max_tokens").and_then(Value::as_u64);
    let web_search_uses = web_search_uses(body);
    price_hold(
        book,
        row,
        HoldInputs {
            max_tokens,
            input_tokens: estimate_input_tokens_for(body, row.tokenizer_factor()),
            web_search_uses,
            triggers: cache_triggers(body),
            wants_fast: body.get("speed").and_then(Value::as_str) == Some("fast"),
            us_geo: body.get("inference_geo").and_then(Value::as_str) == Some("us"),
        },
        cfg,
    )
}

/// The counts of a text: simulated-tokenizer tokens and UTF-8 bytes (what
/// `TextCounter::count` turns into an estimate).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Count {
    pub(super) sim: u64,
    pub(super) bytes: u64,
}

/// What a hold is priced from, read from the body.
pub(super) struct HoldInputs {
    pub(super) max_tokens: Option<u64>,
    /// The input estimate with the model's tokenizer factor (searches not included).
    pub(super) input_tokens: u64,
    pub(super) web_search_uses: u64,
    pub(super) triggers: CacheTriggers,
    pub(super) wants_fast: bool,
    pub(super) us_geo: bool,
}

pub(super) fn price_hold(
    book: &PriceBook,
    row: &ModelPrice,
    inputs: HoldInputs,
    cfg: &PricingConfig,
) -> Result<HoldEstimate, PricingError> {
    let max_tokens = inputs.max_tokens.ok_or_else(|| {
        PricingError::InvalidRequest("`max_tokens` must be a non-negative integer".into())
    })?;
    let web_search_uses = inputs.web_search_uses;
    let input_tokens = inputs
        .input_tokens
        .saturating_add(web_search_uses.saturating_mul(WEB_SEARCH_INPUT_TOKENS));
    let triggers = inputs.triggers;

    let mut worst: Rates = row.rates().clone();
    if inputs.wants_fast {
        if let Some(fast) = row.fast_rates() {
            worst = worst.max(fast);
        }
    }
    if let Some(tier) = row.long_context() {
        if tier.in_force(None) && input_tokens > tier.threshold_tokens {
            worst = worst.max(&tier.rates);
        }
    }
    let mut input_rate = worst.input;
    if triggers.any {
        input_rate = input_rate.max(worst.cache_write_5m).max(worst.cache_read);
    }
    if triggers.one_hour {
        input_rate = input_rate.max(worst.cache_write_1h);
    }

    let factor = token_factor(book, row, false, inputs.us_geo)?;
    let input_usd = token_line_usd(input_tokens, input_rate, factor)?
        .checked_mul(cfg.multiplier)?
        .checked_add(
            super::count(web_search_uses)?
                .checked_mul(book.modifiers().web_search_usd_per_request)?
                .checked_mul(cfg.multiplier)?,
        )?;
    let per_output_usd = token_line_usd(1, worst.output, factor)?.checked_mul(cfg.multiplier)?;
    let exact = NanoFractions::of(&[input_usd, per_output_usd], cfg.credit_unit.usd)?;

    Ok(HoldEstimate {
        model: row.clone(),
        price_version: book.version().to_owned(),
        input_tokens,
        max_tokens,
        web_search_uses,
        input_rate,
        output_rate: worst.output,
        input_numerator: exact.numerators[0],
        output_numerator: exact.numerators[1],
        denominator: exact.denominator,
    })
}

/// Searches the hold covers: each web-search server tool's `max_uses`, or
/// [`WEB_SEARCH_USES_WITHOUT_MAX`].
fn web_search_uses(body: &Value) -> u64 {
    let Some(Value::Array(tools)) = body.get("tools") else {
        return 0;
    };
    tools
        .iter()
        .filter(|t| {
            t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|k| k.starts_with("web_search"))
        })
        .map(|t| {
            t.get("max_uses")
                .and_then(Value::as_u64)
                .unwrap_or(WEB_SEARCH_USES_WITHOUT_MAX)
        })
        .fold(0u64, u64::saturating_add)
}
