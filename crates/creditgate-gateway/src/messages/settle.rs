//! Settlement: the one settle of a request's hold, carrying its receipt, retried on a database
//! error and spooled when the database cannot take it (`docs/gateway.md`).

use std::time::Duration;

use creditgate_core::ledger::{LeasedHold, LedgerError, SettleRequest, Settlement};
use creditgate_core::metering;
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::{ReceiptStatus, ReportedUsage};

use super::{Admitted, Settled};
use crate::spool::Spooled;

/// Attempts to post a settlement before it goes to the spool...
const SETTLE_ATTEMPTS: u32 = 3;
/// ...unless this much time has passed (a write-locked SQLite file fails each attempt only after
/// its busy timeout): the spool is exact too, and the client is waiting.
const SETTLE_RETRY_BUDGET: Duration = Duration::from_secs(2);
/// Longest one attempt may wait for the database (SQLite's busy timeout; a Postgres statement
/// waiting on a lock has none) before the settlement goes to the spool. An attempt given up
/// may still commit later: the spool's replay of the same settle is then a no-op (settling is
/// idempotent on its transfer id), so the charge is posted exactly once either way.
const SETTLE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a settlement went.
enum Posted {
    Ledger(Settlement),
    /// In the spool: applied when the database is back.
    Spooled,
    /// Neither (the ledger refused it, or the spool could not be written): logged.
    Lost,
}

impl Admitted {
    /// Prices the usage (if any) and settles the hold once with its usage record. Retries a few
    /// times on a database error (settling is idempotent on its transfer id); if the database
    /// still cannot take it, the settlement goes to the spool and the client is told it is
    /// pending.
    pub(super) async fn settle_with_retries(
        &self,
        status: ReceiptStatus,
        usage: Option<ReportedUsage>,
        note: &str,
    ) -> Settled {
        let app = &self.app;
        let mut charge = metering::charge(
            &app.book,
            &self.parsed.model,
            usage.as_ref(),
            self.held,
            status,
            &app.pricing,
        );
        // Our own estimate (no final usage from the upstream) never charges past the hold.
        if charge.status == ReceiptStatus::Estimated {
            charge.amount = charge.amount.min(self.held);
        }
        if let Some(err) = &charge.pricing_error {
            tracing::error!(request_id = %self.request_id, error = %err, "pricing failed; charging the hold");
        }
        self.correct_rate(usage.as_ref()).await;
        let record = self.usage_record(&charge, usage.as_ref(), note);
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
            memo: None,
            usage: record.map(Box::new),
            leased: self.leased_hold(),
        };
        if let Some(lease) = &self.lease {
            app.leases.settling(lease, self.held, charge.amount);
        }
        let posted = self.post_settlement(req).await;
        if let Some(lease) = &self.lease {
            app.leases.settled(&self.request_id, lease);
        }
        if !matches!(posted, Posted::Lost) {
            self.app.metrics.charged(&self.parsed.model, charge.amount);
        }
        match posted {
            Posted::Ledger(s) => {
                let available = s.available.map(|a| {
                    app.leases
                        .correct_available(&self.key.org, a, app.clock.now())
                });
                if let Some(available) = available {
                    crate::reload::after_settlement(&self.app, &self.key.org, available);
                    crate::notify::alerts::after_settlement(&self.app, &self.key.org, available);
                }
                Settled {
                    charged: charge.amount,
                    available,
                    status: charge.status,
                }
            }
            Posted::Spooled => Settled {
                charged: charge.amount,
                available: None,
                status: ReceiptStatus::Pending,
            },
            Posted::Lost => Settled {
                charged: NanoCredits::ZERO,
                available: None,
                status: charge.status,
            },
        }
    }

    /// The request's hold as its settle records it, when it was admitted against a lease.
    fn leased_hold(&self) -> Option<LeasedHold> {
        self.lease.as_ref()?;
        self.app
            .leases
            .hold_of(&self.request_id, self.held, self.key.scope())
    }

    /// Posts the settlement, retrying while the database is unavailable, then spools it.
    async fn post_settlement(&self, req: SettleRequest) -> Posted {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Boxed, as every database call of the pump: a stream's resting task stays small.
            let settling = Box::pin(self.app.settler.settle(req.clone()));
            let attempt_result = tokio::time::timeout(SETTLE_ATTEMPT_TIMEOUT, settling)
                .await
                .unwrap_or_else(|_| {
                    Err(LedgerError::Unavailable(format!(
                        "no answer within {} s",
                        SETTLE_ATTEMPT_TIMEOUT.as_secs()
                    )))
                });
            match attempt_result {
                Ok(s) => return Posted::Ledger(s),
                Err(LedgerError::Unavailable(e))
                    if attempt < SETTLE_ATTEMPTS && started.elapsed() < SETTLE_RETRY_BUDGET =>
                {
                    tracing::warn!(request_id = %self.request_id, error = %e, attempt, "settle failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(LedgerError::Unavailable(e)) => {
                    tracing::warn!(request_id = %self.request_id, error = %e, "the database cannot take the settlement; spooling it");
                    return self.spool(req).await;
                }
                Err(err) => {
                    tracing::error!(request_id = %self.request_id, error = %err, "the ledger refused the settlement");
                    return Posted::Lost;
                }
            }
        }
    }

    async fn spool(&self, settle: SettleRequest) -> Posted {
        let spooled = Spooled {
            settle,
            org: self.key.org.clone(),
            at: self.app.clock.now().millis(),
        };
        match Box::pin(self.app.spool.append(spooled)).await {
            Ok(()) => Posted::Spooled,
            Err(err) => {
                tracing::error!(request_id = %self.request_id, error = %err, "the settlement could not be spooled; the hold will expire");
                Posted::Lost
            }
        }
    }
}
