//! How commands print: one JSON object on stdout with `--json`, plain lines otherwise.

use creditgate_core::ledger::Lot;
use serde_json::{json, Value};

/// Prints `value` as one JSON line when `as_json`, else the human-readable `text`.
pub fn emit(as_json: bool, value: &Value, text: impl FnOnce() -> String) {
    if as_json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

/// A lot as the CLI shows it: amounts as exact decimal strings, times in RFC 3339.
pub fn lot_json(lot: &Lot) -> Value {
    json!({
        "id": lot.id,
        "category": lot.category.as_str(),
        "source": lot.source.as_str(),
        "amount": lot.amount,
        "remaining": lot.remaining,
        "price_per_credit": lot.price_per_credit,
        "expires_at": lot.expires_at.map(|t| t.to_rfc3339()),
        "created_at": lot.created_at.to_rfc3339(),
    })
}

/// A fresh identifier with a readable prefix, made as the gateway makes its ids.
pub fn generated_id(prefix: &str) -> String {
    creditgate_gateway::ids::fresh(prefix)
}
