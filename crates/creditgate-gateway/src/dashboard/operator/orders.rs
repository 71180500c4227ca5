//! The console's orders: every organization's, filtered by status, organization and provider,
//! with the recheck and refund buttons handed to `POST /admin/v1/orders/{id}/recheck` and
//! `…/refund` (`docs/dashboard.md`, "Operator console").

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use creditgate_core::money::CreditUnit;
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::Console;
use super::{items, Frame};
use crate::dashboard::auth::body;
use crate::dashboard::form::{see_other, Fields};
use crate::dashboard::format::{cents, text, when, Amount};
use crate::dashboard::pages::{html, FormErrors, PageResult};
use crate::error::{ApiError, JsonBody};
use crate::payments::routes as pay;
use crate::App;

/// Orders one page shows, newest first.
const PAGE_SIZE: &str = "100";
pub const STATUSES: &[&str] = &[
    "open",
    "paid",
    "credited",
    "failed",
    "expired",
    "refunded",
    "partially_refunded",
    "disputed",
];
pub const PROVIDERS: &[&str] = &["sandbox", "stripe", "manual"];

/// One order as the tables show it.
#[derive(Debug, Clone, Default)]
pub struct OrderRow {
    pub id: String,
    pub org: String,
    pub status: String,
    pub credits: Amount,
    pub amount: String,
    pub refunded: String,
    pub provider: String,
    pub method: String,
    pub created: String,
    pub receipt_url: String,
    pub failure: String,
    /// What the provider can still be asked (an order not yet settled either way).
    pub can_recheck: bool,
    /// Whether a refund can still take something back.
    pub can_refund: bool,
}

/// The rows of a list of orders.
pub fn order_rows(list: &Value, unit: &CreditUnit) -> Vec<OrderRow> {
    items(list)
        .iter()
        .map(|o| {
            let status = text(&o["status"]);
            OrderRow {
                id: text(&o["id"]),
                org: text(&o["organization_id"]),
                credits: Amount::from_json(&o["credits"], unit),
                amount: cents(o["amount_cents"].as_i64().unwrap_or(0)),
                refunded: match o["refunded_cents"].as_i64() {
                    Some(c) if c > 0 => cents(c),
                    _ => String::new(),
                },
                provider: text(&o["provider"]),
                method: text(&o["method"]),
                created: when(&o["created_at"]),
                receipt_url: text(&o["receipt_url"]),
                failure: text(&o["failure"]["message"]),
                can_recheck: matches!(status.as_str(), "open" | "paid"),
                can_refund: matches!(status.as_str(), "credited" | "partially_refunded"),
                status,
            }
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct OrderQuery {
    status: Option<String>,
    organization_id: Option<String>,
    provider: Option<String>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "operator/orders.html")]
pub struct OrdersPage {
    pub f: Frame,
    pub status: String,
    pub organization_id: String,
    pub provider: String,
    pub statuses: &'static [&'static str],
    pub providers: &'static [&'static str],
    pub rows: Vec<OrderRow>,
    pub errors: FormErrors,
}

/// `GET /operator/orders[?status=&organization_id=&provider=]`.
pub async fn list(
    State(app): State<Arc<App>>,
    console: Console,
    headers: HeaderMap,
    Query(q): Query<OrderQuery>,
) -> PageResult {
    let page = orders_page(&app, &console, &headers, q, FormErrors::default()).await;
    let (status, page) = page?;
    Ok(html(status, &page))
}

async fn orders_page(
    app: &Arc<App>,
    console: &Console,
    headers: &HeaderMap,
    q: OrderQuery,
    errors: FormErrors,
) -> Result<(StatusCode, OrdersPage), ApiError> {
    let keep = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let (status, org, provider) = (keep(&q.status), keep(&q.organization_id), keep(&q.provider));
    let filter = body(json!({"status": status, "organization_id": org, "provider": provider}))?;
    let page = body(json!({ "limit": PAGE_SIZE }))?;
    let op = console.op.clone();
    let answer = pay::admin_orders(
        State(app.clone()),
        headers.clone(),
        op,
        Query(filter),
        Query(page),
    )
    .await;
    // A filter the API refuses (an id that is not one) is said above an empty table.
    let (code, rows, errors) = match answer {
        Ok(Json(list)) => (
            StatusCode::OK,
            order_rows(&list, &app.cfg.credit_unit),
            errors,
        ),
        Err(e) => (e.status, Vec::new(), FormErrors::from_error(&e, &[])),
    };
    let page = OrdersPage {
        f: Frame::new(&console.csrf, "orders", q.done.as_deref()),
        status: status.unwrap_or_default(),
        organization_id: org.unwrap_or_default(),
        provider: provider.unwrap_or_default(),
        statuses: STATUSES,
        providers: PROVIDERS,
        rows,
        errors,
    };
    Ok((code, page))
}

/// After a button: back to the orders page, or the page with what the service refused.
async fn after(
    app: &Arc<App>,
    console: &Console,
    headers: &HeaderMap,
    id: &str,
    result: Result<(), ApiError>,
    done: &str,
) -> PageResult {
    match result {
        Ok(()) => Ok(see_other(&format!("/operator/orders?done={done}"))),
        Err(e) => {
            let mut errors = FormErrors::from_error(&e, &[]);
            errors.message = format!("{id}: {}", errors.message);
            let page = orders_page(app, console, headers, OrderQuery::default(), errors).await;
            let (_, page) = page?;
            Ok(html(e.status, &page))
        }
    }
}

/// `POST /operator/orders/{id}/recheck`.
pub async fn recheck(
    State(app): State<Arc<App>>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let (op, h) = (console.op.clone(), headers.clone());
    let result = pay::admin_recheck(State(app.clone()), h, op, Path(id.clone())).await;
    after(&app, &console, &headers, &id, result.map(|_| ()), "recheck").await
}

/// `POST /operator/orders/{id}/refund` (`credits`, empty for the lot's unspent remainder).
pub async fn refund(
    State(app): State<Arc<App>>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Fields,
) -> PageResult {
    let mut b = json!({});
    if !form.get("credits").is_empty() {
        b["credits"] = json!(form.get("credits"));
    }
    let (op, h) = (console.op.clone(), headers.clone());
    let result = pay::admin_refund(State(app.clone()), h, op, Path(id.clone()), JsonBody(b)).await;
    after(&app, &console, &headers, &id, result.map(|_| ()), "refund").await
}
