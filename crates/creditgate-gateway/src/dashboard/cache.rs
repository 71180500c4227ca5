//! The cache page: what prompt caching saved and wasted per day and per key and model over a
//! date range — credits saved by cache reads, credits of cache writes never read within their
//! TTL — from the cache report (`reports::org_json`, the route's own sums; `docs/reports.md`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use creditgate_core::clock::Timestamp;
use creditgate_core::money::{CreditUnit, NanoCredits};
use serde_json::{json, Value};

use super::format::{script_json, text, Amount};
use super::pages::{html, FormErrors, PageResult};
use super::usage::{range, range_error, Range, RangeForm, DAY_MS};
use super::viewer::{Chrome, Viewer};
use crate::error::ApiError;
use crate::reports::{org_json, ReportKind};
use crate::App;

/// Days shown when no range is asked for: the cache report reads minute rollups, so its
/// default window is a week rather than the usage page's month.
pub const DEFAULT_DAYS: i64 = 7;

/// Cache sums of one key and model, or of one day.
#[derive(Debug, Clone, Default)]
pub struct CacheSums {
    pub requests: u64,
    pub reads: u64,
    pub writes: u64,
    pub spent_writing: NanoCredits,
    pub saved: NanoCredits,
    pub wasted: NanoCredits,
}

fn nanos(v: &Value) -> Result<NanoCredits, ApiError> {
    NanoCredits::from_str(v.as_str().unwrap_or("0"))
        .map_err(|e| ApiError::internal(format!("cache report credits: {e}")))
}

fn sum(a: NanoCredits, b: NanoCredits) -> Result<NanoCredits, ApiError> {
    a.checked_add(b)
        .map_err(|e| ApiError::internal(format!("cache report credits: {e}")))
}

impl CacheSums {
    fn add(&mut self, r: &Value) -> Result<(), ApiError> {
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let w = &r["cache_creation"];
        self.requests += n(&r["requests"]);
        self.reads += n(&r["cache_read_input_tokens"]);
        self.writes += n(&w["ephemeral_5m_input_tokens"]) + n(&w["ephemeral_1h_input_tokens"]);
        let c = &r["credits"];
        let writing = sum(nanos(&c["cache_write_5m"])?, nanos(&c["cache_write_1h"])?)?;
        self.spent_writing = sum(self.spent_writing, writing)?;
        self.saved = sum(self.saved, nanos(&r["saved_by_reads"])?)?;
        self.wasted = sum(self.wasted, nanos(&r["unread_writes"]["total"])?)?;
        Ok(())
    }
}

/// One table row as shown.
pub struct CacheRow {
    pub day: String,
    pub key: String,
    pub key_id: String,
    pub model: String,
    pub s: CacheSums,
    pub writing: Amount,
    pub saved: Amount,
    pub wasted: Amount,
}

fn row(
    day: String,
    key_id: String,
    key: String,
    model: String,
    s: CacheSums,
    unit: &CreditUnit,
) -> CacheRow {
    CacheRow {
        writing: Amount::of(s.spent_writing, unit),
        saved: Amount::of(s.saved, unit),
        wasted: Amount::of(s.wasted, unit),
        day,
        key,
        key_id,
        model,
        s,
    }
}

#[derive(Template)]
#[template(path = "cache.html")]
pub struct CachePage {
    pub c: Chrome,
    pub range: Range,
    pub errors: FormErrors,
    pub days: Vec<CacheRow>,
    pub groups: Vec<CacheRow>,
    pub total: Option<CacheRow>,
    pub chart: String,
}

impl CachePage {
    pub fn csv(&self) -> String {
        format!(
            "/v1/organizations/cache_report?{}&format=csv&limit=31",
            self.range.query
        )
    }
}

/// Fills the page from the cache report of its range.
async fn fill(
    app: &Arc<App>,
    caller: &crate::caller::OrgCaller,
    page: &mut CachePage,
) -> Result<(), ApiError> {
    let unit = &app.cfg.credit_unit;
    let q = format!("{}&bucket_width=1d&limit=31", page.range.query);
    let report = org_json(app, caller, ReportKind::Cache, &q).await?;
    let names = super::keys::names(app, caller).await?;
    let mut groups: BTreeMap<(String, String), CacheSums> = BTreeMap::new();
    let mut total = CacheSums::default();
    let (mut x, mut saved, mut wasted) = (Vec::new(), Vec::new(), Vec::new());
    for b in report["data"].as_array().into_iter().flatten() {
        let start = text(&b["starting_at"]);
        let mut day = CacheSums::default();
        for r in b["results"].as_array().into_iter().flatten() {
            day.add(r)?;
            total.add(r)?;
            let id = (text(&r["api_key_id"]), text(&r["model"]));
            groups.entry(id).or_default().add(r)?;
        }
        x.push(Timestamp::parse_rfc3339(&start).map_or(0, |t| t.millis() / 1000));
        saved.push(day.saved.to_string());
        wasted.push(day.wasted.to_string());
        let label = start.get(..10).unwrap_or_default().to_owned();
        page.days.push(row(
            label,
            String::new(),
            String::new(),
            String::new(),
            day,
            unit,
        ));
    }
    page.groups = groups
        .into_iter()
        .map(|((key_id, model), s)| {
            let key = names
                .get(&key_id)
                .cloned()
                .unwrap_or_else(|| key_id.clone());
            row(String::new(), key_id, key, model, s, unit)
        })
        .collect();
    page.total = Some(row(
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        total,
        unit,
    ));
    page.chart = script_json(&json!({
        "kind": "lines", "time": true, "x_label": "day", "x": x,
        "series": [{"label": "saved by reads", "values": saved},
                   {"label": "writes never read", "values": wasted}],
    }));
    Ok(())
}

/// `GET /cache[?from=&to=]`.
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(form): Query<RangeForm>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "cache";
    let now = app.clock.now();
    let form = RangeForm {
        from: form.from.or_else(|| {
            let start = Timestamp::from_millis(now.millis().div_euclid(DAY_MS) * DAY_MS);
            let first = start.plus_millis(-(DEFAULT_DAYS - 1) * DAY_MS);
            Some(first.to_rfc3339()[..10].to_owned())
        }),
        to: form.to,
    };
    let (range, errors) = match range(&form, now) {
        Ok(r) => (r, FormErrors::default()),
        Err((r, e)) => (r, e),
    };
    let mut page = CachePage {
        c: chrome,
        range,
        errors,
        days: Vec::new(),
        groups: Vec::new(),
        total: None,
        chart: String::new(),
    };
    if page.errors.message.is_empty() {
        match fill(&app, &caller, &mut page).await {
            Ok(()) => return Ok(html(StatusCode::OK, &page)),
            Err(e) if e.status == StatusCode::BAD_REQUEST => page.errors = range_error(&e),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(html(StatusCode::BAD_REQUEST, &page))
}
