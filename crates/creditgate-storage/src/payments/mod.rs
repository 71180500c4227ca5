//! Buying credits: plans, orders, billing profiles, and the one transaction that records a
//! provider's event, checks it against its order and credits the order's lot ([`credit`]).

/// `SELECT <order columns> FROM orders <rest>` as one literal.
macro_rules! order_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, org, status, plan_id, credits, amount_cents, currency, provider, \
             provider_ref, method, expires_in_days, success_url, cancel_url, created_at, \
             paid_at, lot_id, receipt_number, failure_code, failure_message, refunded_cents, \
             subtotal_cents, tax_cents, tax_rate, buyer_country, buyer_tax_id FROM orders ",
            $rest
        )
    };
}

mod credit;
mod methods;
mod reload;

use creditgate_core::accounts::Actor;
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{LotId, OrderId, OrganizationId};
use creditgate_core::ledger::{LedgerError, LedgerResult, LedgerStore};
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::{
    BillingProfile, Failure, FailureCode, Order, OrderStatus, Plan, Provider, ProviderPayment,
};
use serde::{Deserialize, Serialize};

use crate::journal::run_ready;
use crate::postgres::ledger::{in_transaction, retry_pause, PgJournal};
use crate::postgres::{is_retryable, pg_error, MAX_ATTEMPTS};
use crate::sqlite::ledger::{write_op, SqliteJournal};
use crate::statement::{Columns, Param};
use crate::Database;
use std::sync::atomic::Ordering;
use tokio_postgres::IsolationLevel;

pub(crate) use credit::{order_params, INSERT_ORDER};
pub use credit::{Clawback, ClawbackKind, ProviderClawback};
pub use methods::{MethodStatus, PaymentMethod, SavedCard};
pub use reload::{ReloadOutcome, ReloadSettings, ReloadStatus};

/// Most orders one list returns.
pub const MAX_ORDER_PAGE: i64 = 1000;

/// A provider's notification, recorded once by its id in the transaction it causes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEvent {
    pub provider: Provider,
    pub id: String,
    /// The provider's event type, e.g. `checkout.session.completed`.
    pub kind: String,
}

/// What applying a provider's report did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// The order was credited now (its lot and receipt are on it).
    Credited(Box<Order>),
    /// It had been credited before; nothing changed.
    AlreadyCredited(Box<Order>),
    /// The payment failed or the checkout expired; the order says why.
    NotPaid(Box<Order>),
    /// Nothing decided yet at the provider.
    Pending(Box<Order>),
    /// This event id was processed before; nothing changed.
    Duplicate,
    /// The report names no order, or does not match its order; nothing changed. Logged.
    Ignored(String),
}

impl PaymentOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Credited(_) => "credited",
            Self::AlreadyCredited(_) => "already_credited",
            Self::NotPaid(_) => "not_paid",
            Self::Pending(_) => "pending",
            Self::Duplicate => "duplicate",
            Self::Ignored(_) => "ignored",
        }
    }
}

/// Which orders to list.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub org: Option<OrganizationId>,
    pub status: Option<OrderStatus>,
    pub provider: Option<Provider>,
    pub limit: i64,
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("stored order has an invalid {what}"))
}

