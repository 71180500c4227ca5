//! Enterprise credit lines: an organization the operator bills monthly (`invoiced`) may spend
//! past zero up to its `credit_limit`; a `prepaid` one may not (its limit is always zero).

use serde::{Deserialize, Serialize};

use crate::money::NanoCredits;

/// How an organization pays for what it spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingMode {
    /// Buys credits before spending them (the default).
    Prepaid,
    /// Spends on a credit line and is invoiced monthly for what it settled.
    Invoiced,
}

impl BillingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepaid => "prepaid",
            Self::Invoiced => "invoiced",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prepaid" => Some(Self::Prepaid),
            "invoiced" => Some(Self::Invoiced),
            _ => None,
        }
    }
}

/// An organization's billing mode and how far past zero admission may take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditLine {
    pub mode: BillingMode,
    /// Credits the organization may owe through admission; zero when prepaid.
    pub limit: NanoCredits,
}

/// Why a credit line change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditLineError {
    #[error("credit_limit: must not be negative, not {0}")]
    NegativeLimit(NanoCredits),
    #[error("credit_limit: a prepaid organization has no credit line; set billing_mode invoiced")]
    LimitWhilePrepaid,
}

impl CreditLine {
    pub const PREPAID: Self = Self {
        mode: BillingMode::Prepaid,
        limit: NanoCredits::ZERO,
    };

    /// The line after a change of mode and/or limit (`None`: unchanged). Switching to prepaid
    /// drops the limit to zero; switching to invoiced without a limit keeps the current one
    /// (zero for a prepaid organization); a limit on a prepaid organization is refused.
    pub fn changed(
        self,
        mode: Option<BillingMode>,
        limit: Option<NanoCredits>,
    ) -> Result<Self, CreditLineError> {
        if let Some(l) = limit.filter(|l| l.is_negative()) {
            return Err(CreditLineError::NegativeLimit(l));
        }
        let mode = mode.unwrap_or(self.mode);
        match (mode, limit) {
            (BillingMode::Prepaid, Some(l)) if l.is_positive() => {
                Err(CreditLineError::LimitWhilePrepaid)
            }
            (BillingMode::Prepaid, _) => Ok(Self::PREPAID),
            (BillingMode::Invoiced, l) => Ok(Self {
                mode,
                limit: l.unwrap_or(self.limit),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credits(n: i64) -> NanoCredits {
        NanoCredits::from_nanos(n * 1_000_000_000)
    }

    #[test]
    fn changes_follow_the_documented_rules() {
        let invoiced = Some(BillingMode::Invoiced);
        let prepaid = Some(BillingMode::Prepaid);
        let line = CreditLine::PREPAID.changed(invoiced, None).unwrap();
        assert_eq!(line.limit, NanoCredits::ZERO);
        let line = line.changed(None, Some(credits(500))).unwrap();
        assert_eq!(
            (line.mode, line.limit),
            (BillingMode::Invoiced, credits(500))
        );
        assert_eq!(line.changed(invoiced, None).unwrap().limit, credits(500));
        assert_eq!(line.changed(prepaid, None).unwrap(), CreditLine::PREPAID);
        assert_eq!(
            line.changed(prepaid, Some(NanoCredits::ZERO)).unwrap(),
            CreditLine::PREPAID
        );
        assert_eq!(
            CreditLine::PREPAID.changed(None, Some(credits(1))),
            Err(CreditLineError::LimitWhilePrepaid)
        );
        assert_eq!(
            line.changed(None, Some(credits(-1))),
            Err(CreditLineError::NegativeLimit(credits(-1)))
        );
        assert_eq!(BillingMode::parse("invoiced"), invoiced);
        assert_eq!(BillingMode::parse("postpaid"), None);
    }
}
