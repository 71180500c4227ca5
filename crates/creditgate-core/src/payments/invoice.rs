//! Monthly invoices of invoiced organizations (`docs/credit-lines.md`): the period an invoice
//! covers, its gapless number, its amounts in integer cents, and its status.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{InvoiceId, LotId, OrganizationId};
use crate::money::{div_ceil_i128, pow10, Decimal, MoneyError, NanoCredits, CREDIT_DECIMALS};
use crate::payments::tax::{compute_tax, TaxBreakdown, TaxRate};
use crate::payments::BillingProfile;

const DAY_MS: i64 = 86_400_000;
/// The longest payment term an operator may give (a year).
pub const MAX_DUE_DAYS: i64 = 365;

/// Where an invoice stands. `void` is for the operator's corrections; nothing drafts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Open,
    Paid,
    Void,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "paid" => Some(Self::Paid),
            "void" => Some(Self::Void),
            _ => None,
        }
    }
}

/// The operator's terms an invoice is drafted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceTerms {
    /// The price of one credit on an invoice, in USD.
    pub usd_per_credit: Decimal,
    /// The buyer's tax rate, from the operator's table by billing country (`payments::tax`).
    pub tax_rate: TaxRate,
    /// Whether `usd_per_credit` includes that tax (the table's pricing mode, as for plans).
    pub prices_include_tax: bool,
    /// Days from drafting until the invoice is due.
    pub due_days: i64,
}

/// One month's invoice of one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: InvoiceId,
    pub org: OrganizationId,
    /// Gapless across the operator: `INV-2026-000001`.
    pub number: String,
    /// The first instant of the month (UTC) …
    pub period_start: Timestamp,
    /// … and the first instant of the next one (exclusive).
    pub period_end: Timestamp,
    /// The charges settled in the period.
    pub credits: NanoCredits,
    pub usd_per_credit: Decimal,
    pub subtotal_cents: i64,
    /// The rate applied, an exact decimal string (`"0.20"`; `"0"` for none).
    pub tax_rate: String,
    pub tax_cents: i64,
    /// Subtotal plus tax: what is due.
    pub amount_cents: i64,
    pub currency: String,
    pub status: InvoiceStatus,
    pub due_at: Timestamp,
    pub created_at: Timestamp,
    pub paid_at: Option<Timestamp>,
    /// How it was paid: `operator` (mark_paid), `sandbox` or `stripe`.
    pub paid_by: Option<String>,
    /// The lot its payment granted.
    pub lot_id: Option<LotId>,
    /// The billing profile as it was when the invoice was drafted.
    pub buyer: BillingProfile,
}

impl Invoice {
    /// The ledger transfer that credits the invoice's credits back when it is paid: one per
    /// invoice, so paying twice (operator and provider, or a retry) credits once.
    pub fn payment_transfer_id(&self) -> String {
        format!("invoice-paid:{}", self.id)
    }

    pub fn payment_lot_id(&self) -> String {
        format!("lot_invoice-paid:{}", self.id)
    }

    /// Open and past its due date at `now`.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.status == InvoiceStatus::Open && self.due_at <= now
    }
}

/// The period an invoice drafted at `now` covers: the previous calendar month (UTC), as
/// `[start, end)`.
pub fn previous_month(now: Timestamp) -> (Timestamp, Timestamp) {
    let end = now.month_start();
    (end.plus_millis(-1).month_start(), end)
}

/// `INV-<year drafted>-<seq, six digits>`.
pub fn invoice_number(at: Timestamp, seq: i64) -> String {
    let year = &at.to_rfc3339()[..4];
    format!("INV-{year}-{seq:06}")
}

/// The invoice's price, `credits × usd_per_credit` rounded up to the cent (the rule custom
/// amounts use), split into subtotal and tax by the one tax rule (`payments::tax`): tax added
/// on top, or taken out of the price when prices include tax.
pub fn amounts(
    credits: NanoCredits,
    usd_per_credit: Decimal,
    rate: TaxRate,
    prices_include_tax: bool,
) -> Result<TaxBreakdown, MoneyError> {
    let num = i128::from(credits.nanos())
        .checked_mul(usd_per_credit.units())
        .and_then(|n| n.checked_mul(100))
        .ok_or(MoneyError::Overflow)?;
    let price = div_ceil_i128(num, pow10(CREDIT_DECIMALS + usd_per_credit.scale())?)?;
    // Keeps the total (at most twice the price) inside i64.
    let price = i64::try_from(price)
        .ok()
        .filter(|p| p.checked_mul(2).is_some())
        .ok_or(MoneyError::Overflow)?;
    Ok(compute_tax(rate, price, prices_include_tax))
}

