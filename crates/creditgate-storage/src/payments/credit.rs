//! The crediting transaction: the provider's event id is recorded, the order locked (through
//! its organization's ledger row), the report checked against the order, and the lot granted
//! with the order's receipt number, all in one transaction. A replayed or concurrent event finds
//! its id taken; a second report for a credited order finds it credited; the ledger's transfer
//! id `order:<id>` refuses a second lot in any case.

use creditgate_core::accounts::Actor;
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{LotId, OrderId, TransferId};
use creditgate_core::ledger::{
    ClawbackRequest, GrantRequest, LedgerError, LedgerResult, LotCategory, LotSource,
    RefundRequest, Refunded,
};
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::{
    check_payment, price_per_credit, receipt_number, Failure, FailureCode, Order, OrderStatus,
    PaymentState, ProviderPayment,
};
use serde::Serialize;

use super::{order_row, PaymentOutcome, ProviderEvent};
use crate::journal::{ops, Journal};
use crate::statement::{Columns, Param, TxStatements};

const MS_PER_DAY: i64 = 86_400_000;

pub(crate) const INSERT_ORDER: &str = "INSERT INTO orders (id, org, status, plan_id, credits, \
    amount_cents, currency, provider, provider_ref, method, expires_in_days, success_url, \
    cancel_url, created_at, subtotal_cents, tax_cents, tax_rate, buyer_country, buyer_tax_id) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

pub(crate) fn order_params(o: &Order) -> Vec<Param> {
    vec![
        Param::Text(o.id.to_string()),
        Param::Text(o.org.to_string()),
        Param::Text(o.status.as_str().to_owned()),
        Param::OptText(o.plan_id.clone()),
        Param::Int(o.credits.nanos()),
        Param::Int(o.amount_cents),
        Param::Text(o.currency.clone()),
        Param::Text(o.provider.as_str().to_owned()),
        Param::OptText(o.provider_ref.clone()),
        Param::OptText(o.method.clone()),
        Param::OptInt(o.expires_in_days.map(i64::from)),
        Param::OptText(o.success_url.clone()),
        Param::OptText(o.cancel_url.clone()),
        Param::Int(o.created_at.millis()),
        Param::Int(o.subtotal_cents),
        Param::Int(o.tax_cents),
        Param::Text(o.tax_rate.clone()),
        Param::OptText(o.buyer_country.clone()),
        Param::OptText(o.buyer_tax_id.clone()),
    ]
}

/// Records `event` (if any) and applies the provider's report `p` to its order.
pub(crate) async fn apply_payment<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    event: Option<&ProviderEvent>,
    p: &ProviderPayment,
) -> LedgerResult<PaymentOutcome> {
    if let Some(e) = event {
        let fresh = j
            .exec(
                "INSERT INTO provider_events (provider, event_id, kind, order_id, outcome, \
                 received_at) VALUES ($1, $2, $3, $4, 'received', $5) ON CONFLICT DO NOTHING",
                &[
                    Param::Text(e.provider.as_str().to_owned()),
                    Param::Text(e.id.clone()),
                    Param::Text(e.kind.clone()),
                    Param::Text(p.order.to_string()),
                    Param::Int(now.millis()),
                ],
            )
            .await?;
        if fresh == 0 {
            return Ok(PaymentOutcome::Duplicate);
        }
    }
    let outcome = decide(j, now, p).await?;
    if let Some(e) = event {
        record_outcome(j, e, &outcome).await?;
    }
    Ok(outcome)
}

async fn record_outcome<J: TxStatements>(
    j: &mut J,
    e: &ProviderEvent,
    outcome: &PaymentOutcome,
) -> LedgerResult<()> {
    let text = match outcome {
        PaymentOutcome::Ignored(why) => format!("ignored: {why}"),
        other => other.label().to_owned(),
    };
    j.exec(
        "UPDATE provider_events SET outcome = $3 WHERE provider = $1 AND event_id = $2",
        &[
            Param::Text(e.provider.as_str().to_owned()),
            Param::Text(e.id.clone()),
            Param::Text(text),
        ],
    )
    .await?;
    Ok(())
}

