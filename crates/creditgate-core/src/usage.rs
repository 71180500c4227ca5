//! Usage records: what one request used and cost, typed from the upstream's edge to the ledger,
//! and the receipt read back from them.
//!
//! The gateway builds a [`UsageRecord`] once per request from the typed [`Usage`] and its
//! [`Cost`]; the settle that charges the request carries it, and the storage writes it as one
//! row with typed columns in the settlement's own transaction. Reports and receipts read those
//! rows; nothing parses JSON to learn what a request cost.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{ApiKeyId, OrganizationId, TransferId};
use crate::money::{pow10, Decimal, MoneyError, NanoCredits};
use crate::pricing::{
    self, Cost, CostOptions, LineCategory, PriceBook, PricingConfig, Usage, UsageFlag,
};
use serde_json::{json, Map, Value};

/// Longest model name, upstream request id or price version a record keeps.
pub const MAX_RECORD_TEXT: usize = 256;
/// Longest note a usage record carries (the ledger's memo limit).
pub const MAX_NOTE_LEN: usize = 64 * 1024;
/// Decimal places of [`PicoUsd`]: list prices are kept to 10⁻¹² USD.
pub const PICO_USD_DECIMALS: u32 = 12;

/// How a request's charge was determined (the receipt's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// Still in flight.
    Pending,
    /// Charged from the upstream's final usage.
    Settled,
    /// The stream ended early (error event, reset, billing cut): input from `message_start`
    /// plus the output observed.
    Partial,
    /// The client left under the `cancel` policy: exact input, estimated output.
    Estimated,
    /// Nothing was charged (upstream error before output, zero usage).
    Free,
}

impl ReceiptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Settled => "settled",
            Self::Partial => "partial",
            Self::Estimated => "estimated",
            Self::Free => "free",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "settled" => Self::Settled,
            "partial" => Self::Partial,
            "estimated" => Self::Estimated,
            "free" => Self::Free,
            _ => return None,
        })
    }
}

/// What happens to a stream whose client disconnects (`docs/ledger.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectPolicy {
    /// Keep reading the upstream (bounded by the drain timeout) and charge the exact usage.
    Drain,
    /// Abort the upstream; charge exact input and output estimated from the deltas seen.
    Cancel,
}

impl DisconnectPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drain => "drain",
            Self::Cancel => "cancel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "drain" => Some(Self::Drain),
            "cancel" => Some(Self::Cancel),
            _ => None,
        }
    }
}

/// The upstream's usage object, parsed once at the edge: the counts (clamped by the rules of
/// [`Usage::from_json`]) and what was irregular about them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedUsage {
    pub usage: Usage,
    pub flags: Vec<UsageFlag>,
}

impl ReportedUsage {
    pub fn parse(v: &Value) -> Self {
        let (usage, flags) = Usage::from_json(v);
        Self { usage, flags }
    }
}

/// What admission knows about a request; kept with its hold until the settle writes the record
/// (an in-flight request's receipt shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    pub model: String,
    pub key_id: ApiKeyId,
    pub stream: bool,
}

/// An amount of US dollars in units of 10⁻¹² (list prices are exact decimals of up to
/// 8 + 6 + modifier places; 10⁻¹² keeps every price of the built-in book exactly and rounds a
/// finer one up).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct PicoUsd(i64);

impl PicoUsd {
    pub const ZERO: Self = Self(0);

    pub const fn from_pico(v: i64) -> Self {
        Self(v)
    }

    pub const fn pico(self) -> i64 {
        self.0
    }

    /// `usd` rounded up to 10⁻¹² USD.
    pub fn from_usd(usd: Decimal) -> Result<Self, MoneyError> {
        let units = if usd.scale() <= PICO_USD_DECIMALS {
            usd.units()
                .checked_mul(pow10(PICO_USD_DECIMALS - usd.scale())?)
                .ok_or(MoneyError::Overflow)?
        } else {
            crate::money::div_ceil_i128(usd.units(), pow10(usd.scale() - PICO_USD_DECIMALS)?)?
        };
        i64::try_from(units)
            .map(Self)
            .map_err(|_| MoneyError::Overflow)
    }

