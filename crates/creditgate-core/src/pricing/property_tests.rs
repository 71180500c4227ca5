//! Property tests: monotonic costs, lines that add up, one rounding per request over a million
//! requests, the estimator against the simulated tokenizer, and holds that cover actual costs.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

use super::*;
use crate::money::CreditUnit;
use crate::money::NanoCredits;

fn book() -> &'static PriceBook {
    static BOOK: std::sync::OnceLock<PriceBook> = std::sync::OnceLock::new();
    BOOK.get_or_init(PriceBook::builtin)
}

fn model_ids() -> Vec<String> {
    book().models().map(|m| m.id().to_owned()).collect()
}

prop_compose! {
    fn any_usage()(
        input in 0u64..400_000,
        aggregate in 0u64..300_000,
        split in prop::option::of((0u64..300_000, 0u64..300_000)),
        read in 0u64..400_000,
        output in 0u64..200_000,
        thinking in prop::option::of(0u64..200_000),
        searches in 0u64..20,
        fetches in 0u64..5,
        speed in prop::sample::select(vec![None, Some("standard"), Some("fast")]),
        geo in prop::sample::select(vec![None, Some("us"), Some("global")]),
    ) -> Usage {
        Usage {
            input_tokens: input,
            cache_creation_input_tokens: aggregate,
            cache_5m: split.map(|s| s.0),
            cache_1h: split.map(|s| s.1),
            cache_read_input_tokens: read,
            output_tokens: output,
            thinking_tokens: thinking,
            web_search_requests: searches,
            web_fetch_requests: fetches,
            speed: speed.map(str::to_owned),
            inference_geo: geo.map(str::to_owned),
            service_tier: None,
        }
    }
}

prop_compose! {
    /// Operator settings: a multiplier with up to four places, a credit worth $0.0001–$10.
    fn any_config()(mult in 0i128..=20_000, mult_places in 0u32..=4, usd in 1i128..=100_000, usd_places in 0u32..=4)
        -> PricingConfig {
        PricingConfig::new(
            Decimal::new(mult, mult_places).unwrap(),
            CreditUnit::new("credit", Decimal::new(usd, usd_places).unwrap()).unwrap(),
        )
        .unwrap()
    }
}

fn total(model: &str, usage: &Usage, batch: bool, cfg: &PricingConfig) -> NanoCredits {
    cost(book(), model, usage, &CostOptions { batch }, cfg)
        .unwrap()
        .total
}

