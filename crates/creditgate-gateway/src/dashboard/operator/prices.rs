//! The console's prices in force: the price book's version and each served model's list rates
//! beside what customers pay (list × the operator's multiplier), read from the same book the
//! request path prices with (`docs/pricing.md`, `docs/dashboard.md`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use creditgate_core::money::Decimal;
use creditgate_core::pricing::Rates;

use super::session::Console;
use super::Frame;
use crate::dashboard::pages::{html, PageResult};
use crate::App;

/// One model's rates: USD per million tokens, list and charged.
#[derive(Debug, Clone, Default)]
pub struct PriceRow {
    pub model: String,
    pub status: String,
    pub aliases: String,
    /// input, output, 5-minute write, 1-hour write, cache read: list, then charged.
    pub list: [String; 5],
    pub charged: [String; 5],
}

#[derive(Template)]
#[template(path = "operator/prices.html")]
pub struct PricesPage {
    pub f: Frame,
    pub version: String,
    pub multiplier: String,
    pub unit_name: String,
    pub unit_usd: String,
    pub rows: Vec<PriceRow>,
}

fn columns(r: &Rates) -> [Decimal; 5] {
    [
        r.input,
        r.output,
        r.cache_write_5m,
        r.cache_write_1h,
        r.cache_read,
    ]
}

/// A rate times the multiplier, exact; an overflow (not with real rates) shows as a dash.
fn charged(rate: Decimal, multiplier: Decimal) -> String {
    rate.checked_mul(multiplier)
        .map(|d| d.to_string())
        .unwrap_or_else(|_| "—".to_owned())
}

/// `GET /operator/prices`.
pub async fn page(State(app): State<Arc<App>>, console: Console) -> PageResult {
    let multiplier = app.pricing.multiplier;
    let rows = app
        .book
        .models()
        .filter(|m| m.status().is_served())
        .map(|m| {
            let rates = columns(m.rates());
            PriceRow {
                model: m.id().to_owned(),
                status: m.status().as_str().to_owned(),
                aliases: m.aliases().join(", "),
                list: rates.map(|r| r.to_string()),
                charged: rates.map(|r| charged(r, multiplier)),
            }
        })
        .collect();
    let page = PricesPage {
        f: Frame::new(&console.csrf, "prices", None),
        version: app.book.version().to_owned(),
        multiplier: multiplier.to_string(),
        unit_name: app.cfg.credit_unit.name.clone(),
        unit_usd: app.cfg.credit_unit.usd.to_string(),
        rows,
    };
    Ok(html(StatusCode::OK, &page))
}
