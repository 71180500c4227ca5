//! Tax by billing country (`docs/tax.md`): exact decimal rates per ISO 3166-1 alpha-2 country
//! and one rounding rule. Prices exclude tax: tax = round half-up(subtotal × rate) to the cent,
//! total = subtotal + tax. Prices include tax: total = price, subtotal = round half-up(total /
//! (1 + rate)), tax = total − subtotal. Either way the parts sum exactly to the total. A country
//! without a rate (or no country) pays rate 0: tax 0, and receipts say "No tax".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PaymentError;

/// Most decimal places a rate may have ("0.075" has 3).
pub const MAX_RATE_SCALE: u32 = 6;

/// Every ISO 3166-1 alpha-2 code (officially assigned), sorted.
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ \
EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ \
LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Whether `code` is an assigned ISO 3166-1 alpha-2 country code (upper case).
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && ISO_3166_ALPHA2.split(' ').any(|c| c == code)
}

/// A tax rate as an exact decimal fraction `units / 10^scale`, in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaxRate {
    units: i64,
    scale: u32,
}

impl TaxRate {
    pub const ZERO: TaxRate = TaxRate { units: 0, scale: 0 };

    /// Parses a decimal string such as "0.20" or "0.075" (digits, one optional point, at most
    /// [`MAX_RATE_SCALE`] places, no sign or exponent) and checks it is within 0..=1.
    pub fn parse(text: &str) -> Result<Self, PaymentError> {
        let bad = || {
            PaymentError::Invalid(format!(
                "tax rate `{text}` must be a decimal from 0 to 1 such as \"0.20\""
            ))
        };
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || int.len() > 6 {
            return Err(bad());
        }
        if text.contains('.') && frac.is_empty() {
            return Err(bad());
        }
        let scale = u32::try_from(frac.len()).map_err(|_| bad())?;
        if scale > MAX_RATE_SCALE {
            return Err(bad());
        }
        let units: i64 = format!("{int}{frac}").parse().map_err(|_| bad())?;
        let rate = Self { units, scale };
        if units > rate.denominator() {
            return Err(bad());
        }
        Ok(rate)
    }

    fn denominator(self) -> i64 {
        10_i64.pow(self.scale)
    }

    pub fn is_zero(self) -> bool {
        self.units == 0
    }

    /// The rate as a decimal string with its places ("0.20", "0.075", "0").
    pub fn as_string(self) -> String {
        if self.scale == 0 {
            return self.units.to_string();
        }
        let den = self.denominator();
        let places = self.scale as usize;
        format!("{}.{:0places$}", self.units / den, self.units % den)
    }

    /// The rate in percent, trailing zeros dropped ("20", "7.5", "0").
    pub fn percent(self) -> String {
        let pct = match self.scale {
            0 | 1 => Self {
                units: self.units * 10_i64.pow(2 - self.scale),
                scale: 0,
            },
            s => Self {
                units: self.units,
                scale: s - 2,
            },
        };
        let text = pct.as_string();
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    }
}

/// How a price splits into subtotal and tax (all integer cents, the parts sum to the total).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxBreakdown {
    pub subtotal_cents: i64,
    /// The rate applied as an exact decimal string ("0.20"; "0" when no tax applies).
    pub tax_rate: String,
    pub tax_cents: i64,
    /// The total charged: subtotal + tax.
    pub amount_cents: i64,
}

impl TaxBreakdown {
    /// No tax: the whole amount is the subtotal.
    pub fn untaxed(amount_cents: i64) -> Self {
        Self {
            subtotal_cents: amount_cents,
            tax_rate: "0".to_owned(),
            tax_cents: 0,
            amount_cents,
        }
    }
}

/// round half-up of `num / den` for `num >= 0`, `den > 0`.
fn round_half_up(num: i128, den: i128) -> i128 {
    (2 * num + den) / (2 * den)
}

/// Applies `rate` to a price in cents (`price_cents >= 0`) by the one rounding rule.
pub fn compute_tax(rate: TaxRate, price_cents: i64, prices_include_tax: bool) -> TaxBreakdown {
    let (units, den, price) = (
        i128::from(rate.units),
        i128::from(rate.denominator()),
        i128::from(price_cents.max(0)),
    );
    let (subtotal, tax) = if prices_include_tax {
        let subtotal = round_half_up(price * den, den + units);
        (subtotal, price - subtotal)
    } else {
        (price, round_half_up(price * units, den))
    };
    // price ≤ i64::MAX and rate ≤ 1, so each part fits in i64 (the total at most doubles;
    // orders are bounded far below that by MAX_ORDER_CENTS).
    let cents = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    let (subtotal_cents, tax_cents) = (cents(subtotal), cents(tax));
    TaxBreakdown {
        subtotal_cents,
        tax_rate: rate.as_string(),
        tax_cents,
        amount_cents: subtotal_cents.saturating_add(tax_cents),
    }
}

/// The operator's tax settings: a rate per country and whether plan prices include tax.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaxTable {
    rates: BTreeMap<String, TaxRate>,
    pub prices_include_tax: bool,
}

