//! The cost of one request: usage × rates × modifiers × the operator's multiplier, in credits,
//! computed exactly and rounded once, up, to the nano-credit.

use serde::{Deserialize, Serialize};

use super::book::{ModelPrice, Modifiers, PriceBook, Rates};
use super::wire_usage::{CacheWrites, Usage, UsageFlag};
use super::{PricingConfig, PricingError};
use crate::money::{div_ceil_i128, pow10, Decimal, MoneyError, NanoCredits, CREDIT_DECIMALS};

/// Tokens per "million tokens" of a rate.
const TOKENS_PER_RATE_UNIT_EXP: u32 = 6;

/// How one request is billed beyond its usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostOptions {
    /// Sent through Message Batches: every token category at the book's batch multiplier.
    pub batch: bool,
}

/// What a line of a cost is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LineCategory {
    #[serde(rename = "input")]
    Input,
    #[serde(rename = "cache_write_5m")]
    CacheWrite5m,
    #[serde(rename = "cache_write_1h")]
    CacheWrite1h,
    #[serde(rename = "cache_read")]
    CacheRead,
    #[serde(rename = "output")]
    Output,
    #[serde(rename = "web_search")]
    WebSearch,
    #[serde(rename = "web_fetch")]
    WebFetch,
}

impl LineCategory {
    /// Token lines are priced per million tokens, the others per request.
    pub fn is_tokens(self) -> bool {
        !matches!(self, Self::WebSearch | Self::WebFetch)
    }
}

/// The thinking share of the output line. Thinking is billed as output; this only shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThinkingLine {
    pub tokens: u64,
    /// The output line's credits in proportion `tokens / output tokens`, rounded down.
    pub credits: NanoCredits,
    /// `false`: reported by the upstream (`output_tokens_details.thinking_tokens`);
    /// `true`: estimated by the gateway (see [`Cost::estimate_thinking`]).
    pub estimated: bool,
}

/// One line of a cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostLine {
    pub category: LineCategory,
    /// Tokens, or requests for web search and web fetch.
    pub quantity: u64,
    /// The list rate used, before batch and geo: USD per million tokens, or USD per request.
    pub rate: Decimal,
    /// Exact list price of the line (with batch and geo, before the operator's multiplier).
    pub list_usd: Decimal,
    /// Exact price of the line after the operator's multiplier.
    pub charged_usd: Decimal,
    /// This line's share of the rounded total (see [`cost`] for how the rounding is shared).
    pub credits: NanoCredits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingLine>,
}

/// Which modifiers priced a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AppliedModifiers {
    pub batch: bool,
    pub fast: bool,
    pub us_geo: bool,
    pub long_context: bool,
}

/// The priced cost of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// What is charged: exact cost rounded once, up, to the nano-credit. Equals the sum of the
    /// lines' credits.
    pub total: NanoCredits,
    /// Exact list price in USD (Anthropic's price for this usage, batch and geo included).
    pub list_usd: Decimal,
    /// Exact price in USD after the operator's multiplier.
    pub charged_usd: Decimal,
    /// input, cache_write_5m, cache_write_1h, cache_read, output always; web_search and
    /// web_fetch when used.
    pub lines: Vec<CostLine>,
    pub price_version: String,
    /// Canonical id of the row used.
    pub model: String,
    pub modifiers: AppliedModifiers,
    /// Irregularities found while pricing (split mismatch, unpriced fast mode, …). The flags of
    /// [`Usage::from_json`] are the caller's to add.
    pub flags: Vec<UsageFlag>,
}

impl Cost {
    /// The output line.
    pub fn output_line(&self) -> Option<&CostLine> {
        self.lines
            .iter()
            .find(|l| l.category == LineCategory::Output)
    }

    /// Shows an estimated thinking share when the upstream reported none (e.g. counted from the
    /// streamed thinking text). Changes no amount; a reported share is kept.
    pub fn estimate_thinking(&mut self, tokens: u64) {
        if let Some(line) = self
            .lines
            .iter_mut()
            .find(|l| l.category == LineCategory::Output)
        {
            if line.thinking.is_none() {
                line.thinking = Some(thinking_share(line, tokens, true));
            }
        }
    }
}

fn thinking_share(output: &CostLine, tokens: u64, estimated: bool) -> ThinkingLine {
    let tokens = tokens.min(output.quantity);
    let credits = if output.quantity == 0 {
        0
    } else {
        // ≤ credits × 1e8 / 1: fits i128 easily; the share never exceeds the line.
        i128::from(output.credits.nanos()) * i128::from(tokens) / i128::from(output.quantity)
    };
    ThinkingLine {
        tokens,
        credits: NanoCredits::from_nanos(i64::try_from(credits).unwrap_or(output.credits.nanos())),
        estimated,
    }
}