async fn decide<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    p: &ProviderPayment,
) -> LedgerResult<PaymentOutcome> {
    let Some(order) = locked_order(j, &p.order).await? else {
        return Ok(PaymentOutcome::Ignored(format!(
            "no order {} exists",
            p.order
        )));
    };
    if let Err(e) = check_payment(&order, p) {
        return Ok(PaymentOutcome::Ignored(e.to_string()));
    }
    let order = Box::new(order);
    Ok(match &p.state {
        PaymentState::Paid if order.status.was_credited() => PaymentOutcome::AlreadyCredited(order),
        PaymentState::Paid => {
            PaymentOutcome::Credited(Box::new(credit(j, now, *order, p, &Actor::system()).await?))
        }
        PaymentState::Pending => PaymentOutcome::Pending(order),
        PaymentState::Failed { code } => {
            not_paid(j, now, *order, OrderStatus::Failed, *code).await?
        }
        PaymentState::Expired => {
            not_paid(
                j,
                now,
                *order,
                OrderStatus::Expired,
                FailureCode::CheckoutExpired,
            )
            .await?
        }
    })
}

/// The order, read after its organization's ledger row is locked, so that no other
/// transaction changes it until this one ends (Postgres; SQLite has a single writer).
async fn locked_order<J: Journal + TxStatements>(
    j: &mut J,
    id: &OrderId,
) -> LedgerResult<Option<Order>> {
    let Some(first) = read_order(j, id).await? else {
        return Ok(None);
    };
    j.lock_org(&first.org).await?;
    read_order(j, id).await
}

async fn read_order<J: TxStatements>(j: &mut J, id: &OrderId) -> LedgerResult<Option<Order>> {
    let mut rows = j
        .rows(
            order_select!("WHERE id = $1"),
            &[Param::Text(id.to_string())],
            order_row,
        )
        .await?;
    Ok(rows.pop())
}

/// Marks an open order failed or expired with the reason; any other order is left alone (a
/// late failure never undoes a credit).
async fn not_paid<J: TxStatements>(
    j: &mut J,
    now: Timestamp,
    mut order: Order,
    status: OrderStatus,
    code: FailureCode,
) -> LedgerResult<PaymentOutcome> {
    if order.status == OrderStatus::Open {
        let failure = Failure::from(code);
        j.exec(
            "UPDATE orders SET status = $2, failure_code = $3, failure_message = $4 \
             WHERE id = $1",
            &[
                Param::Text(order.id.to_string()),
                Param::Text(status.as_str().to_owned()),
                Param::Text(code.as_str().to_owned()),
                Param::Text(failure.message.clone()),
            ],
        )
        .await?;
        order.status = status;
        let action = match status {
            OrderStatus::Expired => "payment.expired",
            _ => "payment.failed",
        };
        let mut details = order_details(&order);
        details["failure"] = serde_json::json!({"code": code.as_str(), "message": failure.message});
        audit(j, now, &Actor::system(), &order, action, details).await?;
        order.failure = Some(failure);
    }
    Ok(PaymentOutcome::NotPaid(Box::new(order)))
}