    /// The exact amount in USD.
    pub fn to_usd(self) -> Decimal {
        Decimal::new(i128::from(self.0), PICO_USD_DECIMALS).unwrap_or(Decimal::ZERO)
    }

    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Self)
            .ok_or(MoneyError::Overflow)
    }
}

/// One amount per cost line of a request (token categories and server-tool requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lines<T> {
    pub input: T,
    pub cache_write_5m: T,
    pub cache_write_1h: T,
    pub cache_read: T,
    pub output: T,
    pub web_search: T,
    pub web_fetch: T,
}

impl<T: Copy> Lines<T> {
    /// Every line with its category, in a fixed order.
    pub fn each(&self) -> [(LineCategory, T); 7] {
        [
            (LineCategory::Input, self.input),
            (LineCategory::CacheWrite5m, self.cache_write_5m),
            (LineCategory::CacheWrite1h, self.cache_write_1h),
            (LineCategory::CacheRead, self.cache_read),
            (LineCategory::Output, self.output),
            (LineCategory::WebSearch, self.web_search),
            (LineCategory::WebFetch, self.web_fetch),
        ]
    }

    pub fn get_mut(&mut self, category: LineCategory) -> &mut T {
        match category {
            LineCategory::Input => &mut self.input,
            LineCategory::CacheWrite5m => &mut self.cache_write_5m,
            LineCategory::CacheWrite1h => &mut self.cache_write_1h,
            LineCategory::CacheRead => &mut self.cache_read,
            LineCategory::Output => &mut self.output,
            LineCategory::WebSearch => &mut self.web_search,
            LineCategory::WebFetch => &mut self.web_fetch,
        }
    }
}

impl Lines<NanoCredits> {
    pub fn total(&self) -> Result<NanoCredits, MoneyError> {
        NanoCredits::checked_sum(self.each().map(|(_, v)| v))
    }
}

impl Lines<PicoUsd> {
    pub fn total(&self) -> Result<PicoUsd, MoneyError> {
        self.each()
            .iter()
            .try_fold(PicoUsd::ZERO, |acc, (_, v)| acc.checked_add(*v))
    }
}

/// The tokens of a request as billed, per category (the record's token columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Uncached input.
    pub input: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    /// All output, thinking included.
    pub output: u64,
    /// The thinking share of `output`, when the upstream reported it.
    pub thinking: Option<u64>,
    pub web_search_requests: u64,
    pub web_fetch_requests: u64,
}

impl Tokens {
    /// The billed counts of a parsed usage object (the cache split as [`Usage::cache_writes`]
    /// bills it).
    pub fn billed(usage: &Usage) -> Self {
        let writes = usage.cache_writes();
        Self {
            input: usage.input_tokens,
            cache_write_5m: writes.five_minute,
            cache_write_1h: writes.one_hour,
            cache_read: usage.cache_read_input_tokens,
            output: usage.output_tokens,
            thinking: usage.thinking_tokens,
            web_search_requests: usage.web_search_requests,
            web_fetch_requests: usage.web_fetch_requests,
        }
    }

    /// The quantity a cost line of `category` is priced on.
    pub fn quantity(&self, category: LineCategory) -> u64 {
        match category {
            LineCategory::Input => self.input,
            LineCategory::CacheWrite5m => self.cache_write_5m,
            LineCategory::CacheWrite1h => self.cache_write_1h,
            LineCategory::CacheRead => self.cache_read,
            LineCategory::Output => self.output,
            LineCategory::WebSearch => self.web_search_requests,
            LineCategory::WebFetch => self.web_fetch_requests,
        }
    }
}

