//! Buying credits: plans priced in integer cents, orders and their state machine, what a payment
//! provider reports about an order, and the checks a report must pass before anything is
//! credited. Providers themselves (I/O) live in the gateway; this is the vocabulary they share.

pub mod cards;
pub mod credit_line;
pub mod invoice;
pub mod signature;
pub mod tax;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{LotId, OrderId, OrganizationId};
use crate::money::{Decimal, NanoCredits, MAX_DECIMAL_SCALE};
use crate::pricing::{CreditPlan, CustomAmount, Expiry, Ratio};

/// The one currency orders are priced in.
pub const CURRENCY: &str = "usd";
/// The largest single order, in cents ($1,000,000): above it a typo is more likely than a sale.
pub const MAX_ORDER_CENTS: i64 = 100_000_000;
/// Longest reference of a manual payment (a transaction hash, a bank reference).
pub const MAX_REFERENCE_LEN: usize = 200;
/// How long an open sandbox or Stripe checkout may be paid before it expires (Stripe's default).
pub const CHECKOUT_TTL_MS: i64 = 24 * 60 * 60 * 1000;

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

/// Who took the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// The embedded checkout page with Stripe's test cards (demo, tests).
    Sandbox,
    Stripe,
    /// A payment the operator recorded (crypto, bank transfer, chat order).
    Manual,
}

text_enum!(Provider { Sandbox => "sandbox", Stripe => "stripe", Manual => "manual" });

/// Where an order is in its life (`docs/payments.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Open,
    Paid,
    Credited,
    Failed,
    Expired,
    Refunded,
    PartiallyRefunded,
    Disputed,
}

text_enum!(OrderStatus {
    Open => "open",
    Paid => "paid",
    Credited => "credited",
    Failed => "failed",
    Expired => "expired",
    Refunded => "refunded",
    PartiallyRefunded => "partially_refunded",
    Disputed => "disputed",
});

impl OrderStatus {
    /// Whether the order may move from `self` to `next`. A failed or expired order may still be
    /// credited: if the provider later confirms it took the money (a late async payment), the
    /// customer gets the credits — "paid but not credited" must never be a final state.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Open, Paid | Credited | Failed | Expired)
                | (Paid | Failed | Expired, Credited)
                | (
                    Credited | PartiallyRefunded,
                    PartiallyRefunded | Refunded | Disputed
                )
                | (Disputed, Credited | Refunded | PartiallyRefunded)
        )
    }

    /// The order was credited (whatever happened after).
    pub fn was_credited(self) -> bool {
        use OrderStatus::*;
        matches!(self, Credited | Refunded | PartiallyRefunded | Disputed)
    }
}

/// Why a payment did not go through, in words for the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    CardDeclined,
    InsufficientFunds,
    AuthenticationRequired,
    InvalidCard,
    CheckoutExpired,
    PaymentFailed,
}

text_enum!(FailureCode {
    CardDeclined => "card_declined",
    InsufficientFunds => "insufficient_funds",
    AuthenticationRequired => "authentication_required",
    InvalidCard => "invalid_card",
    CheckoutExpired => "checkout_expired",
    PaymentFailed => "payment_failed",
});

impl FailureCode {
    /// What the customer reads on the order.
    pub fn message(self) -> &'static str {
        match self {
            Self::CardDeclined => {
                "Your card was declined. Nothing was charged and no credits were added; \
                 try another card or contact your bank."
            }
            Self::InsufficientFunds => {
                "Your card has insufficient funds. Nothing was charged and no credits were \
                 added; try another card."
            }
            Self::AuthenticationRequired => {
                "Your bank asked to confirm this payment and it was not confirmed. Nothing was \
                 charged; start the checkout again and confirm when asked."
            }
            Self::InvalidCard => {
                "That card number is not valid here. Nothing was charged; check the number."
            }
            Self::CheckoutExpired => {
                "The checkout expired before it was paid. Nothing was charged; start a new one."
            }
            Self::PaymentFailed => {
                "The payment did not go through. Nothing was charged and no credits were added."
            }
        }
    }
}

