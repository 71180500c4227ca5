//! Monthly invoices (`docs/credit-lines.md`): drafting one per organization and month in one
//! transaction under the organization's ledger lock (the period's settled charges summed, the
//! next gapless number taken, the row inserted), paying one (the invoiced credits granted back
//! through the ledger once, the line's overdue suspension lifted when nothing is overdue), and
//! the reads the gateway and the overdue check need.

use creditgate_core::accounts::Actor;
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{InvoiceId, LotId, OrderId, OrganizationId, TransferId};
use creditgate_core::ledger::{GrantRequest, LedgerError, LedgerResult, LotCategory, LotSource};
use creditgate_core::payments::invoice::{Draft, Invoice, InvoiceStatus};
use creditgate_core::payments::{price_per_credit, Order};
use std::sync::atomic::Ordering;
use tokio_postgres::IsolationLevel;

use crate::journal::{ops, run_ready, Journal};
use crate::postgres::ledger::{in_transaction, retry_pause, PgJournal};
use crate::postgres::{is_retryable, pg_error, MAX_ATTEMPTS};
use crate::run::Step;
use crate::sqlite::ledger::{write_op, SqliteJournal};
use crate::statement::{Columns, Param, TxStatements};
use crate::Database;

/// Most invoices one list returns.
pub const MAX_INVOICE_PAGE: i64 = 1000;

macro_rules! invoice_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, org, number, period_start, period_end, credits, usd_per_credit, \
             subtotal_cents, tax_rate, tax_cents, amount_cents, currency, status, due_at, \
             created_at, paid_at, paid_by, lot_id, buyer FROM invoices ",
            $rest
        )
    };
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("stored invoice {what} is not valid"))
}

fn invoice_row(r: &dyn Columns) -> LedgerResult<Invoice> {
    let decimal =
        |i: usize| -> LedgerResult<_> { r.text(i)?.parse().map_err(|_| corrupt("decimal")) };
    Ok(Invoice {
        id: InvoiceId::parse(&r.text(0)?).map_err(|_| corrupt("id"))?,
        org: OrganizationId::parse(&r.text(1)?).map_err(|_| corrupt("organization"))?,
        number: r.text(2)?,
        period_start: r.millis(3)?,
        period_end: r.millis(4)?,
        credits: r.nanos(5)?,
        usd_per_credit: decimal(6)?,
        subtotal_cents: r.int(7)?,
        tax_rate: r.text(8)?,
        tax_cents: r.int(9)?,
        amount_cents: r.int(10)?,
        currency: r.text(11)?,
        status: InvoiceStatus::parse(&r.text(12)?).ok_or_else(|| corrupt("status"))?,
        due_at: r.millis(13)?,
        created_at: r.millis(14)?,
        paid_at: r.opt_int(15)?.map(Timestamp::from_millis),
        paid_by: r.opt_text(16)?,
        lot_id: match r.opt_text(17)? {
            Some(l) => Some(LotId::parse(&l).map_err(|_| corrupt("lot"))?),
            None => None,
        },
        buyer: serde_json::from_str(&r.text(18)?).map_err(|_| corrupt("buyer"))?,
    })
}

async fn audit<J: TxStatements>(
    j: &mut J,
    now: Timestamp,
    actor: &Actor,
    inv: &Invoice,
    action: &str,
) -> LedgerResult<()> {
    let details = serde_json::json!({
        "number": inv.number,
        "credits": inv.credits.to_string(),
        "amount_cents": inv.amount_cents,
        "period_start": inv.period_start.to_rfc3339(),
        "paid_by": inv.paid_by,
    });
    j.exec(
        "INSERT INTO audit_log (org_id, at, actor_type, actor_id, action, target_type, \
         target_id, ip, details) VALUES ($1, $2, $3, $4, $5, 'invoice', $6, NULL, $7)",
        &[
            Param::Text(inv.org.to_string()),
            Param::Int(now.millis()),
            Param::Text(actor.kind.clone()),
            Param::OptText(actor.id.clone()),
            Param::Text(action.to_owned()),
            Param::Text(inv.id.to_string()),
            Param::Text(details.to_string()),
        ],
    )
    .await?;
    Ok(())
}

async fn one_invoice<J: TxStatements>(
    j: &mut J,
    sql: &'static str,
    params: &[Param],
) -> LedgerResult<Option<Invoice>> {
    Ok(j.rows(sql, params, invoice_row).await?.pop())
}