pub(crate) fn order_row(r: &dyn Columns) -> LedgerResult<Order> {
    let failure = match (r.opt_text(17)?, r.opt_text(18)?) {
        (Some(code), Some(message)) => Some(Failure {
            code: FailureCode::parse(&code).ok_or_else(|| corrupt("failure"))?,
            message,
        }),
        _ => None,
    };
    Ok(Order {
        id: OrderId::parse(&r.text(0)?).map_err(|_| corrupt("id"))?,
        org: OrganizationId::parse(&r.text(1)?).map_err(|_| corrupt("organization"))?,
        status: OrderStatus::parse(&r.text(2)?).ok_or_else(|| corrupt("status"))?,
        plan_id: r.opt_text(3)?,
        credits: NanoCredits::from_nanos(r.int(4)?),
        amount_cents: r.int(5)?,
        currency: r.text(6)?,
        provider: Provider::parse(&r.text(7)?).ok_or_else(|| corrupt("provider"))?,
        provider_ref: r.opt_text(8)?,
        method: r.opt_text(9)?,
        expires_in_days: r
            .opt_int(10)?
            .map(|d| u32::try_from(d).map_err(|_| corrupt("expiry")))
            .transpose()?,
        success_url: r.opt_text(11)?,
        cancel_url: r.opt_text(12)?,
        created_at: Timestamp::from_millis(r.int(13)?),
        paid_at: r.opt_int(14)?.map(Timestamp::from_millis),
        lot_id: r
            .opt_text(15)?
            .map(|l| LotId::parse(&l).map_err(|_| corrupt("lot")))
            .transpose()?,
        receipt_number: r.opt_text(16)?,
        failure,
        refunded_cents: r.int(19)?,
        subtotal_cents: r.int(20)?,
        tax_cents: r.int(21)?,
        tax_rate: r.text(22)?,
        buyer_country: r.opt_text(23)?,
        buyer_tax_id: r.opt_text(24)?,
    })
}

fn plan_row(r: &dyn Columns) -> LedgerResult<Plan> {
    Ok(Plan {
        id: r.text(0)?,
        name: r.text(1)?,
        credits: NanoCredits::from_nanos(r.int(2)?),
        amount_cents: r.int(3)?,
        currency: r.text(4)?,
        expires_in_days: r
            .opt_int(5)?
            .map(|d| u32::try_from(d).map_err(|_| corrupt("plan expiry")))
            .transpose()?,
        archived: r.int(6)? != 0,
    })
}

impl Database {
    /// Plans in the operator's order; archived ones only when asked.
    pub async fn plans(&self, include_archived: bool) -> LedgerResult<Vec<Plan>> {
        self.query(
            "SELECT id, name, credits, amount_cents, currency, expires_in_days, archived \
             FROM plans WHERE archived <= $1 ORDER BY position, id",
            vec![Param::Int(i64::from(include_archived))],
            plan_row,
        )
        .await
    }

    pub async fn plan(&self, id: &str) -> LedgerResult<Option<Plan>> {
        self.query_opt(
            "SELECT id, name, credits, amount_cents, currency, expires_in_days, archived \
             FROM plans WHERE id = $1",
            vec![Param::Text(id.to_owned())],
            plan_row,
        )
        .await
    }

    /// Creates a plan (listed after the others); `false` if the id is taken.
    pub async fn create_plan(&self, plan: &Plan) -> LedgerResult<bool> {
        let n = self
            .execute(
                "INSERT INTO plans (id, name, credits, amount_cents, currency, expires_in_days, \
                 archived, position, created_at) SELECT $1, $2, $3, $4, $5, $6, $7, \
                 COALESCE(MAX(position), 0) + 1, $8 FROM plans \
                 WHERE 1 = 1 ON CONFLICT (id) DO NOTHING",
                plan_params(plan, Some(self.now())),
            )
            .await?;
        Ok(n == 1)
    }