/// A failure as shown on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: FailureCode,
    pub message: String,
}

impl From<FailureCode> for Failure {
    fn from(code: FailureCode) -> Self {
        Self {
            code,
            message: code.message().to_owned(),
        }
    }
}

/// A pack the operator sells, priced in integer cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub credits: NanoCredits,
    pub amount_cents: i64,
    pub currency: String,
    pub expires_in_days: Option<u32>,
    pub archived: bool,
}

impl Plan {
    /// A stored plan from the operator's config table (the seed packs).
    pub fn from_config(p: &CreditPlan) -> Result<Self, PaymentError> {
        let (units, scale) = (p.price_usd.units(), p.price_usd.scale());
        let cents = match scale {
            0 => units.checked_mul(100),
            1 => units.checked_mul(10),
            2 => Some(units),
            _ => None,
        }
        .and_then(|c| i64::try_from(c).ok())
        .ok_or_else(|| PaymentError::Invalid(format!("plan {}: price not in cents", p.id)))?;
        let plan = Self {
            id: p.id.clone(),
            name: p.name.clone(),
            credits: p.credits,
            amount_cents: cents,
            currency: CURRENCY.to_owned(),
            expires_in_days: expiry_days(p.expiry),
            archived: false,
        };
        plan.validate()?;
        Ok(plan)
    }

    /// Checks an operator-entered plan: an id of letters, digits, `-` or `_`; positive credits;
    /// a price in (0, [`MAX_ORDER_CENTS`]]; an expiry of 1 to 36,500 days or none.
    pub fn validate(&self) -> Result<(), PaymentError> {
        let bad = |m: String| Err(PaymentError::Invalid(m));
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return bad(format!(
                "plan id `{}` must be 1-64 letters, digits, `-` or `_`",
                self.id
            ));
        }
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return bad("a plan needs a name of at most 200 characters".to_owned());
        }
        if !self.credits.is_positive() {
            return bad(format!("plan `{}`: credits must be positive", self.id));
        }
        check_cents(self.amount_cents)?;
        if self.currency != CURRENCY {
            return bad(format!("plan `{}`: the currency must be `usd`", self.id));
        }
        if self.expires_in_days.is_some_and(|d| d == 0 || d > 36_500) {
            return bad("expires_in_days must be 1 to 36500, or null".to_owned());
        }
        Ok(())
    }

    pub fn quote(&self) -> Quote {
        Quote {
            plan_id: Some(self.id.clone()),
            credits: self.credits,
            amount_cents: self.amount_cents,
            expires_in_days: self.expires_in_days,
        }
    }
}

fn expiry_days(e: Expiry) -> Option<u32> {
    match e {
        Expiry::Never => None,
        Expiry::Days(d) => Some(d),
    }
}

/// Refuses zero, negative and oversized amounts of money.
pub fn check_cents(cents: i64) -> Result<(), PaymentError> {
    if cents <= 0 || cents > MAX_ORDER_CENTS {
        return Err(PaymentError::Invalid(format!(
            "amount_cents must be between 1 and {MAX_ORDER_CENTS}, not {cents}"
        )));
    }
    Ok(())
}

/// What an order will cost and give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub plan_id: Option<String>,
    pub credits: NanoCredits,
    pub amount_cents: i64,
    pub expires_in_days: Option<u32>,
}

/// The price of a custom amount of credits (whole credits, within the operator's bounds),
/// rounded up to the cent.
pub fn quote_custom(custom: &CustomAmount, credits: NanoCredits) -> Result<Quote, PaymentError> {
    if !credits.is_positive() || credits.nanos() % crate::money::NANOS_PER_CREDIT != 0 {
        return Err(PaymentError::Invalid(
            "credits must be a positive whole number".to_owned(),
        ));
    }
    let usd = custom
        .price_usd(credits)
        .map_err(|e| PaymentError::Invalid(e.to_string().replace("credit plans: ", "")))?;
    let cents = i64::try_from(usd.units() * crate::money::pow10(2 - usd.scale().min(2))?)
        .map_err(|_| PaymentError::Invalid("the amount is too large".to_owned()))?;
    check_cents(cents)?;
    Ok(Quote {
        plan_id: None,
        credits,
        amount_cents: cents,
        expires_in_days: expiry_days(custom.expiry),
    })
}

