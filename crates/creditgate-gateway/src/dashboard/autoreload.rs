//! Auto-reload on the dashboard: status, the paused reason and the last attempt, the settings
//! form, and the recommendation with the forecast — "Use recommended values" posts the
//! recommended settings through the same form. Read and written through
//! `GET`/`PUT /v1/billing/auto_reload` (`reload::routes`; `docs/dashboard.md`,
//! `docs/auto-reload.md`).

use std::str::FromStr;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use creditgate_core::money::{CreditUnit, NanoCredits};
use serde_json::{json, Value};

use super::billing::{plan_rows, PlanRow};
use super::cards::{cards, CardRow};
use super::form::{see_other, Fields};
use super::format::{text, when, Amount};
use super::pages::{html, FormErrors, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::error::JsonBody;
use crate::organization_api as org;
use crate::payments::routes as pay;
use crate::reload::routes as reload;
use crate::App;

/// How many reloads a month the recommended monthly limit allows: the recommended reload is
/// about a week of spend, so five cover a month with a margin (`docs/dashboard.md`).
pub const RECOMMENDED_RELOADS_PER_MONTH: i64 = 5;

/// The settings form's values (as typed, or as saved).
#[derive(Debug, Clone, Default)]
pub struct SettingsForm {
    pub enabled: bool,
    pub threshold: String,
    pub plan_id: String,
    pub amount: String,
    pub payment_method_id: String,
    pub monthly_limit: String,
}

/// The recommendation as shown, with the monthly limit the one-click form saves.
pub struct Recommended {
    pub threshold: Amount,
    pub amount: Amount,
    pub plan_id: String,
    pub plan_name: String,
    pub monthly_limit: Amount,
    pub average: Amount,
    pub basis_days: String,
}

#[derive(Template)]
#[template(path = "auto_reload.html")]
pub struct ReloadPage {
    pub c: Chrome,
    pub status: String,
    pub paused_reason: String,
    pub retry_at: String,
    pub last_at: String,
    pub last_outcome: String,
    pub last_order: String,
    pub form: SettingsForm,
    pub errors: FormErrors,
    pub plans: Vec<PlanRow>,
    pub cards: Vec<CardRow>,
    pub recommended: Option<Recommended>,
    pub runway_days: String,
    pub saved: bool,
}

fn saved_form(s: &Value) -> SettingsForm {
    SettingsForm {
        enabled: s["enabled"].as_bool().unwrap_or(false),
        threshold: text(&s["threshold"]),
        plan_id: text(&s["plan_id"]),
        amount: text(&s["amount"]),
        payment_method_id: text(&s["payment_method_id"]),
        monthly_limit: text(&s["monthly_limit"]),
    }
}

fn recommended(r: &Value, plans: &[PlanRow], unit: &CreditUnit) -> Option<Recommended> {
    let amount = NanoCredits::from_str(r["amount"].as_str()?).ok()?;
    let limit = amount.checked_mul(RECOMMENDED_RELOADS_PER_MONTH).ok()?;
    let plan_id = text(&r["plan_id"]);
    Some(Recommended {
        threshold: Amount::from_json(&r["threshold"], unit),
        amount: Amount::of(amount, unit),
        plan_name: plans
            .iter()
            .find(|p| p.id == plan_id)
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        plan_id,
        monthly_limit: Amount::of(limit, unit),
        average: Amount::from_json(&r["average_daily_spend"], unit),
        basis_days: text(&r["basis_days"]),
    })
}

/// The page around `form` and `errors` (the saved settings when `form` is `None`).
async fn reload_page(
    app: &Arc<App>,
    viewer: Viewer,
    form: Option<(SettingsForm, FormErrors)>,
    saved: bool,
) -> Result<ReloadPage, crate::error::ApiError> {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "auto-reload";
    let unit = &app.cfg.credit_unit;
    let Json(s) = reload::get_settings(State(app.clone()), caller.clone()).await?;
    let Json(plans) = pay::plans(State(app.clone()), caller.clone()).await?;
    let Json(credits) = org::credits(State(app.clone()), caller.clone()).await?;
    let plans = plan_rows(&plans, unit);
    let (form, errors) = form.unwrap_or_else(|| (saved_form(&s), FormErrors::default()));
    let last = &s["last_attempt"];
    Ok(ReloadPage {
        status: text(&s["status"]),
        paused_reason: text(&s["paused_reason"]),
        retry_at: when(&s["retry_at"]),
        last_at: when(&last["at"]),
        last_outcome: text(&last["outcome"]),
        last_order: text(&last["order_id"]),
        recommended: recommended(&s["recommendation"], &plans, unit),
        runway_days: text(&credits["forecast"]["days_of_runway"]),
        cards: cards(app, caller)
            .await?
            .into_iter()
            .filter(|c| c.status == "active")
            .collect(),
        c: chrome,
        form,
        errors,
        plans,
        saved,
    })
}

/// `GET /auto-reload[?saved=1]`.
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> PageResult {
    let saved = q.as_deref() == Some("saved=1");
    Ok(html(
        StatusCode::OK,
        &reload_page(&app, viewer, None, saved).await?,
    ))
}

const FIELDS: [&str; 5] = [
    "threshold",
    "monthly_limit",
    "amount",
    "plan_id",
    "payment_method",
];

fn typed(form: &Fields) -> SettingsForm {
    SettingsForm {
        enabled: form.get("enabled") == "on",
        threshold: form.get("threshold").to_owned(),
        plan_id: form.get("plan_id").to_owned(),
        amount: form.get("amount").to_owned(),
        payment_method_id: form.get("payment_method_id").to_owned(),
        monthly_limit: form.get("monthly_limit").to_owned(),
    }
}

/// The `PUT` body of the form; a required field left blank is named before asking the service.
fn body(f: &SettingsForm) -> Result<Value, FormErrors> {
    for (name, value) in [
        ("threshold", &f.threshold),
        ("monthly_limit", &f.monthly_limit),
    ] {
        if value.is_empty() {
            return Err(FormErrors::on_field(name, "Required: a number of credits."));
        }
    }
    let mut b = json!({
        "enabled": f.enabled,
        "threshold": f.threshold,
        "monthly_limit": f.monthly_limit,
    });
    if !f.plan_id.is_empty() {
        b["plan_id"] = json!(f.plan_id);
    } else if !f.amount.is_empty() {
        b["amount"] = json!(f.amount);
    } else {
        return Err(FormErrors::on_field(
            "amount",
            "Choose a plan or give an amount of credits.",
        ));
    }
    if !f.payment_method_id.is_empty() {
        b["payment_method_id"] = json!(f.payment_method_id);
    }
    Ok(b)
}

/// `POST /auto-reload`: `PUT /v1/billing/auto_reload` with the form's settings; a refusal is
/// shown next to its field with what was typed kept.
pub async fn save(State(app): State<Arc<App>>, viewer: Viewer, fields: Fields) -> PageResult {
    let form = typed(&fields);
    let errors = match body(&form) {
        Err(errors) => errors,
        Ok(b) => match reload::put_settings(State(app.clone()), viewer.caller.clone(), JsonBody(b))
            .await
        {
            Ok(_) => return Ok(see_other("/auto-reload?saved=1")),
            Err(e) if e.status == StatusCode::BAD_REQUEST => FormErrors::from_error(&e, &FIELDS),
            Err(e) => return Err(e.into()),
        },
    };
    let page = reload_page(&app, viewer, Some((form, errors)), false).await?;
    Ok(html(StatusCode::BAD_REQUEST, &page))
}
