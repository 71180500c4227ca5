//! Metering: what an admitted request is charged once it ends, and the receipt status it gets.
//!
//! The charging rules live here, apart from HTTP, so they can be tested on their own:
//! - a request whose usage is unknown, or whose usage costs nothing, is free;
//! - usage the upstream reported malformed (missing, negative, fractional, wrong type, absurd)
//!   is never trusted to charge past the hold: the charge is capped at what was held;
//! - usage that cannot be priced is charged the hold (what the client agreed to risk);
//! - well-formed usage is charged in full, even above the hold: the difference is a recorded
//!   overrun that the ledger turns into debt (invariant 6 of `ARCHITECTURE.md`);
//! - a stream that ends early is `partial`, one whose client left under `cancel` is
//!   `estimated`, one that reached `message_stop` is `settled`.

use crate::money::NanoCredits;
use crate::pricing::{
    self, Cost, CostOptions, PriceBook, PricingConfig, PricingError, Usage, UsageFlag,
};
use crate::usage::{ReceiptStatus, ReportedUsage};

/// What a request is charged, with what the receipt needs to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub amount: NanoCredits,
    pub status: ReceiptStatus,
    /// The priced lines, when the usage could be priced.
    pub cost: Option<Cost>,
    /// Irregularities in the upstream's usage object.
    pub flags: Vec<UsageFlag>,
    /// Why the usage could not be priced (the hold was charged instead).
    pub pricing_error: Option<PricingError>,
}

/// Applies the charging rules to a request that ended with `status` and reported `usage`
/// (`None` when nothing usable came back), `held` being everything its hold covers.
pub fn charge(
    book: &PriceBook,
    model: &str,
    usage: Option<&ReportedUsage>,
    held: NanoCredits,
    status: ReceiptStatus,
    cfg: &PricingConfig,
) -> Charge {
    let Some(ReportedUsage {
        usage: parsed,
        flags,
    }) = usage
    else {
        return Charge {
            amount: NanoCredits::ZERO,
            status: ReceiptStatus::Free,
            cost: None,
            flags: Vec::new(),
            pricing_error: None,
        };
    };
    let flags = flags.clone();
    let (amount, cost, pricing_error) =
        match pricing::cost(book, model, parsed, &CostOptions::default(), cfg) {
            Ok(c) => (c.total, Some(c), None),
            Err(err) => (held, None, Some(err)),
        };
    let amount = if flags.iter().any(is_malformed) {
        amount.min(held)
    } else {
        amount
    };
    let status = if amount == NanoCredits::ZERO {
        ReceiptStatus::Free
    } else {
        status
    };
    Charge {
        amount,
        status,
        cost,
        flags,
        pricing_error,
    }
}

/// The exact cost of the input side of `usage` (its output counted as zero), as known at a
/// stream's `message_start`; `None` when it cannot be priced.
pub fn input_cost(
    book: &PriceBook,
    model: &str,
    usage: &Usage,
    cfg: &PricingConfig,
) -> Option<NanoCredits> {
    let usage = Usage {
        output_tokens: 0,
        thinking_tokens: None,
        ..usage.clone()
    };
    pricing::cost(book, model, &usage, &CostOptions::default(), cfg)
        .ok()
        .map(|c| c.total)
}

/// Whether a usage flag means the upstream's numbers themselves were broken.
pub fn is_malformed(flag: &UsageFlag) -> bool {
    matches!(
        flag,
        UsageFlag::Missing { .. }
            | UsageFlag::Negative { .. }
            | UsageFlag::NotAnInteger { .. }
            | UsageFlag::WrongType { .. }
            | UsageFlag::Clamped { .. }
    )
}

/// How a stream ended, as far as its charge is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// `message_stop` arrived: the final usage is exact.
    Complete,
    /// The upstream sent an `error` event and closed.
    ErrorEvent,
    /// The upstream closed without `message_stop` or an error event.
    EndedEarly,
    /// The upstream connection failed or sent something unreadable.
    ConnectionLost(String),
    /// The client left under `drain` and the upstream did not finish in time.
    DrainTimeout,
    /// The client left under `cancel`: the upstream was dropped, output is estimated.
    ClientLeft,
    /// The hold could not grow to cover more output.
    CreditRanOut,
    /// The gateway's shutdown deadline came before the stream ended.
    Shutdown,
}

impl StreamEnd {
    /// The receipt status before the free rule of [`charge`] applies.
    pub fn status(&self) -> ReceiptStatus {
        match self {
            Self::Complete => ReceiptStatus::Settled,
            Self::ClientLeft => ReceiptStatus::Estimated,
            Self::ErrorEvent
            | Self::EndedEarly
            | Self::ConnectionLost(_)
            | Self::DrainTimeout
            | Self::CreditRanOut
            | Self::Shutdown => ReceiptStatus::Partial,
        }
    }

