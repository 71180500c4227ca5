//! Buying credits on the dashboard: the plans and the custom amount, the billing profile, the
//! checkout (through the provider's page and back to the orders) and the orders with their
//! receipts — each through the `/v1/billing/*` handler of `payments::routes`
//! (`docs/dashboard.md`, `docs/payments.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::form::{see_other, Fields};
use super::format::{cents, text, when, Amount};
use super::pages::{html, FormErrors, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::error::JsonBody;
use crate::lists::ListQuery;
use crate::payments::routes as pay;
use crate::App;

/// A plan on sale.
pub struct PlanRow {
    pub id: String,
    pub name: String,
    pub credits: Amount,
    pub price: String,
    pub expires: String,
}

/// The billing profile's fields, as the form shows them.
#[derive(Default)]
pub struct ProfileForm {
    pub name: String,
    pub email: String,
    pub country: String,
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub state: String,
    pub tax_id: String,
}

#[derive(Template)]
#[template(path = "buy.html")]
pub struct BuyPage {
    pub c: Chrome,
    pub plans: Vec<PlanRow>,
    pub custom_min: String,
    pub custom_max: String,
    pub custom_cents: String,
    pub custom_credits: String,
    pub profile: ProfileForm,
    pub buy_errors: FormErrors,
    pub profile_errors: FormErrors,
    pub saved: bool,
}

const PROFILE_FIELDS: [&str; 9] = [
    "name",
    "email",
    "country",
    "line1",
    "line2",
    "city",
    "postal_code",
    "state",
    "tax_id",
];

fn profile_form(p: &Value) -> ProfileForm {
    let a = &p["address"];
    ProfileForm {
        name: text(&p["name"]),
        email: text(&p["email"]),
        country: text(&p["country"]),
        line1: text(&a["line1"]),
        line2: text(&a["line2"]),
        city: text(&a["city"]),
        postal_code: text(&a["postal_code"]),
        state: text(&a["state"]),
        tax_id: text(&p["tax_id"]),
    }
}

pub fn plan_rows(plans: &Value, unit: &creditgate_core::money::CreditUnit) -> Vec<PlanRow> {
    plans["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| PlanRow {
            id: text(&p["id"]),
            name: text(&p["name"]),
            credits: Amount::from_json(&p["credits"], unit),
            price: cents(p["amount_cents"].as_i64().unwrap_or(0)),
            expires: text(&p["expires_in_days"]),
        })
        .collect()
}

/// The buy page, with what the member typed and what went wrong.
async fn buy_page(
    app: &Arc<App>,
    viewer: Viewer,
    mut page: BuyPage,
    status: StatusCode,
) -> PageResult {
    let Json(plans) = pay::plans(State(app.clone()), viewer.caller.clone()).await?;
    if !page.saved && page.profile_errors.message.is_empty() {
        let Json(p) = pay::get_profile(State(app.clone()), viewer.caller).await?;
        page.profile = profile_form(&p);
    }
    page.plans = plan_rows(&plans, &app.cfg.credit_unit);
    let custom = &plans["custom"];
    page.custom_min = text(&custom["min_credits"]);
    page.custom_max = text(&custom["max_credits"]);
    page.custom_cents = text(&custom["cents_per_credit"]);
    Ok(html(status, &page))
}

fn empty_buy(mut c: Chrome) -> BuyPage {
    c.here = "buy";
    BuyPage {
        c,
        plans: Vec::new(),
        custom_min: String::new(),
        custom_max: String::new(),
        custom_cents: String::new(),
        custom_credits: String::new(),
        profile: ProfileForm::default(),
        buy_errors: FormErrors::default(),
        profile_errors: FormErrors::default(),
        saved: false,
    }
}

/// `GET /buy`.
pub async fn page(State(app): State<Arc<App>>, viewer: Viewer) -> PageResult {
    let page = empty_buy(viewer.chrome.clone());
    buy_page(&app, viewer, page, StatusCode::OK).await
}

