//! Monthly invoices of invoiced organizations (`docs/credit-lines.md`): the job that drafts the
//! previous month's invoice of each one (on one replica per pass, under a job lease), the
//! overdue check that suspends a line when the operator asks for it, paying an invoice, and
//! the invoice as the API shows it. The drafting and paying transactions are the storage's.

pub mod page;
pub mod routes;

use std::sync::Arc;

use creditgate_core::accounts::{Action, Actor};
use creditgate_core::ids::{InvoiceId, OrganizationId};
use creditgate_core::payments::invoice::{previous_month, Draft, Invoice, InvoiceTerms};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::jobs::LeasedJob;
use crate::notify::{recipients, send_all};
use crate::App;

/// The job lease's name in `job_leases`.
const INVOICE_JOB: &str = "invoices";

/// What one pass of the job did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Invoices drafted by this pass (an existing one is not counted).
    pub drafted: Vec<Invoice>,
    /// Organizations whose line this pass suspended for an overdue invoice.
    pub suspended: Vec<OrganizationId>,
}

/// Offers to run the job every `[invoices] interval_ms`; the replica holding the lease runs it.
pub async fn invoices_forever(app: Arc<App>) {
    let every = std::time::Duration::from_millis(app.cfg.invoices.interval_ms);
    let lease_ms = i64::try_from(every.as_millis() * 9 / 10).unwrap_or(i64::MAX);
    let job = LeasedJob::new(INVOICE_JOB, lease_ms);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if !job.claim(&app).await {
            continue;
        }
        match run_pass(&app).await {
            Ok(p) if !p.drafted.is_empty() || !p.suspended.is_empty() => {
                tracing::info!(
                    drafted = p.drafted.len(),
                    suspended = p.suspended.len(),
                    "invoices"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "invoice pass failed"),
        }
    }
}

/// Drafts the previous month's invoice of every invoiced organization that has none (by the
/// injected clock: on the first pass after a month ends), then applies the overdue rule.
/// Running it twice, or on two replicas at once, drafts each invoice once.
pub async fn run_pass(app: &App) -> Result<Pass, ApiError> {
    let mut pass = Pass::default();
    for org in app.db.invoiced_organizations().await? {
        if let Some(inv) = draft_for(app, &org).await? {
            announce(app, &inv).await;
            pass.drafted.push(inv);
        }
    }
    if app.cfg.invoices.suspend_when_overdue {
        pass.suspended = suspend_overdue(app).await?;
    }
    Ok(pass)
}

/// Drafts `org`'s invoice for the month before now; `Some` only when drafted by this call.
pub async fn draft_for(app: &App, org: &OrganizationId) -> Result<Option<Invoice>, ApiError> {
    let now = app.clock.now();
    let buyer = app.db.billing_profile(org).await?;
    // The operator's tax table by the buyer's billing country, in the table's pricing mode.
    let tax = &app.cfg.payments.tax;
    let draft = Draft {
        id: crate::ids::new_id("inv", InvoiceId::parse)?,
        org: org.clone(),
        period: previous_month(now),
        terms: InvoiceTerms {
            usd_per_credit: app.cfg.invoices.usd_per_credit,
            tax_rate: tax.rate_for(buyer.country.as_deref()),
            prices_include_tax: tax.prices_include_tax,
            due_days: app.cfg.invoices.due_days,
        },
        buyer,
    };
    Ok(match app.db.draft_invoice(draft).await? {
        Some((inv, true)) => Some(inv),
        _ => None,
    })
}

/// Tells the billing members a new invoice is ready.
async fn announce(app: &App, inv: &Invoice) {
    let subject = format!("Invoice {} is ready", inv.number);
    let body = format!(
        "Invoice {} for organization {} covers {} to {} (UTC): {} {} used, {} due by {}.\n\
         It is in the dashboard and at GET /v1/billing/invoices/{}.",
        inv.number,
        inv.org,
        inv.period_start.to_rfc3339(),
        inv.period_end.to_rfc3339(),
        inv.credits,
        app.cfg.credit_unit.name,
        crate::payments::receipt::dollars(inv.amount_cents),
        inv.due_at.to_rfc3339(),
        inv.id,
    );
    let to = recipients(app, &inv.org, Action::ManageBilling).await;
    send_all(app, &to, &subject, &body).await;
}

/// Suspends the line of every organization with an overdue invoice (once: a suspended line is
/// left alone), audited, and emails its billing members. Returns the organizations suspended.
async fn suspend_overdue(app: &App) -> Result<Vec<OrganizationId>, ApiError> {
    let now = app.clock.now();
    let mut suspended = Vec::new();
    for inv in app.db.overdue_invoices(now).await? {
        if !app.db.suspend_credit_line(&inv.org, now).await? {
            continue;
        }
        let change = crate::members::Change::new(&app.db, Actor::system(), None, now);
        change
            .audit(
                &inv.org,
                "organization.credit_line_suspended",
                "invoice",
                inv.id.as_str(),
                json!({"number": inv.number, "due_at": inv.due_at.to_rfc3339()}),
            )
            .await?;
        let subject = format!(
            "Invoice {} is overdue: the credit line is suspended",
            inv.number
        );
        let body = format!(
            "Invoice {} of organization {} ({} due by {}) is unpaid. Until it is paid, requests \
             are admitted only against prepaid credits; paying it restores the credit line.",
            inv.number,
            inv.org,
            crate::payments::receipt::dollars(inv.amount_cents),
            inv.due_at.to_rfc3339(),
        );
        let to = recipients(app, &inv.org, Action::ManageBilling).await;
        send_all(app, &to, &subject, &body).await;
        suspended.push(inv.org.clone());
    }
    Ok(suspended)
}

/// Pays an invoice once (`paid_by`: `operator`, `sandbox` or `stripe`): its credits go back
/// to the organization as a lot that repays debt first. Returns the invoice and whether this
/// call paid it.
pub async fn pay(
    app: &App,
    id: &InvoiceId,
    paid_by: &str,
    actor: &Actor,
) -> Result<(Invoice, bool), ApiError> {
    app.db
        .pay_invoice(id, paid_by, actor)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No invoice {id}.")))
}

/// An invoice as the API shows it; `url` is its printable page.
pub fn invoice_json(inv: &Invoice, base: &str) -> Value {
    json!({
        "id": inv.id,
        "type": "invoice",
        "organization_id": inv.org,
        "number": inv.number,
        "period_start": inv.period_start.to_rfc3339(),
        "period_end": inv.period_end.to_rfc3339(),
        "credits": inv.credits,
        "usd_per_credit": inv.usd_per_credit.to_string(),
        "subtotal_cents": inv.subtotal_cents,
        "tax_rate": inv.tax_rate,
        "tax_cents": inv.tax_cents,
        "amount_cents": inv.amount_cents,
        "currency": inv.currency,
        "status": inv.status.as_str(),
        "due_at": inv.due_at.to_rfc3339(),
        "created_at": inv.created_at.to_rfc3339(),
        "paid_at": inv.paid_at.map(|t| t.to_rfc3339()),
        "paid_by": inv.paid_by,
        "lot_id": inv.lot_id,
        "url": format!("{base}/v1/billing/invoices/{}/html", inv.id),
    })
}
