//! Reports in Anthropic's Admin API shapes (`docs/accounts.md`): `usage_report/messages`,
//! `cost_report` and the `cache_report` extension for an organization (admin key or member
//! session), the same across organizations for the operator (`/admin/v1/reports/*`), as JSON
//! pages or streamed CSV. Sums come from the usage rollups the settle maintains; see
//! `docs/reports.md`.

pub mod query;
pub mod render;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use creditgate_core::accounts::Action;
use creditgate_core::clock::Timestamp;
use creditgate_core::money::{CreditUnit, MoneyError, NanoCredits};
use creditgate_core::reports::{
    aggregate, open_page_token, page_token, unread_writes, Bucket, Dimension, Group,
};
use creditgate_storage::Database;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use query::{ReportKind, ReportQuery, Scope};

use crate::caller::{Operator, OrgCaller};
use crate::error::ApiError;
use crate::App;

/// How far past a page the cache report reads minutes: the longest cache TTL and one minute.
const CACHE_LOOKAHEAD_MS: i64 = 3_600_000 + 60_000;

/// Unread cache writes per group of one bucket: (5-minute, 1-hour) credits.
pub type Unread = BTreeMap<Group, (NanoCredits, NanoCredits)>;

/// The buckets of one page, summed.
#[derive(Debug, Clone)]
pub struct Page {
    pub buckets: Vec<Bucket>,
    /// For the cache report, one map per bucket; empty otherwise.
    pub unread: Vec<Unread>,
    /// Where the next page starts, when the window goes on.
    pub next: Option<Timestamp>,
}

fn money(e: MoneyError) -> ApiError {
    ApiError::internal(format!("report amounts out of range: {e}"))
}

/// Sums at most `count` buckets of the query's window from `from` on.
pub async fn build(
    db: &Database,
    scope: &Scope,
    q: &ReportQuery,
    from: Timestamp,
    count: usize,
    now: Timestamp,
) -> Result<Page, ApiError> {
    let mut pages = build_each(db, scope, q, from, count, now, &[&q.group_by]).await?;
    pages
        .pop()
        .ok_or_else(|| ApiError::internal("a report built no page"))
}

/// [`build`] once per grouping in `groupings` (each replacing the query's `group_by`), from a
/// single read of the window's rollups: the pages are what [`build`] answers for each grouping.
pub async fn build_each(
    db: &Database,
    scope: &Scope,
    q: &ReportQuery,
    from: Timestamp,
    count: usize,
    now: Timestamp,
    groupings: &[&[Dimension]],
) -> Result<Vec<Page>, ApiError> {
    let starts: Vec<Timestamp> = q
        .bucket_starts()
        .into_iter()
        .filter(|s| *s >= from)
        .take(count)
        .collect();
    let (Some(first), Some(last)) = (starts.first().copied(), starts.last().copied()) else {
        let empty = || Page {
            buckets: Vec::new(),
            unread: Vec::new(),
            next: None,
        };
        return Ok(groupings.iter().map(|_| empty()).collect());
    };
    let to = last.plus_millis(q.width.millis());
    let rows = db.usage_rollups(scope.org(), q.width, first, to).await?;
    // Unread writes are kept per key and model whatever the grouping (`cache_unread`).
    let unread = if q.kind == ReportKind::Cache {
        cache_unread(db, scope, q, &starts, now).await?
    } else {
        Vec::new()
    };
    groupings
        .iter()
        .map(|dims| {
            Ok(Page {
                buckets: aggregate(&rows, q.width, &starts, dims, &q.filter).map_err(money)?,
                unread: unread.clone(),
                next: (to < q.end).then_some(to),
            })
        })
        .collect()
}

/// The credits of cache writes never read within their TTL, per bucket and group, from the
/// minute rollups of the page and the hour after it (`creditgate_core::reports::unread_writes`).
async fn cache_unread(
    db: &Database,
    scope: &Scope,
    q: &ReportQuery,
    starts: &[Timestamp],
    now: Timestamp,
) -> Result<Vec<Unread>, ApiError> {
    let mut out = vec![Unread::new(); starts.len()];
    let first = starts[0];
    let to = first.plus_millis(q.width.millis() * starts.len() as i64);
    let mut minutes = db
        .cache_minutes(scope.org(), first, to.plus_millis(CACHE_LOOKAHEAD_MS))
        .await?;
    minutes.retain(|m| q.filter.admits_parts(&m.org, &m.key_id, &m.model));
    let by_org = q.group_by.contains(&Dimension::Organization);
    for (cell, (w5, w1)) in unread_writes(&minutes, now) {
        if cell.minute >= to {
            continue;
        }
        let i = (q.width.floor(cell.minute).millis() - first.millis()) / q.width.millis();
        let group = Group {
            org: by_org.then(|| cell.org.to_string()),
            key_id: Some(cell.key_id),
            model: Some(cell.model),
            ..Group::default()
        };
        let slot = out[i as usize]
            .entry(group)
            .or_insert((NanoCredits::ZERO, NanoCredits::ZERO));
        slot.0 = slot.0.checked_add(w5).map_err(money)?;
        slot.1 = slot.1.checked_add(w1).map_err(money)?;
    }
    Ok(out)
}