/// Grants the order's lot and gives it the next receipt number.
async fn credit<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    mut order: Order,
    p: &ProviderPayment,
    actor: &Actor,
) -> LedgerResult<Order> {
    let id =
        |s: String| TransferId::parse(&s).map_err(|e| LedgerError::InvalidRequest(e.to_string()));
    let lot_id =
        LotId::parse(&order.lot_id()).map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
    let memo = serde_json::json!({"order": order.id, "provider": order.provider.as_str()});
    let req = GrantRequest {
        transfer_id: id(order.credit_transfer_id())?,
        org: order.org.clone(),
        lot_id,
        amount: order.credits,
        category: LotCategory::Paid,
        source: LotSource::Purchase,
        price_per_credit: price_per_credit(order.amount_cents, order.credits),
        expires_at: order
            .expires_in_days
            .map(|d| now.plus_millis(i64::from(d) * MS_PER_DAY)),
        memo: Some(memo.to_string()),
    };
    // The grant rules every grant obeys, a person's (the billing service) or a payment's.
    req.check(now)?;
    // An order that pays an invoice pays it (once, its own lot) instead of granting a purchase.
    let paid_by = order.provider.as_str();
    let lot = match crate::invoices::pay_for_order(j, now, &order.id, paid_by, actor).await? {
        Some(lot) => lot,
        None => ops::grant(j, now, req).await?.lot.id,
    };
    let seq = next_receipt(j).await?;
    order.status = OrderStatus::Credited;
    order.paid_at = Some(now);
    order.lot_id = Some(lot);
    order.receipt_number = Some(receipt_number(now, seq));
    order.method = p.method.clone().or(order.method);
    order.provider_ref = order.provider_ref.or_else(|| p.reference.clone());
    order.failure = None;
    j.exec(
        "UPDATE orders SET status = 'credited', paid_at = $2, lot_id = $3, receipt_seq = $4, \
         receipt_number = $5, method = $6, provider_ref = $7, failure_code = NULL, \
         failure_message = NULL WHERE id = $1",
        &[
            Param::Text(order.id.to_string()),
            Param::Int(now.millis()),
            Param::OptText(order.lot_id.as_ref().map(|l| l.to_string())),
            Param::Int(seq),
            Param::OptText(order.receipt_number.clone()),
            Param::OptText(order.method.clone()),
            Param::OptText(order.provider_ref.clone()),
        ],
    )
    .await?;
    let mut details = order_details(&order);
    details["transfer_id"] = order.credit_transfer_id().into();
    audit(j, now, actor, &order, "payment.credited", details).await?;
    Ok(order)
}

/// The next receipt number. Taken in the crediting transaction, so a rollback returns it and
/// the numbers stay gapless.
async fn next_receipt<J: TxStatements>(j: &mut J) -> LedgerResult<i64> {
    let mut rows = j
        .rows(
            "UPDATE receipt_counter SET last = last + 1 WHERE id = 1 RETURNING last",
            &[],
            |r| r.int(0),
        )
        .await?;
    rows.pop()
        .ok_or_else(|| LedgerError::Corrupt("the receipt counter is missing".to_owned()))
}

/// Records a payment the operator took outside any provider, idempotent on its reference
/// (`provider_ref`): the same reference again returns the first order if it describes the same
/// payment, and is refused if it does not. Returns the order and whether it is new.
pub(crate) async fn record_manual<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    order: &Order,
    actor: &Actor,
) -> LedgerResult<(Order, bool)> {
    j.lock_org(&order.org).await?;
    let mut existing = j
        .rows(
            order_select!("WHERE provider = $1 AND provider_ref = $2"),
            &[
                Param::Text(order.provider.as_str().to_owned()),
                Param::OptText(order.provider_ref.clone()),
            ],
            order_row,
        )
        .await?;
    if let Some(first) = existing.pop() {
        let same = first.org == order.org
            && first.amount_cents == order.amount_cents
            && first.credits == order.credits
            && first.currency == order.currency;
        if !same {
            return Err(LedgerError::InvalidRequest(format!(
                "reference {} was already recorded for another payment (order {})",
                order.provider_ref.as_deref().unwrap_or(""),
                first.id
            )));
        }
        return Ok((first, false));
    }
    j.exec(INSERT_ORDER, &order_params(order)).await?;
    let report = ProviderPayment {
        provider: order.provider,
        order: order.id.clone(),
        org: order.org.clone(),
        amount_cents: order.amount_cents,
        currency: order.currency.clone(),
        state: PaymentState::Paid,
        method: order.method.clone(),
        reference: order.provider_ref.clone(),
    };
    Ok((credit(j, now, order.clone(), &report, actor).await?, true))
}

/// How a clawback came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClawbackKind {
    Refund,
    Dispute,
    DisputeWon,
}

