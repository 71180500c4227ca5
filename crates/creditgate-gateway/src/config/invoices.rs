//! The `[invoices]` section (`docs/credit-lines.md`): the price of a credit on an invoice,
//! the payment term, whether an overdue invoice suspends the credit line, and how often the
//! invoice job looks for a new month.

use creditgate_core::money::Decimal;
use creditgate_core::payments::invoice::MAX_DUE_DAYS;
use serde::Deserialize;

use super::ConfigError;

/// Days from drafting until an invoice is due, unless configured.
pub const DEFAULT_DUE_DAYS: i64 = 30;
/// How often each replica offers to run the invoice job (drafting, overdue checks).
pub const DEFAULT_INVOICE_INTERVAL_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInvoices {
    usd_per_credit: Option<String>,
    due_days: Option<i64>,
    suspend_when_overdue: Option<bool>,
    interval_ms: Option<u64>,
}

/// The validated `[invoices]` section.
#[derive(Debug, Clone)]
pub struct InvoicesConfig {
    /// The price of one credit on an invoice; the credit unit's USD value when not set.
    pub usd_per_credit: Decimal,
    pub due_days: i64,
    pub suspend_when_overdue: bool,
    pub interval_ms: u64,
}

impl InvoicesConfig {
    pub(super) fn read(raw: RawInvoices, unit_usd: Decimal) -> Result<Self, ConfigError> {
        let invalid = |m: &str| ConfigError::Invalid(format!("invoices.{m}"));
        let usd_per_credit = match raw.usd_per_credit {
            None => unit_usd,
            Some(text) => text
                .parse::<Decimal>()
                .ok()
                .filter(|d| !d.is_negative() && !d.is_zero())
                .ok_or_else(|| invalid("usd_per_credit must be a positive decimal string"))?,
        };
        let due_days = raw.due_days.unwrap_or(DEFAULT_DUE_DAYS);
        if !(0..=MAX_DUE_DAYS).contains(&due_days) {
            return Err(invalid(&format!("due_days must be 0 to {MAX_DUE_DAYS}")));
        }
        let interval_ms = raw.interval_ms.unwrap_or(DEFAULT_INVOICE_INTERVAL_MS);
        if interval_ms < 1_000 {
            return Err(invalid("interval_ms must be at least 1000"));
        }
        Ok(Self {
            usd_per_credit,
            due_days,
            suspend_when_overdue: raw.suspend_when_overdue.unwrap_or(false),
            interval_ms,
        })
    }
}