/// Adds `delta` to one of the usage's counts (`which` picks it; the split fields start at 0 when
/// absent).
fn bump(usage: &Usage, which: usize, delta: u64) -> Usage {
    let mut u = usage.clone();
    match which {
        0 => u.input_tokens += delta,
        1 => u.cache_creation_input_tokens += delta,
        2 => u.cache_5m = Some(u.cache_5m.unwrap_or(0) + delta),
        3 => u.cache_1h = Some(u.cache_1h.unwrap_or(0) + delta),
        4 => u.cache_read_input_tokens += delta,
        5 => u.output_tokens += delta,
        6 => u.web_search_requests += delta,
        7 => u.web_fetch_requests += delta,
        _ => u.thinking_tokens = Some(u.thinking_tokens.unwrap_or(0) + delta),
    }
    u
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    #[test]
    fn cost_is_monotonic_in_every_count(
        model in prop::sample::select(model_ids()),
        usage in any_usage(),
        which in 0usize..9,
        delta in 1u64..150_000,
        batch in any::<bool>(),
        cfg in any_config(),
    ) {
        // Adding a split where there was none can move tokens from 5m to 1h (dearer), never
        // cheaper, so this holds for the split fields too.
        let before = total(&model, &usage, batch, &cfg);
        let after = total(&model, &bump(&usage, which, delta), batch, &cfg);
        prop_assert!(after >= before, "{model} field {which} +{delta}: {before} → {after}");
    }

    #[test]
    fn lines_sum_to_the_total_and_each_is_within_one_nano_credit(
        model in prop::sample::select(model_ids()),
        usage in any_usage(),
        batch in any::<bool>(),
        cfg in any_config(),
    ) {
        let c = cost(book(), &model, &usage, &CostOptions { batch }, &cfg).unwrap();
        let sum = NanoCredits::checked_sum(c.lines.iter().map(|l| l.credits)).unwrap();
        prop_assert_eq!(sum, c.total);
        // Each line is its exact value rounded down or up: credits·u ≥ usd·10⁹·10^s and
        // (credits − 1)·u < usd·10⁹·10^s, in integers (u/10^s is the credit's USD value).
        let (cu, cs) = (cfg.credit_unit.usd.units(), cfg.credit_unit.usd.scale());
        for l in &c.lines {
            let scale = l.charged_usd.scale().max(cs);
            let exact = l.charged_usd.units() * 10i128.pow(9 + scale - l.charged_usd.scale());
            let nanos_times_usd = |n: i64| i128::from(n) * cu * 10i128.pow(scale - cs);
            prop_assert!(nanos_times_usd(l.credits.nanos() + 1) > exact, "{l:?}");
            prop_assert!(nanos_times_usd(l.credits.nanos() - 1) < exact, "{l:?}");
        }
        let charged = c.lines.iter().map(|l| l.charged_usd).try_fold(Decimal::ZERO, Decimal::checked_add).unwrap();
        prop_assert_eq!(charged, c.charged_usd);
    }

    #[test]
    fn hostile_usage_never_panics_or_pays_out(v in hostile_json()) {
        let (usage, _flags) = Usage::from_json(&v);
        for model in ["claude-opus-5-5", "claude-haiku-5-5"] {
            let c = cost(book(), model, &usage, &CostOptions::default(), &PricingConfig::reseller_default()).unwrap();
            prop_assert!(!c.total.is_negative());
        }
    }
}

fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e40f64..1e40)
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[0-9eE.+-]{0,12}".prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    let fields = [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
        "output_tokens_details",
        "server_tool_use",
        "speed",
        "inference_geo",
    ];
    let value = leaf.prop_recursive(2, 8, 3, move |inner| {
        prop::collection::vec((prop::sample::select(fields.to_vec()), inner), 0..4)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    });
    prop::collection::vec((prop::sample::select(fields.to_vec()), value), 0..9)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

// ------------------------------------------------------------------------------------------------
// One rounding per request, over a million requests.

/// SplitMix64: a tiny seeded generator, so the million-request run is reproducible from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A rate in thousandths of a dollar per MTok (every built-in rate has at most three places).
fn milli(rate: Decimal) -> i128 {
    assert!(rate.scale() <= 3, "{rate}");
    rate.units() * 10i128.pow(3 - rate.scale())
}

/// The reference: ten times the exact cost in nano-credits at ×0.70 and 1 credit = $0.005,
/// written out independently of the engine's arithmetic.
///
/// nanos = Σ tokens × (milli/1000) × (b/10) × (g/10) × 0.7 / 10⁶ × 10⁹ / 0.005
///       = Σ tokens × milli × b × g × 14 / 10       (b = 5 or 10, g = 10 or 11)
/// plus $0.01 × 0.7 / 0.005 = 1.4 credits = 1.4·10⁹ nano-credits per search.
fn exact_tenths_of_nanos(row: &ModelPrice, usage: &Usage, batch: bool) -> i128 {
    let fast = usage.speed.as_deref() == Some("fast");
    let rates = row.select_rates(fast, usage.prompt_tokens(), None).rates;
    let b = if batch { 5 } else { 10 };
    let g = if usage.inference_geo.as_deref() == Some("us") && row.us_geo_multiplier_applies() {
        11
    } else {
        10
    };
    let w = usage.cache_writes();
    let tokens = [
        (usage.input_tokens, rates.input),
        (w.five_minute, rates.cache_write_5m),
        (w.one_hour, rates.cache_write_1h),
        (usage.cache_read_input_tokens, rates.cache_read),
        (usage.output_tokens, rates.output),
    ];
    let token_part: i128 = tokens
        .iter()
        .map(|(n, r)| i128::from(*n) * milli(*r) * b * g * 14)
        .sum();
    token_part + i128::from(usage.web_search_requests) * 14_000_000_000
}

