//! The billing service: the changes to an organization's money and money settings that a person
//! asks for — grants of credits, the credit line and the disconnect policy — from the CLI and
//! the operator API
//! alike. Each is checked by the grant rules of core ([`GrantRequest::check`], which payments
//! obey too when they credit an order) and written to the audit log with who did it.
//!
//! Purchases, refunds and disputes are the payment service's (`payments`); members, roles, keys
//! and suspension are the accounts service's (`members`).

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{
    GrantRequest, Granted, LedgerError, LedgerStore, LotCategory, LotSource,
};
use creditgate_core::money::{Decimal, NanoCredits};
use creditgate_core::payments::credit_line::{BillingMode, CreditLine};
use creditgate_core::usage::DisconnectPolicy;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::members::Change;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// Longest grant reference (an idempotency key chosen by the operator).
pub const MAX_REFERENCE_LEN: usize = 200;
/// Longest expiry in days a grant may be given (100 years).
pub const MAX_EXPIRY_DAYS: i64 = 36_500;

/// What makes a grant idempotent.
#[derive(Debug, Clone)]
pub enum GrantKey {
    /// An operator's reference (an order number, a ticket): the transfer and lot ids are derived
    /// from it and the organization, so a retry finds the first grant.
    Reference(String),
    /// Explicit ledger ids (the CLI's `--transfer-id`/`--lot-id`); the lot is named after the
    /// transfer when not given.
    Ids {
        transfer: TransferId,
        lot: Option<LotId>,
    },
}

/// When a grant's credits expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    /// `n` days from the start of the current hour, so that a retry within the hour builds the
    /// same request (the ledger tells a replay from a conflict by content).
    InDays(i64),
    At(Timestamp),
}

/// A grant as a person asks for it.
#[derive(Debug, Clone)]
pub struct GrantOrder {
    pub amount: NanoCredits,
    pub category: LotCategory,
    /// Where the credits came from; by default `promotion` for granted credits and `manual`
    /// for paid ones.
    pub source: Option<LotSource>,
    pub price_per_credit: Option<Decimal>,
    pub expiry: Expiry,
    pub memo: Option<String>,
    pub key: GrantKey,
}

/// A grant made, or found again.
#[derive(Debug, Clone)]
pub struct Grant {
    pub transfer_id: TransferId,
    pub granted: Granted,
    /// The grant was made before (same key, same content): nothing changed.
    pub replayed: bool,
}

