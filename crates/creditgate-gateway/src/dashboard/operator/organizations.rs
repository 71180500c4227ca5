//! The console's organizations: search with balances, one organization's lots and orders, and
//! its two forms — grant credits and record a manual payment — each handed to the `/admin/v1`
//! handler of the same name (`docs/dashboard.md`, "Operator console").

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use creditgate_core::ids::OrganizationId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::orders::{order_rows, OrderRow};
use super::plans::{plan_rows, PlanRow};
use super::session::Console;
use super::{cents_of, items, Frame};
use crate::account::credits_of;
use crate::dashboard::auth::body;
use crate::dashboard::form::{see_other, Fields};
use crate::dashboard::format::{text, when, Amount};
use crate::dashboard::pages::{html, FormErrors, PageResult};
use crate::error::{ApiError, JsonBody};
use crate::payments::routes as pay;
use crate::{operator_api, App};

/// Organizations one search page shows (the API's search answers up to 1000).
const PAGE_SIZE: &str = "100";
/// Orders shown on an organization's page (the orders page has them all).
const RECENT_ORDERS: &str = "20";
const GRANT_FIELDS: &[&str] = &["amount", "category", "expires_in_days", "reference", "memo"];
const PAYMENT_FIELDS: &[&str] = &["method", "reference", "amount", "plan_id", "credits"];

/// One organization with its balance.
#[derive(Debug, Clone, Default)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub owner: String,
    pub created: String,
    pub available: Amount,
    pub balance: Amount,
    pub debt: Amount,
}

#[derive(Template)]
#[template(path = "operator/organizations.html")]
pub struct OrganizationsPage {
    pub f: Frame,
    pub q: String,
    pub rows: Vec<OrgRow>,
    pub more: bool,
}

#[derive(Debug, Clone, Default)]
pub struct LotRow {
    pub id: String,
    pub category: String,
    pub remaining: Amount,
    pub expires: String,
}

/// What the two forms of an organization's page hold: the values typed and what went wrong.
#[derive(Debug, Default)]
pub struct OrgForms {
    pub grant: Fields,
    pub grant_errors: FormErrors,
    pub payment: Fields,
    pub payment_errors: FormErrors,
}

#[derive(Template)]
#[template(path = "operator/organization.html")]
pub struct OrganizationPage {
    pub f: Frame,
    pub org: OrgRow,
    pub lots: Vec<LotRow>,
    pub orders: Vec<OrderRow>,
    pub plans: Vec<PlanRow>,
    pub forms: OrgForms,
    /// A fresh reference for the grant form, so submitting it twice grants once.
    pub grant_reference: String,
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    done: Option<String>,
}

async fn org_row(app: &App, org: &Value) -> Result<OrgRow, ApiError> {
    let id = text(&org["id"]);
    let org_id = OrganizationId::parse(&id).map_err(|_| ApiError::not_found("No organization."))?;
    let credits = credits_of(app, &org_id).await?;
    let unit = &app.cfg.credit_unit;
    Ok(OrgRow {
        name: text(&org["name"]),
        status: text(&org["status"]),
        owner: text(&org["owner"]["email"]),
        created: when(&org["created_at"]),
        available: Amount::from_json(&credits["available"], unit),
        balance: Amount::from_json(&credits["balance"], unit),
        debt: Amount::from_json(&credits["debt"], unit),
        id,
    })
}

/// `GET /operator[?q=]`: organizations by id or name, with their balances.
pub async fn list(
    State(app): State<Arc<App>>,
    console: Console,
    Query(s): Query<SearchQuery>,
) -> PageResult {
    let q = s.q.unwrap_or_default();
    let search = body(json!({ "q": q }))?;
    let page = body(json!({ "limit": PAGE_SIZE }))?;
    let op = console.op.clone();
    let Json(list) = operator_api::list(State(app.clone()), op, Query(search), Query(page)).await?;
    let mut rows = Vec::new();
    for org in items(&list) {
        rows.push(org_row(&app, &org).await?);
    }
    let page = OrganizationsPage {
        f: Frame::new(&console.csrf, "organizations", s.done.as_deref()),
        q,
        rows,
        more: list["has_more"] == json!(true),
    };
    Ok(html(StatusCode::OK, &page))
}

/// `GET /operator/organizations/{id}`.
pub async fn show(
    State(app): State<Arc<App>>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(s): Query<SearchQuery>,
) -> PageResult {
    let f = Frame::new(&console.csrf, "organizations", s.done.as_deref());
    let page = org_page(&app, &console, &headers, &id, f, OrgForms::default()).await;
    Ok(html(StatusCode::OK, &page?))
}