    /// Whether the final usage is known (otherwise the input of `message_start` plus the output
    /// observed so far is charged).
    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete)
    }

    /// The receipt's note (empty for a complete stream).
    pub fn note(&self) -> String {
        match self {
            Self::Complete => String::new(),
            Self::ErrorEvent => "upstream error event".into(),
            Self::EndedEarly => "stream ended without message_stop".into(),
            Self::ConnectionLost(reason) => format!("upstream connection lost: {reason}"),
            Self::DrainTimeout => "drain timeout after client disconnect".into(),
            Self::ClientLeft => "client disconnected; output estimated".into(),
            Self::CreditRanOut => "credit ran out during the stream".into(),
            Self::Shutdown => "the gateway shut down before the stream ended".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::money::{CreditUnit, Decimal};

    fn reported(v: &Value) -> ReportedUsage {
        ReportedUsage::parse(v)
    }

    const MODEL: &str = "claude-opus-5";

    fn book() -> &'static PriceBook {
        static BOOK: std::sync::OnceLock<PriceBook> = std::sync::OnceLock::new();
        BOOK.get_or_init(PriceBook::builtin)
    }

    fn cfg() -> PricingConfig {
        PricingConfig::new(
            Decimal::new(1, 0).unwrap(),
            CreditUnit::new("credit", Decimal::new(1, 0).unwrap()).unwrap(),
        )
        .unwrap()
    }

    fn held(n: i64) -> NanoCredits {
        NanoCredits::from_nanos(n)
    }

    #[test]
    fn unknown_usage_and_zero_usage_are_free() {
        let c = charge(book(), MODEL, None, held(5), ReceiptStatus::Settled, &cfg());
        assert_eq!(
            (c.amount, c.status),
            (NanoCredits::ZERO, ReceiptStatus::Free)
        );
        let zero = json!({"input_tokens": 0, "output_tokens": 0});
        let c = charge(
            book(),
            MODEL,
            Some(&reported(&zero)),
            held(5),
            ReceiptStatus::Partial,
            &cfg(),
        );
        assert_eq!(
            (c.amount, c.status),
            (NanoCredits::ZERO, ReceiptStatus::Free)
        );
    }

    #[test]
    fn well_formed_usage_may_overrun_the_hold() {
        let usage = json!({"input_tokens": 1000, "output_tokens": 1000});
        let c = charge(
            book(),
            MODEL,
            Some(&reported(&usage)),
            held(1),
            ReceiptStatus::Settled,
            &cfg(),
        );
        assert!(c.amount > held(1), "an overrun is charged, not capped");
        assert_eq!(c.status, ReceiptStatus::Settled);
        assert_eq!(c.amount, c.cost.unwrap().total);
    }

    #[test]
    fn malformed_usage_is_capped_at_the_hold() {
        let usage = json!({"input_tokens": "1000", "output_tokens": 1000});
        let c = charge(
            book(),
            MODEL,
            Some(&reported(&usage)),
            held(7),
            ReceiptStatus::Settled,
            &cfg(),
        );
        assert_eq!(c.amount, held(7));
        assert!(c.flags.iter().any(is_malformed));
    }

    #[test]
    fn unpriceable_usage_charges_the_hold() {
        let usage = json!({"input_tokens": 10, "output_tokens": 10});
        let c = charge(
            book(),
            "no-such-model",
            Some(&reported(&usage)),
            held(9),
            ReceiptStatus::Settled,
            &cfg(),
        );
        assert_eq!((c.amount, c.status), (held(9), ReceiptStatus::Settled));
        assert!(c.pricing_error.is_some() && c.cost.is_none());
    }

    #[test]
    fn stream_endings_map_to_statuses() {
        assert_eq!(StreamEnd::Complete.status(), ReceiptStatus::Settled);
        assert_eq!(StreamEnd::ClientLeft.status(), ReceiptStatus::Estimated);
        for end in [
            StreamEnd::ErrorEvent,
            StreamEnd::EndedEarly,
            StreamEnd::ConnectionLost("reset".into()),
            StreamEnd::DrainTimeout,
            StreamEnd::CreditRanOut,
        ] {
            assert_eq!(end.status(), ReceiptStatus::Partial);
            assert!(!end.is_complete() && !end.note().is_empty());
        }
        assert!(StreamEnd::ConnectionLost("reset".into())
            .note()
            .contains("reset"));
    }

    #[test]
    fn input_cost_ignores_output() {
        let with = json!({"input_tokens": 500, "output_tokens": 9000});
        let without = json!({"input_tokens": 500, "output_tokens": 0});
        let a = input_cost(book(), MODEL, &reported(&with).usage, &cfg()).unwrap();
        let b = charge(
            book(),
            MODEL,
            Some(&reported(&without)),
            held(0),
            ReceiptStatus::Settled,
            &cfg(),
        );
        assert_eq!(a, b.amount);
    }

    fn any_count() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0u64..200_000).prop_map(Value::from),
            (-5i64..0).prop_map(Value::from),
            (0u64..1000).prop_map(|n| Value::from(n.to_string())),
            Just(Value::Null),
            Just(json!(12.5)),
            Just(json!(u64::MAX)),
        ]
    }

    proptest! {
        /// For any reported usage and hold: a charge above the hold only from well-formed usage,
        /// zero is always free, anything charged is free only when zero, and a priced charge is
        /// the cost (or the hold, when capped).
        #[test]
        fn charging_rules_hold(
            input in any_count(),
            output in any_count(),
            read in any_count(),
            held_nanos in 0i64..10_000_000_000,
            status in prop::sample::select(vec![
                ReceiptStatus::Settled, ReceiptStatus::Partial, ReceiptStatus::Estimated,
            ]),
        ) {
            let usage = json!({"input_tokens": input, "output_tokens": output,
                               "cache_read_input_tokens": read});
            let hold = held(held_nanos);
            let c = charge(book(), MODEL, Some(&reported(&usage)), hold, status, &cfg());
            let malformed = c.flags.iter().any(is_malformed);
            if c.amount > hold {
                prop_assert!(!malformed, "malformed usage charged past the hold");
            }
            prop_assert_eq!(c.amount == NanoCredits::ZERO, c.status == ReceiptStatus::Free);
            if c.amount != NanoCredits::ZERO {
                prop_assert_eq!(c.status, status);
            }
            let total = c.cost.as_ref().map(|cost| cost.total).unwrap();
            let expected = if malformed { total.min(hold) } else { total };
            prop_assert_eq!(c.amount, expected);
        }
    }
}