impl Tokens {
    /// The usage in Anthropic's shape (`message.usage`), as billed: the cache split is always
    /// given, thinking and server tools only when there are some.
    pub fn anthropic_json(&self, service: &Service) -> Value {
        let mut u = Map::new();
        u.insert("input_tokens".into(), self.input.into());
        u.insert(
            "cache_creation_input_tokens".into(),
            self.cache_write_5m
                .saturating_add(self.cache_write_1h)
                .into(),
        );
        u.insert("cache_read_input_tokens".into(), self.cache_read.into());
        u.insert(
            "cache_creation".into(),
            json!({
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            }),
        );
        u.insert("output_tokens".into(), self.output.into());
        if let Some(thinking) = self.thinking {
            u.insert(
                "output_tokens_details".into(),
                json!({"thinking_tokens": thinking}),
            );
        }
        if self.web_search_requests > 0 || self.web_fetch_requests > 0 {
            u.insert(
                "server_tool_use".into(),
                json!({"web_search_requests": self.web_search_requests,
                       "web_fetch_requests": self.web_fetch_requests}),
            );
        }
        for (k, v) in [
            ("service_tier", &service.tier),
            ("inference_geo", &service.inference_geo),
            ("speed", &service.speed),
        ] {
            if let Some(v) = v {
                u.insert(k.into(), v.clone().into());
            }
        }
        Value::Object(u)
    }
}

/// The service the upstream says it gave (the report dimensions beside model and key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// `"standard"`, `"priority"` or `"batch"`.
    pub tier: Option<String>,
    /// The region used (`"us"`, `"global"`, `"not_available"`).
    pub inference_geo: Option<String>,
    /// `"standard"` or `"fast"`.
    pub speed: Option<String>,
    /// Priced at the model's long-context rates (Anthropic's `context_window` `200k-1M`).
    pub long_context: bool,
}

impl Service {
    /// Anthropic's `context_window` report dimension: `200k-1M` when priced at long-context
    /// rates, else `0-200k`.
    pub fn context_window(&self) -> &'static str {
        if self.long_context {
            "200k-1M"
        } else {
            "0-200k"
        }
    }
}

/// One request's usage record, as the gateway hands it to the settle that charges it. The
/// settle writes it with the charge; its per-line credits add up to the charge exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub key_id: Option<ApiKeyId>,
    pub model: String,
    /// `None` when the upstream reported no usage (an error before any output).
    pub tokens: Option<Tokens>,
    pub service: Service,
    /// The charge split by line; sums to the settle's amount.
    pub credits: Lines<NanoCredits>,
    /// The same usage at Anthropic's list price.
    pub list: Lines<PicoUsd>,
    /// What the cache reads saved: their cost as uncached input minus their cost as reads.
    pub cache_savings: NanoCredits,
    pub price_version: Option<String>,
    /// From admission to settlement, in milliseconds.
    pub latency_ms: u64,
    pub status: ReceiptStatus,
    pub stream: bool,
    pub disconnect_policy: DisconnectPolicy,
    pub upstream_request_id: Option<String>,
    /// Irregularities of the upstream's usage and how they were priced.
    pub flags: Vec<UsageFlag>,
    pub note: Option<String>,
}

impl UsageRecord {
    /// Refuses a record the ledger must not store: per-line credits that do not add up to the
    /// charge, a negative line, oversized text.
    pub fn check(&self, charged: NanoCredits) -> Result<(), String> {
        let total = self.credits.total().map_err(|e| e.to_string())?;
        if total != charged {
            return Err(format!(
                "the usage record's credits add up to {total}, the charge is {charged}"
            ));
        }
        if self.credits.each().iter().any(|(_, v)| v.is_negative())
            || self.list.each().iter().any(|(_, v)| v.pico() < 0)
            || self.cache_savings.is_negative()
        {
            return Err("the usage record has a negative amount".to_owned());
        }
        let texts = [
            Some(self.model.as_str()),
            self.price_version.as_deref(),
            self.upstream_request_id.as_deref(),
            self.service.tier.as_deref(),
            self.service.inference_geo.as_deref(),
            self.service.speed.as_deref(),
        ];
        if texts.iter().flatten().any(|t| t.len() > MAX_RECORD_TEXT) {
            return Err(format!(
                "a usage record text field exceeds {MAX_RECORD_TEXT} bytes"
            ));
        }
        if self.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE_LEN) || self.flags.len() > 64 {
            return Err("the usage record's note or flags are too long".to_owned());
        }
        i64::try_from(self.latency_ms).map_err(|_| "latency out of range".to_owned())?;
        Ok(())
    }
}