/// How many random requests the rounding-identity test charges.
const ROUNDING_IDENTITY_REQUESTS: u64 = 1_000_000;

#[test]
fn a_million_requests_charged_one_by_one_match_their_exact_sum_within_one_unit_each() {
    let seed = 0x00C0_FFEE_2026_1124;
    println!("rounding identity seed: {seed:#x}");
    let mut rng = SplitMix(seed);
    let models: Vec<&ModelPrice> = book().models().collect();
    let cfg = PricingConfig::reseller_default();
    let (mut charged, mut exact) = (0i128, 0i128);
    for i in 0..ROUNDING_IDENTITY_REQUESTS {
        let row = models[usize::try_from(rng.below(models.len() as u64)).unwrap()];
        // Mostly small requests, where rounding matters most, with some large ones.
        let scale = [10, 1_000, 100_000][usize::try_from(rng.below(3)).unwrap()];
        let split = rng.below(3);
        let aggregate = rng.below(scale);
        let usage = Usage {
            input_tokens: rng.below(scale),
            cache_creation_input_tokens: aggregate,
            cache_5m: (split > 0).then(|| rng.below(aggregate + 1)),
            cache_1h: (split > 1).then(|| rng.below(scale)),
            cache_read_input_tokens: rng.below(scale),
            output_tokens: rng.below(scale),
            thinking_tokens: None,
            web_search_requests: u64::from(rng.below(8) == 0),
            web_fetch_requests: 0,
            speed: (rng.below(4) == 0).then(|| "fast".to_owned()),
            inference_geo: (rng.below(3) == 0).then(|| "us".to_owned()),
            service_tier: None,
        };
        let batch = rng.below(5) == 0;
        let c = cost(book(), row.id(), &usage, &CostOptions { batch }, &cfg).unwrap();
        let want = exact_tenths_of_nanos(row, &usage, batch);
        let got = i128::from(c.total.nanos()) * 10;
        assert!(
            got >= want && got - want < 10,
            "request {i} (seed {seed:#x}): {got} vs {want}"
        );
        charged += got;
        exact += want;
    }
    let n = i128::from(ROUNDING_IDENTITY_REQUESTS);
    assert!(
        charged >= exact && charged - exact < 10 * n,
        "Σ charged {charged} vs Σ exact {exact}"
    );
}

// ------------------------------------------------------------------------------------------------
// The estimator against the simulated upstream's tokenizer, re-implemented here from its
// documentation (creditgate-sim's crate docs): whitespace is `char::is_whitespace`.

fn sim_text(s: &str) -> u64 {
    let (mut tokens, mut run) = (0u64, 0u64);
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            run += 1;
            continue;
        }
        tokens += run.div_ceil(4);
        run = 0;
        if !c.is_whitespace() {
            tokens += 1;
        }
    }
    tokens + run.div_ceil(4)
}

