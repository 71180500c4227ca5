//! How the dashboard writes amounts and times: credits in the operator's unit with their USD
//! value beside, exact to the cent (`docs/dashboard.md`); integers only.

use std::str::FromStr;

use creditgate_core::money::{CreditUnit, Decimal, NanoCredits};
use creditgate_core::reports::usd_cents;
use serde_json::Value;

/// An amount of credits as shown: `12.5` and `$0.06`.
#[derive(Debug, Clone, Default)]
pub struct Amount {
    pub credits: String,
    pub usd: String,
    pub negative: bool,
}

impl Amount {
    pub fn of(nanos: NanoCredits, unit: &CreditUnit) -> Self {
        Amount {
            credits: nanos.to_string(),
            usd: usd_cents(nanos, unit)
                .map(dollars)
                .unwrap_or_else(|_| "—".into()),
            negative: nanos.is_negative(),
        }
    }

    /// From an API answer's credit string (`"12.5"`); a null or missing value is zero.
    pub fn from_json(value: &Value, unit: &CreditUnit) -> Self {
        let nanos = value
            .as_str()
            .and_then(|s| NanoCredits::from_str(s).ok())
            .unwrap_or(NanoCredits::ZERO);
        Self::of(nanos, unit)
    }
}

/// Cents (possibly fractional) as dollars rounded half away from zero to the cent: `$12.35`.
pub fn dollars(cents: Decimal) -> String {
    let scale = 10i128.pow(cents.scale());
    let units = cents.units();
    let whole = (units.abs() * 2 + scale) / (2 * scale);
    let sign = if units < 0 && whole > 0 { "-" } else { "" };
    format!("{sign}${}.{:02}", group(whole / 100), whole % 100)
}

/// Integer cents as dollars: `$49.00`.
pub fn cents(amount_cents: i64) -> String {
    Decimal::new(i128::from(amount_cents), 0)
        .map(dollars)
        .unwrap_or_default()
}

/// Thousands separated by commas: `12,345`.
fn group(n: i128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An RFC 3339 time from an API answer as `2026-11-26 17:05 UTC`; empty when null.
pub fn when(value: &Value) -> String {
    let Some(s) = value.as_str() else {
        return String::new();
    };
    match (s.get(..10), s.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => s.to_owned(),
    }
}

/// A string field of an API answer, empty when null.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// JSON for a `<script type="application/json">` block: `<`, `>` and `&` escaped inside strings
/// (`\u003c`…), so no value (a key's name) can close the block.
pub fn script_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_half_away_from_zero_and_group_thousands() {
        assert_eq!(dollars(Decimal::new(12345, 1).unwrap()), "$12.35");
        assert_eq!(dollars(Decimal::new(-5, 1).unwrap()), "-$0.01");
        assert_eq!(dollars(Decimal::new(4, 1).unwrap()), "$0.00");
        assert_eq!(cents(123_456_789), "$1,234,567.89");
        let unit = CreditUnit::reseller_default();
        let a = Amount::of(NanoCredits::from_credits(10_000).unwrap(), &unit);
        assert_eq!((a.credits.as_str(), a.usd.as_str()), ("10000", "$50.00"));
    }

    #[test]
    fn script_json_cannot_close_its_block() {
        let v = serde_json::json!({"label": "</script><b>&"});
        let s = script_json(&v);
        assert!(!s.contains('<') && !s.contains('>'), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }
}
