//! Webhooks on the dashboard: the organization's endpoints, registering one (its signing secret
//! shown this once, with a copy button), deleting one behind a confirm step, and an endpoint's
//! delivery log with every attempt and "Retry now" — each through the
//! `/v1/organizations/webhooks` handlers (`notify::webhooks`), so the SSRF guard, the event
//! types and the owner/admin rule are the service's (`docs/dashboard.md`, `docs/alerts.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::form::{see_other, Fields};
use super::format::{text, when};
use super::pages::{html, FormErrors, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::caller::OrgCaller;
use crate::error::{ApiError, JsonBody};
use crate::lists::ListQuery;
use crate::notify::{webhooks as api, EVENT_TYPES};
use crate::App;

/// Most deliveries an endpoint's page lists, newest first.
pub const DELIVERIES_SHOWN: usize = 100;

/// One endpoint as shown.
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub status: String,
    pub created: String,
    pub failing_since: String,
    pub disabled_at: String,
}

fn endpoint_row(e: &Value) -> EndpointRow {
    EndpointRow {
        id: text(&e["id"]),
        url: text(&e["url"]),
        events: e["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect(),
        status: text(&e["status"]),
        created: when(&e["created_at"]),
        failing_since: when(&e["failing_since"]),
        disabled_at: when(&e["disabled_at"]),
    }
}

/// One attempt of a delivery as shown.
pub struct AttemptRow {
    pub n: String,
    pub at: String,
    /// `HTTP 500` (the log's error then only restates the status), or the error when no
    /// status came back (a timeout, a refused connection, the SSRF guard).
    pub outcome: String,
    pub ok: bool,
    pub duration: String,
    pub manual: bool,
}

/// One delivery of the log as shown.
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub created: String,
    pub delivered: String,
    pub next_attempt: String,
    pub attempts: Vec<AttemptRow>,
}

fn attempt_row(a: &Value) -> AttemptRow {
    let code = a["status_code"].as_u64();
    let error = text(&a["error"]);
    let outcome = match (code, error.is_empty()) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, false) => error,
        (None, true) => "no answer".to_owned(),
    };
    AttemptRow {
        n: text(&a["n"]),
        at: when(&a["at"]),
        ok: code.is_some_and(|c| (200..300).contains(&c)),
        outcome,
        duration: a["duration_ms"]
            .as_u64()
            .map(|ms| format!("{ms} ms"))
            .unwrap_or_default(),
        manual: a["manual"].as_bool().unwrap_or(false),
    }
}