    /// Rewrites a plan's name, price, credits, expiry or archived flag. Orders keep what they
    /// were created with, so an edit never changes an open checkout.
    pub async fn update_plan(&self, plan: &Plan) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE plans SET name = $2, credits = $3, amount_cents = $4, currency = $5, \
                 expires_in_days = $6, archived = $7 WHERE id = $1",
                plan_params(plan, None),
            )
            .await?;
        Ok(n == 1)
    }

    /// Stores a new order (status `open`, or as given).
    pub async fn create_order(&self, o: &Order) -> LedgerResult<()> {
        self.organization(&o.org).await?;
        self.execute(credit::INSERT_ORDER, credit::order_params(o))
            .await?;
        Ok(())
    }

    /// Records the provider's object for an open order (a Checkout Session id).
    pub async fn set_order_provider_ref(&self, id: &OrderId, reference: &str) -> LedgerResult<()> {
        self.execute(
            "UPDATE orders SET provider_ref = $2 WHERE id = $1 AND provider_ref IS NULL",
            vec![
                Param::Text(id.to_string()),
                Param::Text(reference.to_owned()),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn order(&self, id: &OrderId) -> LedgerResult<Option<Order>> {
        self.query_opt(
            order_select!("WHERE id = $1"),
            vec![Param::Text(id.to_string())],
            order_row,
        )
        .await
    }

    /// The order a provider's object belongs to.
    pub async fn order_by_provider_ref(
        &self,
        provider: Provider,
        reference: &str,
    ) -> LedgerResult<Option<Order>> {
        self.query_opt(
            order_select!("WHERE provider = $1 AND provider_ref = $2"),
            vec![
                Param::Text(provider.as_str().to_owned()),
                Param::Text(reference.to_owned()),
            ],
            order_row,
        )
        .await
    }

    /// Orders, newest first.
    pub async fn orders(&self, f: &OrderFilter) -> LedgerResult<Vec<Order>> {
        self.query(
            order_select!(
                "WHERE ($1 = '' OR org = $1) AND ($2 = '' OR status = $2) \
                 AND ($3 = '' OR provider = $3) ORDER BY created_at DESC, id DESC LIMIT $4"
            ),
            vec![
                Param::Text(f.org.as_ref().map(|o| o.to_string()).unwrap_or_default()),
                Param::Text(f.status.map(|s| s.as_str().to_owned()).unwrap_or_default()),
                Param::Text(
                    f.provider
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                ),
                Param::Int(f.limit.clamp(1, MAX_ORDER_PAGE)),
            ],
            order_row,
        )
        .await
    }

    /// The organization's billing profile (empty if never set).
    pub async fn billing_profile(&self, org: &OrganizationId) -> LedgerResult<BillingProfile> {
        let stored = self
            .query_opt(
                "SELECT profile FROM billing_profiles WHERE org = $1",
                vec![Param::Text(org.to_string())],
                |r| r.text(0),
            )
            .await?;
        match stored {
            None => Ok(BillingProfile::default()),
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| LedgerError::Corrupt(format!("stored billing profile: {e}"))),
        }
    }

    pub async fn put_billing_profile(
        &self,
        org: &OrganizationId,
        profile: &BillingProfile,
    ) -> LedgerResult<()> {
        self.organization(org).await?;
        let json = serde_json::to_string(profile)
            .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
        self.execute(
            "INSERT INTO billing_profiles (org, profile, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (org) DO UPDATE SET profile = $2, updated_at = $3",
            vec![
                Param::Text(org.to_string()),
                Param::Text(json),
                Param::Int(self.now().millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Refunds and disputes recorded against an order, oldest first.
    pub async fn order_clawbacks(&self, id: &OrderId) -> LedgerResult<Vec<Clawback>> {
        self.query(
            "SELECT transfer_id, kind, amount_cents, credits, debt, at FROM order_clawbacks \
             WHERE order_id = $1 ORDER BY at, transfer_id",
            vec![Param::Text(id.to_string())],
            credit::clawback_row,
        )
        .await
    }

    /// Records `event` (deduplicated by its id) and applies the provider's report to its order,
    /// crediting it at most once, all in one transaction.
    pub async fn apply_payment(
        &self,
        event: Option<ProviderEvent>,
        payment: ProviderPayment,
    ) -> LedgerResult<PaymentOutcome> {
        let event = event.as_ref();
        let p = &payment;
        match self {
            Database::Sqlite(s) => {
                let (event, payment) = (event.cloned(), payment.clone());
                write_op!(s, |j, now| credit::apply_payment(
                    j,
                    now,
                    event.as_ref(),
                    &payment
                ))
            }
            Database::Postgres(s) => {
                in_transaction!(s, |j, now| credit::apply_payment(j, now, event, p))
            }
        }
    }

    /// Records and credits a payment taken outside any provider (`order.provider_ref` is its
    /// idempotency key). Returns the order and whether it was recorded now.
    pub async fn record_manual_payment(
        &self,
        order: Order,
        actor: &Actor,
    ) -> LedgerResult<(Order, bool)> {
        match self {
            Database::Sqlite(s) => {
                let actor = actor.clone();
                write_op!(s, |j, now| credit::record_manual(j, now, &order, &actor))
            }
            Database::Postgres(s) => {
                in_transaction!(s, |j, now| credit::record_manual(j, now, &order, actor))
            }
        }
    }

    /// Claws back a credited order's unspent remainder, once. Returns the order after it, what
    /// the ledger took back, and the cents to refund through the provider.
    pub async fn refund_order(
        &self,
        id: &OrderId,
        actor: &Actor,
    ) -> LedgerResult<(Order, creditgate_core::ledger::Refunded, i64)> {
        match self {
            Database::Sqlite(s) => {
                let (id, actor) = (id.clone(), actor.clone());
                write_op!(s, |j, now| credit::refund_order(j, now, &id, &actor))
            }
            Database::Postgres(s) => {
                in_transaction!(s, |j, now| credit::refund_order(j, now, id, actor))
            }
        }
    }

    /// Claws back `credits` of a credited order's lot (the operator's partial refund): at most
    /// what remains and is not held. Returns the order, what the ledger took back and the cents
    /// to refund through the provider.
    pub async fn refund_order_credits(
        &self,
        id: &OrderId,
        credits: NanoCredits,
        actor: &Actor,
    ) -> LedgerResult<(Order, creditgate_core::ledger::Refunded, i64)> {
        match self {
            Database::Sqlite(s) => {
                let (id, actor) = (id.clone(), actor.clone());
                write_op!(s, |j, now| credit::refund_credits(
                    j, now, &id, credits, &actor
                ))
            }
            Database::Postgres(s) => {
                in_transaction!(s, |j, now| credit::refund_credits(
                    j, now, id, credits, actor
                ))
            }
        }
    }

    /// Applies a refund or dispute raised at the provider to a credited order, once per event
    /// id (`event`) and once per ledger transfer.
    pub async fn apply_clawback(
        &self,
        event: Option<ProviderEvent>,
        id: &OrderId,
        report: ProviderClawback,
    ) -> LedgerResult<Option<(Order, Option<Clawback>)>> {
        let (event, id, report) = (event.as_ref(), id.clone(), report.clone());
        match self {
            Database::Sqlite(s) => {
                let event = event.cloned();
                write_op!(s, |j, now| credit::clawback_once(
                    j,
                    now,
                    event.as_ref(),
                    &id,
                    &report
                ))
            }
            Database::Postgres(s) => in_transaction!(s, |j, now| credit::clawback_once(
                j, now, event, &id, &report
            )),
        }
    }

    /// How a provider event was handled, if it was seen.
    pub async fn provider_event_outcome(
        &self,
        provider: Provider,
        id: &str,
    ) -> LedgerResult<Option<String>> {
        self.query_opt(
            "SELECT outcome FROM provider_events WHERE provider = $1 AND event_id = $2",
            vec![
                Param::Text(provider.as_str().to_owned()),
                Param::Text(id.to_owned()),
            ],
            |r| r.text(0),
        )
        .await
    }
}

fn plan_params(plan: &Plan, created_at: Option<Timestamp>) -> Vec<Param> {
    let mut params = vec![
        Param::Text(plan.id.clone()),
        Param::Text(plan.name.clone()),
        Param::Int(plan.credits.nanos()),
        Param::Int(plan.amount_cents),
        Param::Text(plan.currency.clone()),
        Param::OptInt(plan.expires_in_days.map(i64::from)),
        Param::Int(i64::from(plan.archived)),
    ];
    params.extend(created_at.map(|t| Param::Int(t.millis())));
    params
}
