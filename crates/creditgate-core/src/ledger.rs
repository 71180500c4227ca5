//! The credit ledger: its vocabulary, the rules every backend follows, and the storage trait.
//!
//! The ledger is a double-entry, append-only journal in the style of TigerBeetle's two-phase
//! transfers. Every movement is a transfer with a caller-chosen id that is also its idempotency
//! key. A hold is a pending transfer: it reserves credits, then is settled, released or expired,
//! exactly once. Backends (SQLite, Postgres) implement [`LedgerStore`]; the pure rules they share
//! (draw order, available credit, the entry hash chain, idempotency digests) live here so that
//! both backends compute the same thing.
//!
//! Accounts (the `debit`/`credit` sides of an [`Entry`]):
//! - `lot:<lot id>` — one per lot; its balance is the lot's remaining credits;
//! - `overdraft:<org id>` — negative by the unpaid overrun of an organization (`docs/ledger.md`);
//! - `sys:issuance`, `sys:revenue`, `sys:expiry`, `sys:refund`, `sys:adjustment` — the
//!   operator's side. The balances of all accounts always sum to zero.

use std::future::Future;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::ids::{LotId, OrganizationId, TransferId};
use crate::money::{Decimal, MoneyError, NanoCredits};

/// How long a hold lives without being settled or released before the sweeper releases it.
/// Streams extend their hold each time it grows, so this bounds the silence of a stream, not
/// its length.
pub const DEFAULT_HOLD_TIMEOUT_MS: i64 = 15 * 60 * 1000;
/// Longest a hold may live before it must be extended: a week.
pub const MAX_HOLD_TIMEOUT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Longest spend-limit scope (a path such as `team:t1/key:k1`).
pub const MAX_SCOPE_LEN: usize = 512;
/// Longest free-text reason or memo stored with a transfer.
pub const MAX_MEMO_LEN: usize = crate::usage::MAX_NOTE_LEN;
/// Hash that precedes an organization's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether credits were paid for or given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotCategory {
    Paid,
    Granted,
}

/// Where a lot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotSource {
    Purchase,
    AutoReload,
    Promotion,
    Manual,
    RefundCredit,
    /// A paid monthly invoice of an invoiced organization (`docs/credit-lines.md`).
    Invoice,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(LotCategory { Paid => "paid", Granted => "granted" });
text_enum!(LotSource {
    Purchase => "purchase",
    AutoReload => "auto_reload",
    Promotion => "promotion",
    Manual => "manual",
    RefundCredit => "refund_credit",
    Invoice => "invoice",
});

/// An organization (customer account) as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub created_at: Timestamp,
}

/// One addition of credits and what is left of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub id: LotId,
    pub org: OrganizationId,
    pub category: LotCategory,
    pub source: LotSource,
    pub amount: NanoCredits,
    pub remaining: NanoCredits,
    /// USD paid per credit for this lot (`None` for free grants).
    pub price_per_credit: Option<Decimal>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl Lot {
    /// A lot is spendable until the instant of its expiry (exclusive).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// A credit reservation for one request in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The id of the transfer that placed the hold.
    pub id: TransferId,
    pub org: OrganizationId,
    /// Total held so far (grows with [`LedgerStore::extend_hold`]).
    pub amount: NanoCredits,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// What the hold is attributed to for spend limits (e.g. `key:key_abc`). Scopes are paths:
    /// `team:t1/key:k1` also counts toward `team:t1`, so one hold can be checked against a
    /// key's cap and its team's budget at once (see [`LedgerStore::scope_spend`]).
    pub scope: Option<String>,
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldResolution {
    Settled,
    Released,
    Expired,
}

text_enum!(HoldResolution { Settled => "settled", Released => "released", Expired => "expired" });

/// A cap on what one scope (an API key, a team) may spend since a point in time; checked in the
/// same atomic step as the balance when a hold is placed or grown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendLimit {
    pub scope: String,
    pub since: Timestamp,
    pub cap: NanoCredits,
}