async fn org_page(
    app: &Arc<App>,
    console: &Console,
    headers: &HeaderMap,
    id: &str,
    f: Frame,
    forms: OrgForms,
) -> Result<OrganizationPage, ApiError> {
    let op = console.op.clone();
    let Json(org) = operator_api::get(State(app.clone()), op.clone(), Path(id.to_owned())).await?;
    let row = org_row(app, &org).await?;
    let org_id =
        OrganizationId::parse(&row.id).map_err(|_| ApiError::not_found("No organization."))?;
    let credits = credits_of(app, &org_id).await?;
    let unit = &app.cfg.credit_unit;
    let lots = items(&json!({"data": credits["lots"]}))
        .iter()
        .map(|l| LotRow {
            id: text(&l["id"]),
            category: text(&l["category"]),
            remaining: Amount::from_json(&l["remaining"], unit),
            expires: when(&l["expires_at"]),
        })
        .collect();
    let filter = body(json!({ "organization_id": row.id }))?;
    let page = body(json!({ "limit": RECENT_ORDERS }))?;
    let Json(orders) = pay::admin_orders(
        State(app.clone()),
        headers.clone(),
        op.clone(),
        Query(filter),
        Query(page),
    )
    .await?;
    let everything = body(json!({ "limit": "1000" }))?;
    let Json(plans) = pay::admin_plans(State(app.clone()), op, Query(everything)).await?;
    Ok(OrganizationPage {
        f,
        org: row,
        lots,
        orders: order_rows(&orders, unit),
        plans: plan_rows(&plans, unit)
            .into_iter()
            .filter(|p| !p.archived)
            .collect(),
        forms,
        grant_reference: crate::ids::fresh("grant"),
    })
}

/// The page again with a form's error next to its field, in the error's status.
async fn refused(
    app: &Arc<App>,
    console: &Console,
    headers: &HeaderMap,
    id: &str,
    forms: OrgForms,
    status: StatusCode,
) -> PageResult {
    let f = Frame::new(&console.csrf, "organizations", None);
    let page = org_page(app, console, headers, id, f, forms).await;
    Ok(html(status, &page?))
}

fn grant_body(form: &Fields) -> Result<Value, ApiError> {
    let days = form.get("expires_in_days");
    let expires_in_days = match days {
        "" => Value::Null,
        d => json!(d.parse::<i64>().map_err(|_| ApiError::invalid_request(
            "expires_in_days: a whole number of days, or empty for credits that never expire"
        ))?),
    };
    Ok(json!({
        "amount": form.get("amount"),
        "category": form.get("category"),
        "expires_in_days": expires_in_days,
        "reference": form.get("reference"),
        "memo": form.opt("memo"),
    }))
}

/// `POST /operator/organizations/{id}/grants`: `POST /admin/v1/organizations/{id}/grants`.
pub async fn grant(
    State(app): State<Arc<App>>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Fields,
) -> PageResult {
    let result = match grant_body(&form).and_then(body) {
        Ok(b) => {
            let op = console.op.clone();
            operator_api::grant(State(app.clone()), op, Path(id.clone()), JsonBody(b)).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(Json(lot)) => Ok(done(&lot["organization_id"], "grant")),
        Err(e) => {
            let forms = OrgForms {
                grant_errors: FormErrors::from_error(&e, GRANT_FIELDS),
                grant: form,
                ..OrgForms::default()
            };
            refused(&app, &console, &headers, &id, forms, e.status).await
        }
    }
}

fn payment_body(form: &Fields) -> Result<Value, ApiError> {
    let amount_cents = cents_of(form.get("amount"), "amount")?;
    let mut b = json!({
        "method": form.get("method"),
        "reference": form.get("reference"),
        "amount_cents": amount_cents,
        "currency": "usd",
    });
    // A plan when one is chosen, else the credits typed (the handler refuses neither or both).
    match form.get("plan_id") {
        "" => b["credits"] = json!(form.get("credits")),
        plan => b["plan_id"] = json!(plan),
    }
    Ok(b)
}

/// `POST /operator/organizations/{id}/payments`: `POST /admin/v1/organizations/{id}/payments`.
pub async fn payment(
    State(app): State<Arc<App>>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Fields,
) -> PageResult {
    let result = match payment_body(&form) {
        Ok(b) => {
            let (op, h) = (console.op.clone(), headers.clone());
            pay::admin_record_payment(State(app.clone()), h, op, Path(id.clone()), JsonBody(b))
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(Json(order)) => Ok(done(&order["organization_id"], "payment")),
        Err(e) => {
            let forms = OrgForms {
                payment_errors: FormErrors::from_error(&e, PAYMENT_FIELDS),
                payment: form,
                ..OrgForms::default()
            };
            refused(&app, &console, &headers, &id, forms, e.status).await
        }
    }
}

/// Back to the organization's page (its id as the service answered it) with a confirmation.
fn done(org: &Value, what: &str) -> Response {
    match OrganizationId::parse(&text(org)) {
        Ok(id) => see_other(&format!("/operator/organizations/{id}?done={what}")),
        Err(_) => see_other(&format!("/operator?done={what}")),
    }
}
