//! The operator's console at `/operator`: organizations with balances, grants, manual
//! payments, orders (recheck, refund), plans and the prices in force. Every form calls the
//! `/admin/v1` handler that does the same over the API, with the [`session::Console`]'s
//! `Operator`, so no rule is written twice (`docs/dashboard.md`, "Operator console").

use serde_json::Value;

use crate::error::ApiError;

pub mod orders;
pub mod organizations;
pub mod plans;
pub mod prices;
pub mod session;

/// What the console's layout needs on every page.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub csrf: String,
    /// The nav entry of the page shown (marked `aria-current`).
    pub here: &'static str,
    /// A confirmation after a form succeeded (`?done=`), from a fixed list.
    pub notice: &'static str,
}

impl Frame {
    pub fn new(csrf: &str, here: &'static str, done: Option<&str>) -> Self {
        Frame {
            csrf: csrf.to_owned(),
            here,
            notice: notice(done.unwrap_or("")),
        }
    }

    pub fn is(&self, entry: &str) -> bool {
        self.here == entry
    }
}

/// The confirmation a redirect asks for; an unknown word shows nothing (the text is ours, never
/// the query's).
fn notice(done: &str) -> &'static str {
    match done {
        "grant" => "Credits granted.",
        "payment" => "Payment recorded and credited.",
        "recheck" => "Order rechecked with its provider.",
        "refund" => "Refund issued.",
        "plan" => "Plan saved.",
        _ => "",
    }
}

/// The items of a list answer (`{"data":[…]}`).
pub fn items(list: &Value) -> Vec<Value> {
    list["data"].as_array().cloned().unwrap_or_default()
}

/// Dollars typed by the operator (`50`, `50.5`, `1,250.00`) as integer cents; `field` names the
/// field in the error.
pub fn cents_of(text: &str, field: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::invalid_request(format!(
            "{field}: enter an amount in dollars, such as 50.00"
        ))
    };
    let clean: String = text.trim().trim_start_matches('$').replace(',', "");
    let (whole, frac) = clean.split_once('.').unwrap_or((&clean, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || frac.len() > 2 || !(frac.is_empty() || digits(frac)) {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|c| c.checked_add(frac))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_read_exactly_as_cents() {
        assert_eq!(cents_of("50", "amount").unwrap(), 5000);
        assert_eq!(cents_of("$1,250.5", "amount").unwrap(), 125_050);
        assert_eq!(cents_of("0.07", "amount").unwrap(), 7);
        for bad in [
            "",
            "1.234",
            "-5",
            "abc",
            "1e3",
            ".5",
            "99999999999999999999",
        ] {
            assert!(cents_of(bad, "amount").is_err(), "{bad}");
        }
    }
}