/// Add credits as a new lot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    pub transfer_id: TransferId,
    pub org: OrganizationId,
    pub lot_id: LotId,
    pub amount: NanoCredits,
    pub category: LotCategory,
    pub source: LotSource,
    pub price_per_credit: Option<Decimal>,
    pub expires_at: Option<Timestamp>,
    pub memo: Option<String>,
}

impl GrantRequest {
    /// A paid lot from a purchase, at no recorded price, never expiring, without a memo: the
    /// plainest grant, what tests, benchmarks and fixtures fund an organization with.
    pub fn purchase(
        transfer_id: TransferId,
        org: OrganizationId,
        lot_id: LotId,
        amount: NanoCredits,
    ) -> Self {
        Self {
            transfer_id,
            org,
            lot_id,
            amount,
            category: LotCategory::Paid,
            source: LotSource::Purchase,
            price_per_credit: None,
            expires_at: None,
            memo: None,
        }
    }

    /// The rules every grant a person or a payment asks for obeys (the billing service and the
    /// payment service check them): a positive amount, an expiry (if any) after `now`, and a
    /// price per credit (if any) that is not negative. The ledger itself also records lots that
    /// are already expired (an import, the model tests of expiry) and only insists on a positive
    /// amount.
    pub fn check(&self, now: Timestamp) -> LedgerResult<()> {
        if !self.amount.is_positive() {
            return Err(LedgerError::InvalidAmount(format!(
                "a grant must be positive, not {}",
                self.amount
            )));
        }
        if let Some(at) = self.expires_at {
            if at <= now {
                return Err(LedgerError::InvalidRequest(format!(
                    "a grant's expiry {at} is not in the future"
                )));
            }
        }
        if self.price_per_credit.is_some_and(|p| p.is_negative()) {
            return Err(LedgerError::InvalidAmount(
                "a price per credit must not be negative".into(),
            ));
        }
        Ok(())
    }
}

/// The result of a grant: the lot as created, and how much of it repaid earlier overrun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    pub lot: Lot,
    pub repaid_overrun: NanoCredits,
}

/// Reserve credits: placed only if available credit (and every limit) covers `amount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    pub transfer_id: TransferId,
    pub org: OrganizationId,
    pub amount: NanoCredits,
    pub timeout_ms: i64,
    pub scope: Option<String>,
    pub limits: Vec<SpendLimit>,
    pub memo: Option<String>,
}

/// Grow an active hold by `amount` (progressive streaming holds), under the same conditions as
/// placing one; also pushes its expiry to at least now + `timeout_ms`. An extension by zero is
/// a keep-alive: it needs no available credit and checks no limit (the credit is already held).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendHoldRequest {
    pub transfer_id: TransferId,
    pub hold: TransferId,
    pub amount: NanoCredits,
    pub timeout_ms: i64,
    pub limits: Vec<SpendLimit>,
}

/// Charge `amount` against a hold and release the rest. The charge may exceed the hold (a
/// recorded overrun, `docs/ledger.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleRequest {
    pub transfer_id: TransferId,
    pub hold: TransferId,
    pub amount: NanoCredits,
    /// Free-form text stored with the charge's transfer.
    pub memo: Option<String>,
    /// The request's usage record, written with the charge in the same transaction (its
    /// per-line credits must add up to `amount`).
    /// (Absent from the serialized form when `None`, so the idempotency digest of a settle
    /// without a record is what it was before records existed.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Box<crate::usage::UsageRecord>>,
    /// Set when the request was admitted against a credit lease instead of a hold of its own
    /// (`docs/ledger.md`, "Credit leases"): the settle then records the request's hold, already
    /// settled, in the same transaction as its charge. (Absent from the serialized form when
    /// `None`, so the digest of every other settle is unchanged.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased: Option<LeasedHold>,
}

/// What a request admitted against a credit lease held, recorded as its hold when it settles:
/// the hold's organization, amount (its first slice plus every growth), scope and admission memo,
/// and when admission placed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedHold {
    pub org: OrganizationId,
    pub amount: NanoCredits,
    pub created_at: Timestamp,
    pub scope: Option<String>,
    pub memo: Option<String>,
}