/// Drafts the invoice of `draft`'s organization and period unless it exists; `None` when the
/// period has no settled charges (nothing to invoice). `true` when drafted now.
async fn draft<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    draft: &Draft,
) -> LedgerResult<Option<(Invoice, bool)>> {
    j.lock_org(&draft.org).await?;
    let (start, end) = draft.period;
    let existing = one_invoice(
        j,
        invoice_select!("WHERE org = $1 AND period_start = $2"),
        &[
            Param::Text(draft.org.to_string()),
            Param::Int(start.millis()),
        ],
    )
    .await?;
    if let Some(inv) = existing {
        return Ok(Some((inv, false)));
    }
    let credits = j
        .rows(
            "SELECT CAST(COALESCE(SUM(charged), 0) AS BIGINT) FROM charges \
             WHERE org = $1 AND at >= $2 AND at < $3",
            &[
                Param::Text(draft.org.to_string()),
                Param::Int(start.millis()),
                Param::Int(end.millis()),
            ],
            |r| r.nanos(0),
        )
        .await?
        .pop()
        .unwrap_or_default();
    if !credits.is_positive() {
        return Ok(None);
    }
    let seq = next_number(j).await?;
    let inv = draft.invoice(credits, seq, now)?;
    insert(j, &inv).await?;
    audit(j, now, &Actor::system(), &inv, "invoice.drafted").await?;
    Ok(Some((inv, true)))
}

/// The next invoice number, taken in the drafting transaction: a rollback returns it, so the
/// numbers stay gapless.
async fn next_number<J: TxStatements>(j: &mut J) -> LedgerResult<i64> {
    j.rows(
        "UPDATE invoice_counter SET last = last + 1 WHERE id = 1 RETURNING last",
        &[],
        |r| r.int(0),
    )
    .await?
    .pop()
    .ok_or_else(|| LedgerError::Corrupt("the invoice counter is missing".to_owned()))
}

async fn insert<J: TxStatements>(j: &mut J, inv: &Invoice) -> LedgerResult<()> {
    let buyer = serde_json::to_string(&inv.buyer)
        .map_err(|e| LedgerError::Corrupt(format!("cannot encode a billing profile: {e}")))?;
    j.exec(
        "INSERT INTO invoices (id, org, number, period_start, period_end, credits, \
         usd_per_credit, subtotal_cents, tax_rate, tax_cents, amount_cents, currency, status, \
         due_at, created_at, buyer) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        &[
            Param::Text(inv.id.to_string()),
            Param::Text(inv.org.to_string()),
            Param::Text(inv.number.clone()),
            Param::Int(inv.period_start.millis()),
            Param::Int(inv.period_end.millis()),
            Param::Int(inv.credits.nanos()),
            Param::Text(inv.usd_per_credit.to_string()),
            Param::Int(inv.subtotal_cents),
            Param::Text(inv.tax_rate.clone()),
            Param::Int(inv.tax_cents),
            Param::Int(inv.amount_cents),
            Param::Text(inv.currency.clone()),
            Param::Text(inv.status.as_str().to_owned()),
            Param::Int(inv.due_at.millis()),
            Param::Int(inv.created_at.millis()),
            Param::Text(buyer),
        ],
    )
    .await?;
    Ok(())
}

/// Pays an invoice once: grants its credits back as a `paid`/`invoice` lot (the ledger repays
/// debt first) under the transfer id `invoice-paid:<id>`, marks it paid, and lifts the
/// line's overdue suspension when no other invoice is overdue. `None` if there is no such
/// invoice; `false` when it was already paid.
async fn pay<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    id: &InvoiceId,
    paid_by: &str,
    actor: &Actor,
) -> LedgerResult<Option<(Invoice, bool)>> {
    let select = invoice_select!("WHERE id = $1");
    let param = [Param::Text(id.to_string())];
    let Some(first) = one_invoice(j, select, &param).await? else {
        return Ok(None);
    };
    j.lock_org(&first.org).await?;
    let mut inv = one_invoice(j, select, &param)
        .await?
        .ok_or_else(|| LedgerError::Corrupt(format!("invoice {id} vanished")))?;
    match inv.status {
        InvoiceStatus::Paid => return Ok(Some((inv, false))),
        InvoiceStatus::Void => return Err(void(&inv)),
        InvoiceStatus::Open => {}
    }
    settle_open(j, now, &mut inv, paid_by, actor).await?;
    Ok(Some((inv, true)))
}

