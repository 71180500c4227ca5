//! The overview page: the balance (kept live by `live`), pending holds, the runway forecast and
//! the lots with what expires soon, all from `GET /v1/organizations/credits` (`docs/dashboard.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use super::format::{text, when, Amount};
use super::pages::{html, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::organization_api as org;
use crate::App;

/// One lot as shown.
pub struct LotRow {
    pub id: String,
    pub category: String,
    pub remaining: Amount,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub c: Chrome,
    pub available: Amount,
    pub balance: Amount,
    pub pending: Amount,
    pub debt: Amount,
    pub runway_days: String,
    pub average_daily: Amount,
    pub basis_days: String,
    pub lots: Vec<LotRow>,
    pub expiring: Vec<LotRow>,
}

fn lots(list: &Value, unit: &creditgate_core::money::CreditUnit) -> Vec<LotRow> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|l| LotRow {
            id: text(&l["id"]),
            category: text(&l["category"]),
            remaining: Amount::from_json(&l["remaining"], unit),
            expires: when(&l["expires_at"]),
        })
        .collect()
}

/// `GET /`.
pub async fn page(State(app): State<Arc<App>>, viewer: Viewer) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "overview";
    let axum::Json(credits) = org::credits(State(app.clone()), caller).await?;
    let unit = &app.cfg.credit_unit;
    let forecast = &credits["forecast"];
    let page = OverviewPage {
        c: chrome,
        available: Amount::from_json(&credits["available"], unit),
        balance: Amount::from_json(&credits["balance"], unit),
        pending: Amount::from_json(&credits["pending"], unit),
        debt: Amount::from_json(&credits["debt"], unit),
        runway_days: text(&forecast["days_of_runway"]),
        average_daily: Amount::from_json(&forecast["average_daily_spend"], unit),
        basis_days: text(&forecast["basis_days"]),
        lots: lots(&credits["lots"], unit),
        expiring: lots(&credits["expiring_soon"], unit),
    };
    Ok(html(StatusCode::OK, &page))
}