/// Prices one request from its usage, for new usage (ended prompt tiers and superseded rates
/// are not applied; see [`cost_at`] to re-price old usage).
///
/// Rules, in order:
/// 1. The row: `model` resolved by id, alias or dated snapshot id; unknown models are an error.
/// 2. Cache writes by [`Usage::cache_writes`] (no split: all 5-minute).
/// 3. Rates: fast rates when `usage.speed` is `"fast"` and the model has them; else the prompt
///    tier when in force and input + cache reads + cache writes exceed its threshold (the whole
///    request, output included); else standard rates.
/// 4. Each token line: tokens × rate / 10⁶ × batch (if `opts.batch`) × geo (if
///    `usage.inference_geo` is `"us"` and the model says so). Web search: requests × its fee
///    (no batch or geo). Then every line × the operator's multiplier.
/// 5. Credits: the exact sum ÷ the credit's USD value, rounded up once to the nano-credit.
///    Each line gets its exact share rounded down, and the remaining nano-credits (fewer than
///    the number of lines) go one each to the lines with the largest dropped fractions, ties to
///    the earlier line. So lines sum to the total exactly and each is within one nano-credit of
///    its exact value.
///
/// ```
/// use creditgate_core::pricing::{cost, CostOptions, PriceBook, PricingConfig, Usage};
/// let book = PriceBook::builtin();
/// let usage = Usage { input_tokens: 1_000, output_tokens: 500, ..Usage::default() };
/// let c = cost(&book, "claude-sonnet-4-5", &usage, &CostOptions::default(),
///              &PricingConfig::list_usd()).unwrap();
/// // 1,000 × $3/M + 500 × $15/M = $0.003 + $0.0075
/// assert_eq!(c.total.to_string(), "0.0105");
/// ```
pub fn cost(
    book: &PriceBook,
    model: &str,
    usage: &Usage,
    opts: &CostOptions,
    cfg: &PricingConfig,
) -> Result<Cost, PricingError> {
    price(book, model, usage, opts, cfg, None)
}

/// [`cost`] for usage that happened at `usage_at` (Unix ms): prompt tiers and earlier rates that
/// ended after `usage_at` apply. For re-pricing old usage.
pub fn cost_at(
    book: &PriceBook,
    model: &str,
    usage: &Usage,
    opts: &CostOptions,
    cfg: &PricingConfig,
    usage_at: i64,
) -> Result<Cost, PricingError> {
    price(book, model, usage, opts, cfg, Some(usage_at))
}

fn price(
    book: &PriceBook,
    model: &str,
    usage: &Usage,
    opts: &CostOptions,
    cfg: &PricingConfig,
    usage_at: Option<i64>,
) -> Result<Cost, PricingError> {
    cfg.validate()?;
    let row = book.resolve(model)?;
    let writes = usage.cache_writes();
    let (flags, fast) = usage_flags(usage, &writes, row, opts);
    let selected = row.select_rates(fast, usage.prompt_tokens(), usage_at);
    let us_geo = usage.inference_geo.as_deref() == Some("us") && row.us_geo_multiplier_applies();
    let modifiers = AppliedModifiers {
        batch: opts.batch,
        fast: selected.fast,
        us_geo,
        long_context: selected.long_context,
    };
    let token_factor = token_factor(book, row, opts.batch, us_geo)?;
    let specs = line_specs(usage, &writes, &selected.rates, book.modifiers());
    let mut lines = priced_lines(specs, token_factor, cfg)?;

    let charged: Vec<Decimal> = lines.iter().map(|l| l.charged_usd).collect();
    let exact = NanoFractions::of(&charged, cfg.credit_unit.usd)?;
    let (total, shares) = exact.round_up_and_share()?;
    for (line, share) in lines.iter_mut().zip(shares) {
        line.credits = share;
    }
    if let Some(thinking) = usage.thinking_tokens {
        if let Some(out) = lines
            .iter_mut()
            .find(|l| l.category == LineCategory::Output)
        {
            out.thinking = Some(thinking_share(out, thinking, false));
        }
    }
    let list_usd = sum(lines.iter().map(|l| l.list_usd))?;
    let charged_usd = sum(lines.iter().map(|l| l.charged_usd))?;
    Ok(Cost {
        total,
        list_usd,
        charged_usd,
        lines,
        price_version: book.version().to_owned(),
        model: row.id().to_owned(),
        modifiers,
        flags,
    })
}

