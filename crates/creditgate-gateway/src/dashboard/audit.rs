//! The audit log page: the organization's events, newest first, from
//! `GET /v1/organizations/audit_log` (`docs/dashboard.md`, `docs/accounts.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::format::{text, when};
use super::pages::{html, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::lists::ListQuery;
use crate::organization_api as org;
use crate::App;

/// One event as shown.
pub struct EventRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub ip: String,
}

fn event_row(e: &Value) -> EventRow {
    EventRow {
        at: when(&e["at"]),
        actor: format!("{} {}", text(&e["actor"]["type"]), text(&e["actor"]["id"])),
        action: text(&e["action"]),
        target: format!(
            "{} {}",
            text(&e["target"]["type"]),
            text(&e["target"]["id"])
        ),
        ip: text(&e["ip"]),
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub c: Chrome,
    pub events: Vec<EventRow>,
    /// The id to pass as `after_id` for the next (older) page, when there is one.
    pub next: String,
}

/// `GET /audit[?after_id=]`.
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "audit";
    let q = ListQuery {
        limit: Some("100".into()),
        ..q
    };
    let Json(list) = org::audit_log(State(app), caller, Query(q)).await?;
    let events = list["data"].as_array().into_iter().flatten();
    let page = AuditPage {
        c: chrome,
        events: events.map(event_row).collect(),
        next: match list["has_more"].as_bool() {
            Some(true) => text(&list["last_id"]),
            _ => String::new(),
        },
    };
    Ok(html(StatusCode::OK, &page))
}