/// The results of one bucket in the report's shape.
fn results(
    q: &ReportQuery,
    page: &Page,
    i: usize,
    unit: &CreditUnit,
    operator: bool,
) -> Result<Vec<Value>, MoneyError> {
    let by_line = q.group_by.contains(&Dimension::Description);
    let mut out = Vec::new();
    for (group, sums) in &page.buckets[i].results {
        match q.kind {
            ReportKind::Usage => out.push(render::usage_result(group, sums, operator)?),
            ReportKind::Cost => {
                out.extend(render::cost_results(group, sums, by_line, unit, operator)?)
            }
            ReportKind::Cache => {
                let unread = page
                    .unread
                    .get(i)
                    .and_then(|u| u.get(group))
                    .copied()
                    .unwrap_or((NanoCredits::ZERO, NanoCredits::ZERO));
                out.push(render::cache_result(group, sums, unread, operator)?);
            }
        }
    }
    Ok(out)
}

/// A page as Anthropic's `{"data":[{"starting_at","ending_at","results"}],"has_more",
/// "next_page"}`.
pub fn page_json(
    q: &ReportQuery,
    page: &Page,
    unit: &CreditUnit,
    operator: bool,
    next_page: Option<String>,
) -> Result<Value, ApiError> {
    let mut data = Vec::new();
    for (i, b) in page.buckets.iter().enumerate() {
        data.push(json!({
            "starting_at": b.start.to_rfc3339(),
            "ending_at": b.end.to_rfc3339(),
            "results": results(q, page, i, unit, operator).map_err(money)?,
        }));
    }
    Ok(json!({
        "data": data,
        "has_more": next_page.is_some(),
        "next_page": next_page,
    }))
}

/// A page as CSV: a header row, then one row per bucket × result, one chunk per bucket.
pub fn csv_chunks(
    q: &ReportQuery,
    page: &Page,
    unit: &CreditUnit,
    operator: bool,
) -> Result<Vec<String>, ApiError> {
    let columns = render::csv_columns(q.kind, operator);
    let mut header = vec!["starting_at", "ending_at"];
    header.extend(columns.iter().copied());
    let mut chunks = vec![format!("{}\r\n", header.join(","))];
    for (i, b) in page.buckets.iter().enumerate() {
        let (start, end) = (b.start.to_rfc3339(), b.end.to_rfc3339());
        let rows = results(q, page, i, unit, operator).map_err(money)?;
        chunks.push(
            rows.iter()
                .map(|r| render::csv_line(&start, &end, r, &columns))
                .collect(),
        );
    }
    Ok(chunks)
}

/// The key page tokens are signed with: derived from the operator's `admin_key` (the same on
/// every replica and across restarts), or random for this process when there is none.
fn page_secret(app: &App) -> Vec<u8> {
    static RANDOM: OnceLock<[u8; 32]> = OnceLock::new();
    let seed: Vec<u8> = match &app.cfg.admin_key {
        Some(key) => key.as_bytes().to_vec(),
        None => RANDOM.get_or_init(rand::random).to_vec(),
    };
    let mut h = Sha256::new();
    h.update(b"creditgate report page tokens\n");
    h.update(&seed);
    h.finalize().to_vec()
}

/// Where the requested page starts: the window's start, or the page token's position.
fn page_start(app: &App, scope: &Scope, q: &ReportQuery) -> Result<Timestamp, ApiError> {
    let Some(token) = &q.page else {
        return Ok(q.start);
    };
    open_page_token(&page_secret(app), &q.binding(scope), token)
        .filter(|t| *t > q.start && *t < q.end && q.width.floor(*t) == *t)
        .ok_or_else(|| {
            ApiError::invalid_request(
                "page: not a page token of this report (tokens are bound to the organization, \
                 the window and the grouping they were issued for, and cannot be altered)",
            )
        })
}

