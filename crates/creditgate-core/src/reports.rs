//! Reports: usage, cost and cache economics per UTC bucket of a minute, an hour or a day, summed
//! from the rollups each settlement maintains (`docs/reports.md`, `docs/accounts.md`).
//!
//! Buckets are half-open, `[start, start + width)`, aligned on UTC minutes, hours and days; a
//! request belongs to the bucket of its settlement time. Every amount stays an integer (nano-
//! credits, 10⁻¹² USD) until it is printed as an exact decimal, so a report's credits add up to
//! the ledger's charges exactly.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::Timestamp;
use crate::ids::{ApiKeyId, OrganizationId};
use crate::money::CreditUnit;
use crate::money::{Decimal, MoneyError, NanoCredits, CREDIT_DECIMALS};
use crate::usage::{Lines, PicoUsd, Tokens, PICO_USD_DECIMALS};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The width of a report's buckets (`bucket_width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketWidth {
    Minute,
    Hour,
    Day,
}

impl BucketWidth {
    pub const ALL: [BucketWidth; 3] = [Self::Minute, Self::Hour, Self::Day];

    /// `1m`, `1h` or `1d`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1m" => Some(Self::Minute),
            "1h" => Some(Self::Hour),
            "1d" => Some(Self::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::Hour => "1h",
            Self::Day => "1d",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Self::Minute => MINUTE_MS,
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
        }
    }

    /// Buckets per page when `limit` is not given (Anthropic's defaults: 60, 24, 7).
    pub fn default_buckets(self) -> usize {
        match self {
            Self::Minute => 60,
            Self::Hour => 24,
            Self::Day => 7,
        }
    }

    /// Most buckets a page (and a window) may hold (Anthropic's maxima: 1440, 168, 31).
    pub fn max_buckets(self) -> usize {
        match self {
            Self::Minute => 1440,
            Self::Hour => 168,
            Self::Day => 31,
        }
    }

    /// The start of the bucket containing `t`.
    pub fn floor(self, t: Timestamp) -> Timestamp {
        let ms = t.millis();
        Timestamp::from_millis(ms - ms.rem_euclid(self.millis()))
    }

    /// The first bucket boundary at or after `t`.
    pub fn ceil(self, t: Timestamp) -> Timestamp {
        let floor = self.floor(t);
        if floor == t {
            t
        } else {
            floor.plus_millis(self.millis())
        }
    }
}

/// What a report can be grouped by (`group_by[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// The operator's reports only.
    Organization,
    ApiKey,
    /// Accepted for Anthropic's tools; creditgate has no workspaces, so always null.
    Workspace,
    Model,
    ServiceTier,
    ContextWindow,
    InferenceGeo,
    Speed,
    /// The cost report's cost lines (model, token type, service).
    Description,
}

impl Dimension {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "organization_id" => Self::Organization,
            "api_key_id" => Self::ApiKey,
            "workspace_id" => Self::Workspace,
            "model" => Self::Model,
            "service_tier" => Self::ServiceTier,
            "context_window" => Self::ContextWindow,
            "inference_geo" => Self::InferenceGeo,
            "speed" => Self::Speed,
            "description" => Self::Description,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organization => "organization_id",
            Self::ApiKey => "api_key_id",
            Self::Workspace => "workspace_id",
            Self::Model => "model",
            Self::ServiceTier => "service_tier",
            Self::ContextWindow => "context_window",
            Self::InferenceGeo => "inference_geo",
            Self::Speed => "speed",
            Self::Description => "description",
        }
    }
}

/// Sums of usage records: what a rollup row holds and what a report's result shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    /// Token counts (`thinking` is not kept by the rollups and stays `None`).
    pub tokens: Tokens,
    pub credits: Lines<NanoCredits>,
    pub list: Lines<PicoUsd>,
    pub cache_savings: NanoCredits,
}

fn add_u64(a: &mut u64, b: u64) -> Result<(), MoneyError> {
    *a = a.checked_add(b).ok_or(MoneyError::Overflow)?;
    Ok(())
}

impl Sums {
    /// Adds `other` into `self`, every field checked.
    pub fn add(&mut self, other: &Sums) -> Result<(), MoneyError> {
        add_u64(&mut self.requests, other.requests)?;
        let (t, o) = (&mut self.tokens, &other.tokens);
        add_u64(&mut t.input, o.input)?;
        add_u64(&mut t.cache_write_5m, o.cache_write_5m)?;
        add_u64(&mut t.cache_write_1h, o.cache_write_1h)?;
        add_u64(&mut t.cache_read, o.cache_read)?;
        add_u64(&mut t.output, o.output)?;
        add_u64(&mut t.web_search_requests, o.web_search_requests)?;
        add_u64(&mut t.web_fetch_requests, o.web_fetch_requests)?;
        for (category, v) in other.credits.each() {
            let slot = self.credits.get_mut(category);
            *slot = slot.checked_add(v)?;
        }
        for (category, v) in other.list.each() {
            let slot = self.list.get_mut(category);
            *slot = slot.checked_add(v)?;
        }
        self.cache_savings = self.cache_savings.checked_add(other.cache_savings)?;
        Ok(())
    }
}