fn sim_json(v: &Value) -> u64 {
    // Key order does not change the count: every key and value is delimited by punctuation.
    sim_text(&v.to_string())
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn sim_block(b: &Value) -> u64 {
    match str_of(b, "type") {
        "text" => sim_text(str_of(b, "text")),
        "tool_use" => sim_text(str_of(b, "name")) + b.get("input").map_or(0, sim_json),
        "tool_result" => match b.get("content") {
            Some(Value::String(s)) => sim_text(s),
            Some(Value::Array(items)) => items.iter().map(sim_block).sum(),
            _ => 0,
        },
        "thinking" => sim_text(str_of(b, "thinking")),
        "image" => 1_600,
        "document" => {
            let source = b.get("source").unwrap_or(&Value::Null);
            match str_of(source, "type") {
                "text" => sim_text(str_of(source, "data")),
                "content" => match source.get("content") {
                    Some(Value::String(s)) => sim_text(s),
                    Some(Value::Array(items)) => items.iter().map(sim_block).sum(),
                    _ => 0,
                },
                _ => (str_of(source, "data").len() as u64).div_ceil(4),
            }
        }
        _ => {
            let mut without = b.clone();
            if let Some(map) = without.as_object_mut() {
                map.remove("cache_control");
            }
            sim_json(&without)
        }
    }
}

fn sim_request(body: &Value) -> u64 {
    let mut total = 3;
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for t in tools {
            let server = t
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|k| k != "custom");
            total += sim_text(str_of(t, "name"));
            if !server {
                total +=
                    sim_text(str_of(t, "description")) + t.get("input_schema").map_or(0, sim_json);
            }
        }
    }
    match body.get("system") {
        Some(Value::String(s)) => total += sim_text(s),
        Some(Value::Array(blocks)) => total += blocks.iter().map(sim_block).sum::<u64>(),
        _ => {}
    }
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for m in messages {
            total += 4 + match m.get("content") {
                Some(Value::String(s)) => sim_text(s),
                Some(Value::Array(blocks)) => blocks.iter().map(sim_block).sum(),
                _ => 0,
            };
        }
    }
    total
}

/// Text with everything a tokenizer can trip over: runs of letters and digits, punctuation,
/// ASCII and Unicode whitespace (vertical tab, no-break and ideographic spaces), accents, CJK,
/// emoji, quotes and backslashes that JSON escapes.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9]{1,12}",
            "[ \t\n\r]{1,3}",
            prop::sample::select(vec![
                ",", ".", "{", "\"", "\\", "\u{b}", "\u{a0}", "\u{3000}", "é", "日本", "🙂", "—",
                "\u{1}",
            ])
            .prop_map(str::to_owned),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn cache_control() -> impl Strategy<Value = Option<Value>> {
    prop::sample::select(vec![
        None,
        Some(json!({"type": "ephemeral"})),
        Some(json!({"type": "ephemeral", "ttl": "5m"})),
        Some(json!({"type": "ephemeral", "ttl": "1h"})),
    ])
}

fn with_cache_control(mut block: Value, cc: Option<Value>) -> Value {
    if let (Some(cc), Some(map)) = (cc, block.as_object_mut()) {
        map.insert("cache_control".into(), cc);
    }
    block
}

fn leaf_block() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(|t| json!({"type": "text", "text": t})),
        Just(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})),
        (text(), json_value()).prop_map(|(n, i)| json!({"type": "tool_use", "id": "toolu_1", "name": n, "input": i})),
        (text(), text()).prop_map(|(t, s)| json!({"type": "thinking", "thinking": t, "signature": s})),
        text().prop_map(|t| json!({"type": "document", "title": "t", "source": {"type": "text", "media_type": "text/plain", "data": t}})),
        "[A-Za-z0-9+/=]{0,200}".prop_map(|d| json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": d}})),
        Just(json!({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}})),
        text().prop_map(|t| json!({"type": "redacted_thinking", "data": t})),
        (text(), json_value()).prop_map(|(q, v)| json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": q, "x": v}})),
        json_value().prop_map(|v| json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": v})),
        json_value().prop_map(|v| json!({"type": "text", "text": v})),
        json_value().prop_map(|v| json!({"type": "mystery", "payload": v})),
    ]
}

