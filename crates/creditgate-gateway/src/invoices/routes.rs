//! The invoice routes: `GET /v1/billing/invoices[/{id}[/html]]` for the organization's owner,
//! admins and billing members, paying one through the provider (`…/checkout`), and the
//! operator's `POST /admin/v1/invoices/{id}/mark_paid`.
//! Another organization's ids answer 404, like ids that do not exist.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Html;
use axum::Json;
use creditgate_core::accounts::{Action, Actor};
use creditgate_core::ids::{InvoiceId, OrganizationId};
use creditgate_core::payments::invoice::{Invoice, InvoiceStatus};
use creditgate_core::payments::Quote;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{invoice_json, page};
use crate::caller::{Operator, OrgCaller};
use crate::error::{ApiError, JsonBody};
use crate::lists::{page as list_page, ListQuery};
use crate::payments::CheckoutRequest;
use crate::App;

type Answer = Result<Json<Value>, ApiError>;

/// The invoice `id` if it belongs to `org` (any organization for the operator); 404 otherwise.
async fn find(app: &App, id: &str, org: Option<&OrganizationId>) -> Result<Invoice, ApiError> {
    let missing = || ApiError::not_found(format!("No invoice {id}."));
    let parsed = InvoiceId::parse(id).map_err(|_| missing())?;
    match app.db.invoice(&parsed).await? {
        Some(inv) if org.is_none_or(|o| *o == inv.org) => Ok(inv),
        _ => Err(missing()),
    }
}

/// `GET /v1/billing/invoices`: the organization's invoices, newest period first.
pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    caller: OrgCaller,
    Query(q): Query<ListQuery>,
) -> Answer {
    caller.require(Action::ManageBilling)?;
    let base = app.payments.base_url(&app, &headers);
    let items = app.db.invoices(&caller.org).await?;
    list_page(items.iter().map(|i| invoice_json(i, &base)).collect(), &q)
}

/// `GET /v1/billing/invoices/{id}`.
pub async fn get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Action::ManageBilling)?;
    let inv = find(&app, &id, Some(&caller.org)).await?;
    Ok(Json(invoice_json(
        &inv,
        &app.payments.base_url(&app, &headers),
    )))
}

/// `GET /v1/billing/invoices/{id}/html`: the printable invoice.
pub async fn html(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    caller.require(Action::ManageBilling)?;
    let inv = find(&app, &id, Some(&caller.org)).await?;
    let unit = &app.cfg.credit_unit.name;
    Ok(Html(page::render(&inv, &app.payments.cfg.seller, unit)))
}

/// `POST /admin/v1/invoices/{id}/mark_paid`: the operator records the invoice's payment (a
/// bank transfer, say); idempotent: marking a paid invoice again changes nothing.
pub async fn mark_paid(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    _op: Operator,
    Path(id): Path<String>,
) -> Answer {
    let inv = find(&app, &id, None).await?;
    let (inv, paid_now) = super::pay(&app, &inv.id, "operator", &Actor::operator()).await?;
    let mut v = invoice_json(&inv, &app.payments.base_url(&app, &headers));
    v["paid_now"] = json!(paid_now);
    Ok(Json(v))
}

/// `POST /v1/billing/invoices/{id}/checkout` `{"success_url"?,"cancel_url"?}` →
/// `{"order","checkout_url"}`: pays an open invoice through the configured provider (the
/// sandbox, or Stripe Checkout) for its total; the verified payment pays the invoice once.
pub async fn checkout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    caller: OrgCaller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<InvoiceCheckout>,
) -> Answer {
    caller.require(Action::ManageBilling)?;
    let inv = find(&app, &id, Some(&caller.org)).await?;
    if inv.status != InvoiceStatus::Open {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!(
                "invoice {} is {}: there is nothing to pay",
                inv.number,
                inv.status.as_str()
            ),
        ));
    }
    let base = app.payments.base_url(&app, &headers);
    let quote = Quote {
        plan_id: None,
        credits: inv.credits,
        amount_cents: inv.amount_cents,
        expires_in_days: None,
    };
    let request = CheckoutRequest {
        plan_id: None,
        credits: None,
        success_url: req.success_url,
        cancel_url: req.cancel_url,
        base_url: Some(base.clone()),
    };
    let (order, url) = app
        .payments
        .open_checkout(&app, &caller.org, &quote, &request, Some(&inv.id))
        .await?;
    Ok(Json(json!({
        "order": crate::payments::order_json(&order, &base),
        "checkout_url": url,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceCheckout {
    success_url: Option<String>,
    cancel_url: Option<String>,
}
