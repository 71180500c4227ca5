//! What a request's outcome tells the ledger (the usage record written with the charge) and the
//! client (cost headers on a JSON answer, a closing comment line on a stream).

use axum::http::{HeaderMap, HeaderValue};
use creditgate_core::metering::Charge;
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::{self, Charged, ReportedUsage, RequestFacts, UsageRecord};
use serde_json::json;

use super::{Admitted, Settled};

impl Admitted {
    /// The usage record the settle writes with the charge (read back by
    /// `GET /v1/requests/{id}` and the reports). `None` only if the amounts cannot be split,
    /// which the ledger's own checks make impossible; the charge is then settled without one.
    pub(super) fn usage_record(
        &self,
        charge: &Charge,
        usage: Option<&ReportedUsage>,
        note: &str,
    ) -> Option<UsageRecord> {
        let savings = match (usage, charge.cost.as_ref()) {
            (Some(u), Some(cost)) => usage::cache_savings(
                &self.app.book,
                &self.parsed.model,
                &u.usage,
                cost,
                &self.app.pricing,
            ),
            _ => NanoCredits::ZERO,
        };
        let facts = RequestFacts {
            key_id: Some(self.key.id.clone()),
            model: self.parsed.model.clone(),
            stream: self.parsed.stream,
            disconnect_policy: self.policy,
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            upstream_request_id: self.upstream_request_id.get().cloned(),
            note: (!note.is_empty()).then(|| note.to_owned()),
        };
        let charged = Charged {
            amount: charge.amount,
            status: charge.status,
            cost: charge.cost.as_ref(),
            flags: &charge.flags,
        };
        match UsageRecord::new(facts, usage.map(|u| &u.usage), charged, savings) {
            Ok(record) => Some(record),
            Err(err) => {
                tracing::error!(request_id = %self.request_id, error = %err, "usage record failed");
                None
            }
        }
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