/// A refund or dispute recorded against an order: the ledger transfer that moved the credits,
/// the money it concerned, and what it could not take back (recorded as debt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Clawback {
    pub transfer_id: String,
    pub kind: ClawbackKind,
    pub amount_cents: i64,
    pub credits: NanoCredits,
    pub debt: NanoCredits,
    pub at: Timestamp,
}

pub(crate) fn clawback_row(r: &dyn Columns) -> LedgerResult<Clawback> {
    let kind = match r.text(1)?.as_str() {
        "refund" => ClawbackKind::Refund,
        "dispute" => ClawbackKind::Dispute,
        "dispute_won" => ClawbackKind::DisputeWon,
        other => return Err(LedgerError::Corrupt(format!("clawback kind {other:?}"))),
    };
    Ok(Clawback {
        transfer_id: r.text(0)?,
        kind,
        amount_cents: r.int(2)?,
        credits: NanoCredits::from_nanos(r.int(3)?),
        debt: NanoCredits::from_nanos(r.int(4)?),
        at: Timestamp::from_millis(r.int(5)?),
    })
}

/// The operator's refund of a credited order's unspent remainder: the ledger claws the lot's
/// remainder back (once: a lot is refunded at most once) and the order records it. The money
/// part (`amount_cents`, the remainder's share of the price) is what the provider refunds.
pub(crate) async fn refund_order<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    id: &OrderId,
    actor: &Actor,
) -> LedgerResult<(Order, Refunded, i64)> {
    let Some(mut order) = locked_order(j, id).await? else {
        return Err(LedgerError::InvalidRequest(format!("no order {id} exists")));
    };
    let Some(lot) = order.lot_id.clone().filter(|_| order.status.was_credited()) else {
        return Err(LedgerError::InvalidRequest(format!(
            "order {id} was not credited, so there is nothing to refund"
        )));
    };
    let transfer_id = TransferId::parse(&format!("refund:{id}"))
        .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
    if j.transfer(&transfer_id).await?.is_some() {
        return Err(LedgerError::InvalidRequest(format!(
            "order {id} was refunded already (transfer {transfer_id}); a lot is refunded once"
        )));
    }
    let refunded = ops::refund_lot(
        j,
        now,
        RefundRequest {
            transfer_id: transfer_id.clone(),
            org: order.org.clone(),
            lot,
            memo: Some(serde_json::json!({"order": id}).to_string()),
        },
    )
    .await?;
    let cents = refund_cents(&order, refunded.amount);
    order.refunded_cents += cents;
    order.status = if order.refunded_cents >= order.amount_cents {
        OrderStatus::Refunded
    } else {
        OrderStatus::PartiallyRefunded
    };
    let row = Clawback {
        transfer_id: transfer_id.to_string(),
        kind: ClawbackKind::Refund,
        amount_cents: cents,
        credits: refunded.amount,
        debt: NanoCredits::ZERO,
        at: now,
    };
    insert_clawback(j, &order, &row, actor).await?;
    Ok((order, refunded, cents))
}

/// What is left of the order's lot, once it is sure that `credits` can be refunded: no more
/// than the lot has left (nothing once it expired) nor than is not held by requests in flight.
async fn refundable<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    order: &Order,
    lot_id: &LotId,
    credits: NanoCredits,
) -> LedgerResult<NanoCredits> {
    let lot = j
        .lot(lot_id)
        .await?
        .ok_or_else(|| LedgerError::UnknownLot(lot_id.clone()))?;
    let left = if lot.is_expired(now) {
        NanoCredits::ZERO
    } else {
        lot.remaining
    };
    let available = crate::journal::audit::balance(j, now, &order.org)
        .await?
        .available;
    if credits > left || credits > available {
        return Err(LedgerError::InvalidRequest(format!(
            "order {}: {credits} credits cannot be refunded; the lot has {left} left \
             and {} are not held by requests in flight",
            order.id,
            available.max(NanoCredits::ZERO)
        )));
    }
    Ok(left)
}