/// Take a credit lease (`docs/ledger.md`, "Credit leases"): one hold, owned by a gateway
/// replica, that requests are admitted against in its memory. In one transaction the `previous`
/// lease (if any) is released and a new one placed for as much of `wanted` as available prepaid
/// credit covers (an invoiced organization's credit line is never leased), at most half of what
/// would be left beside `needed`, and never less than `needed` (else `Insufficient`, and the
/// previous lease stays). `needed` is what the replica's requests in flight already hold of the
/// previous lease plus what the asking request needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub transfer_id: TransferId,
    pub org: OrganizationId,
    /// The lease this one replaces, and the transfer id of its release.
    pub previous: Option<(TransferId, TransferId)>,
    pub needed: NanoCredits,
    pub wanted: NanoCredits,
    pub timeout_ms: i64,
}

/// One lot's share of a charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    pub lot: LotId,
    pub amount: NanoCredits,
}

/// The result of a settle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub hold: TransferId,
    pub held: NanoCredits,
    pub charged: NanoCredits,
    /// `charged − held` when positive: what the estimate missed.
    pub overrun: NanoCredits,
    /// Part of the charge no spendable lot covered; the organization's balance went below zero
    /// by this much and its next grant repays it first.
    pub debt: NanoCredits,
    pub draws: Vec<Draw>,
    /// The hold had already expired; the charge was posted anyway (the usage was real).
    pub late: bool,
    /// The organization's available credit right after this settle, read in the same
    /// transaction (`None` if it does not fit in `i64`). A replay returns the value of the
    /// first settle.
    #[serde(default)]
    pub available: Option<NanoCredits>,
}

/// Void a hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub transfer_id: TransferId,
    pub hold: TransferId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub hold: TransferId,
    pub amount: NanoCredits,
    /// The hold had already expired; nothing changed.
    pub already_expired: bool,
}

/// Claw back a lot's unspent remainder (once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub transfer_id: TransferId,
    pub org: OrganizationId,
    pub lot: LotId,
    pub memo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refunded {
    pub lot: LotId,
    pub amount: NanoCredits,
}

/// Take back up to `amount` of a lot after its payment was refunded or disputed at the
/// provider: what the lot still has, and the rest as debt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClawbackRequest {
    pub transfer_id: TransferId,
    pub org: OrganizationId,
    pub lot: LotId,
    pub amount: NanoCredits,
    pub memo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClawedBack {
    pub lot: LotId,
    /// Taken from the lot's remainder.
    pub taken: NanoCredits,
    /// What the lot no longer had: recorded as debt.
    pub debt: NanoCredits,
}

/// A manual correction with a reason. Positive: a new `granted`/`manual` lot without expiry
/// (`lot_id` names it). Negative: drawn from lots in draw order, refused if available does not
/// cover it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustRequest {
    pub transfer_id: TransferId,
    pub org: OrganizationId,
    pub lot_id: LotId,
    pub amount: NanoCredits,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjusted {
    pub amount: NanoCredits,
    pub lot: Option<LotId>,
    pub draws: Vec<Draw>,
}

/// An organization's money right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub org: OrganizationId,
    /// Σ remaining of unexpired lots − unpaid overrun debt.
    pub posted: NanoCredits,
    /// Σ active holds.
    pub held: NanoCredits,
    /// `posted − held`; may be negative only by recorded overrun.
    pub available: NanoCredits,
    /// Unpaid overrun (≥ 0).
    pub debt: NanoCredits,
    pub active_holds: u64,
    /// Unexpired lots with something left, in draw order.
    pub lots: Vec<Lot>,
}

/// One journal line: `amount` moves from `debit` to `credit`. Hash-chained per organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub org: OrganizationId,
    /// 1, 2, 3… per organization.
    pub seq: i64,
    pub transfer_id: TransferId,
    pub debit: String,
    pub credit: String,
    pub amount: NanoCredits,
    pub at: Timestamp,
    pub prev_hash: String,
    pub hash: String,
}