/// What the gateway knows about a request beside its usage and charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub key_id: Option<ApiKeyId>,
    pub model: String,
    pub stream: bool,
    pub disconnect_policy: DisconnectPolicy,
    pub latency_ms: u64,
    pub upstream_request_id: Option<String>,
    pub note: Option<String>,
}

/// What a request was charged, as the charging rules decided it.
#[derive(Debug, Clone, Copy)]
pub struct Charged<'a> {
    pub amount: NanoCredits,
    pub status: ReceiptStatus,
    /// The priced cost, when the usage could be priced.
    pub cost: Option<&'a Cost>,
    pub flags: &'a [UsageFlag],
}

impl UsageRecord {
    /// The record of a request: its typed usage (`None` if the upstream reported none), what it
    /// was charged, and what the cache reads saved.
    pub fn new(
        facts: RequestFacts,
        usage: Option<&Usage>,
        charged: Charged<'_>,
        cache_savings: NanoCredits,
    ) -> Result<Self, MoneyError> {
        let (credits, list) = priced_lines(charged.cost, charged.amount)?;
        let service = Service {
            tier: usage.and_then(|u| u.service_tier.clone()),
            inference_geo: usage.and_then(|u| u.inference_geo.clone()),
            speed: usage.and_then(|u| u.speed.clone()),
            long_context: charged.cost.is_some_and(|c| c.modifiers.long_context),
        };
        let mut flags = charged.flags.to_vec();
        if let Some(cost) = charged.cost {
            flags.extend(cost.flags.iter().cloned());
        }
        Ok(Self {
            key_id: facts.key_id,
            model: facts.model,
            tokens: usage.map(Tokens::billed),
            service,
            credits,
            list,
            cache_savings,
            price_version: charged.cost.map(|c| c.price_version.clone()),
            latency_ms: facts.latency_ms,
            status: charged.status,
            stream: facts.stream,
            disconnect_policy: facts.disconnect_policy,
            upstream_request_id: facts.upstream_request_id,
            flags,
            note: facts.note,
        })
    }
}

/// What the cache reads of `usage` saved: the cost of the usage with its reads priced as
/// uncached input, minus its cost as reported (zero when either cannot be priced).
pub fn cache_savings(
    book: &PriceBook,
    model: &str,
    usage: &Usage,
    cost: &Cost,
    cfg: &PricingConfig,
) -> NanoCredits {
    if usage.cache_read_input_tokens == 0 {
        return NanoCredits::ZERO;
    }
    let mut uncached = usage.clone();
    uncached.input_tokens = uncached
        .input_tokens
        .saturating_add(uncached.cache_read_input_tokens);
    uncached.cache_read_input_tokens = 0;
    pricing::cost(book, model, &uncached, &CostOptions::default(), cfg)
        .ok()
        .and_then(|c| c.total.checked_sub(cost.total).ok())
        .map_or(NanoCredits::ZERO, |s| s.max(NanoCredits::ZERO))
}

/// The credits and list price of a priced cost, per line, with the charge spread over the lines
/// when it differs from the cost (capped at the hold for malformed usage, or the hold charged
/// when pricing failed).
pub fn priced_lines(
    cost: Option<&Cost>,
    charged: NanoCredits,
) -> Result<(Lines<NanoCredits>, Lines<PicoUsd>), MoneyError> {
    let mut credits = Lines::<NanoCredits>::default();
    let mut list = Lines::<PicoUsd>::default();
    for line in cost.map_or(&[][..], |c| &c.lines[..]) {
        let slot = credits.get_mut(line.category);
        *slot = slot.checked_add(line.credits)?;
        let slot = list.get_mut(line.category);
        *slot = slot.checked_add(PicoUsd::from_usd(line.list_usd)?)?;
    }
    Ok((spread(charged, &credits)?, list))
}