/// The operator's refund of `credits` out of a credited order's lot: at most what remains of
/// the lot and is not held by requests in flight (never a debt, never a negative remainder).
/// Each partial refund is its own ledger transfer, `refund:<order>:p<n>`.
pub(crate) async fn refund_credits<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    id: &OrderId,
    credits: NanoCredits,
    actor: &Actor,
) -> LedgerResult<(Order, Refunded, i64)> {
    let Some(mut order) = locked_order(j, id).await? else {
        return Err(LedgerError::InvalidRequest(format!("no order {id} exists")));
    };
    let Some(lot_id) = order.lot_id.clone().filter(|_| order.status.was_credited()) else {
        return Err(LedgerError::InvalidRequest(format!(
            "order {id} was not credited, so there is nothing to refund"
        )));
    };
    if !credits.is_positive() {
        return Err(LedgerError::InvalidAmount(format!(
            "credits to refund must be positive, not {credits}"
        )));
    }
    let left = refundable(j, now, &order, &lot_id, credits).await?;
    let done = j
        .rows(
            "SELECT COUNT(*) FROM order_clawbacks WHERE order_id = $1",
            &[Param::Text(id.to_string())],
            |r| r.int(0),
        )
        .await?;
    let transfer_id = TransferId::parse(&format!("refund:{id}:p{}", done[0] + 1))
        .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
    let clawed = ops::claw_back(
        j,
        now,
        ClawbackRequest {
            transfer_id: transfer_id.clone(),
            org: order.org.clone(),
            lot: lot_id.clone(),
            amount: credits,
            memo: Some(serde_json::json!({"order": id, "kind": "refund"}).to_string()),
        },
    )
    .await?;
    let cents = refund_cents(&order, clawed.taken).min(order.amount_cents - order.refunded_cents);
    order.refunded_cents += cents;
    order.status = if clawed.taken == left && order.refunded_cents >= order.amount_cents {
        OrderStatus::Refunded
    } else {
        OrderStatus::PartiallyRefunded
    };
    let row = Clawback {
        transfer_id: transfer_id.to_string(),
        kind: ClawbackKind::Refund,
        amount_cents: cents,
        credits: clawed.taken,
        debt: clawed.debt,
        at: now,
    };
    insert_clawback(j, &order, &row, actor).await?;
    let refunded = Refunded {
        lot: lot_id,
        amount: clawed.taken,
    };
    Ok((order, refunded, cents))
}

/// The price of `credits` out of the order, rounded down to the cent (never more than paid).
fn refund_cents(order: &Order, credits: NanoCredits) -> i64 {
    let num = i128::from(order.amount_cents) * i128::from(credits.nanos());
    let cents = num / i128::from(order.credits.nanos().max(1));
    i64::try_from(cents)
        .unwrap_or(order.amount_cents)
        .min(order.amount_cents)
}

async fn insert_clawback<J: TxStatements>(
    j: &mut J,
    order: &Order,
    row: &Clawback,
    actor: &Actor,
) -> LedgerResult<()> {
    let kind = match row.kind {
        ClawbackKind::Refund => "refund",
        ClawbackKind::Dispute => "dispute",
        ClawbackKind::DisputeWon => "dispute_won",
    };
    j.exec(
        "INSERT INTO order_clawbacks (transfer_id, order_id, kind, amount_cents, credits, debt, \
         at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            Param::Text(row.transfer_id.clone()),
            Param::Text(order.id.to_string()),
            Param::Text(kind.to_owned()),
            Param::Int(row.amount_cents),
            Param::Int(row.credits.nanos()),
            Param::Int(row.debt.nanos()),
            Param::Int(row.at.millis()),
        ],
    )
    .await?;
    j.exec(
        "UPDATE orders SET status = $2, refunded_cents = $3 WHERE id = $1",
        &[
            Param::Text(order.id.to_string()),
            Param::Text(order.status.as_str().to_owned()),
            Param::Int(order.refunded_cents),
        ],
    )
    .await?;
    let action = match row.kind {
        ClawbackKind::Refund => "payment.refunded",
        ClawbackKind::Dispute => "payment.disputed",
        ClawbackKind::DisputeWon => "payment.dispute_won",
    };
    let mut details = order_details(order);
    details["transfer_id"] = row.transfer_id.clone().into();
    details["clawback"] = serde_json::json!({
        "amount_cents": row.amount_cents,
        "credits": row.credits.to_string(),
        "debt": row.debt.to_string(),
    });
    audit(j, row.at, actor, order, action, details).await
}