fn block() -> impl Strategy<Value = Value> {
    let nested = prop_oneof![
        leaf_block(),
        (prop_oneof![
            text().prop_map(Value::from),
            prop::collection::vec(leaf_block(), 0..3).prop_map(Value::Array)
        ])
        .prop_map(|c| json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": c})),
        prop::collection::vec(leaf_block(), 0..3)
            .prop_map(|c| json!({"type": "document", "source": {"type": "content", "content": c}})),
    ];
    (nested, cache_control()).prop_map(|(b, cc)| with_cache_control(b, cc))
}

fn message() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["user", "assistant"]),
        prop_oneof![
            text().prop_map(Value::from),
            prop::collection::vec(block(), 0..5).prop_map(Value::Array),
            json_value(),
        ],
    )
        .prop_map(|(role, content)| json!({"role": role, "content": content}))
}

fn tool() -> impl Strategy<Value = Value> {
    prop_oneof![
        (text(), text(), json_value(), cache_control()).prop_map(|(n, d, s, cc)| {
            with_cache_control(json!({"name": n, "description": d, "input_schema": s}), cc)
        }),
        (text(), json_value())
            .prop_map(|(n, s)| json!({"type": "custom", "name": n, "input_schema": s})),
        (prop::option::of(0u64..6)).prop_map(|m| match m {
            Some(m) => json!({"type": "web_search_20250305", "name": "web_search", "max_uses": m}),
            None => json!({"type": "web_search_20260209", "name": "web_search"}),
        }),
        Just(json!({"type": "bash_20250124", "name": "bash"})),
    ]
}

