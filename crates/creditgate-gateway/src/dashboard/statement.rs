//! The statement of account on the dashboard: a date range, the opening balance, every line
//! with the balance after it, the closing balance and the CSV download — read through
//! `statements::read`, the `GET /v1/billing/statement` route's own read (`docs/statements.md`,
//! `docs/dashboard.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use creditgate_core::clock::Timestamp;
use creditgate_core::money::NanoCredits;
use creditgate_core::statement::{date, LineKind};

use super::format::Amount;
use super::pages::{html, FormErrors, PageResult};
use super::usage::{day, parse_day, RangeForm, DAY_MS};
use super::viewer::{Chrome, Viewer};
use crate::statements::{read, Period};
use crate::App;

/// One line of the statement as shown.
pub struct LineRow {
    pub date: String,
    pub kind: &'static str,
    pub reference: String,
    pub requests: String,
    pub credits: Amount,
    pub balance: Amount,
}

#[derive(Template)]
#[template(path = "statement.html")]
pub struct StatementPage {
    pub c: Chrome,
    pub from: String,
    pub to: String,
    pub errors: FormErrors,
    /// The statement, once the range is good and the role may read it.
    pub shown: bool,
    pub opening: Amount,
    pub closing: Amount,
    pub lines: Vec<LineRow>,
    /// The route's CSV of the same period.
    pub csv: String,
    /// The role may not read statements: whom to ask instead.
    pub refused: bool,
}

/// What a line's kind is called on the page.
fn label(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Purchase => "Purchase",
        LineKind::Grant => "Grant",
        LineKind::Usage => "Usage",
        LineKind::Refund => "Refund",
        LineKind::Expiry => "Expired",
        LineKind::Adjustment => "Adjustment",
        LineKind::Invoice => "Invoice paid",
    }
}

/// The period of the form's days (`to` included); blank fields are this UTC month.
fn period(form: &RangeForm, now: Timestamp) -> (String, String, Result<Period, FormErrors>) {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let month = now.month_start();
    let from = given(&form.from).unwrap_or_else(|| day(month));
    let to = given(&form.to).unwrap_or_else(|| day(month.next_month_start().plus_millis(-DAY_MS)));
    let checked = (|| {
        let start = parse_day("from", &from)?;
        let last = parse_day("to", &to)?;
        // The route's own rule (the end after the start) decides; its refusal is about `to`.
        Period::parse(
            Some(&start.to_rfc3339()),
            Some(&last.plus_millis(DAY_MS).to_rfc3339()),
            now,
        )
        .map_err(|e| FormErrors::on_field("to", &e.message))
    })();
    (from, to, checked)
}

/// `GET /statement[?from=&to=]` (owner, admin and billing; others are told whom to ask).
pub async fn page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Query(form): Query<RangeForm>,
) -> PageResult {
    let Viewer { caller, mut chrome } = viewer;
    chrome.here = "statement";
    let unit = &app.cfg.credit_unit;
    let (from, to, checked) = period(&form, app.clock.now());
    let zero = Amount::of(NanoCredits::ZERO, unit);
    let mut page = StatementPage {
        c: chrome,
        from,
        to,
        errors: FormErrors::default(),
        shown: false,
        opening: zero.clone(),
        closing: zero,
        lines: Vec::new(),
        csv: String::new(),
        refused: false,
    };
    let period = match checked {
        Ok(p) => p,
        Err(e) => {
            page.errors = e;
            return Ok(html(StatusCode::BAD_REQUEST, &page));
        }
    };
    let s = match read(&app, &caller, period).await {
        Ok(s) => s,
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            page.refused = true;
            return Ok(html(StatusCode::OK, &page));
        }
        Err(e) => return Err(e.into()),
    };
    page.shown = true;
    page.csv = format!(
        "/v1/billing/statement?starting_at={}&ending_at={}&format=csv",
        period.starting_at.to_rfc3339(),
        period.ending_at.to_rfc3339()
    );
    page.opening = Amount::of(s.opening_balance, unit);
    page.closing = Amount::of(s.closing_balance, unit);
    page.lines = s
        .lines
        .iter()
        .map(|l| LineRow {
            date: date(l.at),
            kind: label(l.kind),
            reference: l.reference.clone(),
            requests: l.requests.map(|n| n.to_string()).unwrap_or_default(),
            credits: Amount::of(l.credits, unit),
            balance: Amount::of(l.balance_after, unit),
        })
        .collect();
    Ok(html(StatusCode::OK, &page))
}