/// Spreads `charged` over the lines in proportion to `priced`, rounding down, the remainder
/// going to the largest line; all of it on `input` when nothing was priced. The result always
/// adds up to `charged` exactly.
pub fn spread(
    charged: NanoCredits,
    priced: &Lines<NanoCredits>,
) -> Result<Lines<NanoCredits>, MoneyError> {
    let total = priced.total()?;
    if total == charged {
        return Ok(*priced);
    }
    let mut out = Lines::<NanoCredits>::default();
    if !total.is_positive() {
        out.input = charged;
        return Ok(out);
    }
    let mut given = NanoCredits::ZERO;
    let mut largest = (LineCategory::Input, NanoCredits::ZERO);
    for (category, amount) in priced.each() {
        let share =
            i128::from(amount.nanos()) * i128::from(charged.nanos()) / i128::from(total.nanos());
        let share =
            NanoCredits::from_nanos(i64::try_from(share).map_err(|_| MoneyError::Overflow)?);
        *out.get_mut(category) = share;
        given = given.checked_add(share)?;
        if amount > largest.1 {
            largest = (category, amount);
        }
    }
    let slot = out.get_mut(largest.0);
    *slot = slot.checked_add(charged.checked_sub(given)?)?;
    Ok(out)
}

/// A usage record as stored: the request, its organization and its settlement time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUsage {
    pub request_id: TransferId,
    pub org: OrganizationId,
    /// When the settle wrote it; a request belongs to the report bucket of this time.
    pub at: Timestamp,
    pub record: UsageRecord,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: i64) -> NanoCredits {
        NanoCredits::from_nanos(v)
    }

    #[test]
    fn pico_usd_is_exact_to_twelve_places_and_rounds_finer_up() {
        let d: Decimal = "0.0000012345".parse().unwrap();
        assert_eq!(PicoUsd::from_usd(d).unwrap().pico(), 1_234_500);
        let fine: Decimal = "0.0000000000001".parse().unwrap();
        assert_eq!(PicoUsd::from_usd(fine).unwrap().pico(), 1);
        assert_eq!(PicoUsd::from_pico(1_234_500).to_usd(), d);
    }

    #[test]
    fn spread_always_adds_up_to_the_charge() {
        let priced = Lines {
            input: n(300),
            output: n(700),
            ..Lines::default()
        };
        for charged in [0, 1, 7, 999, 1000, 1001, 123_456] {
            let out = spread(n(charged), &priced).unwrap();
            assert_eq!(out.total().unwrap(), n(charged));
            assert!(out.each().iter().all(|(_, v)| !v.is_negative()));
        }
        let nothing = spread(n(50), &Lines::default()).unwrap();
        assert_eq!(nothing.input, n(50));
        assert_eq!(spread(n(1000), &priced).unwrap(), priced);
    }

    #[test]
    fn a_record_must_add_up_to_its_charge() {
        let rec = UsageRecord {
            key_id: None,
            model: "m".into(),
            tokens: None,
            service: Service::default(),
            credits: Lines {
                output: n(5),
                ..Lines::default()
            },
            list: Lines::default(),
            cache_savings: NanoCredits::ZERO,
            price_version: None,
            latency_ms: 1,
            status: ReceiptStatus::Settled,
            stream: false,
            disconnect_policy: DisconnectPolicy::Drain,
            upstream_request_id: None,
            flags: Vec::new(),
            note: None,
        };
        assert!(rec.check(n(5)).is_ok());
        assert!(rec.check(n(6)).is_err());
    }
}
