//! The console's plans: every plan, archived ones too, a form to create one and a form per plan
//! to edit or archive it, handed to `POST /admin/v1/plans` and `…/plans/{id}`
//! (`docs/dashboard.md`, "Operator console").

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use creditgate_core::money::CreditUnit;
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::Console;
use super::{cents_of, items, Frame};
use crate::dashboard::auth::body;
use crate::dashboard::form::{see_other, Fields};
use crate::dashboard::format::{cents, text, Amount};
use crate::dashboard::pages::{html, FormErrors, PageResult};
use crate::error::{ApiError, JsonBody};
use crate::payments::routes as pay;
use crate::App;

const PLAN_FIELDS: &[&str] = &["id", "name", "credits", "amount", "expires_in_days"];

/// One plan as the table and its edit form show it.
#[derive(Debug, Clone, Default)]
pub struct PlanRow {
    pub id: String,
    pub name: String,
    pub credits: Amount,
    /// The price as typed in the edit form: `50.00`.
    pub price: String,
    /// The price as shown: `$50.00`.
    pub amount: String,
    pub expires_in_days: String,
    pub archived: bool,
}

pub fn plan_rows(list: &Value, unit: &CreditUnit) -> Vec<PlanRow> {
    items(list)
        .iter()
        .map(|p| {
            let c = p["amount_cents"].as_i64().unwrap_or(0);
            PlanRow {
                id: text(&p["id"]),
                name: text(&p["name"]),
                credits: Amount::from_json(&p["credits"], unit),
                price: format!("{}.{:02}", c / 100, c % 100),
                amount: cents(c),
                expires_in_days: text(&p["expires_in_days"]),
                archived: p["archived"] == json!(true),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "operator/plans.html")]
pub struct PlansPage {
    pub f: Frame,
    pub rows: Vec<PlanRow>,
    /// The form that was refused (`new` or a plan's id), its values and its error.
    pub refused: String,
    pub form: Fields,
    pub errors: FormErrors,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

async fn plans_page(app: &Arc<App>, console: &Console, f: Frame) -> Result<PlansPage, ApiError> {
    let everything = body(json!({ "limit": "1000" }))?;
    let Json(plans) =
        pay::admin_plans(State(app.clone()), console.op.clone(), Query(everything)).await?;
    Ok(PlansPage {
        f,
        rows: plan_rows(&plans, &app.cfg.credit_unit),
        refused: String::new(),
        form: Fields::default(),
        errors: FormErrors::default(),
    })
}

/// `GET /operator/plans`.
pub async fn list(
    State(app): State<Arc<App>>,
    console: Console,
    Query(d): Query<Done>,
) -> PageResult {
    let f = Frame::new(&console.csrf, "plans", d.done.as_deref());
    Ok(html(StatusCode::OK, &plans_page(&app, &console, f).await?))
}

/// The API body of a plan form: every field the form has; empty days mean "never expires".
fn plan_body(form: &Fields, new: bool) -> Result<Value, ApiError> {
    let days = match form.get("expires_in_days") {
        "" => Value::Null,
        d => json!(d.parse::<u32>().map_err(|_| ApiError::invalid_request(
            "expires_in_days: a whole number of days, or empty for credits that never expire"
        ))?),
    };
    let mut b = json!({
        "name": form.get("name"),
        "credits": form.get("credits"),
        "amount_cents": cents_of(form.get("amount"), "amount")?,
        "expires_in_days": days,
        "archived": form.get("archived") == "true",
    });
    if new {
        b["id"] = json!(form.get("id"));
    }
    Ok(b)
}

async fn answer(
    app: &Arc<App>,
    console: &Console,
    which: &str,
    form: Fields,
    result: Result<Json<Value>, ApiError>,
) -> PageResult {
    match result {
        Ok(_) => Ok(see_other("/operator/plans?done=plan")),
        Err(e) => {
            let f = Frame::new(&console.csrf, "plans", None);
            let mut page = plans_page(app, console, f).await?;
            page.refused = which.to_owned();
            page.errors = FormErrors::from_error(&e, PLAN_FIELDS);
            page.form = form;
            Ok(html(e.status, &page))
        }
    }
}

/// `POST /operator/plans`: `POST /admin/v1/plans`.
pub async fn create(State(app): State<Arc<App>>, console: Console, form: Fields) -> PageResult {
    let result = match plan_body(&form, true) {
        Ok(b) => pay::admin_create_plan(State(app.clone()), console.op.clone(), JsonBody(b)).await,
        Err(e) => Err(e),
    };
    answer(&app, &console, "new", form, result).await
}

/// `POST /operator/plans/{id}`: `POST /admin/v1/plans/{id}` (edit, archive, restore).
pub async fn update(
    State(app): State<Arc<App>>,
    console: Console,
    Path(id): Path<String>,
    form: Fields,
) -> PageResult {
    let result = match plan_body(&form, false) {
        Ok(b) => {
            let op = console.op.clone();
            pay::admin_update_plan(State(app.clone()), op, Path(id.clone()), JsonBody(b)).await
        }
        Err(e) => Err(e),
    };
    answer(&app, &console, &id, form, result).await
}