prop_compose! {
    fn request_body()(
        model in prop::sample::select(vec!["claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-4-6", "claude-opus-4-8", "claude-fable-5-1"]),
        max_tokens in 0u64..70_000,
        system in prop_oneof![
            Just(None),
            text().prop_map(|t| Some(Value::from(t))),
            prop::collection::vec(block(), 0..3).prop_map(|b| Some(Value::Array(b))),
        ],
        tools in prop::option::of(prop::collection::vec(tool(), 0..4)),
        messages in prop::collection::vec(message(), 1..6),
        images in 0usize..70,
        top_cache in cache_control(),
        speed in prop::sample::select(vec![None, Some("fast"), Some("standard")]),
        geo in prop::sample::select(vec![None, Some("us"), Some("global")]),
    ) -> Value {
        let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": messages});
        // Many images push prompts over Haiku 5.5's 100k tier cheaply.
        if images > 0 {
            let imgs: Vec<Value> = (0..images).map(|_| json!({"type": "image", "source": {"type": "url", "url": "https://example.com/i.png"}})).collect();
            body["messages"].as_array_mut().unwrap().push(json!({"role": "user", "content": imgs}));
        }
        if let Some(s) = system { body["system"] = s; }
        if let Some(t) = tools { body["tools"] = Value::Array(t); }
        if let Some(cc) = top_cache { body["cache_control"] = cc; }
        if let Some(s) = speed { body["speed"] = s.into(); }
        if let Some(g) = geo { body["inference_geo"] = g.into(); }
        body
    }
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    #[test]
    fn estimator_is_never_below_the_simulated_tokenizer(body in request_body()) {
        let sim = sim_request(&body);
        prop_assert!(estimate_input_tokens(&body) >= sim);
        prop_assert!(estimate_input_tokens_for(&body, "1.3".parse().unwrap()) >= sim);
    }

    #[test]
    fn simulated_text_count_matches_the_simulator_on_ascii_whitespace(t in text()) {
        // Ours frees only ASCII whitespace; the simulator frees Unicode whitespace too.
        prop_assert!(estimate_text_tokens(&t) >= sim_text(&t));
        if !t.chars().any(|c| c.is_whitespace() && !c.is_ascii_whitespace()) {
            prop_assert_eq!(estimate_text_tokens(&t), sim_text(&t));
        }
    }

    /// The hold covers any usage the request can produce within the estimate: a prompt (input +
    /// cache reads + writes) at most the estimate, cache writes only with markers (1h only with
    /// a 1h marker), fast only when asked, "us" only when asked, output ≤ max_tokens, searches ≤
    /// those held.
    #[test]
    fn hold_never_below_the_cost_of_usage_within_the_estimate(
        body in request_body(),
        cfg in any_config(),
        shares in (0u64..=1000, 0u64..=1000, 0u64..=1000, 0u64..=1000, 0u64..=1000),
        split_mode in 0u8..4,
        output_share in 0u64..=1000,
        thinking in prop::option::of(0u64..100),
        search_share in 0u64..=1000,
        speed_fast in any::<bool>(),
        geo_us in any::<bool>(),
    ) {
        let hold = hold_estimate(book(), &body, &cfg).unwrap();
        let triggers = cache_triggers(&body);
        let prompt = hold.input_tokens();
        let part = |share: u64| prompt * share / 1000;
        let w5 = if triggers.any { part(shares.1) } else { 0 };
        let w1 = if triggers.one_hour { part(shares.2) } else { 0 };
        let read = if triggers.any { part(shares.3) } else { 0 };
        let used = (w5 + w1 + read).min(prompt);
        let input = (prompt - used) * shares.0 / 1000;
        // Scale writes and reads down so the whole prompt fits the estimate.
        let (w5, w1, read) = if w5 + w1 + read > prompt {
            (w5 * prompt / (w5 + w1 + read + 1), w1 * prompt / (w5 + w1 + read + 1), read * prompt / (w5 + w1 + read + 1))
        } else {
            (w5, w1, read)
        };
        // The usage object's view of those writes, in each of the four shapes the split can take.
        let (aggregate, s5, s1) = match split_mode {
            0 if w1 == 0 => (w5, None, None),
            0 | 1 => (w5 + w1, Some(w5), Some(w1)),
            2 => (w5 + w1, Some(w5 / 2), Some(w1)), // under the aggregate: the rest is 5m
            _ => ((w5 + w1) / 2, Some(w5), Some(w1)), // over the aggregate: trusted
        };
        let output = hold.max_tokens() * output_share / 1000;
        let usage = Usage {
            input_tokens: input,
            cache_creation_input_tokens: aggregate,
            cache_5m: s5,
            cache_1h: s1,
            cache_read_input_tokens: read,
            output_tokens: output,
            thinking_tokens: thinking.map(|t| t.min(output)),
            web_search_requests: hold.web_search_uses() * search_share / 1000,
            web_fetch_requests: 0,
            speed: Some(if speed_fast && body["speed"] == "fast" { "fast" } else { "standard" }.to_owned()),
            inference_geo: Some(if geo_us && body["inference_geo"] == "us" { "us" } else { "global" }.to_owned()),
            service_tier: Some("standard".to_owned()),
        };
        prop_assert!(usage.prompt_tokens() <= prompt);
        let model = body["model"].as_str().unwrap();
        let actual = cost(book(), model, &usage, &CostOptions::default(), &cfg).unwrap().total;
        prop_assert!(hold.with_output(hold.max_tokens()).unwrap() >= actual, "{actual} > worst case");
        prop_assert!(hold.with_output(output).unwrap() >= actual, "{actual} > hold with {output} output");
    }

    #[test]
    fn max_affordable_output_is_the_largest_that_fits(
        body in request_body(),
        available in 0i64..2_000_000_000_000,
    ) {
        let hold = hold_estimate(book(), &body, &PricingConfig::reseller_default()).unwrap();
        let available = NanoCredits::from_nanos(available);
        let n = hold.max_affordable_output(available);
        prop_assert!(n <= hold.max_tokens());
        if hold.input_side() > available {
            prop_assert_eq!(n, 0);
        } else {
            prop_assert!(hold.with_output(n).unwrap() <= available);
            if n < hold.max_tokens() {
                prop_assert!(hold.with_output(n + 1).unwrap() > available);
            }
        }
    }
}