fn delivery_row(d: &Value) -> DeliveryRow {
    DeliveryRow {
        id: text(&d["id"]),
        event_id: text(&d["event_id"]),
        event_type: text(&d["event_type"]),
        status: text(&d["status"]),
        created: when(&d["created_at"]),
        delivered: when(&d["delivered_at"]),
        next_attempt: when(&d["next_attempt_at"]),
        attempts: d["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(attempt_row)
            .collect(),
    }
}

fn all(limit: usize) -> ListQuery {
    ListQuery {
        limit: Some(limit.to_string()),
        ..Default::default()
    }
}

/// The organization's endpoints through `GET /v1/organizations/webhooks`.
async fn endpoints(app: &Arc<App>, caller: OrgCaller) -> Result<Vec<EndpointRow>, ApiError> {
    let q = all(api::MAX_ENDPOINTS);
    let Json(list) = api::list(State(app.clone()), caller, Query(q)).await?;
    Ok(list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(endpoint_row)
        .collect())
}

#[derive(Template)]
#[template(path = "webhooks.html")]
pub struct WebhooksPage {
    pub c: Chrome,
    pub endpoints: Vec<EndpointRow>,
    pub event_types: [&'static str; 11],
    /// The new endpoint's signing secret, shown this once.
    pub secret: String,
    pub created_id: String,
    pub created_url: String,
    /// The form as typed (kept when refused).
    pub url: String,
    pub events: Vec<String>,
    pub errors: FormErrors,
    pub done: &'static str,
    pub max_endpoints: usize,
}

impl WebhooksPage {
    /// Whether the form's `event` box is ticked.
    pub fn ticked(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

#[derive(Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

fn blank(mut c: Chrome) -> WebhooksPage {
    c.here = "webhooks";
    WebhooksPage {
        c,
        endpoints: Vec::new(),
        event_types: EVENT_TYPES,
        secret: String::new(),
        created_id: String::new(),
        created_url: String::new(),
        url: String::new(),
        events: Vec::new(),
        errors: FormErrors::default(),
        done: "",
        max_endpoints: api::MAX_ENDPOINTS,
    }
}

async fn render(
    app: &Arc<App>,
    viewer: Viewer,
    mut page: WebhooksPage,
    status: StatusCode,
) -> PageResult {
    // A role that may not manage webhooks is told whom to ask (`Chrome` carries what the
    // role may do); a form it posts anyway is refused by the service.
    if page.c.can_members {
        page.endpoints = endpoints(app, viewer.caller).await?;
    }
    Ok(html(status, &page))
}

/// `GET /webhooks[?done=deleted]`.
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(q): Query<Done>,
) -> PageResult {
    let mut page = blank(viewer.chrome.clone());
    if q.done.as_deref() == Some("deleted") {
        page.done = "deleted";
    }
    render(&app, viewer, page, StatusCode::OK).await
}

/// `POST /webhooks` (`url`, `events` repeated): `POST /v1/organizations/webhooks`; the answer's
/// secret is shown on this page, this once, and never again.
pub async fn create(State(app): State<Arc<App>>, viewer: Viewer, form: Fields) -> PageResult {
    let (url, events) = (form.get("url").to_owned(), form.all("events"));
    let body = json!({"url": url, "events": events});
    let mut page = blank(viewer.chrome.clone());
    let answer = api::create(State(app.clone()), viewer.caller.clone(), JsonBody(body)).await;
    match answer {
        Ok(Json(created)) => {
            page.secret = text(&created["secret"]);
            page.created_id = text(&created["id"]);
            page.created_url = text(&created["url"]);
            render(&app, viewer, page, StatusCode::OK).await
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            page.errors = FormErrors::from_error(&e, &["url", "events"]);
            page.url = url;
            page.events = events;
            render(&app, viewer, page, e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "webhook.html")]
pub struct EndpointPage {
    pub c: Chrome,
    pub e: EndpointRow,
    pub deliveries: Vec<DeliveryRow>,
    pub shown: usize,
    /// The delivery a refused retry is about, and why.
    pub error_for: String,
    pub error: String,
    pub done: &'static str,
}

async fn endpoint_page(
    app: &Arc<App>,
    viewer: Viewer,
    id: &str,
    done: &'static str,
    refused: Option<(String, ApiError)>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    if !chrome.can_members {
        return Ok(see_other("/webhooks"));
    }
    chrome.here = "webhooks";
    let e = endpoints(app, caller.clone())
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::not_found(format!("No webhook endpoint {id}.")))?;
    let Json(log) = api::deliveries(
        State(app.clone()),
        caller,
        Path(id.to_owned()),
        Query(all(DELIVERIES_SHOWN)),
    )
    .await?;
    let deliveries: Vec<DeliveryRow> = log["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(delivery_row)
        .collect();
    let status = refused
        .as_ref()
        .map(|(_, err)| err.status)
        .unwrap_or(StatusCode::OK);
    let (error_for, error) = refused.map(|(d, err)| (d, err.message)).unwrap_or_default();
    let page = EndpointPage {
        c: chrome,
        e,
        shown: DELIVERIES_SHOWN,
        deliveries,
        error_for,
        error,
        done,
    };
    Ok(html(status, &page))
}

/// `GET /webhooks/{id}[?done=retried]`: the endpoint and its delivery log.
pub async fn endpoint(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> PageResult {
    let done = match q.done.as_deref() {
        Some("retried") => "retried",
        _ => "",
    };
    endpoint_page(&app, viewer, &id, done, None).await
}

/// `POST /webhooks/{id}/delete`: `DELETE /v1/organizations/webhooks/{id}` (the button is
/// reached through the page's confirm step).
pub async fn delete(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let Json(_) = api::delete(State(app), viewer.caller, Path(id)).await?;
    Ok(see_other("/webhooks?done=deleted"))
}

/// `POST /webhooks/{id}/deliveries/{delivery_id}/retry`: one attempt now through
/// `POST /v1/organizations/webhooks/{id}/deliveries/{delivery_id}/retry`; its outcome is the
/// newest attempt in the log. A refusal (an attempt already running) is shown beside the row.
pub async fn retry(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path((id, delivery_id)): Path<(String, String)>,
) -> PageResult {
    let path = Path((id.clone(), delivery_id.clone()));
    match api::retry(State(app.clone()), viewer.caller.clone(), path).await {
        Ok(_) => Ok(see_other(&format!("/webhooks/{id}?done=retried"))),
        Err(e) if e.status == StatusCode::CONFLICT => {
            endpoint_page(&app, viewer, &id, "", Some((delivery_id, e))).await
        }
        Err(e) => Err(e.into()),
    }
}
