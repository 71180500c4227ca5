//! Usage and cost: spend by day (one line per model), by model and by key over a date range,
//! a chart and a table for each, and CSV downloads — all read from the usage report
//! (`reports::org_json_each`: one read of the window's rollups, summed by model and by key by
//! the route's own query and sums; `docs/dashboard.md`, `docs/reports.md`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use creditgate_core::clock::Timestamp;
use creditgate_core::money::{CreditUnit, NanoCredits};
use creditgate_core::reports::Dimension;
use serde::Deserialize;
use serde_json::{json, Value};

use super::format::{script_json, text, Amount};
use super::pages::{html, FormErrors, PageResult};
use super::viewer::{Chrome, Viewer};
use crate::error::ApiError;
use crate::reports::{org_json_each, ReportKind};
use crate::App;

pub const DAY_MS: i64 = 86_400_000;
/// Days shown when no range is asked for (today included).
pub const DEFAULT_DAYS: i64 = 30;

/// The range form: dates `YYYY-MM-DD`, both included.
#[derive(Debug, Default, Deserialize)]
pub struct RangeForm {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The range asked for, as shown in the form and as the report's window.
pub struct Range {
    pub from: String,
    pub to: String,
    /// The report's `starting_at=…&ending_at=…` (the end exclusive: the day after `to`).
    pub query: String,
}

pub fn day(t: Timestamp) -> String {
    t.to_rfc3339().get(..10).unwrap_or_default().to_owned()
}

pub fn parse_day(field: &'static str, s: &str) -> Result<Timestamp, FormErrors> {
    Timestamp::parse_rfc3339(&format!("{s}T00:00:00Z"))
        .ok_or_else(|| FormErrors::on_field(field, "Give a date as YYYY-MM-DD."))
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Reads the form: blank fields default to the last [`DEFAULT_DAYS`] days.
pub fn range(form: &RangeForm, now: Timestamp) -> Result<Range, (Range, FormErrors)> {
    let today = Timestamp::from_millis(now.millis().div_euclid(DAY_MS) * DAY_MS);
    let to_text = given(&form.to).map_or_else(|| day(today), str::to_owned);
    let from_text = given(&form.from).map_or_else(
        || day(today.plus_millis(-(DEFAULT_DAYS - 1) * DAY_MS)),
        str::to_owned,
    );
    let shown = || Range {
        from: from_text.clone(),
        to: to_text.clone(),
        query: String::new(),
    };
    let from = parse_day("from", &from_text).map_err(|e| (shown(), e))?;
    let to = parse_day("to", &to_text).map_err(|e| (shown(), e))?;
    if to < from {
        let e = FormErrors::on_field("to", "The last day must not be before the first.");
        return Err((shown(), e));
    }
    let end = to.plus_millis(DAY_MS);
    Ok(Range {
        query: format!(
            "starting_at={}&ending_at={}",
            from.to_rfc3339(),
            end.to_rfc3339()
        ),
        ..shown()
    })
}

/// A report's errors placed on the range form's fields.
pub fn range_error(e: &ApiError) -> FormErrors {
    let field = if e.message.starts_with("starting_at") {
        Some("from")
    } else if e.message.starts_with("ending_at") || e.message.contains("buckets") {
        Some("to")
    } else {
        None
    };
    FormErrors {
        field,
        message: e.message.clone(),
    }
}

/// A sum of one report row or group, as shown.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub requests: u64,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub credits: NanoCredits,
}

impl Totals {
    fn add(&mut self, r: &Value) -> Result<(), ApiError> {
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        self.requests += n(&r["requests"]);
        self.input += n(&r["uncached_input_tokens"]);
        self.output += n(&r["output_tokens"]);
        self.cache_read += n(&r["cache_read_input_tokens"]);
        let w = &r["cache_creation"];
        self.cache_write += n(&w["ephemeral_5m_input_tokens"]) + n(&w["ephemeral_1h_input_tokens"]);
        let credits = NanoCredits::from_str(r["credits"].as_str().unwrap_or("0"))
            .map_err(|e| ApiError::internal(format!("report credits: {e}")))?;
        self.credits = self
            .credits
            .checked_add(credits)
            .map_err(|e| ApiError::internal(format!("report credits: {e}")))?;
        Ok(())
    }

    fn plus(&mut self, o: &Totals) -> Result<(), ApiError> {
        self.requests += o.requests;
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.credits = self
            .credits
            .checked_add(o.credits)
            .map_err(|e| ApiError::internal(format!("report credits: {e}")))?;
        Ok(())
    }

