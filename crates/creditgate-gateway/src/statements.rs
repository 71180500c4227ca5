//! `GET /v1/billing/statement`: an organization's statement of account for a period, as JSON or
//! CSV (`docs/statements.md`). The CLI's `creditgate statement` prints the same renderings.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use creditgate_core::accounts::Action;
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::statement::{date, Statement};
use serde_json::{json, Value};

use crate::caller::OrgCaller;
use crate::error::ApiError;
use crate::reports::render::csv_field;
use crate::App;

/// The period of a statement: `[starting_at, ending_at)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub starting_at: Timestamp,
    pub ending_at: Timestamp,
}

impl Period {
    /// From the optional bounds (RFC 3339 UTC, or a date meaning its midnight); by default the
    /// current UTC calendar month.
    pub fn parse(
        starting_at: Option<&str>,
        ending_at: Option<&str>,
        now: Timestamp,
    ) -> Result<Self, ApiError> {
        let time = |name: &str, v: Option<&str>| -> Result<Option<Timestamp>, ApiError> {
            v.map(|v| {
                Timestamp::parse_rfc3339(v).ok_or_else(|| {
                    ApiError::invalid_request(format!(
                        "{name}: {:?} is not an RFC 3339 UTC time such as 2026-11-01T00:00:00Z",
                        v.chars().take(64).collect::<String>()
                    ))
                })
            })
            .transpose()
        };
        let starting_at = time("starting_at", starting_at)?.unwrap_or(now.month_start());
        let ending_at = time("ending_at", ending_at)?.unwrap_or(starting_at.next_month_start());
        if ending_at <= starting_at {
            return Err(ApiError::invalid_request(
                "ending_at must be later than starting_at",
            ));
        }
        Ok(Self {
            starting_at,
            ending_at,
        })
    }
}

/// The route's query: `starting_at`, `ending_at`, and `format=csv|json` (or `Accept: text/csv`).
fn parse_query(
    query: &str,
    accept: Option<&str>,
    now: Timestamp,
) -> Result<(Period, bool), ApiError> {
    let (mut start, mut end, mut format) = (None, None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "starting_at" => &mut start,
            "ending_at" => &mut end,
            "format" => &mut format,
            other => {
                return Err(ApiError::invalid_request(format!(
                    "unknown parameter {:?}",
                    other.chars().take(64).collect::<String>()
                )))
            }
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::invalid_request(format!(
                "{name}: given more than once"
            )));
        }
    }
    let csv = match format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(ApiError::invalid_request("format: csv or json")),
        None => accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/csv")),
    };
    Ok((Period::parse(start.as_deref(), end.as_deref(), now)?, csv))
}

/// `GET /v1/billing/statement` (owner, admin and billing).
pub async fn statement(
    State(app): State<Arc<App>>,
    caller: OrgCaller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageBilling)?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (period, csv) = parse_query(query.as_deref().unwrap_or(""), accept, app.clock.now())?;
    let s = read(&app, &caller, period).await?;
    if csv {
        let mut resp = to_csv(&s).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(resp);
    }
    Ok(Json(to_json(&caller.org, &s)).into_response())
}

/// The statement of the caller's organization for `period`: what the route answers, and what
/// the dashboard's statement page shows (owner, admin and billing).
pub async fn read(app: &App, caller: &OrgCaller, period: Period) -> Result<Statement, ApiError> {
    caller.require(Action::ManageBilling)?;
    Ok(app
        .db
        .statement(&caller.org, period.starting_at, period.ending_at)
        .await?)
}

/// The statement as the route's JSON.
pub fn to_json(org: &OrganizationId, s: &Statement) -> Value {
    let lines: Vec<Value> = s
        .lines
        .iter()
        .map(|l| {
            json!({
                "date": date(l.at),
                "at": l.at.to_rfc3339(),
                "kind": l.kind.as_str(),
                "credits": l.credits,
                "balance_after": l.balance_after,
                "reference": l.reference,
                "requests": l.requests,
            })
        })
        .collect();
    json!({
        "type": "statement",
        "organization_id": org,
        "starting_at": s.starting_at.to_rfc3339(),
        "ending_at": s.ending_at.to_rfc3339(),
        "opening_balance": s.opening_balance,
        "closing_balance": s.closing_balance,
        "lines": lines,
    })
}

/// The statement as CSV: a header, an `opening_balance` row, one row per line and a
/// `closing_balance` row, so a spreadsheet can check the sum without the JSON.
pub fn to_csv(s: &Statement) -> String {
    let mut out = String::from("date,at,kind,credits,balance_after,reference\r\n");
    let mut row = |at: Timestamp, kind: &str, credits: String, balance: String, reference: &str| {
        let fields = [
            date(at),
            at.to_rfc3339(),
            kind.to_owned(),
            credits,
            balance,
            csv_field(&Value::String(reference.to_owned())),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    };
    let opening = s.opening_balance.to_string();
    row(s.starting_at, "opening_balance", String::new(), opening, "");
    for l in &s.lines {
        let (credits, balance) = (l.credits.to_string(), l.balance_after.to_string());
        row(l.at, l.kind.as_str(), credits, balance, &l.reference);
    }
    let closing = s.closing_balance.to_string();
    let last = s.ending_at.plus_millis(-1);
    row(last, "closing_balance", String::new(), closing, "");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_defaults_to_the_current_month_and_refuses_bad_bounds() {
        let now = Timestamp::parse_rfc3339("2026-11-26T20:00:00Z").unwrap();
        let p = Period::parse(None, None, now).unwrap();
        assert_eq!(p.starting_at.to_rfc3339(), "2026-11-01T00:00:00Z");
        assert_eq!(p.ending_at.to_rfc3339(), "2026-12-01T00:00:00Z");
        assert!(Period::parse(Some("2026-11-02"), Some("2026-11-01"), now).is_err());
        assert!(Period::parse(Some("yesterday"), None, now).is_err());
        let (_, csv) = parse_query("format=csv", None, now).unwrap();
        assert!(csv);
        assert!(parse_query("limit=3", None, now).is_err());
        assert!(parse_query("format=pdf", None, now).is_err());
        assert!(parse_query("starting_at=2026-11-01&starting_at=2026-11-02", None, now).is_err());
    }
}
