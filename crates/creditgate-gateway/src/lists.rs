//! Lists as the API pages them (`docs/accounts.md`): `?limit=&after_id=&before_id=` and
//! `{"data","has_more","first_id","last_id"}`, for every route that lists things.

use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// Default and largest page of a list (`docs/accounts.md`).
pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 1000;

/// `?limit=&after_id=&before_id=`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub after_id: Option<String>,
    pub before_id: Option<String>,
    /// Filters some lists take (users by email, keys by status).
    pub email: Option<String>,
    pub status: Option<String>,
}

pub fn page_limit(q: &ListQuery) -> Result<usize, ApiError> {
    match &q.limit {
        None => Ok(DEFAULT_PAGE),
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid_request(format!("limit: must be 1 to {MAX_PAGE}"))),
    }
}

/// One page of `items` (already in list order), as `{"data","has_more","first_id","last_id"}`.
pub fn page(items: Vec<Value>, q: &ListQuery) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q)?;
    let pos = |id: &str| items.iter().position(|v| v["id"] == id);
    let (start, end) = match (&q.after_id, &q.before_id) {
        (Some(a), _) => (pos(a).map_or(items.len(), |i| i + 1), items.len()),
        (None, Some(b)) => (0, pos(b).unwrap_or(0)),
        (None, None) => (0, items.len()),
    };
    let window = &items[start.min(end)..end];
    // Before an id, the page is the last `limit` items before it.
    let (slice, has_more) = if q.before_id.is_some() && q.after_id.is_none() {
        let from = window.len().saturating_sub(limit);
        (&window[from..], from > 0)
    } else {
        (&window[..limit.min(window.len())], window.len() > limit)
    };
    Ok(page_json(slice, has_more))
}

pub fn page_json(slice: &[Value], has_more: bool) -> Json<Value> {
    Json(json!({
        "data": slice,
        "has_more": has_more,
        "first_id": slice.first().map(|v| v["id"].clone()),
        "last_id": slice.last().map(|v| v["id"].clone()),
    }))
}