/// One rollup row as stored: the sums of one organization, key, model and service in one
/// bucket. Text dimensions are `""` when not reported (a key-less backfilled record, a usage
/// object without a service tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    pub org: OrganizationId,
    pub bucket: Timestamp,
    pub key_id: String,
    pub model: String,
    pub service_tier: String,
    pub context_window: String,
    pub inference_geo: String,
    pub speed: String,
    pub sums: Sums,
}

/// The values a result is grouped by; `None` where the report is not grouped by that
/// dimension, `Some("")` where it is but the records did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    pub org: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub service_tier: Option<String>,
    pub context_window: Option<String>,
    pub inference_geo: Option<String>,
    pub speed: Option<String>,
}

impl Group {
    /// The group of `row` under `dims`. Grouping by description groups by model, service tier,
    /// context window and region, as Anthropic's cost lines are.
    pub fn of(row: &RollupRow, dims: &[Dimension]) -> Self {
        let has = |d: Dimension| dims.contains(&d);
        let by_line = has(Dimension::Description);
        let pick = |yes: bool, v: &str| yes.then(|| v.to_owned());
        Self {
            org: pick(has(Dimension::Organization), row.org.as_str()),
            key_id: pick(has(Dimension::ApiKey), &row.key_id),
            model: pick(by_line || has(Dimension::Model), &row.model),
            service_tier: pick(by_line || has(Dimension::ServiceTier), &row.service_tier),
            context_window: pick(
                by_line || has(Dimension::ContextWindow),
                &row.context_window,
            ),
            inference_geo: pick(by_line || has(Dimension::InferenceGeo), &row.inference_geo),
            speed: pick(has(Dimension::Speed), &row.speed),
        }
    }
}

/// Which rows a report counts (`api_key_ids[]`, `models[]`, the operator's
/// `organization_ids[]`); an empty list admits everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub api_key_ids: Vec<ApiKeyId>,
    pub models: Vec<String>,
    pub orgs: Vec<OrganizationId>,
}

impl Filter {
    pub fn admits(&self, row: &RollupRow) -> bool {
        self.admits_parts(&row.org, &row.key_id, &row.model)
    }

    /// Whether usage of `org`'s key `key_id` (`""`: none) with `model` is counted.
    pub fn admits_parts(&self, org: &OrganizationId, key_id: &str, model: &str) -> bool {
        (self.api_key_ids.is_empty() || self.api_key_ids.iter().any(|k| k.as_str() == key_id))
            && (self.models.is_empty() || self.models.iter().any(|m| m == model))
            && (self.orgs.is_empty() || self.orgs.contains(org))
    }
}

/// One bucket of a report with its results, in group order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub start: Timestamp,
    pub end: Timestamp,
    pub results: BTreeMap<Group, Sums>,
}

/// Sums the admitted `rows` into the buckets starting at `starts` (in order, `width` apart),
/// grouped by `dims`. A bucket without usage has no results; rows outside the buckets are
/// ignored.
pub fn aggregate(
    rows: &[RollupRow],
    width: BucketWidth,
    starts: &[Timestamp],
    dims: &[Dimension],
    filter: &Filter,
) -> Result<Vec<Bucket>, MoneyError> {
    let mut buckets: Vec<Bucket> = starts
        .iter()
        .map(|s| Bucket {
            start: *s,
            end: s.plus_millis(width.millis()),
            results: BTreeMap::new(),
        })
        .collect();
    let Some(first) = starts.first() else {
        return Ok(buckets);
    };
    for row in rows.iter().filter(|r| filter.admits(r)) {
        let offset = row.bucket.millis() - first.millis();
        if offset < 0 || offset % width.millis() != 0 {
            continue;
        }
        let Some(bucket) = usize::try_from(offset / width.millis())
            .ok()
            .and_then(|i| buckets.get_mut(i))
        else {
            continue;
        };
        bucket
            .results
            .entry(Group::of(row, dims))
            .or_default()
            .add(&row.sums)?;
    }
    Ok(buckets)
}