/// What a provider reported against a credited order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderClawback {
    /// `charge.refunded`: the cents refunded so far, cumulative.
    Refunded { cumulative_cents: i64 },
    /// `charge.dispute.created`.
    Disputed { dispute: String, cents: i64 },
    /// `charge.dispute.closed` with the dispute won: what it took comes back.
    DisputeWon { dispute: String },
}

/// Applies a refund or dispute raised at the provider: claws back the credits it is worth, at
/// most what remains of the lot, the rest as debt; a dispute won gives back what its dispute
/// took. Each is a ledger transfer with its own id and a row on the order. Returns the order
/// and what moved (`None`: nothing to do, e.g. a refund already clawed back).
pub(crate) async fn provider_clawback<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    id: &OrderId,
    report: &ProviderClawback,
) -> LedgerResult<(Order, Option<Clawback>)> {
    let Some(mut order) = locked_order(j, id).await? else {
        return Err(LedgerError::InvalidRequest(format!("no order {id} exists")));
    };
    let Some(lot) = order.lot_id.clone().filter(|_| order.status.was_credited()) else {
        return Ok((order, None));
    };
    let (transfer, kind, cents) = match report {
        ProviderClawback::Refunded { cumulative_cents } => {
            let cumulative = (*cumulative_cents).min(order.amount_cents);
            let delta = cumulative - order.refunded_cents;
            if delta <= 0 {
                return Ok((order, None));
            }
            order.refunded_cents = cumulative;
            order.status = if cumulative >= order.amount_cents {
                OrderStatus::Refunded
            } else {
                OrderStatus::PartiallyRefunded
            };
            (
                format!("refund:{id}:{cumulative}"),
                ClawbackKind::Refund,
                delta,
            )
        }
        ProviderClawback::Disputed { dispute, cents } => {
            order.status = OrderStatus::Disputed;
            let cents = (*cents).clamp(0, order.amount_cents);
            (format!("dispute:{dispute}"), ClawbackKind::Dispute, cents)
        }
        ProviderClawback::DisputeWon { dispute } => {
            return dispute_won(j, now, order, dispute).await;
        }
    };
    let credits = credits_for(&order, cents);
    let transfer_id =
        TransferId::parse(&transfer).map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
    // A dispute reported twice (or a refund total seen before) is one transfer: applied once.
    if !credits.is_positive() || j.transfer(&transfer_id).await?.is_some() {
        return Ok((order, None));
    }
    let clawed = ops::claw_back(
        j,
        now,
        ClawbackRequest {
            transfer_id: transfer_id.clone(),
            org: order.org.clone(),
            lot,
            amount: credits,
            memo: Some(serde_json::json!({"order": id, "kind": kind}).to_string()),
        },
    )
    .await?;
    let row = Clawback {
        transfer_id: transfer_id.to_string(),
        kind,
        amount_cents: cents,
        credits,
        debt: clawed.debt,
        at: now,
    };
    insert_clawback(j, &order, &row, &Actor::system()).await?;
    Ok((order, Some(row)))
}

