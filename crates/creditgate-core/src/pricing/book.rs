//! The price book: every priced model with its names, status and rates, and the request modifiers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{calendar, PricingError};
use crate::money::Decimal;

/// The built-in price book shipped with the binary.
const BUILTIN_TOML: &str = include_str!("../../data/prices.toml");

/// The most decimal places a rate (USD per MTok) times the batch and geo modifiers may need.
/// With 6 more places for "per million" and [`super::MAX_MULTIPLIER_PLACES`] for the operator's
/// multiplier, every USD amount stays within [`Decimal`]'s 18 places, so it is always exact.
pub const MAX_RATE_PLACES: u32 = 8;
/// The most decimal places of a model's tokenizer factor.
const MAX_TOKENIZER_FACTOR_PLACES: u32 = 4;
/// How many close matches an unknown-model error names at most.
const MAX_SUGGESTIONS: usize = 3;
/// The longest model name looked up or echoed. Real names are under 64 characters; anything
/// longer is refused without edit distances (O(n·m) per known name) and shown cut to this length.
pub const MAX_MODEL_NAME_CHARS: usize = 128;
/// Hex digits of the content hash in a price version id.
const VERSION_HASH_HEX: usize = 12;

/// Where a model stands with Anthropic. Informative: pricing resolves every status so that old
/// usage can be re-priced; the gateway decides which statuses it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    Active,
    Legacy,
    Deprecated,
    Retired,
    Historical,
}

impl ModelStatus {
    /// Whether Anthropic still serves the model on its API (active, legacy or deprecated).
    pub fn is_served(self) -> bool {
        matches!(self, Self::Active | Self::Legacy | Self::Deprecated)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Legacy => "legacy",
            Self::Deprecated => "deprecated",
            Self::Retired => "retired",
            Self::Historical => "historical",
        }
    }
}

/// One set of rates in USD per million tokens, exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub input: Decimal,
    pub output: Decimal,
    pub cache_write_5m: Decimal,
    pub cache_write_1h: Decimal,
    pub cache_read: Decimal,
}

impl Rates {
    fn named(&self) -> [(&'static str, Decimal); 5] {
        [
            ("input", self.input),
            ("output", self.output),
            ("cache_write_5m", self.cache_write_5m),
            ("cache_write_1h", self.cache_write_1h),
            ("cache_read", self.cache_read),
        ]
    }

    /// The category-wise maximum of two rate sets.
    pub fn max(&self, other: &Rates) -> Rates {
        Rates {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cache_write_5m: self.cache_write_5m.max(other.cache_write_5m),
            cache_write_1h: self.cache_write_1h.max(other.cache_write_1h),
            cache_read: self.cache_read.max(other.cache_read),
        }
    }
}

/// A prompt-length tier: above `threshold_tokens` (input + cache reads + cache writes) the whole
/// request, output included, is billed at `rates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LongContextTier {
    pub threshold_tokens: u64,
    /// The tier ended on this date: it re-prices usage from before it and is not applied to new
    /// usage. `None`: in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(skip)]
    until_ms: Option<i64>,
    pub rates: Rates,
}

impl LongContextTier {
    /// Whether the tier applies to usage at `usage_at` (`None` = new usage).
    pub fn in_force(&self, usage_at: Option<i64>) -> bool {
        match (self.until_ms, usage_at) {
            (None, _) => true,
            (Some(until), Some(at)) => at < until,
            (Some(_), None) => false,
        }
    }
}

/// Rates that applied to usage before `until` (the fields given override the current ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlierRates {
    pub until: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<Decimal>,
    #[serde(skip)]
    until_ms: i64,
}

impl EarlierRates {
    fn apply(&self, rates: &mut Rates) {
        let pairs = [
            (&mut rates.input, self.input),
            (&mut rates.output, self.output),
            (&mut rates.cache_write_5m, self.cache_write_5m),
            (&mut rates.cache_write_1h, self.cache_write_1h),
            (&mut rates.cache_read, self.cache_read),
        ];
        for (slot, value) in pairs {
            if let Some(v) = value {
                *slot = v;
            }
        }
    }

    fn named(&self) -> impl Iterator<Item = (&'static str, Decimal)> {
        [
            ("input", self.input),
            ("output", self.output),
            ("cache_write_5m", self.cache_write_5m),
            ("cache_write_1h", self.cache_write_1h),
            ("cache_read", self.cache_read),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
    }
}

/// Request-level multipliers and per-request fees of a price book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modifiers {
    /// Message Batches: applied to every token category.
    pub batch: Decimal,
    /// `inference_geo: "us"` on models that say so: every token category.
    pub inference_geo_us: Decimal,
    pub web_search_usd_per_request: Decimal,
    pub web_fetch_usd_per_request: Decimal,
}

