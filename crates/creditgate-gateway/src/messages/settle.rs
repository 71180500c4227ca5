//! Settlement: the one settle of a request's hold, carrying its receipt, retried on a database
//! error.

use std::time::Duration;

use creditgate_core::ledger::{LedgerError, LedgerStore, SettleRequest, Settlement};
use creditgate_core::metering;
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::ReceiptStatus;
use serde_json::Value;

use super::{Admitted, Settled};

/// Attempts to post a settlement before giving up (the hold then expires and is released).
const SETTLE_ATTEMPTS: u32 = 5;

impl Admitted {
    /// Prices the usage (if any), settles the hold once with the receipt, records it. Retries a
    /// few times on a database error (settling is idempotent on its transfer id); if it still
    /// fails the hold expires and is released by the sweeper, and the error is logged.
    pub(super) async fn settle_with_retries(
        &self,
        status: ReceiptStatus,
        usage: Option<Value>,
        note: &str,
    ) -> Settled {
        let app = &self.app;
        let charge = metering::charge(
            &app.book,
            &self.parsed.model,
            usage.as_ref(),
            self.held,
            status,
            &app.pricing,
        );
        if let Some(err) = &charge.pricing_error {
            tracing::error!(request_id = %self.request_id, error = %err, "pricing failed; charging the hold");
        }
        let receipt = self.receipt(&charge, usage.as_ref(), note);
        let Ok(transfer_id) = self.request_id.child("settle") else {
            return Settled {
                charged: NanoCredits::ZERO,
                available: None,
                status: charge.status,
            };
        };
        let req = SettleRequest {
            transfer_id,
            hold: self.request_id.clone(),
            amount: charge.amount,
            memo: Some(receipt.to_string()),
        };
        let settlement = self.post_settlement(req).await;
        Settled {
            charged: if settlement.is_some() {
                charge.amount
            } else {
                NanoCredits::ZERO
            },
            available: settlement.as_ref().and_then(|s| s.available),
            status: charge.status,
        }
    }

    /// Posts the settlement, retrying while the database is unavailable.
    async fn post_settlement(&self, req: SettleRequest) -> Option<Settlement> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.app.db.settle(req.clone()).await {
                Ok(s) => return Some(s),
                Err(LedgerError::Unavailable(e)) if attempt < SETTLE_ATTEMPTS => {
                    tracing::warn!(request_id = %self.request_id, error = %e, attempt, "settle failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(err) => {
                    tracing::error!(request_id = %self.request_id, error = %err, "settle failed; the hold will expire");
                    return None;
                }
            }
        }
    }
}