/// `credits` in US cents at the credit unit's value, exactly (Anthropic's cost `amount`).
///
/// ```
/// use creditgate_core::money::{CreditUnit, NanoCredits};
/// use creditgate_core::reports::usd_cents;
/// let c: NanoCredits = "3".parse().unwrap();
/// assert_eq!(usd_cents(c, &CreditUnit::reseller_default()).unwrap().to_string(), "1.5");
/// ```
pub fn usd_cents(credits: NanoCredits, unit: &CreditUnit) -> Result<Decimal, MoneyError> {
    let units = i128::from(credits.nanos())
        .checked_mul(unit.usd.units())
        .and_then(|u| u.checked_mul(100))
        .ok_or(MoneyError::Overflow)?;
    let decimals = CREDIT_DECIMALS + unit.usd.scale();
    Decimal::new(units, decimals)
}

/// A list price in US cents, exactly.
pub fn pico_usd_cents(amount: PicoUsd) -> Decimal {
    Decimal::new(i128::from(amount.pico()), PICO_USD_DECIMALS - 2).unwrap_or(Decimal::ZERO)
}

/// Hex digits of the MAC a page token carries (128 bits).
const PAGE_MAC_HEX: usize = 32;

fn page_mac(secret: &[u8], binding: &str, next: i64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"creditgate report page v1\n");
    mac.update(binding.as_bytes());
    mac.update(b"\n");
    mac.update(next.to_string().as_bytes());
    mac
}

/// The `next_page` token of a report: where the next page starts, with a MAC over it and
/// `binding` (the caller's organization and the query), so a token altered or used by another
/// organization or for another query is refused by [`open_page_token`].
pub fn page_token(secret: &[u8], binding: &str, next: Timestamp) -> String {
    let tag = page_mac(secret, binding, next.millis())
        .finalize()
        .into_bytes();
    format!("{}_{}", next.millis(), &hex::encode(tag)[..PAGE_MAC_HEX])
}

/// Where the page of `token` starts, if the token was made by [`page_token`] with the same
/// secret and binding.
pub fn open_page_token(secret: &[u8], binding: &str, token: &str) -> Option<Timestamp> {
    let (next, tag) = token.split_once('_')?;
    if tag.len() != PAGE_MAC_HEX || next.starts_with('+') {
        return None;
    }
    let next: i64 = next.parse().ok()?;
    let tag = hex::decode(tag).ok()?;
    page_mac(secret, binding, next)
        .verify_truncated_left(&tag)
        .ok()?;
    Some(Timestamp::from_millis(next))
}

/// One minute of one key's use of one model's cache: what it wrote (credits per TTL) and
/// whether it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMinute {
    pub org: OrganizationId,
    pub key_id: String,
    pub model: String,
    pub minute: Timestamp,
    pub write_5m: NanoCredits,
    pub write_1h: NanoCredits,
    pub read_tokens: u64,
}

/// Where unread writes are counted: an organization's key, a model and the minute of the write.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CacheCell {
    pub org: OrganizationId,
    pub key_id: String,
    pub model: String,
    pub minute: Timestamp,
}

/// TTLs of the two cache-write kinds.
const TTL_5M_MS: i64 = 5 * MINUTE_MS;
const TTL_1H_MS: i64 = HOUR_MS;