impl Default for Modifiers {
    /// Anthropic's list modifiers: batch ×0.5, US inference ×1.1, $0.01 per search, free fetch.
    fn default() -> Self {
        Self {
            batch: Decimal::new(5, 1).unwrap_or(Decimal::ONE),
            inference_geo_us: Decimal::new(11, 1).unwrap_or(Decimal::ONE),
            web_search_usd_per_request: Decimal::new(1, 2).unwrap_or(Decimal::ZERO),
            web_fetch_usd_per_request: Decimal::ZERO,
        }
    }
}

/// One priced model: its canonical id (the one the API reports), the names that map to it, and
/// its rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelPrice {
    id: String,
    display_name: String,
    aliases: Vec<String>,
    status: ModelStatus,
    effective_from: String,
    #[serde(skip)]
    effective_from_ms: i64,
    rates: Rates,
    #[serde(skip_serializing_if = "Option::is_none")]
    fast: Option<Rates>,
    #[serde(skip_serializing_if = "Option::is_none")]
    long_context: Option<LongContextTier>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    earlier: Vec<EarlierRates>,
    us_geo_multiplier_applies: bool,
    tokenizer_factor: Decimal,
}

/// The rates chosen for one request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedRates {
    pub rates: Rates,
    pub fast: bool,
    pub long_context: bool,
}