    pub fn amount(&self, unit: &CreditUnit) -> Amount {
        Amount::of(self.credits, unit)
    }
}

/// One row of a table: its label and sums.
pub struct Row {
    pub label: String,
    pub id: String,
    pub totals: Totals,
    pub amount: Amount,
}

/// The three views of one window: by day (and model inside each day), by model, by key.
pub struct Views {
    pub days: Vec<Row>,
    pub models: Vec<Row>,
    pub keys: Vec<Row>,
    /// The day chart's uPlot spec (`assets/app.js`): one series of credits per model.
    pub day_chart: String,
    pub model_chart: String,
    pub key_chart: String,
}

fn rows(
    groups: BTreeMap<String, Totals>,
    unit: &CreditUnit,
    names: &BTreeMap<String, String>,
) -> Vec<Row> {
    groups
        .into_iter()
        .map(|(id, totals)| Row {
            label: names.get(&id).cloned().unwrap_or_else(|| id.clone()),
            amount: totals.amount(unit),
            id,
            totals,
        })
        .collect()
}

/// A bar chart of credits, one bar per row.
fn bar_chart(title: &str, rows: &[Row]) -> String {
    let names: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let spec = json!({
        "kind": "bars", "time": false, "x_label": title,
        "x": (0..rows.len()).collect::<Vec<_>>(), "x_names": names,
        "series": [{"label": "credits",
                    "values": rows.iter().map(|r| r.totals.credits.to_string()).collect::<Vec<_>>()}],
    });
    script_json(&spec)
}

/// Sums the `group_by[]=model` report into the day table, the model table and the day chart.
fn by_day(report: &Value, unit: &CreditUnit) -> Result<(Vec<Row>, Vec<Row>, String), ApiError> {
    let buckets = report["data"].as_array().cloned().unwrap_or_default();
    let mut days = Vec::new();
    let mut models: BTreeMap<String, Totals> = BTreeMap::new();
    let mut per_model: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut x = Vec::new();
    for (i, b) in buckets.iter().enumerate() {
        let start = text(&b["starting_at"]);
        x.push(Timestamp::parse_rfc3339(&start).map_or(0, |t| t.millis() / 1000));
        let mut total = Totals::default();
        for r in b["results"].as_array().into_iter().flatten() {
            total.add(r)?;
            let model = text(&r["model"]);
            models.entry(model.clone()).or_default().add(r)?;
            let series = per_model
                .entry(model)
                .or_insert_with(|| vec!["0".to_owned(); buckets.len()]);
            series[i] = text(&r["credits"]);
        }
        days.push(Row {
            label: start.get(..10).unwrap_or_default().to_owned(),
            id: String::new(),
            amount: total.amount(unit),
            totals: total,
        });
    }
    let series: Vec<Value> = per_model
        .into_iter()
        .map(|(label, values)| json!({"label": label, "values": values}))
        .collect();
    let chart = json!({"kind": "lines", "time": true, "x_label": "day", "x": x, "series": series});
    Ok((
        days,
        rows(models, unit, &BTreeMap::new()),
        script_json(&chart),
    ))
}

/// The window's sums by day, model and key (`names`: key id → name).
pub async fn views(
    app: &App,
    caller: &crate::caller::OrgCaller,
    window: &str,
    names: &BTreeMap<String, String>,
) -> Result<Views, ApiError> {
    let unit = &app.cfg.credit_unit;
    let q = format!("{window}&bucket_width=1d&limit=31");
    let groupings: [&[Dimension]; 2] = [&[Dimension::Model], &[Dimension::ApiKey]];
    let reports = org_json_each(app, caller, ReportKind::Usage, &q, &groupings).await?;
    let [by_model, by_key] = &reports[..] else {
        return Err(ApiError::internal("the usage report answered no grouping"));
    };
    let (days, models, day_chart) = by_day(by_model, unit)?;
    let mut keys: BTreeMap<String, Totals> = BTreeMap::new();
    for b in by_key["data"].as_array().into_iter().flatten() {
        for r in b["results"].as_array().into_iter().flatten() {
            keys.entry(text(&r["api_key_id"])).or_default().add(r)?;
        }
    }
    let keys = rows(keys, unit, names);
    Ok(Views {
        model_chart: bar_chart("model", &models),
        key_chart: bar_chart("key", &keys),
        days,
        models,
        keys,
        day_chart,
    })
}

#[derive(Template)]
#[template(path = "usage.html")]
pub struct UsagePage {
    pub c: Chrome,
    pub range: Range,
    pub errors: FormErrors,
    pub v: Option<Views>,
    pub total: Amount,
    pub requests: u64,
}

impl UsagePage {
    /// A CSV download of `report` over the range (`extra`: its grouping).
    pub fn csv(&self, route: &str, extra: &str) -> String {
        format!("{route}?{}&format=csv{extra}", self.range.query)
    }
}

/// `GET /usage[?from=&to=]`.
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(form): Query<RangeForm>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "usage";
    let unit = &app.cfg.credit_unit;
    let mut page = UsagePage {
        c: chrome,
        range: Range {
            from: String::new(),
            to: String::new(),
            query: String::new(),
        },
        errors: FormErrors::default(),
        v: None,
        total: Amount::of(NanoCredits::ZERO, unit),
        requests: 0,
    };
    let (range, status) = match range(&form, app.clock.now()) {
        Ok(r) => (r, StatusCode::OK),
        Err((r, e)) => {
            page.errors = e;
            (r, StatusCode::BAD_REQUEST)
        }
    };
    page.range = range;
    if status == StatusCode::OK {
        let names = super::keys::names(&app, &caller).await?;
        match views(&app, &caller, &page.range.query, &names).await {
            Ok(v) => {
                let mut sum = Totals::default();
                for d in &v.days {
                    sum.plus(&d.totals)?;
                }
                page.total = sum.amount(unit);
                page.requests = sum.requests;
                page.v = Some(v);
            }
            Err(e) if e.status == StatusCode::BAD_REQUEST => {
                page.errors = range_error(&e);
                return Ok(html(e.status, &page));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(html(status, &page))
}
