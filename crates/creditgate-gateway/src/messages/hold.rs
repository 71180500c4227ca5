//! Hold growth: a stream's hold covers its output slice by slice, and the exact input once
//! `message_start` tells it.

use creditgate_core::ledger::{ExtendHoldRequest, LedgerError, LedgerStore};
use creditgate_core::metering;
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::ReportedUsage;

use super::Admitted;
use crate::sse::UsageTally;

/// The progressive reservation of one stream.
pub(super) struct ProgressiveHold {
    pub(super) held: NanoCredits,
    /// Output tokens the hold covers.
    pub(super) covered: u64,
    /// Exact input cost above the estimate, learned at `message_start`.
    pub(super) input_correction: NanoCredits,
    pub(super) grown: u32,
}

impl Admitted {
    /// The hold as admission placed it: the first slice of output.
    pub(super) fn first_slice(&self) -> ProgressiveHold {
        ProgressiveHold {
            held: self.held,
            covered: self.parsed.first_slice(self.app.cfg.first_slice_tokens),
            input_correction: NanoCredits::ZERO,
            grown: 0,
        }
    }

    /// At `message_start` the exact input replaces the estimate: if the estimate was low, the
    /// hold grows by the difference before anything more passes.
    pub(super) async fn correct_input(
        &self,
        tally: &UsageTally,
        hold: &mut ProgressiveHold,
    ) -> Result<(), LedgerError> {
        let Some(usage) = tally.final_usage() else {
            return Ok(());
        };
        let usage = ReportedUsage::parse(&usage).usage;
        let Some(cost) = metering::input_cost(
            &self.app.book,
            &self.parsed.model,
            &usage,
            &self.app.pricing,
        ) else {
            return Ok(());
        };
        let estimated = self.estimate.input_side();
        if cost > estimated {
            hold.input_correction = cost.checked_sub(estimated)?;
            let covered = hold.covered;
            return self.grow_to(hold, covered).await;
        }
        Ok(())
    }

    /// Grows the hold slice by slice until it covers `output` tokens (never past `max_tokens`).
    pub(super) async fn cover(
        &self,
        hold: &mut ProgressiveHold,
        output: u64,
    ) -> Result<(), LedgerError> {
        let max = self.parsed.max_tokens;
        if output <= hold.covered || hold.covered >= max {
            return Ok(());
        }
        let mut target = hold.covered;
        while target < output {
            target = target.saturating_add(self.app.cfg.slice_tokens);
        }
        self.grow_to(hold, target.min(max)).await
    }

    /// Makes the hold cover the input side plus `target` output tokens.
    async fn grow_to(&self, hold: &mut ProgressiveHold, target: u64) -> Result<(), LedgerError> {
        let need = self
            .estimate
            .with_output(target)
            .map_err(|e| LedgerError::InvalidAmount(e.to_string()))?
            .checked_add(hold.input_correction)?;
        let extra = need.checked_sub(hold.held)?;
        if extra.is_positive() {
            if let Some(lease) = &self.lease {
                let app = &self.app;
                Box::pin(app.leases.grow(app, &self.request_id, lease, extra)).await?;
                hold.held = hold.held.checked_add(extra)?;
                hold.covered = target;
                return Ok(());
            }
            hold.grown += 1;
            let transfer_id = self
                .request_id
                .child(&format!("grow:{}", hold.grown))
                .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
            let req = ExtendHoldRequest {
                transfer_id,
                hold: self.request_id.clone(),
                amount: extra,
                timeout_ms: self.app.cfg.hold_timeout_ms,
                // The key's spend caps bind every slice, not only the first.
                limits: self
                    .key
                    .limits
                    .spend_limits(&self.key.scope(), self.app.clock.now()),
            };
            // Boxed, as every database call of the pump: a stream's resting task stays small.
            let grown = Box::pin(self.app.db.extend_hold(req)).await?;
            hold.held = grown.amount;
        }
        hold.covered = target;
        Ok(())
    }
}