/// What `ledger verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub organizations: u64,
    pub entries: u64,
    pub transfers: u64,
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Everything that can go wrong in the ledger, in domain terms. The HTTP edge maps each to a
/// status and Anthropic's error envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient credit: {available} available, {needed} needed")]
    Insufficient {
        available: NanoCredits,
        needed: NanoCredits,
    },
    #[error("spend limit of {scope} reached: {remaining} of {cap} left, {needed} needed")]
    LimitExceeded {
        scope: String,
        cap: NanoCredits,
        remaining: NanoCredits,
        needed: NanoCredits,
    },
    #[error("organization {0} does not exist")]
    UnknownOrganization(OrganizationId),
    #[error("organization {0} already exists")]
    OrganizationExists(OrganizationId),
    #[error("hold {0} does not exist")]
    UnknownHold(TransferId),
    #[error("lot {0} does not exist")]
    UnknownLot(LotId),
    #[error("lot {0} already exists")]
    LotExists(LotId),
    #[error("hold {hold} was already {resolution:?}")]
    HoldResolved {
        hold: TransferId,
        resolution: HoldResolution,
    },
    #[error("transfer id {0} was already used for a different transfer")]
    IdempotencyConflict(TransferId),
    #[error("lot {0} was already refunded")]
    AlreadyRefunded(LotId),
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// A request field other than an amount is out of bounds (a hold timeout, a memo's length).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// The database could not be reached or failed; nothing was written.
    #[error("ledger storage unavailable: {0}")]
    Unavailable(String),
    /// The stored data is not what the ledger wrote (a bug or tampering).
    #[error("ledger storage corrupt: {0}")]
    Corrupt(String),
}

/// Result alias for ledger operations.
pub type LedgerResult<T> = Result<T, LedgerError>;

