//! `GET /v1/models` (the priced models), `POST /v1/messages/count_tokens` (free, forwarded), and
//! readiness.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use creditgate_core::money::Decimal;
use creditgate_core::pricing::{ModelPrice, RequestScan, ScanError, MAX_MODEL_NAME_CHARS};
use serde_json::{json, Value};

use crate::auth::ApiKeyCaller;
use crate::config::MAX_UPSTREAM_JSON_BYTES;
use crate::error::ApiError;
use crate::messages::read_body;
use crate::App;

/// Page size bounds of `GET /v1/models`, as Anthropic's.
const MODELS_DEFAULT_LIMIT: usize = 20;
const MODELS_MAX_LIMIT: usize = 1000;

/// Models a client may call: priced and still served (not retired or historical).
fn listed(app: &App) -> Vec<&ModelPrice> {
    app.book
        .models()
        .filter(|m| m.status().is_served())
        .collect()
}

fn model_json(m: &ModelPrice) -> Value {
    json!({
        "type": "model",
        "id": m.id(),
        "display_name": m.display_name(),
        "created_at": format!("{}T00:00:00Z", m.effective_from()),
    })
}

pub async fn list(
    State(app): State<Arc<App>>,
    _caller: ApiKeyCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => MODELS_DEFAULT_LIMIT,
        Some(Ok(l)) if (1..=MODELS_MAX_LIMIT).contains(&l) => l,
        Some(_) => {
            return ApiError::invalid_request(format!("limit must be 1 to {MODELS_MAX_LIMIT}"))
                .into_response()
        }
    };
    let all = listed(&app);
    let pos = |id: &String| all.iter().position(|m| m.id() == id.as_str());
    let page: Vec<&ModelPrice> = if let Some(after) = q.get("after_id") {
        let start = pos(after).map_or(all.len(), |i| i + 1);
        all[start..].iter().take(limit).copied().collect()
    } else if let Some(before) = q.get("before_id") {
        let end = pos(before).unwrap_or(0);
        all[end.saturating_sub(limit)..end].to_vec()
    } else {
        all.iter().take(limit).copied().collect()
    };
    let index = |m: &ModelPrice| all.iter().position(|x| x.id() == m.id()).unwrap_or(0);
    let has_more = match (page.first(), page.last()) {
        (Some(first), _) if q.contains_key("before_id") => index(first) > 0,
        (_, Some(last)) => index(last) + 1 < all.len(),
        _ => false,
    };
    Json(json!({
        "data": page.iter().map(|m| model_json(m)).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": page.first().map(|m| m.id()),
        "last_id": page.last().map(|m| m.id()),
    }))
    .into_response()
}

pub async fn get(
    State(app): State<Arc<App>>,
    _caller: ApiKeyCaller,
    Path(id): Path<String>,
) -> Response {
    match app.book.resolve(&id) {
        Ok(m) if m.status().is_served() => Json(model_json(m)).into_response(),
        Ok(_) => ApiError::not_found(format!("model: {id}")).into_response(),
        // The error names the model cut to a safe length (a path can be long).
        Err(e) => ApiError::not_found(e.to_string()).into_response(),
    }
}

/// Free: authenticated, checked against the price book, forwarded with the upstream key.
pub async fn count_tokens(
    State(app): State<Arc<App>>,
    _caller: ApiKeyCaller,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match count_tokens_inner(&app, &uri, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn count_tokens_inner(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    crate::upstream::check_betas(headers, &app.cfg.upstream_allowed_betas)?;
    let (bytes, _in_flight) = read_body(app, body).await?;
    // The same one-pass read as admission: nothing of the body is kept but its bytes.
    let scan = RequestScan::read(&bytes, Decimal::ONE).map_err(|e| match e {
        ScanError::NotAnObject => ApiError::invalid_request(e.to_string()),
        ScanError::Json(e) => {
            ApiError::invalid_request(format!("The request body is not valid JSON: {e}"))
        }
    })?;
    crate::upstream::check_body_betas(&scan, &app.cfg.upstream_allowed_betas)?;
    let model = scan
        .model
        .as_ref()
        .ok_or_else(|| ApiError::invalid_request("model: Field required"))?;
    if model.len() > MAX_MODEL_NAME_CHARS {
        return Err(ApiError::invalid_request(format!(
            "model: must be at most {MAX_MODEL_NAME_CHARS} characters; this one has {} bytes",
            model.len()
        )));
    }
    app.book.resolve(model.head())?;
    let path = uri
        .path_and_query()
        .map_or("/v1/messages/count_tokens", |p| p.as_str());
    let resp = app
        .upstream
        .send(Method::POST, path, headers, bytes)
        .await
        .map_err(|e| ApiError::upstream_unreachable(e.to_string()).with_detail(e.detail()))?;
    let status = resp.status();
    let content_type = resp.headers().get("content-type").cloned();
    let body = resp.bytes(MAX_UPSTREAM_JSON_BYTES).await.map_err(|e| {
        ApiError::upstream_unreachable(format!(
            "The upstream response failed: {}.",
            crate::upstream::failure(&e)
        ))
        .with_detail(e.to_string())
    })?;
    let body = body.ok_or_else(|| {
        ApiError::upstream_unreachable(format!(
            "The upstream response failed: response larger than {MAX_UPSTREAM_JSON_BYTES} bytes."
        ))
    })?;
    let mut out = (status, body).into_response();
    if let Some(ct) =
        content_type.and_then(|v| axum::http::HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        out.headers_mut().insert("content-type", ct);
    }
    Ok(out)
}

/// Ready when the database answers a trivial query (a probe must stay cheap however many
/// organizations there are). Either way the answer carries the settlement spool's depth
/// (settlements waiting for the database) in `x-creditgate-spool-depth`, and in the body when
/// ready.
pub async fn ready(State(app): State<Arc<App>>) -> Response {
    let depth = app.spool.depth();
    let mut resp = match app.db.ping().await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready", "spool_depth": depth})),
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    resp.headers_mut().insert(
        "x-creditgate-spool-depth",
        axum::http::HeaderValue::from(depth),
    );
    resp
}