/// USD per credit actually paid, exact when it has a short decimal, else rounded half up to
/// 18 places (the order keeps the exact fraction: its cents and credits).
pub fn price_per_credit(amount_cents: i64, credits: NanoCredits) -> Option<Decimal> {
    // cents / 100 / (nanos / 10⁹) = cents · 10⁷ / nanos
    let ratio = Ratio::new(
        i128::from(amount_cents) * 10_000_000,
        i128::from(credits.nanos()),
    )
    .ok()?;
    ratio
        .as_decimal()
        .or_else(|| ratio.round(MAX_DECIMAL_SCALE).ok())
}

/// An order: created before any payment, credited at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub org: OrganizationId,
    pub status: OrderStatus,
    pub plan_id: Option<String>,
    pub credits: NanoCredits,
    pub amount_cents: i64,
    pub currency: String,
    pub provider: Provider,
    /// The provider's object for this order (a Checkout Session id, a manual reference).
    pub provider_ref: Option<String>,
    /// How it was paid: a card brand and last four digits, or a manual method.
    pub method: Option<String>,
    pub expires_in_days: Option<u32>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub created_at: Timestamp,
    pub paid_at: Option<Timestamp>,
    pub lot_id: Option<LotId>,
    pub receipt_number: Option<String>,
    pub failure: Option<Failure>,
    /// Cents refunded so far (cumulative, as the provider reports them).
    pub refunded_cents: i64,
    /// The price before tax (`docs/tax.md`): `amount_cents` = subtotal + tax.
    pub subtotal_cents: i64,
    pub tax_cents: i64,
    /// The rate applied, an exact decimal string ("0.20"; "0" for no tax).
    pub tax_rate: String,
    /// The buyer's billing country and tax id as they were when the order was made.
    pub buyer_country: Option<String>,
    pub buyer_tax_id: Option<String>,
}

impl Order {
    /// The id of the ledger transfer that credits this order: one per order, so the ledger
    /// itself refuses a second credit.
    pub fn credit_transfer_id(&self) -> String {
        format!("order:{}", self.id)
    }

    /// The lot a credited order creates.
    pub fn lot_id(&self) -> String {
        format!("lot_{}", self.id)
    }

    /// Sets the order's total and its split from `tax`, and the buyer's details from `profile`.
    pub fn apply_tax(&mut self, tax: &tax::TaxBreakdown, profile: &BillingProfile) {
        self.amount_cents = tax.amount_cents;
        self.subtotal_cents = tax.subtotal_cents;
        self.tax_cents = tax.tax_cents;
        self.tax_rate = tax.tax_rate.clone();
        self.buyer_country = profile.country.clone();
        self.buyer_tax_id = profile.tax_id.clone();
    }

    /// The receipt's words for the tax line: "Tax (FR 20%)" or "No tax".
    pub fn tax_label(&self) -> String {
        tax::tax_label(self.buyer_country.as_deref(), &self.tax_rate)
    }

    /// When a checkout left open stops being payable.
    pub fn checkout_expires_at(&self) -> Timestamp {
        self.created_at.plus_millis(CHECKOUT_TTL_MS)
    }
}

/// What a provider says about an order's payment, read back from the provider itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderPayment {
    pub provider: Provider,
    pub order: OrderId,
    pub org: OrganizationId,
    pub amount_cents: i64,
    pub currency: String,
    pub state: PaymentState,
    /// How it was paid (card brand and last four, a manual method).
    pub method: Option<String>,
    /// The provider's object (Checkout Session, PaymentIntent).
    pub reference: Option<String>,
}

/// Where a payment stands at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum PaymentState {
    /// The money was taken.
    Paid,
    /// Nothing decided yet (open checkout, an async payment in flight).
    Pending,
    Failed {
        code: FailureCode,
    },
    Expired,
}

