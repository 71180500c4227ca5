//! Saved cards (`payment_methods`, migration 0010): created `pending` when a setup starts,
//! made `active` once when the provider reports the setup succeeded, `removed` by the customer.
//! Only brand, last four digits and expiry are kept. And each organization's Stripe Customer.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::ledger::{LedgerError, LedgerResult};
use creditgate_core::payments::Provider;
use serde::Serialize;

use crate::statement::{Columns, Param};
use crate::Database;

/// Where a saved card stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodStatus {
    /// The customer has not finished the setup yet.
    Pending,
    /// Saved: it may be charged off-session.
    Active,
    /// The setup failed (the card cannot be saved); `failure` says why.
    Failed,
    /// Removed by the customer.
    Removed,
}

impl MethodStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "failed" => Self::Failed,
            "removed" => Self::Removed,
            _ => return None,
        })
    }
}

/// A saved card, as creditgate keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub id: String,
    pub org: OrganizationId,
    pub provider: Provider,
    pub status: MethodStatus,
    /// The provider's setup (a Stripe Checkout Session in setup mode; the sandbox's own id).
    pub setup_ref: Option<String>,
    /// The provider's payment method (Stripe `pm_…`; the sandbox's card token).
    pub provider_ref: Option<String>,
    /// The Stripe Customer the card is attached to.
    pub customer_ref: Option<String>,
    pub card: Option<SavedCard>,
    pub failure: Option<String>,
    pub created_at: Timestamp,
}

/// What the provider reports about a card once saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCard {
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
}

macro_rules! method_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, org, provider, status, setup_ref, provider_ref, customer_ref, brand, \
             last4, exp_month, exp_year, failure, created_at FROM payment_methods ",
            $rest
        )
    };
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("stored payment method has an invalid {what}"))
}

fn row(r: &dyn Columns) -> LedgerResult<PaymentMethod> {
    let card = match (r.opt_text(7)?, r.opt_text(8)?) {
        (Some(brand), Some(last4)) => Some(SavedCard {
            brand,
            last4,
            exp_month: r.opt_int(9)?.unwrap_or(0),
            exp_year: r.opt_int(10)?.unwrap_or(0),
        }),
        _ => None,
    };
    Ok(PaymentMethod {
        id: r.text(0)?,
        org: OrganizationId::parse(&r.text(1)?).map_err(|_| corrupt("organization"))?,
        provider: Provider::parse(&r.text(2)?).ok_or_else(|| corrupt("provider"))?,
        status: MethodStatus::parse(&r.text(3)?).ok_or_else(|| corrupt("status"))?,
        setup_ref: r.opt_text(4)?,
        provider_ref: r.opt_text(5)?,
        customer_ref: r.opt_text(6)?,
        card,
        failure: r.opt_text(11)?,
        created_at: Timestamp::from_millis(r.int(12)?),
    })
}

fn text(s: &str) -> Param {
    Param::Text(s.to_owned())
}

impl Database {
    /// Stores a card whose setup is starting (status `pending`).
    pub async fn create_payment_method(&self, m: &PaymentMethod) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO payment_methods (id, org, provider, status, setup_ref, customer_ref, \
             created_at, updated_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6)",
            vec![
                text(&m.id),
                text(m.org.as_str()),
                text(m.provider.as_str()),
                Param::OptText(m.setup_ref.clone()),
                Param::OptText(m.customer_ref.clone()),
                Param::Int(m.created_at.millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Records the provider's setup object of a pending card.
    pub async fn set_payment_method_setup(&self, id: &str, setup_ref: &str) -> LedgerResult<()> {
        self.execute(
            "UPDATE payment_methods SET setup_ref = $2 WHERE id = $1 AND status = 'pending'",
            vec![text(id), text(setup_ref)],
        )
        .await?;
        Ok(())
    }

    pub async fn payment_method(&self, id: &str) -> LedgerResult<Option<PaymentMethod>> {
        self.query_opt(method_select!("WHERE id = $1"), vec![text(id)], row)
            .await
    }

    /// The organization's saved cards (not removed), newest first.
    pub async fn payment_methods(&self, org: &OrganizationId) -> LedgerResult<Vec<PaymentMethod>> {
        self.query(
            method_select!(
                "WHERE org = $1 AND status <> 'removed' ORDER BY created_at DESC, id DESC"
            ),
            vec![text(org.as_str())],
            row,
        )
        .await
    }

    /// Makes a pending card active with what the provider reported; `false` if it was not
    /// pending (a setup reported twice saves the card once).
    pub async fn activate_payment_method(
        &self,
        id: &str,
        provider_ref: &str,
        customer_ref: Option<&str>,
        card: &SavedCard,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE payment_methods SET status = 'active', provider_ref = $2, \
                 customer_ref = COALESCE($3, customer_ref), brand = $4, last4 = $5, \
                 exp_month = $6, exp_year = $7, updated_at = $8 \
                 WHERE id = $1 AND status = 'pending'",
                vec![
                    text(id),
                    text(provider_ref),
                    Param::OptText(customer_ref.map(str::to_owned)),
                    text(&card.brand),
                    text(&card.last4),
                    Param::Int(card.exp_month),
                    Param::Int(card.exp_year),
                    Param::Int(self.now().millis()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Marks a pending card's setup failed, with the reason for the customer.
    pub async fn fail_payment_method(&self, id: &str, why: &str) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE payment_methods SET status = 'failed', failure = $2, updated_at = $3 \
                 WHERE id = $1 AND status = 'pending'",
                vec![text(id), text(why), Param::Int(self.now().millis())],
            )
            .await?;
        Ok(n == 1)
    }

    /// Removes one of the organization's cards; `false` if it has no such card.
    pub async fn remove_payment_method(
        &self,
        org: &OrganizationId,
        id: &str,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE payment_methods SET status = 'removed', updated_at = $3 \
                 WHERE id = $1 AND org = $2 AND status <> 'removed'",
                vec![
                    text(id),
                    text(org.as_str()),
                    Param::Int(self.now().millis()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// The organization's Stripe Customer, if one was created.
    pub async fn stripe_customer(&self, org: &OrganizationId) -> LedgerResult<Option<String>> {
        self.query_opt(
            "SELECT customer FROM stripe_customers WHERE org = $1",
            vec![text(org.as_str())],
            |r| r.text(0),
        )
        .await
    }

    /// Records the organization's Stripe Customer (the first one recorded stays); returns it.
    pub async fn set_stripe_customer(
        &self,
        org: &OrganizationId,
        customer: &str,
    ) -> LedgerResult<String> {
        self.execute(
            "INSERT INTO stripe_customers (org, customer, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (org) DO NOTHING",
            vec![
                text(org.as_str()),
                text(customer),
                Param::Int(self.now().millis()),
            ],
        )
        .await?;
        self.stripe_customer(org)
            .await?
            .ok_or_else(|| LedgerError::Corrupt("the Stripe customer vanished".to_owned()))
    }
}