/// A won dispute: a new paid lot worth what the dispute clawed back (taken and debt; the grant
/// repays the debt first), and the order is credited again.
async fn dispute_won<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    mut order: Order,
    dispute: &str,
) -> LedgerResult<(Order, Option<Clawback>)> {
    let mut taken = j
        .rows(
            "SELECT transfer_id, kind, amount_cents, credits, debt, at FROM order_clawbacks \
             WHERE transfer_id = $1 AND order_id = $2",
            &[
                Param::Text(format!("dispute:{dispute}")),
                Param::Text(order.id.to_string()),
            ],
            clawback_row,
        )
        .await?;
    let Some(disputed) = taken.pop() else {
        return Ok((order, None));
    };
    let transfer = format!("dispute-won:{dispute}");
    let transfer_id =
        TransferId::parse(&transfer).map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
    if j.transfer(&transfer_id).await?.is_some() {
        return Ok((order, None));
    }
    let lot_id = LotId::parse(&format!("lot_{}_won_{dispute}", order.id))
        .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
    ops::grant(
        j,
        now,
        GrantRequest {
            transfer_id: transfer_id.clone(),
            org: order.org.clone(),
            lot_id,
            amount: disputed.credits,
            category: LotCategory::Paid,
            source: LotSource::Purchase,
            price_per_credit: price_per_credit(order.amount_cents, order.credits),
            expires_at: None,
            memo: Some(serde_json::json!({"order": order.id, "dispute_won": dispute}).to_string()),
        },
    )
    .await?;
    order.status = if order.refunded_cents > 0 {
        OrderStatus::PartiallyRefunded
    } else {
        OrderStatus::Credited
    };
    let row = Clawback {
        transfer_id: transfer,
        kind: ClawbackKind::DisputeWon,
        amount_cents: -disputed.amount_cents,
        credits: disputed.credits.checked_neg()?,
        debt: NanoCredits::ZERO,
        at: now,
    };
    insert_clawback(j, &order, &row, &Actor::system()).await?;
    Ok((order, Some(row)))
}

/// The credits `cents` of the order's price bought, rounded down to the nano-credit.
fn credits_for(order: &Order, cents: i64) -> NanoCredits {
    let num = i128::from(order.credits.nanos()) * i128::from(cents);
    let nanos = num / i128::from(order.amount_cents.max(1));
    NanoCredits::from_nanos(i64::try_from(nanos).unwrap_or(0).min(order.credits.nanos()))
}

/// [`provider_clawback`] behind the event-id check: `None` for an event seen before.
pub(crate) async fn clawback_once<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    event: Option<&ProviderEvent>,
    id: &OrderId,
    report: &ProviderClawback,
) -> LedgerResult<Option<(Order, Option<Clawback>)>> {
    if let Some(e) = event {
        let fresh = j
            .exec(
                "INSERT INTO provider_events (provider, event_id, kind, order_id, outcome, \
                 received_at) VALUES ($1, $2, $3, $4, 'clawback', $5) ON CONFLICT DO NOTHING",
                &[
                    Param::Text(e.provider.as_str().to_owned()),
                    Param::Text(e.id.clone()),
                    Param::Text(e.kind.clone()),
                    Param::Text(id.to_string()),
                    Param::Int(now.millis()),
                ],
            )
            .await?;
        if fresh == 0 {
            return Ok(None);
        }
    }
    provider_clawback(j, now, id, report).await.map(Some)
}

/// Appends an audit event for an order in the transaction that changed it, so the money and its
/// audit line are written together or not at all. `details` never holds a card number.
pub(crate) async fn audit<J: TxStatements>(
    j: &mut J,
    now: Timestamp,
    actor: &Actor,
    order: &Order,
    action: &str,
    details: serde_json::Value,
) -> LedgerResult<()> {
    j.exec(
        "INSERT INTO audit_log (org_id, at, actor_type, actor_id, action, target_type, \
         target_id, ip, details) VALUES ($1, $2, $3, $4, $5, 'order', $6, NULL, $7)",
        &[
            Param::Text(order.org.to_string()),
            Param::Int(now.millis()),
            Param::Text(actor.kind.clone()),
            Param::OptText(actor.id.clone()),
            Param::Text(action.to_owned()),
            Param::Text(order.id.to_string()),
            Param::Text(details.to_string()),
        ],
    )
    .await?;
    Ok(())
}

/// What an audit line says about an order's money.
fn order_details(order: &Order) -> serde_json::Value {
    serde_json::json!({
        "provider": order.provider.as_str(),
        "credits": order.credits.to_string(),
        "amount_cents": order.amount_cents,
        "currency": order.currency,
        "status": order.status.as_str(),
        "lot_id": order.lot_id,
        "receipt_number": order.receipt_number,
        "method": order.method,
    })
}