/// What the usage reports that the price cannot take as it is (each becomes a flag on the cost),
/// and whether it asks for fast mode.
fn usage_flags(
    usage: &Usage,
    writes: &CacheWrites,
    row: &ModelPrice,
    opts: &CostOptions,
) -> (Vec<UsageFlag>, bool) {
    let mut flags = Vec::new();
    if writes.mismatch {
        flags.push(UsageFlag::CacheSplitMismatch {
            aggregate: usage.cache_creation_input_tokens,
            ephemeral_5m: usage.cache_5m.unwrap_or(0),
            ephemeral_1h: usage.cache_1h.unwrap_or(0),
        });
    }
    let fast = match usage.speed.as_deref() {
        None | Some("standard") => false,
        Some("fast") => true,
        Some(other) => {
            flags.push(UsageFlag::UnknownSpeed {
                reported: other.to_owned(),
            });
            false
        }
    };
    if fast && row.fast_rates().is_none() {
        flags.push(UsageFlag::FastModeUnpriced {
            model: row.id().to_owned(),
        });
    }
    if !opts.batch && usage.service_tier.as_deref() == Some("batch") {
        flags.push(UsageFlag::BatchTierNotRequested);
    }
    if let Some(thinking) = usage.thinking_tokens {
        if thinking > usage.output_tokens {
            flags.push(UsageFlag::ThinkingExceedsOutput {
                thinking,
                output: usage.output_tokens,
            });
        }
    }
    (flags, fast)
}

/// Each cost line's category, quantity and USD rate: the five token lines always, a server
/// tool's fee line when the tool was used.
fn line_specs(
    usage: &Usage,
    writes: &CacheWrites,
    r: &Rates,
    fees: &Modifiers,
) -> Vec<(LineCategory, u64, Decimal)> {
    let mut specs = vec![
        (LineCategory::Input, usage.input_tokens, r.input),
        (
            LineCategory::CacheWrite5m,
            writes.five_minute,
            r.cache_write_5m,
        ),
        (
            LineCategory::CacheWrite1h,
            writes.one_hour,
            r.cache_write_1h,
        ),
        (
            LineCategory::CacheRead,
            usage.cache_read_input_tokens,
            r.cache_read,
        ),
        (LineCategory::Output, usage.output_tokens, r.output),
    ];
    if usage.web_search_requests > 0 {
        specs.push((
            LineCategory::WebSearch,
            usage.web_search_requests,
            fees.web_search_usd_per_request,
        ));
    }
    if usage.web_fetch_requests > 0 {
        specs.push((
            LineCategory::WebFetch,
            usage.web_fetch_requests,
            fees.web_fetch_usd_per_request,
        ));
    }
    specs
}

/// Each line's list price in USD and what is charged for it (times the multiplier); its credits
/// are shared out afterwards, from the exact total.
fn priced_lines(
    specs: Vec<(LineCategory, u64, Decimal)>,
    token_factor: Decimal,
    cfg: &PricingConfig,
) -> Result<Vec<CostLine>, PricingError> {
    let mut lines = Vec::with_capacity(specs.len());
    for (category, quantity, rate) in specs {
        let list_usd = if category.is_tokens() {
            token_line_usd(quantity, rate, token_factor)?
        } else {
            super::count(quantity)?.checked_mul(rate)?
        };
        let charged_usd = list_usd.checked_mul(cfg.multiplier)?;
        lines.push(CostLine {
            category,
            quantity,
            rate,
            list_usd,
            charged_usd,
            credits: NanoCredits::ZERO,
            thinking: None,
        });
    }
    Ok(lines)
}

/// The product of the batch and geo multipliers that apply.
pub(crate) fn token_factor(
    book: &PriceBook,
    row: &ModelPrice,
    batch: bool,
    us_geo: bool,
) -> Result<Decimal, MoneyError> {
    let mut factor = Decimal::ONE;
    if batch {
        factor = factor.checked_mul(book.modifiers().batch)?;
    }
    if us_geo && row.us_geo_multiplier_applies() {
        factor = factor.checked_mul(book.modifiers().inference_geo_us)?;
    }
    Ok(factor)
}

/// `tokens × rate (USD/MTok) × factor / 10⁶`, exact.
pub(crate) fn token_line_usd(
    tokens: u64,
    rate: Decimal,
    factor: Decimal,
) -> Result<Decimal, MoneyError> {
    let per_mtok = super::count(tokens)?
        .checked_mul(rate)?
        .checked_mul(factor)?;
    Decimal::new(
        per_mtok.units(),
        per_mtok.scale() + TOKENS_PER_RATE_UNIT_EXP,
    )
}

fn sum(items: impl Iterator<Item = Decimal>) -> Result<Decimal, MoneyError> {
    items
        .into_iter()
        .try_fold(Decimal::ZERO, Decimal::checked_add)
}

/// USD amounts converted to nano-credits exactly: `numerators[i] / denominator`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NanoFractions {
    pub numerators: Vec<i128>,
    pub denominator: i128,
}

