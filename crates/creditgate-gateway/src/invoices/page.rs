//! The printable invoice: seller (the config's `[payments.seller]`), buyer (the billing profile
//! as it was when the invoice was drafted), both tax ids, the usage line, subtotal, tax and
//! total, the number and the due date. HTML with print styles, like the receipts.

use creditgate_core::payments::invoice::Invoice;
use creditgate_core::payments::tax::tax_label;

use crate::config::Seller;
use crate::payments::receipt::{dollars, escape};

fn lines(parts: &[Option<&str>]) -> String {
    let shown: Vec<String> = parts
        .iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(|s| escape(s))
        .collect();
    if shown.is_empty() {
        "—".to_owned()
    } else {
        shown.join("<br>")
    }
}

fn day(t: creditgate_core::clock::Timestamp) -> String {
    t.to_rfc3339()[..10].to_owned()
}

/// The invoice page.
pub fn render(inv: &Invoice, seller: &Seller, unit: &str) -> String {
    let tax_id = |id: Option<&str>| id.map(|t| format!("Tax ID: {t}"));
    let seller_tax = tax_id(seller.tax_id.as_deref());
    let seller_lines: Vec<Option<&str>> = std::iter::once(Some(seller.name.as_str()))
        .chain(seller.address.iter().map(|l| Some(l.as_str())))
        .chain([seller.email.as_deref(), seller_tax.as_deref()])
        .collect();
    let b = &inv.buyer;
    let buyer_tax = tax_id(b.tax_id.as_deref());
    let buyer = lines(&[
        b.name.as_deref(),
        b.email.as_deref(),
        b.address.line1.as_deref(),
        b.address.line2.as_deref(),
        b.address.postal_code.as_deref(),
        b.address.city.as_deref(),
        b.address.state.as_deref(),
        b.country.as_deref(),
        buyer_tax.as_deref(),
    ]);
    // The period's last day: the end is the first instant of the next month.
    let last_day = day(inv.period_end.plus_millis(-1));
    let paid = match inv.paid_at {
        Some(at) => format!("<p class=\"paid\">Paid on {}.</p>", day(at)),
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Invoice {number}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;color:#111}}\
         table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.4rem;\
         border-bottom:1px solid #ddd}}td.n,th.n{{text-align:right}}.parties{{display:flex;gap:4rem}}\
         @media print{{body{{margin:0}}}}</style></head><body>\
         <h1>Invoice {number}</h1>\
         <p>Issued {issued} · Due {due} · Status: {status}</p>\
         <div class=\"parties\"><div><h2>Seller</h2><p>{seller}</p></div>\
         <div><h2>Billed to</h2><p>{buyer}</p></div></div>\
         <table><tr><th>Description</th><th class=\"n\">Quantity</th>\
         <th class=\"n\">Unit price</th><th class=\"n\">Amount</th></tr>\
         <tr><td>Usage settled {start} to {end} (UTC)</td><td class=\"n\">{credits} {unit}</td>\
         <td class=\"n\">${price}</td><td class=\"n\">{subtotal}</td></tr>\
         <tr><td colspan=\"3\">Subtotal</td><td class=\"n\">{subtotal}</td></tr>\
         <tr><td colspan=\"3\">{rate}</td><td class=\"n\">{tax}</td></tr>\
         <tr><th colspan=\"3\">Total due ({currency})</th><th class=\"n\">{total}</th></tr>\
         </table>{paid}\
         <p>Paying this invoice credits the {credits} {unit} back to the organization's balance.</p>\
         </body></html>",
        number = escape(&inv.number),
        issued = day(inv.created_at),
        due = day(inv.due_at),
        status = inv.status.as_str(),
        seller = lines(&seller_lines),
        start = day(inv.period_start),
        end = last_day,
        credits = inv.credits,
        unit = escape(unit),
        price = inv.usd_per_credit,
        subtotal = dollars(inv.subtotal_cents),
        rate = escape(&tax_label(inv.buyer.country.as_deref(), &inv.tax_rate)),
        tax = dollars(inv.tax_cents),
        currency = escape(&inv.currency.to_uppercase()),
        total = dollars(inv.amount_cents),
    )
}