/// What the drafting transaction knows once it has summed the period's charges.
#[derive(Debug, Clone)]
pub struct Draft {
    pub id: InvoiceId,
    pub org: OrganizationId,
    pub period: (Timestamp, Timestamp),
    pub terms: InvoiceTerms,
    pub buyer: BillingProfile,
}

impl Draft {
    /// The open invoice of `credits` with number `seq`, drafted at `now`.
    pub fn invoice(
        &self,
        credits: NanoCredits,
        seq: i64,
        now: Timestamp,
    ) -> Result<Invoice, MoneyError> {
        let t = &self.terms;
        let a = amounts(credits, t.usd_per_credit, t.tax_rate, t.prices_include_tax)?;
        Ok(Invoice {
            id: self.id.clone(),
            org: self.org.clone(),
            number: invoice_number(now, seq),
            period_start: self.period.0,
            period_end: self.period.1,
            credits,
            usd_per_credit: self.terms.usd_per_credit,
            subtotal_cents: a.subtotal_cents,
            tax_rate: a.tax_rate,
            tax_cents: a.tax_cents,
            amount_cents: a.amount_cents,
            currency: crate::payments::CURRENCY.to_owned(),
            status: InvoiceStatus::Open,
            due_at: now.plus_millis(self.terms.due_days * DAY_MS),
            created_at: now,
            paid_at: None,
            paid_by: None,
            lot_id: None,
            buyer: self.buyer.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn the_previous_month_is_the_period() {
        let now = Timestamp::parse_rfc3339("2026-03-01T00:00:05Z").unwrap();
        let (start, end) = previous_month(now);
        assert_eq!(start.to_rfc3339(), "2026-02-01T00:00:00Z");
        assert_eq!(end.to_rfc3339(), "2026-03-01T00:00:00Z");
        let jan = Timestamp::parse_rfc3339("2027-01-15T10:00:00Z").unwrap();
        assert_eq!(previous_month(jan).0.to_rfc3339(), "2026-12-01T00:00:00Z");
        assert_eq!(invoice_number(now, 42), "INV-2026-000042");
    }

    #[test]
    fn amounts_round_once_each_and_add_up() {
        let credits = |s: &str| s.parse::<NanoCredits>().unwrap();
        let rate = |s: &str| TaxRate::parse(s).unwrap();
        // 10,000 credits at $0.005 = $50.00; 20% tax = $10.00.
        let a = amounts(credits("10000"), d("0.005"), rate("0.20"), false).unwrap();
        assert_eq!(
            (a.subtotal_cents, a.tax_cents, a.amount_cents),
            (5000, 1000, 6000)
        );
        assert_eq!(a.tax_rate, "0.20");
        // Prices including tax: $50.00 is the total.
        let a = amounts(credits("10000"), d("0.005"), rate("0.20"), true).unwrap();
        assert_eq!(
            (a.subtotal_cents, a.tax_cents, a.amount_cents),
            (4167, 833, 5000)
        );
        // 1 nano-credit still costs a cent (rounded up); tax on 1 cent at 20% rounds to 0.
        let a = amounts(credits("0.000000001"), d("0.005"), rate("0.20"), false).unwrap();
        assert_eq!((a.subtotal_cents, a.tax_cents), (1, 0));
        // 2.5 cents of tax rounds half up to 3.
        let a = amounts(credits("2500"), d("0.005"), rate("0.002"), false).unwrap();
        assert_eq!(a.tax_cents, 3);
        let a = amounts(NanoCredits::ZERO, d("0.005"), TaxRate::ZERO, false).unwrap();
        assert_eq!((a.amount_cents, a.tax_rate.as_str()), (0, "0"));
        let huge = NanoCredits::from_nanos(i64::MAX);
        assert!(amounts(huge, d("100000000"), TaxRate::ZERO, false).is_err());
    }
}