/// Adds credits to an organization as a lot, idempotent on the order's key; audited as
/// `credits.granted` unless it was a replay.
pub async fn grant(
    change: &Change<'_>,
    org: &OrganizationId,
    order: GrantOrder,
) -> Result<Grant, ApiError> {
    let (transfer_id, lot_id) = ids(org, &order.key)?;
    let req = GrantRequest {
        transfer_id: transfer_id.clone(),
        org: org.clone(),
        lot_id: lot_id.clone(),
        amount: order.amount,
        category: order.category,
        source: order.source.unwrap_or(match order.category {
            LotCategory::Granted => LotSource::Promotion,
            LotCategory::Paid => LotSource::Manual,
        }),
        price_per_credit: order.price_per_credit,
        expires_at: expires_at(order.expiry, change.now)?,
        memo: order.memo,
    };
    req.check(change.now)?;
    let granted = match change.db.grant(req).await {
        Ok(g) => g,
        Err(LedgerError::IdempotencyConflict(_)) => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "invalid_request_error",
                "this grant's reference or transfer id was already used for a different grant",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    // A replay returns the first grant, written before this change began.
    let replayed = granted.lot.created_at < change.now;
    if !replayed {
        let reference = match &order.key {
            GrantKey::Reference(r) => Some(r.as_str()),
            GrantKey::Ids { .. } => None,
        };
        change
            .audit(
                org,
                "credits.granted",
                "lot",
                lot_id.as_str(),
                json!({
                    "amount": granted.lot.amount,
                    "category": granted.lot.category,
                    "source": granted.lot.source,
                    "transfer_id": transfer_id,
                    "reference": reference,
                }),
            )
            .await?;
    }
    Ok(Grant {
        transfer_id,
        granted,
        replayed,
    })
}

/// Sets (or with `None`, clears to the operator's default) what happens to a stream whose
/// client disconnects; audited.
pub async fn set_disconnect_policy(
    change: &Change<'_>,
    org: &OrganizationId,
    policy: Option<DisconnectPolicy>,
) -> Result<(), ApiError> {
    change.db.set_disconnect_policy(org, policy).await?;
    change
        .audit(
            org,
            "organization.disconnect_policy_set",
            "organization",
            org.as_str(),
            json!({"disconnect_policy": policy.map(DisconnectPolicy::as_str)}),
        )
        .await
}

/// The organization's credit line after changing its mode and/or limit (`None`: unchanged),
/// checked against the current line; nothing is written (`set_credit_line` does).
pub async fn next_credit_line(
    change: &Change<'_>,
    org: &OrganizationId,
    mode: Option<BillingMode>,
    limit: Option<NanoCredits>,
) -> Result<CreditLine, ApiError> {
    let current = change
        .db
        .credit_line(org)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No organization {org}.")))?;
    current
        .changed(mode, limit)
        .map_err(|e| ApiError::invalid_request(e.to_string()))
}

/// Sets the billing mode and credit limit admission reads; audited with the line before and
/// after. Holds already placed stay whatever the change; a limit below what the organization
/// owes refuses new requests until payments bring it back under (nothing is lost or moved).
pub async fn set_credit_line(
    change: &Change<'_>,
    org: &OrganizationId,
    line: CreditLine,
) -> Result<(), ApiError> {
    let before = change.db.credit_line(org).await?;
    if before == Some(line) {
        return Ok(());
    }
    if !change.db.set_credit_line(org, &line).await? {
        return Err(ApiError::not_found(format!("No organization {org}.")));
    }
    change
        .audit(
            org,
            "organization.credit_line_set",
            "organization",
            org.as_str(),
            json!({
                "billing_mode": line.mode.as_str(),
                "credit_limit": line.limit,
                "previous": before.map(|b| json!({"billing_mode": b.mode.as_str(),
                                                  "credit_limit": b.limit})),
            }),
        )
        .await
}

/// Parses a billing mode as the API and the CLI take it: `prepaid` or `invoiced`.
pub fn parse_billing_mode(text: &str) -> Result<BillingMode, ApiError> {
    BillingMode::parse(text)
        .ok_or_else(|| ApiError::invalid_request("billing_mode: must be prepaid or invoiced"))
}

/// Parses a credit limit: credits as a decimal string (`"5000"`, `"12.5"`) or a JSON integer.
pub fn parse_credit_limit(value: &serde_json::Value) -> Result<NanoCredits, ApiError> {
    let bad = || {
        ApiError::invalid_request(
            "credit_limit: must be a number of credits (an integer or a decimal string) >= 0",
        )
    };
    let limit = match value {
        serde_json::Value::String(s) => s.parse::<NanoCredits>().map_err(|_| bad())?,
        serde_json::Value::Number(n) => {
            let credits = n.as_i64().ok_or_else(bad)?;
            NanoCredits::from_credits(credits).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    if limit.is_negative() {
        return Err(bad());
    }
    Ok(limit)
}

/// Parses a disconnect policy as the API and the CLI take it: `drain`, `cancel`, or `None`
/// (back to the operator's default).
pub fn parse_policy(text: Option<&str>) -> Result<Option<DisconnectPolicy>, ApiError> {
    text.map(|t| {
        DisconnectPolicy::parse(t).ok_or_else(|| {
            ApiError::invalid_request("disconnect_policy: must be drain, cancel or null")
        })
    })
    .transpose()
}

/// The ledger ids of a grant.
fn ids(org: &OrganizationId, key: &GrantKey) -> Result<(TransferId, LotId), ApiError> {
    let internal = |e: creditgate_core::ids::IdError| ApiError::internal(e.to_string());
    match key {
        GrantKey::Reference(reference) => {
            if reference.trim().is_empty() || reference.len() > MAX_REFERENCE_LEN {
                return Err(ApiError::invalid_request(format!(
                    "reference: must be 1 to {MAX_REFERENCE_LEN} characters"
                )));
            }
            let digest = hex::encode(&Sha256::digest(format!("{org}\n{reference}"))[..12]);
            Ok((
                TransferId::parse(&format!("grant_{digest}")).map_err(internal)?,
                LotId::parse(&format!("lot_{digest}")).map_err(internal)?,
            ))
        }
        GrantKey::Ids { transfer, lot } => {
            let lot = match lot {
                Some(lot) => lot.clone(),
                None => LotId::parse(&format!("lot_{transfer}")).map_err(|_| {
                    ApiError::invalid_request(
                        "transfer id is too long to name the lot after it; give the lot id",
                    )
                })?,
            };
            Ok((transfer.clone(), lot))
        }
    }
}

fn expires_at(expiry: Expiry, now: Timestamp) -> Result<Option<Timestamp>, ApiError> {
    match expiry {
        Expiry::Never => Ok(None),
        Expiry::At(at) => Ok(Some(at)),
        Expiry::InDays(days) if (1..=MAX_EXPIRY_DAYS).contains(&days) => {
            let hour = now.millis() - now.millis().rem_euclid(HOUR_MS);
            Ok(Some(Timestamp::from_millis(hour + days * DAY_MS)))
        }
        Expiry::InDays(_) => Err(ApiError::invalid_request(format!(
            "expires_in_days: must be 1 to {MAX_EXPIRY_DAYS}"
        ))),
    }
}