/// `POST /buy` (`plan_id` or `credits`): `POST /v1/billing/checkout`, then the provider's
/// checkout page, which comes back to the orders.
pub async fn checkout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    viewer: Viewer,
    form: Fields,
) -> PageResult {
    let base = app.payments.base_url(&app, &headers);
    let mut request = json!({"success_url": format!("{base}/orders"),
        "cancel_url": format!("{base}/buy")});
    match (form.get("plan_id"), form.get("credits")) {
        ("", credits) => request["credits"] = json!(credits),
        (plan, _) => request["plan_id"] = json!(plan),
    }
    let caller = viewer.caller.clone();
    match pay::checkout(State(app.clone()), headers, caller, JsonBody(request)).await {
        Ok(Json(answer)) => Ok(see_other(&text(&answer["checkout_url"]))),
        Err(e) => {
            let mut page = empty_buy(viewer.chrome.clone());
            page.custom_credits = form.get("credits").to_owned();
            // A custom amount's error sits by its field; a plan's (no country yet) above all.
            let fields: &[&'static str] = match form.get("credits") {
                "" => &[],
                _ => &["credits"],
            };
            page.buy_errors = FormErrors::from_error(&e, fields);
            buy_page(&app, viewer, page, e.status).await
        }
    }
}

/// `POST /billing-profile`: `PUT /v1/billing/profile`.
pub async fn save_profile(State(app): State<Arc<App>>, viewer: Viewer, form: Fields) -> PageResult {
    let body = json!({
        "name": form.opt("name"), "email": form.opt("email"), "country": form.opt("country"),
        "address": {"line1": form.opt("line1"), "line2": form.opt("line2"),
            "city": form.opt("city"), "postal_code": form.opt("postal_code"),
            "state": form.opt("state")},
        "tax_id": form.opt("tax_id"),
    });
    let caller = viewer.caller.clone();
    let mut page = empty_buy(viewer.chrome.clone());
    page.profile = profile_form(&body);
    let status = match pay::put_profile(State(app.clone()), caller, JsonBody(body)).await {
        Ok(_) => {
            page.saved = true;
            StatusCode::OK
        }
        Err(e) => {
            page.profile_errors = FormErrors::from_error(&e, &PROFILE_FIELDS);
            e.status
        }
    };
    buy_page(&app, viewer, page, status).await
}

/// One order as listed.
pub struct OrderRow {
    pub id: String,
    pub status: String,
    pub credits: Amount,
    pub price: String,
    pub provider: String,
    pub created: String,
    pub receipt_url: String,
    pub failure: String,
}

fn order_row(o: &Value, unit: &creditgate_core::money::CreditUnit) -> OrderRow {
    OrderRow {
        id: text(&o["id"]),
        status: text(&o["status"]),
        credits: Amount::from_json(&o["credits"], unit),
        price: cents(o["amount_cents"].as_i64().unwrap_or(0)),
        provider: text(&o["provider"]),
        created: when(&o["created_at"]),
        receipt_url: text(&o["receipt_url"]),
        failure: text(&o["failure"]["message"]),
    }
}

#[derive(Template)]
#[template(path = "orders.html")]
pub struct OrdersPage {
    pub c: Chrome,
    pub orders: Vec<OrderRow>,
}

/// `GET /orders`: `GET /v1/billing/orders`.
pub async fn orders(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "orders";
    let Json(list) = pay::list_orders(State(app.clone()), headers, caller, Query(q)).await?;
    let unit = &app.cfg.credit_unit;
    let orders = list["data"].as_array().into_iter().flatten();
    let page = OrdersPage {
        c: chrome,
        orders: orders.map(|o| order_row(o, unit)).collect(),
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "order.html")]
pub struct OrderPage {
    pub c: Chrome,
    pub o: OrderRow,
    pub paid: String,
    pub tax: OrderTax,
}

/// How an order's total splits (`docs/tax.md`), and the tax ids printed on its receipt.
pub struct OrderTax {
    pub subtotal: String,
    pub label: String,
    pub tax: String,
    pub buyer_tax_id: String,
    pub seller_tax_id: String,
}

fn order_tax(o: &Value, seller_tax_id: Option<&str>) -> OrderTax {
    OrderTax {
        subtotal: cents(o["subtotal_cents"].as_i64().unwrap_or(0)),
        label: text(&o["tax_label"]),
        tax: cents(o["tax_cents"].as_i64().unwrap_or(0)),
        buyer_tax_id: text(&o["buyer_tax_id"]),
        seller_tax_id: seller_tax_id.unwrap_or_default().to_owned(),
    }
}

/// `GET /orders/{id}`: `GET /v1/billing/orders/{id}`.
pub async fn order(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "orders";
    let Json(o) = pay::get_order(State(app.clone()), headers, caller, Path(id)).await?;
    let page = OrderPage {
        c: chrome,
        o: order_row(&o, &app.cfg.credit_unit),
        paid: when(&o["paid_at"]),
        tax: order_tax(&o, app.payments.cfg.seller.tax_id.as_deref()),
    };
    Ok(html(StatusCode::OK, &page))
}
