//! Per-key limits: allowed models, requests and tokens per minute, spend per period. The spend
//! caps become the ledger's [`SpendLimit`]s, checked in the same atomic step as the hold.

use serde::{Deserialize, Serialize};

use super::AccountError;
use crate::clock::{civil_from_days, days_from_civil, Timestamp};
use crate::ledger::SpendLimit;
use crate::money::NanoCredits;

/// Most models one key's allow-list may name.
pub const MAX_ALLOWED_MODELS: usize = 100;
/// Largest requests- or tokens-per-minute limit accepted.
const MAX_PER_MINUTE: u64 = 1_000_000_000;
const DAY_MS: i64 = 86_400_000;

/// The limits of one key (`docs/accounts.md`); every field absent or null means "no limit".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    #[serde(default)]
    pub spend: SpendCaps,
}

/// Spend caps per period, in credits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendCaps {
    #[serde(default)]
    pub daily: Option<NanoCredits>,
    #[serde(default)]
    pub weekly: Option<NanoCredits>,
    #[serde(default)]
    pub monthly: Option<NanoCredits>,
    #[serde(default)]
    pub total: Option<NanoCredits>,
}

/// A spend period; days, weeks (from Monday) and months are UTC calendar periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitPeriod {
    Daily,
    Weekly,
    Monthly,
    Total,
}

impl LimitPeriod {
    pub const ALL: [LimitPeriod; 4] = [Self::Daily, Self::Weekly, Self::Monthly, Self::Total];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Total => "total",
        }
    }

    /// When the current period ends (`None` for the total, which never resets).
    pub fn resets_at(self, now: Timestamp) -> Option<Timestamp> {
        let start = period_start(self, now);
        match self {
            Self::Daily => Some(start.plus_millis(DAY_MS)),
            Self::Weekly => Some(start.plus_millis(7 * DAY_MS)),
            Self::Monthly => period_start(Self::Monthly, start.plus_millis(32 * DAY_MS)).into(),
            Self::Total => None,
        }
    }
}

/// The start of the period containing `now`.
pub fn period_start(period: LimitPeriod, now: Timestamp) -> Timestamp {
    let ms = now.millis();
    let day = ms - ms.rem_euclid(DAY_MS);
    match period {
        LimitPeriod::Daily => Timestamp::from_millis(day),
        // 1970-01-01 was a Thursday: shift by three days so weeks start on Monday.
        LimitPeriod::Weekly => {
            Timestamp::from_millis(ms - (ms + 3 * DAY_MS).rem_euclid(7 * DAY_MS))
        }
        LimitPeriod::Monthly => {
            let (year, month, _) = civil_from_days(day.div_euclid(DAY_MS));
            Timestamp::from_millis(days_from_civil(year, month, 1) * DAY_MS)
        }
        LimitPeriod::Total => Timestamp::from_millis(0),
    }
}

impl SpendCaps {
    pub fn get(&self, period: LimitPeriod) -> Option<NanoCredits> {
        match period {
            LimitPeriod::Daily => self.daily,
            LimitPeriod::Weekly => self.weekly,
            LimitPeriod::Monthly => self.monthly,
            LimitPeriod::Total => self.total,
        }
    }
}

impl KeyLimits {
    /// Checks bounds: caps positive, per-minute limits at least 1, model names sane.
    pub fn validate(&self) -> Result<(), AccountError> {
        let bad = |m: String| Err(AccountError::Invalid(m));
        for period in LimitPeriod::ALL {
            if let Some(cap) = self.spend.get(period) {
                if !cap.is_positive() {
                    return bad(format!(
                        "limits.spend.{}: must be positive",
                        period.as_str()
                    ));
                }
            }
        }
        for (field, value) in [
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
        ] {
            if value.is_some_and(|v| v == 0 || v > MAX_PER_MINUTE) {
                return bad(format!("limits.{field}: must be 1 to {MAX_PER_MINUTE}"));
            }
        }
        if let Some(models) = &self.allowed_models {
            if models.len() > MAX_ALLOWED_MODELS {
                return bad(format!(
                    "limits.allowed_models: at most {MAX_ALLOWED_MODELS} models"
                ));
            }
            if models.iter().any(|m| {
                m.is_empty()
                    || m.len() > 128
                    || m.chars().any(|c| c.is_whitespace() || c.is_control())
            }) {
                return bad("limits.allowed_models: each must be a model id".to_owned());
            }
        }
        Ok(())
    }

    /// Whether the key may call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|list| list.iter().any(|m| m == model))
    }

    /// The ledger limits for a hold of the key whose ledger scope is `scope`; each limit's
    /// scope names the period (`key:k1` for all of them: the ledger sums the key's charges since
    /// each period's start).
    pub fn spend_limits(&self, scope: &str, now: Timestamp) -> Vec<SpendLimit> {
        LimitPeriod::ALL
            .into_iter()
            .filter_map(|p| {
                self.spend.get(p).map(|cap| SpendLimit {
                    scope: scope.to_owned(),
                    since: period_start(p, now),
                    cap,
                })
            })
            .collect()
    }

    /// The period whose cap a refused ledger limit was (the longest such period when several
    /// share the cap: it resets last).
    pub fn period_of(&self, cap: NanoCredits) -> Option<LimitPeriod> {
        LimitPeriod::ALL
            .into_iter()
            .rev()
            .find(|p| self.spend.get(*p) == Some(cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn periods_are_utc_calendar_periods() {
        let now = at("2026-11-26T10:42:37Z"); // a Thursday
        assert_eq!(period_start(LimitPeriod::Daily, now), at("2026-11-26"));
        assert_eq!(period_start(LimitPeriod::Weekly, now), at("2026-11-23"));
        assert_eq!(period_start(LimitPeriod::Monthly, now), at("2026-11-01"));
        assert_eq!(LimitPeriod::Monthly.resets_at(now), Some(at("2026-12-01")));
        assert_eq!(LimitPeriod::Weekly.resets_at(now), Some(at("2026-11-30")));
        assert_eq!(LimitPeriod::Total.resets_at(now), None);
        let dec = at("2026-12-31T23:59:59Z");
        assert_eq!(LimitPeriod::Monthly.resets_at(dec), Some(at("2027-01-01")));
    }

    #[test]
    fn limits_parse_and_validate() {
        let l: KeyLimits = serde_json::from_str(
            r#"{"allowed_models":["claude-haiku-4-5"],"requests_per_minute":5,
                "spend":{"daily":"10","total":null}}"#,
        )
        .unwrap();
        assert!(l.validate().is_ok());
        assert!(l.allows_model("claude-haiku-4-5"));
        assert!(!l.allows_model("claude-opus-4-1"));
        let now = at("2026-11-26T10:00:00Z");
        let limits = l.spend_limits("key:k", now);
        assert_eq!(limits.len(), 1);
        assert_eq!(l.period_of(limits[0].cap), Some(LimitPeriod::Daily));
        let zero: KeyLimits = serde_json::from_str(r#"{"spend":{"weekly":"0"}}"#).unwrap();
        assert!(zero.validate().is_err());
        let rpm: KeyLimits = serde_json::from_str(r#"{"requests_per_minute":0}"#).unwrap();
        assert!(rpm.validate().is_err());
        assert!(serde_json::from_str::<KeyLimits>(r#"{"rpm":1}"#).is_err());
        assert!(serde_json::from_str::<KeyLimits>(r#"{"spend":{"daily":1.5}}"#).is_err());
    }
}