impl TaxTable {
    /// Builds a table from `(country, rate text)` pairs; a country must be an assigned ISO
    /// 3166-1 alpha-2 code (any case; stored upper case), a rate a decimal in 0..=1.
    pub fn new<I, K, V>(rates: I, prices_include_tax: bool) -> Result<Self, PaymentError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut table = BTreeMap::new();
        for (country, rate) in rates {
            let code = country.as_ref().trim().to_ascii_uppercase();
            if !is_country_code(&code) {
                return Err(PaymentError::Invalid(format!(
                    "tax rates: `{}` is not an ISO 3166-1 alpha-2 country code such as `FR`",
                    country.as_ref()
                )));
            }
            let parsed = TaxRate::parse(rate.as_ref().trim())
                .map_err(|e| PaymentError::Invalid(format!("tax rate for {code}: {e}")))?;
            table.insert(code, parsed);
        }
        Ok(Self {
            rates: table,
            prices_include_tax,
        })
    }

    /// The rate for a buyer's country: zero when there is no country or no rate for it.
    pub fn rate_for(&self, country: Option<&str>) -> TaxRate {
        country
            .and_then(|c| self.rates.get(&c.to_ascii_uppercase()))
            .copied()
            .unwrap_or(TaxRate::ZERO)
    }

    /// Splits a plan price for a buyer in `country` by the table's pricing mode.
    pub fn apply(&self, country: Option<&str>, price_cents: i64) -> TaxBreakdown {
        compute_tax(self.rate_for(country), price_cents, self.prices_include_tax)
    }

    /// Splits an amount actually received (tax included, whatever the pricing mode): manual
    /// payments.
    pub fn split_received(&self, country: Option<&str>, amount_cents: i64) -> TaxBreakdown {
        compute_tax(self.rate_for(country), amount_cents, true)
    }

    /// The configured rates, country → rate string.
    pub fn rates(&self) -> impl Iterator<Item = (&str, String)> {
        self.rates.iter().map(|(c, r)| (c.as_str(), r.as_string()))
    }
}

/// The receipt's words for a tax line: "Tax (FR 20%)", or "No tax" at rate 0.
pub fn tax_label(country: Option<&str>, tax_rate: &str) -> String {
    match TaxRate::parse(tax_rate) {
        Ok(r) if !r.is_zero() => match country {
            Some(c) => format!("Tax ({c} {}%)", r.percent()),
            None => format!("Tax ({}%)", r.percent()),
        },
        _ => "No tax".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(include: bool) -> TaxTable {
        TaxTable::new([("FR", "0.20"), ("de", "0.19")], include).unwrap()
    }

    #[test]
    fn exclusive_5000_at_20_percent_is_1000() {
        let b = table(false).apply(Some("FR"), 5_000);
        assert_eq!(
            (b.subtotal_cents, b.tax_cents, b.amount_cents),
            (5_000, 1_000, 6_000)
        );
        assert_eq!(b.tax_rate, "0.20");
    }

    #[test]
    fn inclusive_6000_at_20_percent_splits_5000_1000() {
        let b = table(true).apply(Some("FR"), 6_000);
        assert_eq!(
            (b.subtotal_cents, b.tax_cents, b.amount_cents),
            (5_000, 1_000, 6_000)
        );
        // 5,000 incl. 19%: 5000/1.19 = 4201.68… → 4202, tax 798.
        let d = table(true).apply(Some("DE"), 5_000);
        assert_eq!(
            (d.subtotal_cents, d.tax_cents, d.amount_cents),
            (4_202, 798, 5_000)
        );
    }

    #[test]
    fn half_up_rounding() {
        // 0.5 cent rounds up; 0.49 down.
        let r = TaxRate::parse("0.1").unwrap();
        assert_eq!(compute_tax(r, 5, false).tax_cents, 1);
        assert_eq!(compute_tax(r, 4, false).tax_cents, 0);
        let r = TaxRate::parse("0.075").unwrap();
        assert_eq!(compute_tax(r, 1_000, false).tax_cents, 75);
        assert_eq!(compute_tax(r, 20, false).tax_cents, 2); // 1.5 → 2
    }

    #[test]
    fn no_rate_or_no_country_is_zero_tax() {
        let t = table(false);
        for country in [Some("US"), None] {
            let b = t.apply(country, 5_000);
            assert_eq!(b, TaxBreakdown::untaxed(5_000));
            assert_eq!(tax_label(country, &b.tax_rate), "No tax");
        }
        assert_eq!(tax_label(Some("FR"), "0.20"), "Tax (FR 20%)");
        assert_eq!(tax_label(Some("IE"), "0.075"), "Tax (IE 7.5%)");
    }

    #[test]
    fn bad_rates_and_countries_are_refused() {
        for rate in [
            "1.01",
            "-0.1",
            "",
            ".2",
            "2.",
            "0,2",
            "0.2e1",
            "0.1234567",
            "abc",
            "20%",
        ] {
            assert!(TaxRate::parse(rate).is_err(), "{rate}");
        }
        for rate in ["0", "1", "1.0", "0.20", "0.000001"] {
            assert!(TaxRate::parse(rate).is_ok(), "{rate}");
        }
        for country in ["XX", "F", "FRA", "", "1A", "UK"] {
            assert!(
                TaxTable::new([(country, "0.2")], false).is_err(),
                "{country}"
            );
        }
        assert!(TaxTable::new([("FR", "1.5")], false).is_err());
    }

    #[test]
    fn rate_strings_and_percent() {
        for (text, pct) in [
            ("0.20", "20"),
            ("0.075", "7.5"),
            ("1", "100"),
            ("0", "0"),
            ("0.5", "50"),
        ] {
            let r = TaxRate::parse(text).unwrap();
            assert_eq!(r.as_string(), text);
            assert_eq!(r.percent(), pct, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parts_always_sum_to_the_total(
            price in 0_i64..=100_000_000,
            units in 0_i64..=1_000_000,
            include in proptest::bool::ANY,
        ) {
            let r = TaxRate { units, scale: 6 };
            let b = compute_tax(r, price, include);
            proptest::prop_assert_eq!(b.subtotal_cents + b.tax_cents, b.amount_cents);
            proptest::prop_assert!(b.tax_cents >= 0 && b.subtotal_cents >= 0);
            if include {
                proptest::prop_assert_eq!(b.amount_cents, price);
            } else {
                proptest::prop_assert_eq!(b.subtotal_cents, price);
            }
        }
    }
}