impl ModelPrice {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// Other names that resolve to this row.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    pub fn status(&self) -> ModelStatus {
        self.status
    }

    /// `YYYY-MM-DD`: the first day these rates are known to apply (launch or snapshot date).
    pub fn effective_from(&self) -> &str {
        &self.effective_from
    }

    /// [`Self::effective_from`] as Unix milliseconds (UTC midnight).
    pub fn effective_from_ms(&self) -> i64 {
        self.effective_from_ms
    }

    /// Standard rates, USD per million tokens.
    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    /// Fast-mode rates, if the model has fast mode.
    pub fn fast_rates(&self) -> Option<&Rates> {
        self.fast.as_ref()
    }

    pub fn long_context(&self) -> Option<&LongContextTier> {
        self.long_context.as_ref()
    }

    pub fn earlier_rates(&self) -> &[EarlierRates] {
        &self.earlier
    }

    pub fn us_geo_multiplier_applies(&self) -> bool {
        self.us_geo_multiplier_applies
    }

    /// Tokens this model's tokenizer makes per text relative to the Claude ≤ 4.6 tokenizer.
    pub fn tokenizer_factor(&self) -> Decimal {
        self.tokenizer_factor
    }

    /// Every name of this row: the id first, then the aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// The rates for one request: fast rates when `fast` and the model has them (over the full
    /// context window, so no prompt tier); else the prompt tier when in force and
    /// `prompt_tokens` exceeds its threshold; else the standard rates as they were at `usage_at`
    /// (`None` = new usage: current rates).
    pub fn select_rates(
        &self,
        fast: bool,
        prompt_tokens: u64,
        usage_at: Option<i64>,
    ) -> SelectedRates {
        if fast {
            if let Some(rates) = &self.fast {
                return SelectedRates {
                    rates: rates.clone(),
                    fast: true,
                    long_context: false,
                };
            }
        }
        if let Some(tier) = &self.long_context {
            if tier.in_force(usage_at) && prompt_tokens > tier.threshold_tokens {
                return SelectedRates {
                    rates: tier.rates.clone(),
                    fast: false,
                    long_context: true,
                };
            }
        }
        let mut rates = self.rates.clone();
        if let Some(at) = usage_at {
            // Latest period first, so the narrowest period containing `at` wins.
            for earlier in self.earlier.iter().rev().filter(|e| at < e.until_ms) {
                earlier.apply(&mut rates);
            }
        }
        SelectedRates {
            rates,
            fast: false,
            long_context: false,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The file format (data/prices.toml and operator files).

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookFile {
    effective_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modifiers: Option<Modifiers>,
    #[serde(default)]
    models: BTreeMap<String, ModelFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<ModelStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effective_from: Option<String>,
    input: Decimal,
    output: Decimal,
    cache_write_5m: Decimal,
    cache_write_1h: Decimal,
    cache_read: Decimal,
    #[serde(default)]
    us_geo_multiplier_applies: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokenizer_factor: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fast: Option<Rates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    long_context: Option<LongContextFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    earlier: Vec<EarlierRates>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LongContextFile {
    threshold_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    input: Decimal,
    output: Decimal,
    cache_write_5m: Decimal,
    cache_write_1h: Decimal,
    cache_read: Decimal,
}

// ------------------------------------------------------------------------------------------------

/// Per-model prices with their names, and the modifiers; identified by a price version id.
///
/// ```
/// use creditgate_core::pricing::PriceBook;
/// let book = PriceBook::builtin();
/// let row = book.resolve("claude-sonnet-4-5").unwrap();
/// assert_eq!(row.id(), "claude-sonnet-4-5-20250929");
/// assert_eq!(row.rates().cache_write_1h.to_string(), "6");
/// ```
#[derive(Debug, Clone)]
pub struct PriceBook {
    /// Newest first (effective_from descending, then id).
    models: Vec<ModelPrice>,
    names: HashMap<String, usize>,
    modifiers: Modifiers,
    /// Whether the source file had a `[modifiers]` table (an extension only overrides then).
    modifiers_explicit: bool,
    effective_at: i64,
    source: Option<String>,
    version: String,
}

impl PriceBook {
    /// The price book shipped with the binary (`data/prices.toml`).
    pub fn builtin() -> Self {
        match Self::from_toml(BUILTIN_TOML) {
            Ok(book) => book,
            // The file is part of the source tree and covered by tests; failing here is a build bug.
            Err(err) => panic!("the built-in price book is invalid: {err}"),
        }
    }

    /// Parses a price book in the `data/prices.toml` format. Unknown keys, float rates (rates
    /// are decimal strings) and duplicate names are errors.
    pub fn from_toml(text: &str) -> Result<Self, PricingError> {
        let file: BookFile =
            toml::from_str(text).map_err(|e| PricingError::PriceBook(e.to_string()))?;
        Self::from_file(file)
    }

    fn from_file(file: BookFile) -> Result<Self, PricingError> {
        let effective_at = calendar::parse_date(&file.effective_from)?;
        let modifiers_explicit = file.modifiers.is_some();
        let modifiers = file.modifiers.unwrap_or_default();
        let mut models = Vec::with_capacity(file.models.len());
        for (id, row) in file.models {
            models.push(model_from_file(id, row, &file.effective_from)?);
        }
        Self::assemble(
            models,
            modifiers,
            modifiers_explicit,
            effective_at,
            file.source,
        )
    }

    /// Builds a book from rows (used by importers); validates and indexes.
    pub(crate) fn assemble(
        mut models: Vec<ModelPrice>,
        modifiers: Modifiers,
        modifiers_explicit: bool,
        effective_at: i64,
        source: Option<String>,
    ) -> Result<Self, PricingError> {
        validate_modifiers(&modifiers)?;
        for row in &models {
            validate_row(row, &modifiers)?;
        }
        models.sort_by(|a, b| {
            b.effective_from_ms
                .cmp(&a.effective_from_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut names = HashMap::new();
        for (i, row) in models.iter().enumerate() {
            for name in row.names() {
                if let Some(&other) = names.get(name) {
                    let other: &ModelPrice = &models[other];
                    return Err(PricingError::PriceBook(format!(
                        "the name `{name}` is given to both `{}` and `{}`",
                        other.id, row.id
                    )));
                }
                names.insert(name.to_owned(), i);
            }
        }
        let mut book = Self {
            models,
            names,
            modifiers,
            modifiers_explicit,
            effective_at,
            source,
            version: String::new(),
        };
        book.version = book.compute_version();
        Ok(book)
    }

    /// Adds the rows of `other`, replacing rows it names. A row of `other` replaces every row of
    /// this book that shares a name with it (id or alias) and takes over those rows' other names
    /// unless `other` prices them itself, so an operator row for `claude-sonnet-4-5` also
    /// re-prices `claude-sonnet-4-5-20250929`. `other`'s modifiers replace ours only if its file
    /// had a `[modifiers]` table. The effective date becomes the later of the two, and the
    /// version id is recomputed.
    ///
    /// Errors only if the merged book is invalid (a new batch or geo modifier that would make an
    /// existing rate too precise).
    pub fn extend(&mut self, other: PriceBook) -> Result<(), PricingError> {
        let claimed: BTreeSet<String> = other
            .models
            .iter()
            .flat_map(|m| m.names().map(str::to_owned))
            .collect();
        let mut models = std::mem::take(&mut self.models);
        for mut row in other.models {
            let row_names: BTreeSet<&str> = row.names().collect();
            let (replaced, kept): (Vec<ModelPrice>, Vec<ModelPrice>) = models
                .into_iter()
                .partition(|m| m.names().any(|n| row_names.contains(n)));
            models = kept;
            for old in replaced {
                for name in old.names() {
                    if !claimed.contains(name) && !row.aliases.iter().any(|a| a == name) {
                        row.aliases.push(name.to_owned());
                    }
                }
            }
            models.push(row);
        }
        let (modifiers, explicit) = if other.modifiers_explicit {
            (other.modifiers, true)
        } else {
            (self.modifiers.clone(), self.modifiers_explicit)
        };
        let source = match (self.source.take(), other.source) {
            (Some(a), Some(b)) => Some(format!("{a} + {b}")),
            (a, b) => a.or(b),
        };
        let effective_at = self.effective_at.max(other.effective_at);
        *self = Self::assemble(models, modifiers, explicit, effective_at, source)?;
        Ok(())
    }

    /// The row for a model id, alias or dated snapshot id. Names are matched exactly (the API
    /// does the same); an unknown name is an error that lists close matches, never a free row.
    pub fn resolve(&self, model: &str) -> Result<&ModelPrice, PricingError> {
        if model.len() > MAX_MODEL_NAME_CHARS {
            let cut: String = model.chars().take(MAX_MODEL_NAME_CHARS / 4).collect();
            return Err(PricingError::UnknownModel {
                model: format!("{cut}… ({} bytes)", model.len()),
                suggestions: Vec::new(),
            });
        }
        match self.names.get(model) {
            Some(&i) => Ok(&self.models[i]),
            None => Err(PricingError::UnknownModel {
                model: model.to_owned(),
                suggestions: self.suggest(model),
            }),
        }
    }

    /// Every row, newest first.
    pub fn models(&self) -> impl Iterator<Item = &ModelPrice> {
        self.models.iter()
    }

    pub fn modifiers(&self) -> &Modifiers {
        &self.modifiers
    }

    /// The price version id: `<effective stamp>-<content hash>`, e.g. `20261024-3f9a1c2b7d4e`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Unix milliseconds from which this book applies.
    pub fn effective_at(&self) -> i64 {
        self.effective_at
    }

    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The same book in force from `effective_at` (a new version id).
    pub fn with_effective_at(mut self, effective_at: i64) -> Self {
        self.effective_at = effective_at;
        self.version = self.compute_version();
        self
    }

    /// The book in the `data/prices.toml` format, canonical (sorted, normalised decimals). The
    /// version hash is taken over this text.
    pub fn to_toml(&self) -> String {
        let file = BookFile {
            effective_from: calendar::format_date(self.effective_at),
            source: None,
            modifiers: Some(self.modifiers.clone()),
            models: self
                .models
                .iter()
                .map(|m| (m.id.clone(), model_to_file(m)))
                .collect(),
        };
        toml::to_string(&file).unwrap_or_default()
    }

    fn compute_version(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.effective_at.to_be_bytes());
        hasher.update(self.to_toml().as_bytes());
        let hash = hex::encode(hasher.finalize());
        format!(
            "{}-{}",
            calendar::compact_stamp(self.effective_at),
            &hash[..VERSION_HASH_HEX]
        )
    }

    /// Close matches for an unknown name: the best few rows by edit distance, substring or a
    /// known name with a date suffix, after normalising case, `.`/`_` to `-` and an
    /// `anthropic/` prefix.
    fn suggest(&self, query: &str) -> Vec<String> {
        let q = normalize_name(query);
        let limit = (q.chars().count() / 4).max(2);
        let mut scored: Vec<(usize, &str, usize)> = Vec::new();
        for (name, &row) in &self.names {
            let distance = levenshtein(&q, name);
            let related = distance <= limit
                || (q.len() >= 4 && name.contains(q.as_str()))
                || (name.len() >= 8 && q.starts_with(name.as_str()));
            if related {
                scored.push((distance, name.as_str(), row));
            }
        }
        scored.sort();
        let mut rows_seen = BTreeSet::new();
        scored
            .into_iter()
            .filter(|&(_, _, row)| rows_seen.insert(row))
            .take(MAX_SUGGESTIONS)
            .map(|(_, name, _)| name.to_owned())
            .collect()
    }
}

fn normalize_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower
        .strip_prefix("anthropic/")
        .or_else(|| lower.strip_prefix("anthropic."))
        .unwrap_or(&lower);
    bare.replace(['.', '_', ' '], "-")
}

/// Edit distance over Unicode scalars.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn model_from_file(
    id: String,
    row: ModelFile,
    book_date: &str,
) -> Result<ModelPrice, PricingError> {
    let effective_from = row.effective_from.unwrap_or_else(|| book_date.to_owned());
    let effective_from_ms = calendar::parse_date(&effective_from)
        .map_err(|e| PricingError::PriceBook(format!("model `{id}`: {e}")))?;
    let long_context = match row.long_context {
        None => None,
        Some(lc) => {
            let until_ms = match &lc.until {
                Some(d) => Some(
                    calendar::parse_date(d)
                        .map_err(|e| PricingError::PriceBook(format!("model `{id}`: {e}")))?,
                ),
                None => None,
            };
            Some(LongContextTier {
                threshold_tokens: lc.threshold_tokens,
                until: lc.until,
                until_ms,
                rates: Rates {
                    input: lc.input,
                    output: lc.output,
                    cache_write_5m: lc.cache_write_5m,
                    cache_write_1h: lc.cache_write_1h,
                    cache_read: lc.cache_read,
                },
            })
        }
    };
    let mut earlier = row.earlier;
    for e in &mut earlier {
        e.until_ms = calendar::parse_date(&e.until)
            .map_err(|err| PricingError::PriceBook(format!("model `{id}`: {err}")))?;
    }
    earlier.sort_by_key(|e| e.until_ms);
    Ok(ModelPrice {
        display_name: row.display_name.unwrap_or_else(|| id.clone()),
        aliases: row.aliases,
        status: row.status.unwrap_or(ModelStatus::Active),
        effective_from,
        effective_from_ms,
        rates: Rates {
            input: row.input,
            output: row.output,
            cache_write_5m: row.cache_write_5m,
            cache_write_1h: row.cache_write_1h,
            cache_read: row.cache_read,
        },
        fast: row.fast,
        long_context,
        earlier,
        us_geo_multiplier_applies: row.us_geo_multiplier_applies,
        tokenizer_factor: row.tokenizer_factor.unwrap_or(Decimal::ONE),
        id,
    })
}

fn model_to_file(m: &ModelPrice) -> ModelFile {
    ModelFile {
        display_name: Some(m.display_name.clone()),
        aliases: m.aliases.clone(),
        status: Some(m.status),
        effective_from: Some(m.effective_from.clone()),
        input: m.rates.input,
        output: m.rates.output,
        cache_write_5m: m.rates.cache_write_5m,
        cache_write_1h: m.rates.cache_write_1h,
        cache_read: m.rates.cache_read,
        us_geo_multiplier_applies: m.us_geo_multiplier_applies,
        tokenizer_factor: Some(m.tokenizer_factor),
        fast: m.fast.clone(),
        long_context: m.long_context.as_ref().map(|lc| LongContextFile {
            threshold_tokens: lc.threshold_tokens,
            until: lc.until.clone(),
            input: lc.rates.input,
            output: lc.rates.output,
            cache_write_5m: lc.rates.cache_write_5m,
            cache_write_1h: lc.rates.cache_write_1h,
            cache_read: lc.rates.cache_read,
        }),
        earlier: m.earlier.clone(),
    }
}

/// Builds a row for importers (all names and rates given; no tiers).
pub(crate) fn imported_row(
    id: String,
    rates: Rates,
    fast: Option<Rates>,
    long_context: Option<(u64, Rates)>,
    us_geo_multiplier_applies: bool,
    status: ModelStatus,
    effective_from_ms: i64,
) -> ModelPrice {
    ModelPrice {
        display_name: id.clone(),
        aliases: Vec::new(),
        status,
        effective_from: calendar::format_date(effective_from_ms),
        effective_from_ms,
        rates,
        fast,
        long_context: long_context.map(|(threshold_tokens, rates)| LongContextTier {
            threshold_tokens,
            until: None,
            until_ms: None,
            rates,
        }),
        earlier: Vec::new(),
        us_geo_multiplier_applies,
        tokenizer_factor: Decimal::ONE,
        id,
    }
}

fn validate_modifiers(m: &Modifiers) -> Result<(), PricingError> {
    for (name, value) in [
        ("batch", m.batch),
        ("inference_geo_us", m.inference_geo_us),
        ("web_search_usd_per_request", m.web_search_usd_per_request),
        ("web_fetch_usd_per_request", m.web_fetch_usd_per_request),
    ] {
        if value.is_negative() {
            return Err(PricingError::PriceBook(format!(
                "modifier `{name}` is negative"
            )));
        }
        if value.scale() > MAX_RATE_PLACES {
            return Err(PricingError::PriceBook(format!(
                "modifier `{name}` = {value} has more than {MAX_RATE_PLACES} decimal places"
            )));
        }
    }
    if m.batch.scale() + m.inference_geo_us.scale() > MAX_RATE_PLACES {
        return Err(PricingError::PriceBook(
            "the batch and geo modifiers are too precise".into(),
        ));
    }
    Ok(())
}

fn validate_row(row: &ModelPrice, modifiers: &Modifiers) -> Result<(), PricingError> {
    let err = |msg: String| PricingError::PriceBook(format!("model `{}`: {msg}", row.id));
    for name in row.names() {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(format!("`{name}` is not a valid model name")));
        }
    }
    let modifier_places = modifiers.batch.scale() + modifiers.inference_geo_us.scale();
    let mut all: Vec<(String, Decimal)> = row
        .rates
        .named()
        .iter()
        .map(|(n, v)| ((*n).to_owned(), *v))
        .collect();
    if let Some(fast) = &row.fast {
        all.extend(fast.named().iter().map(|(n, v)| (format!("fast.{n}"), *v)));
    }
    if let Some(lc) = &row.long_context {
        if lc.threshold_tokens == 0 {
            return Err(err("long_context.threshold_tokens must be positive".into()));
        }
        all.extend(
            lc.rates
                .named()
                .iter()
                .map(|(n, v)| (format!("long_context.{n}"), *v)),
        );
    }
    for e in &row.earlier {
        all.extend(e.named().map(|(n, v)| (format!("earlier.{n}"), v)));
    }
    for (name, rate) in all {
        if rate.is_negative() {
            return Err(err(format!("rate `{name}` is negative")));
        }
        if rate.scale() + modifier_places > MAX_RATE_PLACES {
            return Err(err(format!(
                "rate `{name}` = {rate} is too precise: at most {} decimal places of USD per \
                 million tokens with these modifiers",
                MAX_RATE_PLACES.saturating_sub(modifier_places)
            )));
        }
    }
    let f = row.tokenizer_factor;
    if f < Decimal::ONE || f.scale() > MAX_TOKENIZER_FACTOR_PLACES {
        return Err(err(format!(
            "tokenizer_factor {f} must be at least 1 with at most {MAX_TOKENIZER_FACTOR_PLACES} places"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// Every model of the reference price list, by each of its names, with its five rates
    /// (input, output, 5m write, 1h write, read).
    const REFERENCE: &[(&[&str], [&str; 5])] = &[
        (&["claude-fable-5-1"], ["10", "50", "12.5", "20", "0.25"]),
        (&["claude-mythos-5-1"], ["10", "50", "12.5", "20", "0.25"]),
        (&["claude-fable-5"], ["10", "50", "12.5", "20", "1"]),
        (&["claude-mythos-5"], ["10", "50", "12.5", "20", "1"]),
        (&["claude-opus-5-5"], ["4", "20", "5", "8", "0.2"]),
        (&["claude-opus-5"], ["5", "25", "6.25", "10", "0.5"]),
        (&["claude-opus-4-8"], ["5", "25", "6.25", "10", "0.5"]),
        (
            &["claude-opus-4-7", "claude-opus-4-7-20260416"],
            ["5", "25", "6.25", "10", "0.5"],
        ),
        (
            &["claude-opus-4-6", "claude-opus-4-6-20260205"],
            ["5", "25", "6.25", "10", "0.5"],
        ),
        (
            &["claude-opus-4-5", "claude-opus-4-5-20251101"],
            ["5", "25", "6.25", "10", "0.5"],
        ),
        (
            &["claude-opus-4-1", "claude-opus-4-1-20250805"],
            ["15", "75", "18.75", "30", "1.5"],
        ),
        (
            &[
                "claude-opus-4-0",
                "claude-opus-4-20250514",
                "claude-4-opus-20250514",
            ],
            ["15", "75", "18.75", "30", "1.5"],
        ),
        (&["claude-sonnet-5-5"], ["2", "10", "2.5", "4", "0.1"]),
        (&["claude-sonnet-5"], ["2", "10", "2.5", "4", "0.2"]),
        (&["claude-sonnet-4-6"], ["3", "15", "3.75", "6", "0.3"]),
        (
            &["claude-sonnet-4-5", "claude-sonnet-4-5-20250929"],
            ["3", "15", "3.75", "6", "0.3"],
        ),
        (
            &[
                "claude-sonnet-4-0",
                "claude-sonnet-4-20250514",
                "claude-4-sonnet-20250514",
            ],
            ["3", "15", "3.75", "6", "0.3"],
        ),
        (
            &["claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest"],
            ["3", "15", "3.75", "6", "0.3"],
        ),
        (
            &[
                "claude-3-5-sonnet-20241022",
                "claude-3-5-sonnet-20240620",
                "claude-3-5-sonnet-latest",
            ],
            ["3", "15", "3.75", "6", "0.3"],
        ),
        (
            &["claude-haiku-5-5"],
            ["0.1", "0.5", "0.125", "0.2", "0.01"],
        ),
        (
            &["claude-haiku-4-5", "claude-haiku-4-5-20251001"],
            ["1", "5", "1.25", "2", "0.1"],
        ),
        (
            &["claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"],
            ["0.8", "4", "1", "1.6", "0.08"],
        ),
        (
            &["claude-3-haiku-20240307"],
            ["0.25", "1.25", "0.3", "0.5", "0.03"],
        ),
        (
            &["claude-3-opus-20240229", "claude-3-opus-latest"],
            ["15", "75", "18.75", "30", "1.5"],
        ),
    ];

    #[test]
    fn builtin_has_every_reference_model_under_every_name() {
        let book = PriceBook::builtin();
        assert_eq!(book.models().count(), REFERENCE.len());
        for (names, [i, o, w5, w1, r]) in REFERENCE {
            let first = book.resolve(names[0]).unwrap();
            for name in *names {
                let row = book.resolve(name).unwrap();
                assert_eq!(row.id(), first.id(), "{name}");
                let want = Rates {
                    input: d(i),
                    output: d(o),
                    cache_write_5m: d(w5),
                    cache_write_1h: d(w1),
                    cache_read: d(r),
                };
                assert_eq!(row.rates(), &want, "{name}");
            }
        }
    }

    #[test]
    fn builtin_modifiers_and_special_rows() {
        let book = PriceBook::builtin();
        assert_eq!(book.modifiers(), &Modifiers::default());
        let opus = book.resolve("claude-opus-5-5").unwrap();
        assert_eq!(opus.fast_rates().unwrap().cache_read, d("0.4"));
        let haiku = book.resolve("claude-haiku-5-5").unwrap();
        let tier = haiku.long_context().unwrap();
        assert_eq!(tier.threshold_tokens, 100_000);
        assert!(tier.in_force(None));
        let sonnet = book.resolve("claude-sonnet-4-5").unwrap();
        let tier = sonnet.long_context().unwrap();
        assert!(
            !tier.in_force(None),
            "the retired 200k tier must not price new usage"
        );
        assert!(tier.in_force(Some(calendar::parse_date("2026-04-29").unwrap())));
        assert!(!tier.in_force(Some(calendar::parse_date("2026-04-30").unwrap())));
        // Cache write 1h ≥ 5m ≥ 0 and read ≤ input in every row: the split rule relies on it.
        for m in book.models() {
            for r in std::iter::once(m.rates()).chain(m.fast_rates()) {
                assert!(r.cache_write_1h >= r.cache_write_5m, "{}", m.id());
                assert!(r.cache_read <= r.input, "{}", m.id());
            }
            if let Some(lc) = m.long_context() {
                let (a, b) = (&lc.rates, m.rates());
                assert!(a.input >= b.input && a.output >= b.output && a.cache_read >= b.cache_read);
            }
        }
    }

    #[test]
    fn earlier_rates_reprice_old_usage_only() {
        let book = PriceBook::builtin();
        let row = book.resolve("claude-sonnet-5-5").unwrap();
        let before = calendar::parse_date("2026-10-06").unwrap();
        let after = calendar::parse_date("2026-10-07").unwrap();
        assert_eq!(
            row.select_rates(false, 0, Some(before)).rates.cache_read,
            d("0.2")
        );
        assert_eq!(
            row.select_rates(false, 0, Some(after)).rates.cache_read,
            d("0.1")
        );
        assert_eq!(row.select_rates(false, 0, None).rates.cache_read, d("0.1"));
    }

    #[test]
    fn version_is_stable_and_content_addressed() {
        let a = PriceBook::builtin();
        let b = PriceBook::builtin();
        assert_eq!(a.version(), b.version());
        assert!(a.version().starts_with("20261024-"), "{}", a.version());
        let round = PriceBook::from_toml(&a.to_toml()).unwrap();
        assert_eq!(round.version(), a.version());
        let later = a.clone().with_effective_at(a.effective_at() + 1000);
        assert_ne!(later.version(), a.version());
    }

    #[test]
    fn unknown_keys_and_float_rates_are_errors() {
        let base = "effective_from = \"2026-11-01\"\n[models.m]\ninput = \"1\"\noutput = \"2\"\n\
                    cache_write_5m = \"1.25\"\ncache_write_1h = \"2\"\ncache_read = \"0.1\"\n";
        assert!(PriceBook::from_toml(base).is_ok());
        let unknown = format!("{base}colour = \"red\"\n");
        let err = PriceBook::from_toml(&unknown).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let float = base.replace("input = \"1\"", "input = 1.0");
        assert!(PriceBook::from_toml(&float).is_err());
        let top = format!("surprise = 1\n{base}");
        assert!(PriceBook::from_toml(&top).is_err());
        let dup = base.replace("[models.m]", "[models.m]\naliases = [\"m\"]");
        assert!(PriceBook::from_toml(&dup).is_err());
        let precise = base.replace("\"0.1\"", "\"0.000001\"");
        assert!(PriceBook::from_toml(&precise).is_ok());
        let too_precise = base.replace("\"0.1\"", "\"0.0000001\"");
        assert!(PriceBook::from_toml(&too_precise).is_err());
    }

    #[test]
    fn operator_rows_replace_by_any_name_and_keep_other_names() {
        let mut book = PriceBook::builtin();
        let before = book.version().to_owned();
        let operator = PriceBook::from_toml(
            "effective_from = \"2026-12-01\"\n\
             [models.claude-sonnet-4-5]\ninput = \"2.5\"\noutput = \"12\"\n\
             cache_write_5m = \"3\"\ncache_write_1h = \"5\"\ncache_read = \"0.25\"\n\
             [models.my-model]\ninput = \"1\"\noutput = \"1\"\n\
             cache_write_5m = \"1\"\ncache_write_1h = \"1\"\ncache_read = \"1\"\n",
        )
        .unwrap();
        book.extend(operator).unwrap();
        assert_ne!(book.version(), before);
        assert!(book.version().starts_with("20261201-"));
        let by_alias = book.resolve("claude-sonnet-4-5").unwrap();
        let by_dated = book.resolve("claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(by_alias.id(), by_dated.id());
        assert_eq!(by_dated.rates().input, d("2.5"));
        assert!(book.resolve("my-model").is_ok());
        assert_eq!(book.models().count(), REFERENCE.len() + 1);
        assert_eq!(book.modifiers(), &Modifiers::default());
    }

    #[test]
    fn unknown_models_come_with_close_matches() {
        let book = PriceBook::builtin();
        let cases = [
            ("claude-sonnet-4.5", "claude-sonnet-4-5"),
            ("claude-sonet-4-5", "claude-sonnet-4-5"),
            ("claude-sonnet-4-5-20250930", "claude-sonnet-4-5-20250929"),
            ("anthropic/claude-opus-5.5", "claude-opus-5-5"),
            ("Claude-Haiku-5-5", "claude-haiku-5-5"),
            ("claude-opus-4-6-fast", "claude-opus-4-6"),
        ];
        for (query, want) in cases {
            match book.resolve(query) {
                Err(PricingError::UnknownModel { model, suggestions }) => {
                    assert_eq!(model, query);
                    assert!(
                        suggestions.iter().any(|s| s == want),
                        "{query}: {suggestions:?}"
                    );
                    assert!(suggestions.len() <= MAX_SUGGESTIONS);
                }
                other => panic!("{query}: {other:?}"),
            }
        }
        match book.resolve("gpt-4o") {
            Err(PricingError::UnknownModel { suggestions, .. }) => assert!(suggestions.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_huge_model_name_is_refused_without_suggestions_or_echo() {
        let book = PriceBook::builtin();
        let huge = format!("claude-haiku-4-5{}", "x".repeat(3_000_000));
        match book.resolve(&huge) {
            Err(err @ PricingError::UnknownModel { .. }) => {
                let shown = err.to_string();
                assert!(shown.len() < 200, "{} bytes echoed", shown.len());
                assert!(shown.contains("3000016 bytes"), "{shown}");
                let PricingError::UnknownModel { suggestions, .. } = err else {
                    unreachable!()
                };
                assert!(suggestions.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // At the limit, names are still looked up and matched as before.
        let long = format!("claude-haiku-4-5{}", "x".repeat(MAX_MODEL_NAME_CHARS - 16));
        assert!(book.resolve(&long).is_err());
    }

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