fn void(inv: &Invoice) -> LedgerError {
    LedgerError::InvalidRequest(format!(
        "invoice {} is void: there is nothing to pay",
        inv.number
    ))
}

/// Pays an open invoice under its organization's lock (held by the caller): grants its
/// credits, marks it paid, lifts an overdue suspension, audits.
async fn settle_open<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    inv: &mut Invoice,
    paid_by: &str,
    actor: &Actor,
) -> LedgerResult<()> {
    let ids = |s: String| TransferId::parse(&s).map_err(|e| LedgerError::Corrupt(e.to_string()));
    let lot_id =
        LotId::parse(&inv.payment_lot_id()).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    let req = GrantRequest {
        transfer_id: ids(inv.payment_transfer_id())?,
        org: inv.org.clone(),
        lot_id,
        amount: inv.credits,
        category: LotCategory::Paid,
        source: LotSource::Invoice,
        price_per_credit: price_per_credit(inv.subtotal_cents, inv.credits),
        expires_at: None,
        memo: Some(serde_json::json!({"invoice": inv.id, "number": inv.number}).to_string()),
    };
    req.check(now)?;
    let granted = ops::grant(j, now, req).await?;
    inv.status = InvoiceStatus::Paid;
    inv.paid_at = Some(now);
    inv.paid_by = Some(paid_by.to_owned());
    inv.lot_id = Some(granted.lot.id);
    mark_paid(j, inv).await?;
    lift_suspension(j, &inv.org, now).await?;
    audit(j, now, actor, inv, "invoice.paid").await?;
    Ok(())
}

/// For the crediting of a paid order (its organization locked): when the order pays an
/// invoice, pays the invoice and returns its lot — the existing one if it was already paid
/// (by the operator, or another order), so the invoice's credits come back once. `None` for
/// an ordinary purchase.
pub(crate) async fn pay_for_order<J: Journal + TxStatements>(
    j: &mut J,
    now: Timestamp,
    order: &OrderId,
    paid_by: &str,
    actor: &Actor,
) -> LedgerResult<Option<LotId>> {
    let Some(mut inv) = one_invoice(
        j,
        invoice_select!("WHERE id = (SELECT invoice_id FROM invoice_orders WHERE order_id = $1)"),
        &[Param::Text(order.to_string())],
    )
    .await?
    else {
        return Ok(None);
    };
    match inv.status {
        InvoiceStatus::Open => settle_open(j, now, &mut inv, paid_by, actor).await?,
        InvoiceStatus::Paid => {}
        InvoiceStatus::Void => return Err(void(&inv)),
    }
    inv.lot_id
        .map(Some)
        .ok_or_else(|| LedgerError::Corrupt(format!("paid invoice {} has no lot", inv.id)))
}

async fn mark_paid<J: TxStatements>(j: &mut J, inv: &Invoice) -> LedgerResult<()> {
    j.exec(
        "UPDATE invoices SET status = 'paid', paid_at = $2, paid_by = $3, lot_id = $4 \
         WHERE id = $1 AND status = 'open'",
        &[
            Param::Text(inv.id.to_string()),
            Param::OptInt(inv.paid_at.map(Timestamp::millis)),
            Param::OptText(inv.paid_by.clone()),
            Param::OptText(inv.lot_id.as_ref().map(|l| l.to_string())),
        ],
    )
    .await?;
    Ok(())
}

/// Clears the line's suspension unless another invoice of the organization is still overdue.
async fn lift_suspension<J: TxStatements>(
    j: &mut J,
    org: &OrganizationId,
    now: Timestamp,
) -> LedgerResult<()> {
    j.exec(
        "UPDATE org_state SET credit_suspended_at = NULL WHERE org = $1 \
         AND NOT EXISTS (SELECT 1 FROM invoices WHERE org = $1 AND status = 'open' \
                         AND due_at <= $2)",
        &[Param::Text(org.to_string()), Param::Int(now.millis())],
    )
    .await?;
    Ok(())
}