/// The storage every backend implements. Each method is one atomic transaction; each write is
/// idempotent on its transfer id (a replay with the same content returns the first result and
/// changes nothing; the same id with other content is [`LedgerError::IdempotencyConflict`]).
pub trait LedgerStore: Send + Sync {
    fn create_organization(
        &self,
        id: OrganizationId,
        name: String,
    ) -> impl Future<Output = LedgerResult<Organization>> + Send;
    fn organization(
        &self,
        id: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Organization>> + Send;
    fn organizations(&self) -> impl Future<Output = LedgerResult<Vec<Organization>>> + Send;
    fn grant(&self, req: GrantRequest) -> impl Future<Output = LedgerResult<Granted>> + Send;
    fn reserve(&self, req: HoldRequest) -> impl Future<Output = LedgerResult<Hold>> + Send;
    fn extend_hold(
        &self,
        req: ExtendHoldRequest,
    ) -> impl Future<Output = LedgerResult<Hold>> + Send;
    fn settle(&self, req: SettleRequest) -> impl Future<Output = LedgerResult<Settlement>> + Send;
    /// Settles requests admitted against credit leases (each with `leased`) together, in one
    /// transaction: all of them, each as `settle` would have on its own (one result per request,
    /// in order), or none. A replay, or a request id already used, fails the whole group (no
    /// earlier result is looked up): the caller then settles each request on its own, which
    /// replays or refuses it.
    fn settle_leased_group(
        &self,
        reqs: Vec<SettleRequest>,
    ) -> impl Future<Output = LedgerResult<Vec<Settlement>>> + Send;
    fn release(&self, req: ReleaseRequest) -> impl Future<Output = LedgerResult<Released>> + Send;
    /// Replaces a replica's credit lease (see [`LeaseRequest`]); returns the new lease's hold.
    fn lease(&self, req: LeaseRequest) -> impl Future<Output = LedgerResult<Hold>> + Send;
    /// Expires every hold past its expiry, each exactly once; returns their ids.
    fn expire_holds(&self) -> impl Future<Output = LedgerResult<Vec<TransferId>>> + Send;
    /// Posts the expiry of every lot past its expiry that still has credits; returns what expired.
    fn sweep_expired_lots(&self) -> impl Future<Output = LedgerResult<Vec<Draw>>> + Send;
    fn refund_lot(&self, req: RefundRequest)
        -> impl Future<Output = LedgerResult<Refunded>> + Send;
    fn adjust(&self, req: AdjustRequest) -> impl Future<Output = LedgerResult<Adjusted>> + Send;
    fn balance(&self, org: &OrganizationId) -> impl Future<Output = LedgerResult<Balance>> + Send;
    fn hold(
        &self,
        id: &TransferId,
    ) -> impl Future<Output = LedgerResult<Option<(Hold, Option<HoldResolution>)>>> + Send;
    /// What a scope has spent: charges settled at or after `since` plus every active hold, for
    /// the scope itself and every scope below it (`team:t1` includes `team:t1/key:k1`).
    fn scope_spend(
        &self,
        scope: &str,
        since: Timestamp,
    ) -> impl Future<Output = LedgerResult<NanoCredits>> + Send;
    fn entries(
        &self,
        org: &OrganizationId,
    ) -> impl Future<Output = LedgerResult<Vec<Entry>>> + Send;
    /// Recomputes every balance from the journal and checks every hash chain.
    fn verify(&self) -> impl Future<Output = LedgerResult<VerifyReport>> + Send;
}

/// Sorts lots into draw order: soonest expiry first (no expiry last), then granted before paid,
/// then oldest, then by id for a total order.
pub fn sort_draw_order(lots: &mut [Lot]) {
    lots.sort_by(|a, b| {
        let exp = |l: &Lot| l.expires_at.map_or((1, 0), |t| (0, t.millis()));
        let cat = |l: &Lot| match l.category {
            LotCategory::Granted => 0,
            LotCategory::Paid => 1,
        };
        exp(a)
            .cmp(&exp(b))
            .then(cat(a).cmp(&cat(b)))
            .then(a.created_at.cmp(&b.created_at))
            .then(a.id.cmp(&b.id))
    });
}

/// Plans a charge of `amount` over `lots` (any order; expired and empty lots are skipped).
/// Returns the draws in draw order and the part no lot covers (the debt).
pub fn plan_draws(
    lots: &[Lot],
    amount: NanoCredits,
    now: Timestamp,
) -> LedgerResult<(Vec<Draw>, NanoCredits)> {
    if amount.is_negative() {
        return Err(LedgerError::InvalidAmount(format!(
            "charge {amount} is negative"
        )));
    }
    let mut spendable: Vec<Lot> = lots
        .iter()
        .filter(|l| !l.is_expired(now) && l.remaining.is_positive())
        .cloned()
        .collect();
    sort_draw_order(&mut spendable);
    let mut left = amount;
    let mut draws = Vec::new();
    for lot in spendable {
        if !left.is_positive() {
            break;
        }
        let take = left.min(lot.remaining);
        draws.push(Draw {
            lot: lot.id,
            amount: take,
        });
        left = left.checked_sub(take)?;
    }
    Ok((draws, left))
}

/// Σ remaining of the lots spendable at `now`.
pub fn spendable_total(lots: &[Lot], now: Timestamp) -> LedgerResult<NanoCredits> {
    Ok(NanoCredits::checked_sum(
        lots.iter()
            .filter(|l| !l.is_expired(now))
            .map(|l| l.remaining),
    )?)
}

/// Available credit: spendable lots − debt − active holds.
pub fn available(
    spendable: NanoCredits,
    debt: NanoCredits,
    held: NanoCredits,
) -> LedgerResult<NanoCredits> {
    Ok(spendable.checked_sub(debt)?.checked_sub(held)?)
}

/// The hash of a journal entry, chaining it to the previous one of its organization.
pub fn entry_hash(
    prev_hash: &str,
    org: &OrganizationId,
    seq: i64,
    transfer_id: &TransferId,
    debit: &str,
    credit: &str,
    amount: NanoCredits,
    at: Timestamp,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        org.as_str(),
        &seq.to_string(),
        transfer_id.as_str(),
        debit,
        credit,
        &amount.nanos().to_string(),
        &at.millis().to_string(),
    ] {
        // Length-prefix each field so that no two different entries hash the same text.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A digest of a request's content, stored with its transfer id to tell a replay (same digest)
/// from a conflicting reuse of the id (other digest).
pub fn request_digest<T: Serialize>(kind: &str, req: &T) -> String {
    let body = serde_json::to_string(req).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}

/// Account names (see the module doc).
pub mod account {
    use crate::ids::{LotId, OrganizationId};

    pub const ISSUANCE: &str = "sys:issuance";
    pub const REVENUE: &str = "sys:revenue";
    pub const EXPIRY: &str = "sys:expiry";
    pub const REFUND: &str = "sys:refund";
    pub const ADJUSTMENT: &str = "sys:adjustment";

    pub fn lot(id: &LotId) -> String {
        format!("lot:{id}")
    }

    pub fn overdraft(org: &OrganizationId) -> String {
        format!("overdraft:{org}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_rules_refuse_what_no_caller_may_grant() {
        let now = Timestamp::from_millis(1_000_000);
        let ok = GrantRequest {
            transfer_id: TransferId::parse("t").unwrap(),
            org: OrganizationId::parse("org").unwrap(),
            lot_id: LotId::parse("lot").unwrap(),
            amount: NanoCredits::from_nanos(1),
            category: LotCategory::Paid,
            source: LotSource::Manual,
            price_per_credit: Some("0.005".parse().unwrap()),
            expires_at: Some(now.plus_millis(1)),
            memo: None,
        };
        assert_eq!(ok.check(now), Ok(()));
        let bad = [
            GrantRequest {
                amount: NanoCredits::ZERO,
                ..ok.clone()
            },
            GrantRequest {
                amount: NanoCredits::from_nanos(-1),
                ..ok.clone()
            },
            GrantRequest {
                expires_at: Some(now),
                ..ok.clone()
            },
            GrantRequest {
                price_per_credit: Some("-0.001".parse().unwrap()),
                ..ok.clone()
            },
        ];
        for req in bad {
            assert!(req.check(now).is_err(), "{req:?}");
        }
    }

    fn lot(id: &str, cat: LotCategory, remaining: i64, exp: Option<i64>, created: i64) -> Lot {
        Lot {
            id: LotId::parse(id).unwrap(),
            org: OrganizationId::parse("org").unwrap(),
            category: cat,
            source: LotSource::Manual,
            amount: NanoCredits::from_nanos(remaining),
            remaining: NanoCredits::from_nanos(remaining),
            price_per_credit: None,
            expires_at: exp.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(created),
        }
    }

    #[test]
    fn draw_order_is_expiry_then_granted_then_oldest() {
        use LotCategory::*;
        let lots = vec![
            lot("paid-never-old", Paid, 10, None, 1),
            lot("granted-never", Granted, 10, None, 5),
            lot("paid-soon", Paid, 10, Some(100), 3),
            lot("granted-soon", Granted, 10, Some(100), 4),
            lot("paid-sooner", Paid, 10, Some(50), 9),
            lot("expired", Granted, 10, Some(10), 0),
        ];
        let (draws, debt) = plan_draws(
            &lots,
            NanoCredits::from_nanos(45),
            Timestamp::from_millis(20),
        )
        .unwrap();
        let order: Vec<_> = draws.iter().map(|d| d.lot.as_str().to_owned()).collect();
        assert_eq!(
            order,
            [
                "paid-sooner",
                "granted-soon",
                "paid-soon",
                "granted-never",
                "paid-never-old"
            ]
        );
        assert_eq!(draws.last().unwrap().amount.nanos(), 5);
        assert_eq!(debt, NanoCredits::ZERO);
        let (_, debt) = plan_draws(
            &lots,
            NanoCredits::from_nanos(75),
            Timestamp::from_millis(20),
        )
        .unwrap();
        assert_eq!(
            debt.nanos(),
            25,
            "the expired lot is not spendable before any sweep"
        );
    }

    #[test]
    fn hash_chain_depends_on_every_field() {
        let org = OrganizationId::parse("o").unwrap();
        let t = TransferId::parse("t").unwrap();
        let base = entry_hash(
            GENESIS_HASH,
            &org,
            1,
            &t,
            "a",
            "b",
            NanoCredits::from_nanos(5),
            Timestamp::from_millis(1),
        );
        let other = entry_hash(
            GENESIS_HASH,
            &org,
            1,
            &t,
            "a",
            "b",
            NanoCredits::from_nanos(6),
            Timestamp::from_millis(1),
        );
        assert_ne!(base, other);
        assert_eq!(base.len(), 64);
    }
}
