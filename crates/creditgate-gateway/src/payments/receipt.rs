//! Printable HTML receipts: seller (from the config) and buyer (the billing profile; country
//! and tax id as of the order), plan, credits, subtotal, tax (rate and amount, or "No tax"),
//! total, method, date and the gapless receipt number. `GET /receipts/{order_id}`
//! serves one the way Stripe serves its receipt links: the order id (128 random bits) is the
//! capability.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Html;
use creditgate_core::ids::OrderId;
use creditgate_core::payments::{BillingProfile, Order};

use crate::config::Seller;
use crate::error::ApiError;
use crate::App;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `$1,250.00` from cents.
pub fn dollars(cents: i64) -> String {
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("${grouped}.{:02}", cents % 100)
}

fn lines(parts: &[Option<&str>]) -> String {
    parts
        .iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(|s| escape(s))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The receipt page of a credited order.
pub fn render(order: &Order, seller: &Seller, buyer: &BillingProfile, unit: &str) -> String {
    let a = &buyer.address;
    let seller_tax = seller.tax_id.as_deref().map(|t| format!("Tax ID: {t}"));
    let seller_lines: Vec<Option<&str>> = std::iter::once(Some(seller.name.as_str()))
        .chain(seller.address.iter().map(|l| Some(l.as_str())))
        .chain([seller.email.as_deref(), seller_tax.as_deref()])
        .collect();
    // The country and tax id the order was made with; orders from before tax: the profile's.
    let (country, tax_id) = match order.buyer_country.as_deref() {
        Some(c) => (Some(c), order.buyer_tax_id.as_deref()),
        None => (buyer.country.as_deref(), buyer.tax_id.as_deref()),
    };
    let buyer_lines = lines(&[
        buyer.name.as_deref(),
        buyer.email.as_deref(),
        a.line1.as_deref(),
        a.line2.as_deref(),
        a.postal_code.as_deref(),
        a.city.as_deref(),
        a.state.as_deref(),
        country,
        tax_id.map(|_| "Tax ID:"),
        tax_id,
    ]);
    let number = order.receipt_number.as_deref().unwrap_or("—");
    let date = order.paid_at.map(|t| t.to_rfc3339()).unwrap_or_default();
    let refunded = if order.refunded_cents > 0 {
        format!(
            "<tr><th>Refunded</th><td>{}</td></tr>",
            dollars(order.refunded_cents)
        )
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Receipt {number}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;color:#111}}\
         table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.4rem;\
         border-bottom:1px solid #ddd}}.parties{{display:flex;gap:4rem}}\
         @media print{{body{{margin:0}}}}</style></head><body>\
         <h1>Receipt {number}</h1>\
         <div class=\"parties\"><div><h2>Seller</h2><p>{seller}</p></div>\
         <div><h2>Billed to</h2><p>{buyer}</p></div></div>\
         <table><tr><th>Order</th><td>{order_id}</td></tr>\
         <tr><th>Plan</th><td>{plan}</td></tr>\
         <tr><th>Credits</th><td>{credits} {unit}</td></tr>\
         <tr><th>Subtotal</th><td class=\"subtotal\">{subtotal} {currency}</td></tr>\
         <tr><th>{tax_label}</th><td class=\"tax\">{tax} {currency}</td></tr>\
         <tr><th>Total paid</th><td class=\"total\">{amount} {currency}</td></tr>\
         <tr><th>Method</th><td>{method}</td></tr>\
         <tr><th>Date</th><td>{date}</td></tr>{refunded}</table>\
         <p>Credits are prepaid and non-refundable except as the seller's terms say.</p>\
         </body></html>",
        number = escape(number),
        seller = lines(&seller_lines),
        buyer = if buyer_lines.is_empty() {
            "—".to_owned()
        } else {
            buyer_lines
        },
        order_id = escape(order.id.as_str()),
        plan = escape(order.plan_id.as_deref().unwrap_or("custom amount")),
        credits = order.credits,
        unit = escape(unit),
        subtotal = dollars(order.subtotal_cents),
        tax_label = escape(&order.tax_label()),
        tax = dollars(order.tax_cents),
        amount = dollars(order.amount_cents),
        currency = escape(&order.currency.to_uppercase()),
        method = escape(order.method.as_deref().unwrap_or(order.provider.as_str())),
        date = escape(&date),
    )
}

/// `GET /receipts/{order_id}`: the receipt of a credited order; 404 for anything else.
pub async fn page(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let missing = || ApiError::not_found("There is no receipt here.");
    let id = OrderId::parse(&id).map_err(|_| missing())?;
    let order = app.db.order(&id).await?.ok_or_else(missing)?;
    render_order(&app, &order).await
}

/// The receipt page of `order`; 404 until it is credited.
pub async fn render_order(app: &App, order: &Order) -> Result<Html<String>, ApiError> {
    if order.receipt_number.is_none() {
        return Err(ApiError::not_found(
            "There is no receipt here: the order has not been paid.",
        ));
    }
    let buyer = app.db.billing_profile(&order.org).await?;
    Ok(Html(render(
        order,
        &app.payments.cfg.seller,
        &buyer,
        &app.cfg.credit_unit.name,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_escaping() {
        assert_eq!(dollars(125_000), "$1,250.00");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(100_000_000), "$1,000,000.00");
        assert_eq!(
            escape("<script>\"x\"&'y'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;"
        );
    }
}
