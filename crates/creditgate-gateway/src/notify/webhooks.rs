//! `/v1/organizations/webhooks` (`docs/alerts.md`): register an endpoint (its signing secret
//! shown once), list, delete, read its delivery log, retry a delivery. Owner and admin only;
//! every change audited. A URL the SSRF guard refuses is a 400 saying why.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use creditgate_core::accounts::Action;
use creditgate_storage::notify::{
    Attempt, Delivery, DeliveryStatus, EndpointStatus, WebhookEndpoint,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{delivery, ssrf, EVENT_TYPES};
use crate::caller::OrgCaller;
use crate::error::{ApiError, JsonBody};
use crate::lists::{self, ListQuery};
use crate::members::Change;
use crate::App;

/// Most endpoints (not deleted) one organization may register.
pub const MAX_ENDPOINTS: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    events: Vec<String>,
}

/// An endpoint as the API shows it (never its secret).
pub fn endpoint_json(e: &WebhookEndpoint) -> Value {
    json!({
        "id": e.id,
        "type": "webhook_endpoint",
        "url": e.url,
        "events": e.events,
        "status": e.status.as_str(),
        "created_at": e.created_at.to_rfc3339(),
        "failing_since": e.failing_since.map(|t| t.to_rfc3339()),
        "disabled_at": e.disabled_at.map(|t| t.to_rfc3339()),
    })
}

fn attempt_json(a: &Attempt) -> Value {
    json!({"n": a.n, "at": a.at.to_rfc3339(), "status_code": a.status_code, "error": a.error,
        "duration_ms": a.duration_ms, "manual": a.manual})
}

/// A delivery and its attempts, as the delivery log shows it.
pub fn delivery_json(d: &Delivery, attempts: &[Attempt]) -> Value {
    json!({
        "id": d.id,
        "type": "webhook_delivery",
        "endpoint_id": d.endpoint_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status.as_str(),
        "attempts": attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "next_attempt_at": (d.status == DeliveryStatus::Pending).then(|| d.next_at.to_rfc3339()),
        "created_at": d.created_at.to_rfc3339(),
        "delivered_at": d.delivered_at.map(|t| t.to_rfc3339()),
    })
}

/// `POST /v1/organizations/webhooks` `{"url","events"}` → the endpoint and its `secret`.
pub async fn create(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    JsonBody(raw): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageMembers)?;
    let body: CreateBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::invalid_request(format!("Invalid request body: {e}")))?;
    let events = check_events(body.events)?;
    ssrf::check(&app, &body.url)
        .await
        .map_err(ApiError::invalid_request)?;
    if app.db.webhook_endpoints(&caller.org).await?.len() >= MAX_ENDPOINTS {
        return Err(ApiError::invalid_request(format!(
            "At most {MAX_ENDPOINTS} webhook endpoints per organization; delete one first."
        )));
    }
    let now = app.clock.now();
    let endpoint = WebhookEndpoint {
        id: crate::ids::fresh("whe"),
        org: caller.org.clone(),
        url: body.url,
        events,
        secret: format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>())),
        status: EndpointStatus::Enabled,
        failing_since: None,
        disabled_at: None,
        created_at: now,
    };
    app.db.create_webhook_endpoint(&endpoint).await?;
    let shown = endpoint_json(&endpoint);
    Change::by(&app.db, &caller, now)
        .audit(
            &caller.org,
            "webhook_endpoint.created",
            "webhook_endpoint",
            &endpoint.id,
            shown.clone(),
        )
        .await?;
    let mut answer = shown;
    answer["secret"] = json!(endpoint.secret);
    Ok(Json(answer))
}

/// The subscribed events: at least one, each a known type, each once.
fn check_events(events: Vec<String>) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid_request(format!(
            "events: name at least one of {}.",
            EVENT_TYPES.join(", ")
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return Err(ApiError::invalid_request(format!(
                "events: {e:?} is not an event type; the types are {}.",
                EVENT_TYPES.join(", ")
            )));
        }
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

/// `GET /v1/organizations/webhooks`.
pub async fn list(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageMembers)?;
    let items = app.db.webhook_endpoints(&caller.org).await?;
    lists::page(items.iter().map(endpoint_json).collect(), &q)
}

async fn endpoint_of(app: &App, caller: &OrgCaller, id: &str) -> Result<WebhookEndpoint, ApiError> {
    app.db
        .webhook_endpoint(&caller.org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No webhook endpoint {id}.")))
}

/// `DELETE /v1/organizations/webhooks/{id}`: no more events are sent to it; its pending
/// deliveries fail.
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageMembers)?;
    let endpoint = endpoint_of(&app, &caller, &id).await?;
    if !app.db.delete_webhook_endpoint(&caller.org, &id).await? {
        return Err(ApiError::not_found(format!("No webhook endpoint {id}.")));
    }
    Change::by(&app.db, &caller, app.clock.now())
        .audit(
            &caller.org,
            "webhook_endpoint.deleted",
            "webhook_endpoint",
            &id,
            endpoint_json(&endpoint),
        )
        .await?;
    Ok(Json(json!({"id": id, "type": "webhook_endpoint_deleted"})))
}

/// `GET /v1/organizations/webhooks/{id}/deliveries`: newest first, each with its attempts.
pub async fn deliveries(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageMembers)?;
    endpoint_of(&app, &caller, &id).await?;
    let max = i64::try_from(lists::MAX_PAGE).unwrap_or(1000);
    let items = app.db.deliveries(&id, max).await?;
    lists::page(items.iter().map(|(d, a)| delivery_json(d, a)).collect(), &q)
}

/// `POST /v1/organizations/webhooks/{id}/deliveries/{delivery_id}/retry`: one attempt now,
/// answered with the delivery after it. A success enables a disabled endpoint again.
pub async fn retry(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageMembers)?;
    endpoint_of(&app, &caller, &id).await?;
    let missing = || ApiError::not_found(format!("No delivery {delivery_id} of endpoint {id}."));
    app.db
        .delivery_log(&id, &delivery_id)
        .await?
        .ok_or_else(missing)?;
    let owner = crate::ids::fresh("lease");
    if delivery::attempt(&app, &delivery_id, &owner, true)
        .await?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "This delivery is being attempted right now; look at its log in a moment.",
        ));
    }
    Change::by(&app.db, &caller, app.clock.now())
        .audit(
            &caller.org,
            "webhook_delivery.retried",
            "webhook_delivery",
            &delivery_id,
            json!({"endpoint_id": id}),
        )
        .await?;
    let (d, a) = app
        .db
        .delivery_log(&id, &delivery_id)
        .await?
        .ok_or_else(missing)?;
    Ok(Json(delivery_json(&d, &a)))
}