/// Checks a provider's report against the order it names: organization, amount, currency and
/// provider must all match, or nothing is credited.
pub fn check_payment(order: &Order, p: &ProviderPayment) -> Result<(), PaymentError> {
    let mismatch = |what: &str, got: String, want: String| {
        Err(PaymentError::Mismatch(format!(
            "order {}: {what} is {got}, the order says {want}",
            order.id
        )))
    };
    if p.order != order.id {
        return mismatch("order", p.order.to_string(), order.id.to_string());
    }
    if p.org != order.org {
        return mismatch("organization", p.org.to_string(), order.org.to_string());
    }
    if p.provider != order.provider {
        return mismatch(
            "provider",
            p.provider.as_str().to_owned(),
            order.provider.as_str().to_owned(),
        );
    }
    if p.amount_cents != order.amount_cents {
        return mismatch(
            "amount",
            p.amount_cents.to_string(),
            order.amount_cents.to_string(),
        );
    }
    if !p.currency.eq_ignore_ascii_case(&order.currency) {
        return mismatch("currency", p.currency.clone(), order.currency.clone());
    }
    Ok(())
}

/// A receipt number, gapless per operator: `CG-2026-000042`.
pub fn receipt_number(at: Timestamp, seq: i64) -> String {
    let year = &at.to_rfc3339()[..4];
    format!("CG-{year}-{seq:06}")
}

/// A buyer's billing details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingProfile {
    pub name: Option<String>,
    pub email: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    pub address: Address,
    pub tax_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub state: Option<String>,
}

/// Longest free-text field of a billing profile.
pub const MAX_PROFILE_FIELD: usize = 200;

impl BillingProfile {
    /// Normalises and checks a profile: fields trimmed (empty means none), each at most
    /// [`MAX_PROFILE_FIELD`] characters, the country an assigned ISO 3166-1 alpha-2 code (stored
    /// upper case).
    pub fn normalized(mut self) -> Result<Self, PaymentError> {
        let fields = [
            &mut self.name,
            &mut self.email,
            &mut self.country,
            &mut self.tax_id,
            &mut self.address.line1,
            &mut self.address.line2,
            &mut self.address.city,
            &mut self.address.postal_code,
            &mut self.address.state,
        ];
        for f in fields {
            *f = f
                .take()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            if f.as_ref()
                .is_some_and(|s| s.chars().count() > MAX_PROFILE_FIELD)
            {
                return Err(PaymentError::Invalid(format!(
                    "billing profile fields are at most {MAX_PROFILE_FIELD} characters"
                )));
            }
        }
        if let Some(c) = &mut self.country {
            c.make_ascii_uppercase();
            if !tax::is_country_code(c) {
                return Err(PaymentError::Invalid(format!(
                    "country `{c}` is not an ISO 3166-1 alpha-2 code such as `FR`"
                )));
            }
        }
        Ok(self)
    }

    /// Whether a purchase may go ahead: the profile names a country the operator serves
    /// (`served` empty means every country). The error says why not, for the customer.
    pub fn check_can_buy(&self, served: &[String]) -> Result<(), PaymentError> {
        let Some(country) = &self.country else {
            return Err(PaymentError::Refused(
                "Add your country to the billing profile before buying credits \
                 (PUT /v1/billing/profile)."
                    .to_owned(),
            ));
        };
        if !served.is_empty() && !served.iter().any(|s| s.eq_ignore_ascii_case(country)) {
            return Err(PaymentError::Refused(format!(
                "Purchases from {country} are not available: this service does not sell to \
                 that country."
            )));
        }
        Ok(())
    }
}

/// What can go wrong buying credits, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The request itself is bad (an amount, a plan, a field).
    #[error("{0}")]
    Invalid(String),
    /// The purchase is not allowed (no country, a country not served, an archived plan).
    #[error("{0}")]
    Refused(String),
    /// A provider's report does not match the order.
    #[error("{0}")]
    Mismatch(String),
    #[error(transparent)]
    Money(#[from] crate::money::MoneyError),
}

#[cfg(test)]
mod tests;