/// The credits of cache writes never read within their TTL, per key, model and minute of the
/// write: a write in minute `m` counts as read when the same key read the same model's cache
/// in a minute starting in `[m, m + TTL]`. Writes whose TTL has not run out by `now` are not
/// counted (they may still be read). Minute resolution makes this a lower bound: a read in the
/// write's own minute (possibly by the writing request itself) counts as reading it.
pub fn unread_writes(
    minutes: &[CacheMinute],
    now: Timestamp,
) -> BTreeMap<CacheCell, (NanoCredits, NanoCredits)> {
    let mut reads: BTreeMap<(&str, &str, &str), Vec<i64>> = BTreeMap::new();
    for m in minutes.iter().filter(|m| m.read_tokens > 0) {
        reads
            .entry((m.org.as_str(), &m.key_id, &m.model))
            .or_default()
            .push(m.minute.millis());
    }
    reads.values_mut().for_each(|v| v.sort_unstable());
    let unread = |m: &CacheMinute, ttl: i64| {
        // The TTL of a write made late in minute m runs until m + 1 minute + TTL.
        if m.minute.millis() + MINUTE_MS + ttl > now.millis() {
            return false;
        }
        let times = reads
            .get(&(m.org.as_str(), m.key_id.as_str(), m.model.as_str()))
            .map_or(&[][..], Vec::as_slice);
        let i = times.partition_point(|t| *t < m.minute.millis());
        times.get(i).is_none_or(|t| *t > m.minute.millis() + ttl)
    };
    let mut out = BTreeMap::new();
    for m in minutes {
        let w5 = if m.write_5m.is_positive() && unread(m, TTL_5M_MS) {
            m.write_5m
        } else {
            NanoCredits::ZERO
        };
        let w1 = if m.write_1h.is_positive() && unread(m, TTL_1H_MS) {
            m.write_1h
        } else {
            NanoCredits::ZERO
        };
        if w5.is_positive() || w1.is_positive() {
            let slot = out
                .entry(CacheCell {
                    org: m.org.clone(),
                    key_id: m.key_id.clone(),
                    model: m.model.clone(),
                    minute: m.minute,
                })
                .or_insert((NanoCredits::ZERO, NanoCredits::ZERO));
            slot.0 = slot.0.checked_add(w5).unwrap_or(slot.0);
            slot.1 = slot.1.checked_add(w1).unwrap_or(slot.1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn buckets_are_utc_and_half_open() {
        let t = at("2026-11-26T14:37:12Z");
        assert_eq!(BucketWidth::Day.floor(t), at("2026-11-26"));
        assert_eq!(BucketWidth::Hour.floor(t), at("2026-11-26T14:00:00Z"));
        assert_eq!(BucketWidth::Minute.floor(t), at("2026-11-26T14:37:00Z"));
        assert_eq!(BucketWidth::Day.ceil(t), at("2026-11-27"));
        let midnight = at("2026-11-27");
        assert_eq!(BucketWidth::Day.floor(midnight), midnight);
        assert_eq!(BucketWidth::Day.ceil(midnight), midnight);
        assert_eq!(
            BucketWidth::Day.floor(midnight.plus_millis(-1)),
            at("2026-11-26")
        );
    }

    #[test]
    fn page_tokens_are_bound_and_tamper_evident() {
        let next = at("2026-11-20");
        let token = page_token(b"secret", "org-a|usage", next);
        assert_eq!(
            open_page_token(b"secret", "org-a|usage", &token),
            Some(next)
        );
        assert_eq!(open_page_token(b"secret", "org-b|usage", &token), None);
        assert_eq!(open_page_token(b"other", "org-a|usage", &token), None);
        let (ms, tag) = token.split_once('_').unwrap();
        let moved = format!("{}_{tag}", ms.parse::<i64>().unwrap() + 86_400_000);
        assert_eq!(open_page_token(b"secret", "org-a|usage", &moved), None);
        for bad in ["", "_", "1_zz", &token[..token.len() - 1], "abc_00"] {
            assert_eq!(
                open_page_token(b"secret", "org-a|usage", bad),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn cents_are_exact() {
        let unit = CreditUnit::reseller_default();
        let c = |s: &str| s.parse::<NanoCredits>().unwrap();
        assert_eq!(
            usd_cents(c("0.000000001"), &unit).unwrap().to_string(),
            "0.0000000005"
        );
        assert_eq!(usd_cents(c("1000"), &unit).unwrap().to_string(), "500");
        assert_eq!(
            pico_usd_cents(PicoUsd::from_pico(1_720_000_000)).to_string(),
            "0.172"
        );
    }

    fn minute(key: &str, min: i64, w5: i64, w1: i64, read: u64) -> CacheMinute {
        CacheMinute {
            org: OrganizationId::parse("org-1").unwrap(),
            key_id: key.into(),
            model: "m".into(),
            minute: Timestamp::from_millis(min * MINUTE_MS),
            write_5m: NanoCredits::from_nanos(w5),
            write_1h: NanoCredits::from_nanos(w1),
            read_tokens: read,
        }
    }

    #[test]
    fn writes_read_within_their_ttl_are_not_wasted() {
        let now = Timestamp::from_millis(1_000 * MINUTE_MS);
        let minutes = [
            minute("a", 0, 10, 0, 0),
            minute("a", 5, 0, 0, 7), // reads a's 5m write of minute 0 (5 minutes later)
            minute("a", 10, 20, 0, 0), // never read: minute 16 is too late
            minute("a", 16, 0, 0, 1),
            minute("a", 20, 0, 30, 0), // 1h write read 60 minutes later
            minute("a", 80, 0, 0, 1),
            minute("b", 100, 40, 50, 0), // another key's read does not count
            minute("a", 101, 0, 0, 9),
            minute("a", 998, 60, 0, 0), // still within its TTL
        ];
        let unread = unread_writes(&minutes, now);
        let get = |k: &str, m: i64| {
            unread
                .get(&CacheCell {
                    org: OrganizationId::parse("org-1").unwrap(),
                    key_id: k.to_owned(),
                    model: "m".to_owned(),
                    minute: Timestamp::from_millis(m * MINUTE_MS),
                })
                .map(|(a, b)| (a.nanos(), b.nanos()))
        };
        assert_eq!(get("a", 0), None);
        assert_eq!(get("a", 10), Some((20, 0)));
        assert_eq!(get("a", 20), None);
        assert_eq!(get("b", 100), Some((40, 50)));
        assert_eq!(get("a", 998), None);
        assert_eq!(unread.len(), 2);
    }
}