async fn answer(
    app: &App,
    scope: Scope,
    kind: ReportKind,
    query: Option<String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let operator = scope == Scope::Operator;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let q = ReportQuery::parse(kind, query.as_deref().unwrap_or(""), accept, operator, now)?;
    let unit = &app.cfg.credit_unit;
    if q.csv {
        // CSV is the whole window (at most the width's largest), not one page.
        let from = page_start(app, &scope, &q)?;
        let page = build(&app.db, &scope, &q, from, usize::MAX, now).await?;
        let chunks = csv_chunks(&q, &page, unit, operator)?;
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(c.into_bytes())),
        );
        let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(resp);
    }
    Ok(Json(json_page(app, &scope, &q, now).await?).into_response())
}

/// One JSON page of a parsed report query, with its `next_page` token.
async fn json_page(
    app: &App,
    scope: &Scope,
    q: &ReportQuery,
    now: Timestamp,
) -> Result<Value, ApiError> {
    json_pages(app, scope, q, now, &[&q.group_by])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("a report built no page"))
}

/// The route's JSON for each grouping in `groupings` (each replacing the query's `group_by`),
/// from one read of the window's rollups.
async fn json_pages(
    app: &App,
    scope: &Scope,
    q: &ReportQuery,
    now: Timestamp,
    groupings: &[&[Dimension]],
) -> Result<Vec<Value>, ApiError> {
    let from = page_start(app, scope, q)?;
    let pages = build_each(&app.db, scope, q, from, q.limit, now, groupings).await?;
    let secret = page_secret(app);
    groupings
        .iter()
        .zip(&pages)
        .map(|(dims, page)| {
            let grouped = ReportQuery {
                group_by: dims.to_vec(),
                ..q.clone()
            };
            let next_page = page
                .next
                .map(|n| page_token(&secret, &grouped.binding(scope), n));
            page_json(
                &grouped,
                page,
                &app.cfg.credit_unit,
                *scope == Scope::Operator,
                next_page,
            )
        })
        .collect()
}

/// An organization's report as the JSON its route answers for `query` (the dashboard's usage
/// and cache pages read it; same checks, same sums).
pub async fn org_json(
    app: &App,
    caller: &OrgCaller,
    kind: ReportKind,
    query: &str,
) -> Result<Value, ApiError> {
    caller.require(Action::Read)?;
    let now = app.clock.now();
    let q = ReportQuery::parse(kind, query, None, false, now)?;
    json_page(app, &Scope::Organization(caller.org.clone()), &q, now).await
}

/// [`org_json`] for each grouping in `groupings` (replacing any `group_by[]` of `query`), from
/// one read of the window's rollups: the usage page shows spend by model and by key, and each
/// answer is the route's for that grouping.
pub async fn org_json_each(
    app: &App,
    caller: &OrgCaller,
    kind: ReportKind,
    query: &str,
    groupings: &[&[Dimension]],
) -> Result<Vec<Value>, ApiError> {
    caller.require(Action::Read)?;
    let now = app.clock.now();
    let q = ReportQuery::parse(kind, query, None, false, now)?;
    json_pages(
        app,
        &Scope::Organization(caller.org.clone()),
        &q,
        now,
        groupings,
    )
    .await
}

async fn org_report(
    caller: OrgCaller,
    app: Arc<App>,
    kind: ReportKind,
    query: Option<String>,
    headers: HeaderMap,
) -> Response {
    let result = match caller.require(Action::Read) {
        Ok(()) => answer(&app, Scope::Organization(caller.org), kind, query, &headers).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /v1/organizations/usage_report/messages`.
pub async fn usage_report(
    caller: OrgCaller,
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    org_report(caller, app, ReportKind::Usage, query, headers).await
}

/// `GET /v1/organizations/cost_report`.
pub async fn cost_report(
    caller: OrgCaller,
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    org_report(caller, app, ReportKind::Cost, query, headers).await
}

/// `GET /v1/organizations/cache_report`.
pub async fn cache_report(
    caller: OrgCaller,
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    org_report(caller, app, ReportKind::Cache, query, headers).await
}

async fn operator_report(
    app: Arc<App>,
    kind: ReportKind,
    query: Option<String>,
    headers: HeaderMap,
) -> Response {
    answer(&app, Scope::Operator, kind, query, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /admin/v1/reports/usage`: the usage report across organizations.
pub async fn operator_usage(
    _: Operator,
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    operator_report(app, ReportKind::Usage, query, headers).await
}

/// `GET /admin/v1/reports/cost`: the cost report across organizations.
pub async fn operator_cost(
    _: Operator,
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    operator_report(app, ReportKind::Cost, query, headers).await
}

/// `GET /admin/v1/reports/cache`: the cache report across organizations.
pub async fn operator_cache(
    _: Operator,
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    operator_report(app, ReportKind::Cache, query, headers).await
}
