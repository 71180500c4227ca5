//! Pricing: the price book, the exact cost of a request in credits, the worst-case hold
//! estimate, price versions and credit plans.
//!
//! Every amount is exact: rates are decimal strings, costs are computed as exact decimals and
//! fractions in `i128`, and a request's cost is rounded once, up, to the nano-credit. The rules
//! are written out in `docs/pricing.md`.

mod betas;
mod book;
mod calendar;
mod cost;
mod estimate;
mod history;
mod litellm;
mod number_text;
mod plans;
mod scan;
mod wire_usage;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod property_tests;

pub use betas::{bills_beta, BILLED_BETAS};
pub use book::{
    EarlierRates, LongContextTier, ModelPrice, ModelStatus, Modifiers, PriceBook, Rates,
    SelectedRates, MAX_MODEL_NAME_CHARS, MAX_RATE_PLACES,
};
pub use calendar::{format_date, parse_date, MS_PER_DAY};
pub use cost::{
    cost, cost_at, AppliedModifiers, Cost, CostLine, CostOptions, LineCategory, ThinkingLine,
};
pub use estimate::{
    cache_triggers, estimate_input_tokens, estimate_input_tokens_for, estimate_text_tokens,
    hold_estimate, CacheTriggers, HoldEstimate, BASE_REQUEST_TOKENS, BYTES_PER_TOKEN, IMAGE_TOKENS,
    PER_MESSAGE_TOKENS, SERVER_TOOL_DEFINITION_TOKENS, TOOL_USE_SYSTEM_PROMPT_TOKENS,
    WEB_SEARCH_INPUT_TOKENS, WEB_SEARCH_USES_WITHOUT_MAX,
};
pub use history::PriceHistory;
pub use plans::{CreditPlan, CreditPlans, CustomAmount, Expiry, Ratio};
pub use scan::{hold_estimate_scanned, RequestScan, ScanError, Short, MAX_BETAS};
pub use wire_usage::{CacheWrites, Usage, UsageFlag, MAX_SERVER_TOOL_REQUESTS, MAX_USAGE_TOKENS};

use crate::money::{CreditUnit, Decimal, MoneyError};

/// The most decimal places of the operator's price multiplier (`0.7`, `0.65`, `1.0125`).
pub const MAX_MULTIPLIER_PLACES: u32 = 4;

/// Errors from pricing, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// The model is not in the price book. Never priced as free.
    #[error("unknown model `{model}`{}", close_matches(suggestions))]
    UnknownModel {
        model: String,
        suggestions: Vec<String>,
    },
    #[error("price book: {0}")]
    PriceBook(String),
    #[error("LiteLLM price list: {0}")]
    LiteLlm(String),
    #[error("price history: {0}")]
    History(String),
    #[error("credit plans: {0}")]
    Plans(String),
    #[error("pricing configuration: {0}")]
    Config(String),
    /// The request body lacks what a hold needs (`model`, `max_tokens`).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Money(#[from] MoneyError),
}

fn close_matches(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; close matches: {}", suggestions.join(", "))
    }
}

/// The operator's pricing: a multiplier on list prices and the credit unit amounts are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingConfig {
    /// Times list price, e.g. `0.70` for 30% below Anthropic. At most
    /// [`MAX_MULTIPLIER_PLACES`] decimal places; zero prices everything at zero.
    pub multiplier: Decimal,
    pub credit_unit: CreditUnit,
}

impl PricingConfig {
    /// A validated configuration.
    pub fn new(multiplier: Decimal, credit_unit: CreditUnit) -> Result<Self, PricingError> {
        let cfg = Self {
            multiplier,
            credit_unit,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// List prices in US dollars: multiplier 1, 1 credit = $1.
    pub fn list_usd() -> Self {
        Self {
            multiplier: Decimal::ONE,
            credit_unit: CreditUnit {
                name: "USD".to_owned(),
                usd: Decimal::ONE,
            },
        }
    }

    /// The reseller defaults: ×0.70 of list, 1 credit = $0.005.
    pub fn reseller_default() -> Self {
        Self {
            multiplier: Decimal::new(7, 1).unwrap_or(Decimal::ONE),
            credit_unit: CreditUnit::reseller_default(),
        }
    }

    /// The multiplier is non-negative with at most [`MAX_MULTIPLIER_PLACES`] places; the credit
    /// is worth a positive amount.
    pub fn validate(&self) -> Result<(), PricingError> {
        if self.multiplier.is_negative() || self.multiplier.scale() > MAX_MULTIPLIER_PLACES {
            return Err(PricingError::Config(format!(
                "the price multiplier {} must be non-negative with at most \
                 {MAX_MULTIPLIER_PLACES} decimal places",
                self.multiplier
            )));
        }
        if self.credit_unit.usd.is_negative() || self.credit_unit.usd.is_zero() {
            return Err(PricingError::Config(format!(
                "the credit's USD value {} must be positive",
                self.credit_unit.usd
            )));
        }
        Ok(())
    }
}

/// A count as an exact decimal.
fn count(n: u64) -> Result<Decimal, MoneyError> {
    Decimal::new(i128::from(n), 0)
}