impl NanoFractions {
    /// `usd × 10⁹ / credit_usd` for each amount, over one common denominator.
    pub fn of(usd: &[Decimal], credit_usd: Decimal) -> Result<Self, MoneyError> {
        if credit_usd.is_negative() || credit_usd.is_zero() {
            return Err(MoneyError::DivisionByZero);
        }
        let common = usd.iter().map(|d| d.scale()).max().unwrap_or(0);
        // value_i = units_i·10^(common−s_i) / 10^common × 10^(9+cs) / cu; cancel the common
        // power of ten so the numerators stay small.
        let up = CREDIT_DECIMALS + credit_usd.scale();
        let cancel = common.min(up);
        let numerator_factor = pow10(up - cancel)?;
        let denominator = pow10(common - cancel)?
            .checked_mul(credit_usd.units())
            .ok_or(MoneyError::Overflow)?;
        let mut numerators = Vec::with_capacity(usd.len());
        for d in usd {
            let n = d
                .units()
                .checked_mul(pow10(common - d.scale())?)
                .and_then(|n| n.checked_mul(numerator_factor))
                .ok_or(MoneyError::Overflow)?;
            numerators.push(n);
        }
        Ok(Self {
            numerators,
            denominator,
        })
    }

    pub fn sum(&self) -> Result<i128, MoneyError> {
        self.numerators.iter().try_fold(0i128, |acc, n| {
            acc.checked_add(*n).ok_or(MoneyError::Overflow)
        })
    }

    /// The total rounded up once, and each part's share of it: its exact value rounded down,
    /// plus one nano-credit for the parts with the largest remainders (ties: earlier part)
    /// until the shares add up to the total.
    pub fn round_up_and_share(&self) -> Result<(NanoCredits, Vec<NanoCredits>), MoneyError> {
        let total = div_ceil_i128(self.sum()?, self.denominator)?;
        let mut shares: Vec<i128> = self
            .numerators
            .iter()
            .map(|n| n.div_euclid(self.denominator))
            .collect();
        let floor_sum: i128 = shares.iter().sum();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|&a, &b| {
            let (ra, rb) = (
                self.numerators[a].rem_euclid(self.denominator),
                self.numerators[b].rem_euclid(self.denominator),
            );
            rb.cmp(&ra).then(a.cmp(&b))
        });
        let remainder = usize::try_from(total - floor_sum).map_err(|_| MoneyError::Overflow)?;
        for &i in order.iter().take(remainder) {
            shares[i] += 1;
        }
        let to_nanos = |v: i128| {
            i64::try_from(v)
                .map(NanoCredits::from_nanos)
                .map_err(|_| MoneyError::Overflow)
        };
        Ok((
            to_nanos(total)?,
            shares.into_iter().map(to_nanos).collect::<Result<_, _>>()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn fractions_share_the_single_rounding() {
        // Three lines of 1/3 nano-credit each: total rounds up to 1, the first line gets it.
        let f = NanoFractions {
            numerators: vec![1, 1, 1],
            denominator: 3,
        };
        let (total, shares) = f.round_up_and_share().unwrap();
        assert_eq!(total.nanos(), 1);
        assert_eq!(
            shares.iter().map(|s| s.nanos()).collect::<Vec<_>>(),
            [1, 0, 0]
        );
        // Remainders 2/5, 4/5, 3/5 → total ceil(9/5)=2; largest remainders first.
        let f = NanoFractions {
            numerators: vec![2, 4, 3],
            denominator: 5,
        };
        let (total, shares) = f.round_up_and_share().unwrap();
        assert_eq!(total.nanos(), 2);
        assert_eq!(
            shares.iter().map(|s| s.nanos()).collect::<Vec<_>>(),
            [0, 1, 1]
        );
    }

    #[test]
    fn usd_to_nano_credits() {
        // $0.0105 at 0.005 USD/credit = 2.1 credits.
        let f = NanoFractions::of(&[d("0.0105")], d("0.005")).unwrap();
        assert_eq!(f.sum().unwrap(), 2_100_000_000 * f.denominator);
        // $0.000000000001 at $1 = 0.001 nano-credit → rounds up to 1.
        let f = NanoFractions::of(&[d("0.000000000001")], Decimal::ONE).unwrap();
        assert_eq!(f.round_up_and_share().unwrap().0.nanos(), 1);
        // $1 at $3 per credit = 0.333… credits.
        let f = NanoFractions::of(&[Decimal::ONE], d("3")).unwrap();
        assert_eq!(f.round_up_and_share().unwrap().0.nanos(), 333_333_334);
        assert!(NanoFractions::of(&[Decimal::ONE], Decimal::ZERO).is_err());
    }
}