impl Database {
    /// Drafts the invoice of `draft` unless its organization has one for the period (then the
    /// existing one, `false`); `None` when the period has no usage.
    pub async fn draft_invoice(&self, d: Draft) -> LedgerResult<Option<(Invoice, bool)>> {
        match self {
            Database::Sqlite(s) => write_op!(s, |j, now| draft(j, now, &d)),
            Database::Postgres(s) => {
                let d = &d;
                in_transaction!(s, |j, now| draft(j, now, d))
            }
        }
    }

    /// Pays an invoice once (see `pay`); `None` if there is no such invoice.
    pub async fn pay_invoice(
        &self,
        id: &InvoiceId,
        paid_by: &str,
        actor: &Actor,
    ) -> LedgerResult<Option<(Invoice, bool)>> {
        match self {
            Database::Sqlite(s) => {
                let (id, paid_by, actor) = (id.clone(), paid_by.to_owned(), actor.clone());
                write_op!(s, |j, now| pay(j, now, &id, &paid_by, &actor))
            }
            Database::Postgres(s) => {
                in_transaction!(s, |j, now| pay(j, now, id, paid_by, actor))
            }
        }
    }

    /// Creates an open order that pays `invoice` through its provider, in one transaction
    /// with its link to the invoice.
    pub async fn create_invoice_order(
        &self,
        order: &Order,
        invoice: &InvoiceId,
    ) -> LedgerResult<()> {
        let steps = vec![
            Step::new(
                crate::payments::INSERT_ORDER,
                crate::payments::order_params(order),
            ),
            Step::new(
                "INSERT INTO invoice_orders (order_id, invoice_id) VALUES ($1, $2)",
                vec![
                    Param::Text(order.id.to_string()),
                    Param::Text(invoice.to_string()),
                ],
            ),
        ];
        self.transaction(steps)
            .await?
            .map_err(|_| LedgerError::Corrupt("an invoice order was not written".to_owned()))
    }

    pub async fn invoice(&self, id: &InvoiceId) -> LedgerResult<Option<Invoice>> {
        self.query_opt(
            invoice_select!("WHERE id = $1"),
            vec![Param::Text(id.to_string())],
            invoice_row,
        )
        .await
    }

    /// The organization's invoices, newest period first.
    pub async fn invoices(&self, org: &OrganizationId) -> LedgerResult<Vec<Invoice>> {
        self.query(
            invoice_select!("WHERE org = $1 ORDER BY period_start DESC LIMIT $2"),
            vec![Param::Text(org.to_string()), Param::Int(MAX_INVOICE_PAGE)],
            invoice_row,
        )
        .await
    }

    /// Open invoices past their due date at `now`, oldest due first.
    pub async fn overdue_invoices(&self, now: Timestamp) -> LedgerResult<Vec<Invoice>> {
        self.query(
            invoice_select!("WHERE status = 'open' AND due_at <= $1 ORDER BY due_at, id"),
            vec![Param::Int(now.millis())],
            invoice_row,
        )
        .await
    }

    /// Organizations on an invoiced credit line, in id order.
    pub async fn invoiced_organizations(&self) -> LedgerResult<Vec<OrganizationId>> {
        self.query(
            "SELECT org FROM org_state WHERE billing_mode = 'invoiced' ORDER BY org",
            vec![],
            |r| OrganizationId::parse(&r.text(0)?).map_err(|_| corrupt("organization")),
        )
        .await
    }

    /// Suspends the organization's credit line (admission reads a limit of 0); `true` if it
    /// was not suspended before.
    pub async fn suspend_credit_line(
        &self,
        org: &OrganizationId,
        now: Timestamp,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE org_state SET credit_suspended_at = $2 \
                 WHERE org = $1 AND credit_suspended_at IS NULL",
                vec![Param::Text(org.to_string()), Param::Int(now.millis())],
            )
            .await?;
        Ok(n == 1)
    }

    /// Since when an overdue invoice suspends the organization's line, if it does.
    pub async fn credit_line_suspended_at(
        &self,
        org: &OrganizationId,
    ) -> LedgerResult<Option<Timestamp>> {
        Ok(self
            .query_opt(
                "SELECT credit_suspended_at FROM org_state WHERE org = $1",
                vec![Param::Text(org.to_string())],
                |r| r.opt_int(0),
            )
            .await?
            .flatten()
            .map(Timestamp::from_millis))
    }
}
