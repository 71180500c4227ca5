//! Payment methods on the dashboard: the saved cards (brand, last four, expiry), adding one
//! through the provider's setup page (the sandbox's, or Stripe's in setup mode) and removing one —
//! each through the `/v1/billing/payment_methods` handlers of `payments::saved`
//! (`docs/dashboard.md`, `docs/payments.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::form::see_other;
use super::format::{text, when};
use super::pages::{html, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::caller::OrgCaller;
use crate::error::ApiError;
use crate::payments::saved;
use crate::App;

/// One saved card (or a setup not finished) as shown.
pub struct CardRow {
    pub id: String,
    pub brand: String,
    pub last4: String,
    pub expiry: String,
    pub status: String,
    pub failure: String,
    pub added: String,
}

fn card_row(m: &Value) -> CardRow {
    let expiry = match (m["exp_month"].as_i64(), m["exp_year"].as_i64()) {
        (Some(month), Some(year)) => format!("{month:02}/{year}"),
        _ => String::new(),
    };
    CardRow {
        id: text(&m["id"]),
        brand: text(&m["brand"]),
        last4: text(&m["last4"]),
        expiry,
        status: text(&m["status"]),
        failure: text(&m["failure"]),
        added: when(&m["created_at"]),
    }
}

/// The organization's payment methods, newest first, removed ones left out.
pub async fn cards(app: &Arc<App>, caller: OrgCaller) -> Result<Vec<CardRow>, ApiError> {
    let Json(list) = saved::list(State(app.clone()), caller).await?;
    let mut rows: Vec<CardRow> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(card_row)
        .filter(|c| c.status != "removed")
        .collect();
    rows.reverse();
    Ok(rows)
}

#[derive(Template)]
#[template(path = "payment_methods.html")]
pub struct CardsPage {
    pub c: Chrome,
    pub cards: Vec<CardRow>,
    pub done: String,
}

#[derive(Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

/// `GET /payment-methods[?done=removed|added]` (`added`: back from the provider's setup page).
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(q): Query<Done>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "payment-methods";
    let page = CardsPage {
        c: chrome,
        cards: cards(&app, caller).await?,
        done: match q.done.as_deref() {
            Some(done @ ("removed" | "added")) => done.to_owned(),
            _ => String::new(),
        },
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /payment-methods`: starts saving a card and sends the browser to the provider's page
/// (`POST /v1/billing/payment_methods`).
pub async fn add(State(app): State<Arc<App>>, headers: HeaderMap, viewer: Viewer) -> PageResult {
    let Json(started) = saved::add(State(app), headers, viewer.caller).await?;
    let url = text(&started["setup_url"]);
    if url.is_empty() {
        return Err(ApiError::internal("the provider gave no page to enter the card").into());
    }
    Ok(see_other(&url))
}

/// `POST /payment-methods/{id}/remove` (`DELETE /v1/billing/payment_methods/{id}`).
pub async fn remove(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let Json(_) = saved::remove(State(app), viewer.caller, Path(id)).await?;
    Ok(see_other("/payment-methods?done=removed"))
}
