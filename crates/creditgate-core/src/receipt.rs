//! A request's receipt (`GET /v1/requests/{id}`): its hold, its charge and the lots it drew,
//! and its usage record, read back from the ledger's typed rows.

use crate::clock::Timestamp;
use crate::ids::{OrganizationId, TransferId};
use crate::ledger::{Draw, HoldResolution};
use crate::money::NanoCredits;
use crate::usage::{Admission, UsageRecord};

/// A request's receipt, read back from its hold, its charge and its usage record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: TransferId,
    pub org: OrganizationId,
    /// Admission's facts (model, key, stream), if the hold carried them.
    pub admission: Option<Admission>,
    pub created_at: Timestamp,
    /// Everything held for the request (a stream's grown hold included).
    pub held: NanoCredits,
    /// How the hold ended, if it did.
    pub resolution: Option<HoldResolution>,
    /// The charge, once settled.
    pub charge: Option<ChargeFacts>,
    /// The usage record written with the charge.
    pub record: Option<UsageRecord>,
}

/// What the ledger did with a request's charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeFacts {
    pub at: Timestamp,
    pub held: NanoCredits,
    pub charged: NanoCredits,
    pub overrun: NanoCredits,
    pub late: bool,
    pub lots: Vec<Draw>,
}
