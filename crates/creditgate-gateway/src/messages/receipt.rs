//! What a request's outcome tells the ledger (the receipt memo on the charge) and the client
//! (cost headers on a JSON answer, a closing comment line on a stream).

use axum::http::{HeaderMap, HeaderValue};
use creditgate_core::metering::Charge;
use serde_json::{json, Value};

use super::{Admitted, Settled};

impl Admitted {
    /// The receipt stored with the charge (read back by `GET /v1/requests/{id}`).
    pub(super) fn receipt(&self, charge: &Charge, usage: Option<&Value>, note: &str) -> Value {
        let cost = charge.cost.as_ref();
        json!({
            "id": self.request_id,
            "model": self.parsed.model,
            "usage": usage,
            "held": self.held,
            "charged": charge.amount,
            "unit": self.app.cfg.credit_unit.name,
            "price_version": cost.map(|c| c.price_version.clone()),
            "status": charge.status,
            "disconnect_policy": self.policy,
            "stream": self.parsed.stream,
            "key_id": self.key.id,
            "lines": cost.map(|c| c.lines.clone()),
            "list_usd": cost.map(|c| c.list_usd),
            "flags": charge.flags,
            "note": if note.is_empty() { None } else { Some(note) },
            "latency_ms": self.started.elapsed().as_millis() as u64,
        })
    }

    /// The `x-creditgate-*` headers of a JSON answer.
    pub(super) fn cost_headers(&self, headers: &mut HeaderMap, settled: &Settled) {
        let put = |h: &mut HeaderMap, name: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(name, v);
            }
        };
        put(headers, "request-id", self.request_id.to_string());
        put(headers, "x-creditgate-charged", settled.charged.to_string());
        if let Some(a) = settled.available {
            put(headers, "x-creditgate-available", a.to_string());
        }
        put(
            headers,
            "x-creditgate-unit",
            self.app.cfg.credit_unit.name.clone(),
        );
        put(
            headers,
            "x-creditgate-status",
            settled.status.as_str().to_owned(),
        );
    }

    /// The comment line (ignored by SDKs) that ends a stream and tells the client what it cost.
    pub(super) fn stream_summary(&self, settled: &Settled) -> String {
        let summary = json!({
            "request_id": self.request_id,
            "charged": settled.charged,
            "available": settled.available,
            "unit": self.app.cfg.credit_unit.name,
            "status": settled.status,
        });
        format!(": creditgate {summary}\n\n")
    }
}
