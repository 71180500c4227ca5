//! Invoices on the dashboard, for organizations on a credit line (`docs/credit-lines.md`): the
//! line, each monthly invoice with its printable page, and paying an open one through the
//! provider's checkout — through the `/v1/billing/invoices*` handlers of `invoices::routes`
//! and `GET /v1/credits`'s `account::credits_of` (`docs/dashboard.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::form::see_other;
use super::format::{cents, text, when, Amount};
use super::pages::{html, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::error::{ApiError, JsonBody};
use crate::invoices::routes as inv;
use crate::lists::{ListQuery, MAX_PAGE};
use crate::App;

/// One invoice as listed.
pub struct InvoiceRow {
    pub id: String,
    pub number: String,
    pub period: String,
    pub credits: Amount,
    pub subtotal: String,
    pub tax: String,
    pub total: String,
    pub status: String,
    pub due: String,
    pub paid: String,
    /// The printable invoice (`GET /v1/billing/invoices/{id}/html`).
    pub url: String,
    /// The API takes a checkout for it (an open invoice).
    pub payable: bool,
}

/// The organization's credit line, as `GET /v1/credits` shows it.
pub struct Line {
    pub invoiced: bool,
    pub limit: Amount,
    pub debt: Amount,
    pub suspended: String,
}

#[derive(Template)]
#[template(path = "invoices.html")]
pub struct InvoicesPage {
    pub c: Chrome,
    pub line: Option<Line>,
    pub invoices: Vec<InvoiceRow>,
    /// The invoice whose pay button was refused, and why.
    pub error_for: String,
    pub error: String,
    /// The role may not see invoices: whom to ask instead.
    pub refused: bool,
}

fn day_of(v: &Value) -> String {
    text(v).get(..10).unwrap_or_default().to_owned()
}

fn invoice_row(i: &Value, unit: &creditgate_core::money::CreditUnit) -> InvoiceRow {
    let end = text(&i["period_end"]);
    // The period ends at the next month's midnight: the last day shown is the day before.
    let last = creditgate_core::clock::Timestamp::parse_rfc3339(&end)
        .map(|t| super::usage::day(t.plus_millis(-super::usage::DAY_MS)))
        .unwrap_or(end);
    let status = text(&i["status"]);
    let id = text(&i["id"]);
    let tax = i["tax_cents"].as_i64().unwrap_or(0);
    InvoiceRow {
        number: text(&i["number"]),
        period: format!("{} – {last}", day_of(&i["period_start"])),
        credits: Amount::from_json(&i["credits"], unit),
        subtotal: cents(i["subtotal_cents"].as_i64().unwrap_or(0)),
        tax: if tax == 0 {
            "No tax".to_owned()
        } else {
            cents(tax)
        },
        total: cents(i["amount_cents"].as_i64().unwrap_or(0)),
        due: day_of(&i["due_at"]),
        paid: when(&i["paid_at"]),
        url: format!("/v1/billing/invoices/{id}/html"),
        payable: status == "open",
        status,
        id,
    }
}

/// The invoices page; `error`: a pay button's refusal, shown in its invoice's row.
async fn invoices_page(
    app: &Arc<App>,
    headers: HeaderMap,
    viewer: Viewer,
    error: Option<(String, ApiError)>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "invoices";
    let mut page = InvoicesPage {
        c: chrome,
        line: None,
        invoices: Vec::new(),
        error_for: String::new(),
        error: String::new(),
        refused: false,
    };
    let q = ListQuery {
        limit: Some(MAX_PAGE.to_string()),
        ..ListQuery::default()
    };
    let list = match inv::list(State(app.clone()), headers, caller.clone(), Query(q)).await {
        Ok(Json(list)) => list,
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            page.refused = true;
            return Ok(html(StatusCode::OK, &page));
        }
        Err(e) => return Err(e.into()),
    };
    let unit = &app.cfg.credit_unit;
    page.invoices = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| invoice_row(i, unit))
        .collect();
    let credits = crate::account::credits_of(app, &caller.org).await?;
    page.line = Some(Line {
        invoiced: credits["billing_mode"] == "invoiced",
        limit: Amount::from_json(&credits["credit_limit"], unit),
        debt: Amount::from_json(&credits["debt"], unit),
        suspended: when(&credits["credit_line_suspended_at"]),
    });
    let status = match error {
        // A refusal about an invoice not listed (another organization's id) is the error page.
        Some((id, e)) if !page.invoices.iter().any(|i| i.id == id) => return Err(e.into()),
        Some((id, e)) => {
            page.error_for = id;
            page.error = e.message;
            e.status
        }
        None => StatusCode::OK,
    };
    Ok(html(status, &page))
}

/// `GET /invoices` (owner, admin and billing; others are told whom to ask).
pub async fn page(State(app): State<Arc<App>>, headers: HeaderMap, viewer: Viewer) -> PageResult {
    invoices_page(&app, headers, viewer, None).await
}

/// `POST /invoices/{id}/checkout`: `POST /v1/billing/invoices/{id}/checkout`, then the
/// provider's checkout page, which comes back here.
pub async fn checkout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let base = app.payments.base_url(&app, &headers);
    let back = format!("{base}/invoices");
    let request = serde_json::from_value(json!({"success_url": back, "cancel_url": back}))
        .map_err(|e| ApiError::internal(format!("invoice checkout request: {e}")))?;
    let caller = viewer.caller.clone();
    let answer = inv::checkout(
        State(app.clone()),
        headers.clone(),
        caller,
        Path(id.clone()),
        JsonBody(request),
    )
    .await;
    match answer {
        Ok(Json(answer)) => Ok(see_other(&text(&answer["checkout_url"]))),
        Err(e) if e.status == StatusCode::FORBIDDEN => Err(e.into()),
        Err(e) => invoices_page(&app, headers, viewer, Some((id, e))).await,
    }
}
