//! Credit leases (`docs/ledger.md`, "Credit leases"): this replica holds one hold per
//! organization, the *lease*, and admits that organization's requests against it in memory,
//! so a request's admission and growth cost no database write; its settlement records the
//! request's hold beside the charge (`SettleRequest::leased`).
//!
//! The lease's books, per organization: `size` is what the lease hold holds; `reserved` what
//! the requests admitted against it hold now (their first slices and growth); `consumed` what
//! requests settled against it were charged since it was taken (drawn from the lots the lease
//! covers, so no longer available to it). A request fits while
//! `reserved + consumed + amount ≤ size`. When it does not, the lease is replaced in one
//! transaction — the old lease released, a new one placed for at least what the requests in
//! flight hold plus what the asking request needs — so the decision to refuse (402) is taken
//! against the same available credit as a hold of the request's own would be. The new lease
//! asks for headroom of [`HEADROOM_REQUESTS`] times the asking request, never more than half of
//! what would be left (the ledger's rule), so near the end of a balance leases shrink to what
//! the requests need.
//!
//! Keys with spend limits do not use the lease: their limits count active holds per scope, which
//! only per-request holds carry. A lease idle for [`IDLE_RETURN`] is released; one in use is kept
//! alive like a request's hold; neither happens while settlements wait in the spool (their
//! credit stays held, as a spooled request's own hold does). A replica that dies leaves its
//! lease to expire within [`LEASE_TIMEOUT_MS`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::ledger::{
    Balance, ExtendHoldRequest, LeaseRequest, LeasedHold, LedgerError, LedgerResult, LedgerStore,
    ReleaseRequest,
};
use creditgate_core::money::NanoCredits;
use creditgate_core::receipt::Receipt;
use creditgate_core::usage::Admission;

use crate::App;

/// A new lease asks for this many times the asking request beyond what it needs.
pub const HEADROOM_REQUESTS: i64 = 64;
/// A lease no request used for this long is released.
pub const IDLE_RETURN: Duration = Duration::from_secs(2);
/// A lease's timeout (shorter than a request hold's: a replica that dies returns it sooner).
pub const LEASE_TIMEOUT_MS: i64 = 60_000;
/// How often the leases are looked after (idle return, keep-alive).
const TICK: Duration = Duration::from_millis(500);
/// After the ledger refused to replace a lease, requests that do not fit it go straight to holds
/// of their own for this long, without asking again.
const AFTER_REFUSAL: Duration = Duration::from_secs(1);
/// Longest a lease's replacement may wait for the database (as one settle attempt): a request
/// must not hang on a ledger that cannot answer.
const REPLACE_TIMEOUT: Duration = Duration::from_secs(5);

/// This replica's credit leases and the requests admitted against them.
pub struct Leases {
    enabled: bool,
    /// The replica's part of every lease id (`lease:<replica>:<start>:…`): kept beside its spool
    /// file, which only one process uses at a time, so a restarted replica knows which leases
    /// its predecessor left and returns them once its spool is applied.
    replica: String,
    /// This process's part: when it started.
    start: String,
    /// The predecessor's leases were returned (or there were none).
    predecessors_returned: std::sync::atomic::AtomicBool,
    next: AtomicU64,
    orgs: Mutex<HashMap<OrganizationId, Arc<OrgLease>>>,
    /// Requests in flight against a lease, for `GET /v1/requests/{id}`.
    in_flight: Mutex<HashMap<TransferId, InFlight>>,
}

/// One organization's lease.
pub struct OrgLease {
    org: OrganizationId,
    books: Mutex<Books>,
    /// Taken by whoever replaces or returns the lease.
    turn: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Books {
    hold: Option<TransferId>,
    size: NanoCredits,
    reserved: NanoCredits,
    consumed: NanoCredits,
    /// Requests admitted against the lease and not yet settled.
    live: usize,
    /// The lease is being replaced or returned: admissions wait for it.
    busy: bool,
    last_used: Option<Instant>,
    kept_alive: Option<Instant>,
    keep_alives: u64,
    /// The lease hold's expiry as last placed or kept alive: past it the ledger no longer counts
    /// the lease as held.
    expires_at: Option<Timestamp>,
    /// When the ledger last refused to replace the lease.
    refused: Option<Instant>,
    /// Counts the leases these books described (placed, forgotten or returned).
    generation: u64,
}

#[derive(Clone)]
struct InFlight {
    org: OrganizationId,
    created_at: Timestamp,
    held: NanoCredits,
    admission: Admission,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Leases {
    /// `spool` is this process's spool file; the replica's id is kept beside it.
    pub fn new(enabled: bool, spool: &std::path::Path) -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Self {
            enabled,
            // No file is kept for a gateway that never leases.
            replica: if enabled {
                replica_id(spool)
            } else {
                String::new()
            },
            start: format!("{start:x}"),
            predecessors_returned: std::sync::atomic::AtomicBool::new(!enabled),
            next: AtomicU64::new(0),
            orgs: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn of(&self, org: &OrganizationId) -> Arc<OrgLease> {
        lock(&self.orgs)
            .entry(org.clone())
            .or_insert_with(|| {
                Arc::new(OrgLease {
                    org: org.clone(),
                    books: Mutex::new(Books::default()),
                    turn: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    fn new_id(&self, org: &OrganizationId) -> LedgerResult<TransferId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        TransferId::parse(&format!(
            "lease:{}:{}:{}:{n}",
            self.replica,
            self.start,
            org.as_str()
        ))
        .map_err(|e| LedgerError::InvalidRequest(e.to_string()))
    }

    /// Admits a request for `amount` against its organization's lease, replacing the lease if
    /// it cannot cover it. `Insufficient` reports what a hold of the request's own would have
    /// found available.
    pub async fn admit(
        &self,
        app: &App,
        request: &TransferId,
        admission: Admission,
        org: &OrganizationId,
        amount: NanoCredits,
    ) -> LedgerResult<Arc<OrgLease>> {
        let lease = self.of(org);
        self.take(app, &lease, amount, true).await?;
        lock(&self.in_flight).insert(
            request.clone(),
            InFlight {
                org: org.clone(),
                created_at: app.clock.now(),
                held: amount,
                admission,
            },
        );
        Ok(lease)
    }

    /// Grows a request's share of its lease by `amount` (a stream's next slice).
    pub async fn grow(
        &self,
        app: &App,
        request: &TransferId,
        lease: &OrgLease,
        amount: NanoCredits,
    ) -> LedgerResult<()> {
        self.take(app, lease, amount, false).await?;
        if let Some(f) = lock(&self.in_flight).get_mut(request) {
            f.held = f.held.checked_add(amount)?;
        }
        Ok(())
    }

    /// A request's settlement is about to be posted: what it held (`reserved`) leaves the
    /// lease's reservations and its charge is counted as consumed — before the ledger draws it,
    /// so a balance read meanwhile never counts the request twice (a settlement the ledger then
    /// refuses stays counted: the lease only ever errs toward less credit).
    pub fn settling(&self, lease: &OrgLease, reserved: NanoCredits, charged: NanoCredits) {
        let mut b = lock(&lease.books);
        b.reserved = b
            .reserved
            .checked_sub(reserved)
            .unwrap_or(NanoCredits::ZERO)
            .max(NanoCredits::ZERO);
        b.consumed = b.consumed.checked_add(charged).unwrap_or(b.size);
    }

    /// The request's settlement was posted (or spooled): it no longer uses the lease.
    pub fn settled(&self, request: &TransferId, lease: &OrgLease) {
        lock(&self.in_flight).remove(request);
        let mut b = lock(&lease.books);
        b.live = b.live.saturating_sub(1);
        b.last_used = Some(Instant::now());
    }

    /// Which lease the organization's books describe (`None`: none), and whether it is being
    /// replaced: equal stamps before and after a read of the ledger, not busy, mean no lease
    /// was placed or replaced meanwhile, so the read and the books agree on the lease.
    pub fn stamp(&self, org: &OrganizationId) -> Option<(u64, bool)> {
        let lease = lock(&self.orgs).get(org).cloned()?;
        let b = lock(&lease.books);
        Some((b.generation, b.busy))
    }

    /// The request's hold as its settle records it (`SettleRequest::leased`): what admission
    /// kept of it, with what it `held` in the end and the key's `scope`.
    pub fn hold_of(
        &self,
        request: &TransferId,
        held: NanoCredits,
        scope: String,
    ) -> Option<LeasedHold> {
        let f = lock(&self.in_flight).get(request).cloned()?;
        Some(LeasedHold {
            org: f.org,
            amount: held,
            created_at: f.created_at,
            scope: Some(scope),
            memo: serde_json::to_string(&f.admission).ok(),
        })
    }

    async fn take(
        &self,
        app: &App,
        lease: &OrgLease,
        amount: NanoCredits,
        new_request: bool,
    ) -> LedgerResult<()> {
        // While settlements wait in the spool the ledger is away: no request is admitted against
        // a lease (its hold of its own fails fast, as without a lease), so fewer settlements pile
        // up behind an outage.
        if app.spool.depth() > 0 {
            return Err(LedgerError::Unavailable(
                "settlements are waiting in the spool".to_owned(),
            ));
        }
        if lease.try_take(amount, new_request, app.clock.now())? {
            return Ok(());
        }
        let _turn = lease.turn.lock().await;
        if lease.try_take(amount, new_request, app.clock.now())? {
            return Ok(());
        }
        if lock(&lease.books)
            .refused
            .is_some_and(|t| t.elapsed() < AFTER_REFUSAL)
        {
            return Err(LedgerError::Insufficient {
                available: NanoCredits::ZERO,
                needed: amount,
            });
        }
        let (replaced, reserved) = self.replace(app, lease, amount, true).await;
        let mut b = lock(&lease.books);
        match replaced {
            Ok(()) => {
                if new_request {
                    b.live += 1;
                }
                b.last_used = Some(Instant::now());
                Ok(())
            }
            Err(LedgerError::Insufficient { available, .. }) => {
                b.refused = Some(Instant::now());
                Err(LedgerError::Insufficient {
                    // What a hold of the request's own would have found: the requests in flight
                    // hold their part of the lease.
                    available: available.checked_sub(reserved)?,
                    needed: amount,
                })
            }
            Err(err) => Err(err),
        }
    }

    /// Replaces the lease (the caller holds its turn) with one covering what its requests hold
    /// plus `amount`, and `headroom` for more; admissions wait meanwhile (`busy`). Placed, the
    /// books take the new lease with `amount` reserved in it, in one step; a replacement the
    /// ledger may have committed after all (no answer) makes them forget the lease. Returns
    /// what the requests held when it began.
    async fn replace(
        &self,
        app: &App,
        lease: &OrgLease,
        amount: NanoCredits,
        headroom: bool,
    ) -> (LedgerResult<()>, NanoCredits) {
        let (previous, reserved, consumed) = {
            let mut b = lock(&lease.books);
            b.busy = true;
            (b.hold.clone(), b.reserved, b.consumed)
        };
        let placed = self
            .ask(app, lease, previous, reserved, amount, headroom)
            .await;
        let mut b = lock(&lease.books);
        b.busy = false;
        let result = placed.and_then(|hold| {
            b.placed(hold, consumed);
            b.reserved = b.reserved.checked_add(amount)?;
            Ok(())
        });
        if matches!(result, Err(LedgerError::Unavailable(_))) {
            b.forget();
        }
        (result, reserved)
    }

    /// Asks the ledger for the lease `replace` needs, waiting at most [`REPLACE_TIMEOUT`].
    async fn ask(
        &self,
        app: &App,
        lease: &OrgLease,
        previous: Option<TransferId>,
        reserved: NanoCredits,
        amount: NanoCredits,
        headroom: bool,
    ) -> LedgerResult<creditgate_core::ledger::Hold> {
        let needed = reserved.checked_add(amount)?;
        let headroom = if headroom {
            amount
                .checked_mul(HEADROOM_REQUESTS)
                .unwrap_or(NanoCredits::ZERO)
        } else {
            NanoCredits::ZERO
        };
        let previous = match previous {
            Some(hold) => {
                let release = hold
                    .child("return")
                    .map_err(|e| LedgerError::InvalidRequest(e.to_string()))?;
                Some((hold, release))
            }
            None => None,
        };
        let replacing = Box::pin(app.db.lease(LeaseRequest {
            transfer_id: self.new_id(&lease.org)?,
            org: lease.org.clone(),
            previous,
            needed,
            wanted: needed.checked_add(headroom).unwrap_or(needed),
            timeout_ms: lease_timeout_ms(app),
        }));
        // A replacement given up may still commit: the lease it placed then lapses unused, and
        // the previous one, released, no longer holds what the books say — so `replace` forgets
        // the lease and the next request starts a new one.
        tokio::time::timeout(REPLACE_TIMEOUT, replacing)
            .await
            .unwrap_or_else(|_| {
                Err(LedgerError::Unavailable(format!(
                    "no answer within {} s",
                    REPLACE_TIMEOUT.as_secs()
                )))
            })
    }

    /// Shrinks the organization's lease to what its requests in flight hold, so a hold placed
    /// outside the lease (a key with spend limits) finds the rest; `true` if it freed anything.
    pub async fn shrink(&self, app: &App, org: &OrganizationId) -> bool {
        let Some(lease) = lock(&self.orgs).get(org).cloned() else {
            return false;
        };
        let _turn = lease.turn.lock().await;
        {
            let b = lock(&lease.books);
            if b.hold.is_none() || b.size <= b.reserved {
                return false;
            }
        }
        match self.replace(app, &lease, NanoCredits::ZERO, false).await.0 {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(org = %org, error = %err, "shrinking a credit lease failed");
                false
            }
        }
    }

    /// What the ledger counts as held of this replica's lease beyond what its requests in flight
    /// hold (`None` without a live lease), and how many requests in flight it stands for.
    fn unused(&self, org: &OrganizationId, now: Timestamp) -> Option<(NanoCredits, usize)> {
        let lease = lock(&self.orgs).get(org).cloned()?;
        let b = lock(&lease.books);
        b.hold.as_ref()?;
        // A lapsed lease is no longer held in the ledger's eyes.
        if b.expires_at.is_none_or(|e| e <= now) {
            return None;
        }
        Some((b.size.checked_sub(b.reserved).ok()?, b.live))
    }

    /// Shrinks every lease of this replica (`Self::shrink`); `true` if any freed something.
    /// For the operator's operations the ledger refuses while holds need credit (a lot's
    /// refund): a lease's headroom is not a request's need.
    pub async fn shrink_all(&self, app: &App) -> bool {
        let orgs: Vec<OrganizationId> = lock(&self.orgs).keys().cloned().collect();
        let mut freed = false;
        for org in orgs {
            freed |= self.shrink(app, &org).await;
        }
        freed
    }

    /// Corrects a balance read from the database at `now` for this replica's lease: the lease
    /// hold counts as held only for what its requests in flight hold, as their own holds would.
    pub fn correct(&self, balance: &mut Balance, now: Timestamp) {
        let Some((unused, live)) = self.unused(&balance.org, now) else {
            return;
        };
        if let (Ok(held), Ok(available)) = (
            balance.held.checked_sub(unused),
            balance.available.checked_add(unused),
        ) {
            balance.held = held.max(NanoCredits::ZERO);
            balance.available = available;
            // One hold per request in flight, as without a lease, instead of the lease's.
            balance.active_holds = (balance.active_holds + live as u64).saturating_sub(1);
        }
    }

    /// Corrects an organization's available credit read from the database, as [`Self::correct`].
    pub fn correct_available(
        &self,
        org: &OrganizationId,
        available: NanoCredits,
        now: Timestamp,
    ) -> NanoCredits {
        self.unused(org, now)
            .and_then(|(unused, _)| available.checked_add(unused).ok())
            .unwrap_or(available)
    }

    /// A request in flight against a lease, as its receipt shows it before it settles.
    pub fn receipt(&self, org: &OrganizationId, request: &TransferId) -> Option<Receipt> {
        let f = lock(&self.in_flight).get(request).cloned()?;
        if &f.org != org {
            return None;
        }
        Some(Receipt {
            id: request.clone(),
            org: f.org,
            admission: Some(f.admission),
            created_at: f.created_at,
            held: f.held,
            resolution: None,
            charge: None,
            record: None,
        })
    }

    /// Looks after the leases until aborted: returns the predecessor's once the spool is
    /// applied, returns idle ones, keeps the rest alive.
    pub async fn tend_forever(app: Arc<App>) {
        if !app.leases.enabled {
            return;
        }
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            app.leases.return_predecessors(&app).await;
            let leases: Vec<Arc<OrgLease>> = lock(&app.leases.orgs).values().cloned().collect();
            for lease in leases {
                app.leases.tend(&app, &lease).await;
            }
        }
    }

    async fn tend(&self, app: &App, lease: &OrgLease) {
        let keep_every = crate::lifecycle::refresh_period(lease_timeout_ms(app));
        let (idle, due) = {
            let b = lock(&lease.books);
            if b.hold.is_none() || b.busy {
                return;
            }
            let idle = b.live == 0 && b.last_used.is_none_or(|t| t.elapsed() >= IDLE_RETURN);
            let due = b.kept_alive.is_none_or(|t| t.elapsed() >= keep_every);
            (idle, due)
        };
        // Spooled settlements keep their credit held: neither returned nor left to lapse.
        if idle && app.spool.depth() == 0 {
            self.give_back(app, lease).await;
        } else if due {
            self.keep_alive(app, lease).await;
        }
    }

    /// Releases the lease if no request uses it (at shutdown, or idle).
    async fn give_back(&self, app: &App, lease: &OrgLease) {
        let _turn = lease.turn.lock().await;
        let hold = {
            let mut b = lock(&lease.books);
            if b.live > 0 || b.hold.is_none() {
                return;
            }
            b.busy = true;
            b.hold.clone()
        };
        let Some(hold) = hold else { return };
        let released = match hold.child("return") {
            Ok(transfer_id) => Box::pin(app.db.release(ReleaseRequest {
                transfer_id,
                hold: hold.clone(),
            }))
            .await
            .map(|_| ()),
            Err(e) => Err(LedgerError::InvalidRequest(e.to_string())),
        };
        let mut b = lock(&lease.books);
        b.busy = false;
        match released {
            Ok(()) | Err(LedgerError::HoldResolved { .. }) => {
                let generation = b.generation + 1;
                *b = Books::default();
                b.generation = generation;
            }
            Err(err) => {
                tracing::warn!(lease = %hold, error = %err, "returning a credit lease failed")
            }
        }
    }

    async fn keep_alive(&self, app: &App, lease: &OrgLease) {
        let (hold, n) = {
            let mut b = lock(&lease.books);
            b.keep_alives += 1;
            (b.hold.clone(), b.keep_alives)
        };
        let Some(hold) = hold else { return };
        let Ok(transfer_id) = hold.child(&format!("keepalive:{n}")) else {
            return;
        };
        let req = ExtendHoldRequest {
            transfer_id,
            hold: hold.clone(),
            amount: NanoCredits::ZERO,
            timeout_ms: lease_timeout_ms(app),
            limits: Vec::new(),
        };
        match Box::pin(app.db.extend_hold(req)).await {
            Ok(kept) => {
                let mut b = lock(&lease.books);
                b.kept_alive = Some(Instant::now());
                b.expires_at = Some(kept.expires_at);
            }
            // Expired under us (the database was away longer than the lease): the next
            // admission that does not fit replaces it; settlements need no lease.
            Err(err) => {
                tracing::warn!(lease = %hold, error = %err, "credit lease keep-alive failed")
            }
        }
    }

    /// Releases the leases an earlier process of this replica left (killed, or stopped with
    /// settlements in the spool), once the spool holds nothing: every settlement they covered
    /// was then applied or will never come.
    async fn return_predecessors(&self, app: &App) {
        if self.predecessors_returned.load(Ordering::Relaxed) || app.spool.depth() > 0 {
            return;
        }
        let ours = format!("lease:{}:{}:", self.replica, self.start);
        let left = match app
            .db
            .active_holds_with_prefix(&format!("lease:{}:", self.replica))
            .await
        {
            Ok(left) => left,
            Err(err) => {
                tracing::warn!(error = %err, "listing an earlier process's credit leases failed");
                return;
            }
        };
        for hold in left.into_iter().filter(|h| !h.as_str().starts_with(&ours)) {
            let Ok(transfer_id) = hold.child("return") else {
                continue;
            };
            let req = ReleaseRequest {
                transfer_id,
                hold: hold.clone(),
            };
            match Box::pin(app.db.release(req)).await {
                Ok(_) | Err(LedgerError::HoldResolved { .. }) => {
                    tracing::info!(lease = %hold, "returned an earlier process's credit lease");
                }
                Err(err) => {
                    tracing::warn!(lease = %hold, error = %err, "returning an earlier process's credit lease failed");
                    return;
                }
            }
        }
        self.predecessors_returned.store(true, Ordering::Relaxed);
    }

    /// Returns every lease no request uses (shutdown). Settlements left in the spool keep
    /// theirs held until it expires.
    pub async fn return_all(&self, app: &App) {
        if app.spool.depth() > 0 {
            return;
        }
        let leases: Vec<Arc<OrgLease>> = lock(&self.orgs).values().cloned().collect();
        for lease in leases {
            self.give_back(app, &lease).await;
        }
    }
}

impl Books {
    /// Records the lease that replaced the previous one, whose books had `consumed` charged
    /// when the replacement began: charges settled meanwhile count against the new lease.
    fn placed(&mut self, hold: creditgate_core::ledger::Hold, consumed: NanoCredits) {
        self.hold = Some(hold.id);
        self.size = hold.amount;
        self.expires_at = Some(hold.expires_at);
        self.refused = None;
        self.generation += 1;
        self.consumed = self
            .consumed
            .checked_sub(consumed)
            .unwrap_or(NanoCredits::ZERO)
            .max(NanoCredits::ZERO);
        self.kept_alive = Some(Instant::now());
    }

    /// Forgets the lease after a replacement the ledger may have committed after all (see
    /// `Leases::replace`): whichever holds stand lapse on their own, and the next request
    /// places a new lease for what the requests in flight hold plus its own.
    fn forget(&mut self) {
        self.generation += 1;
        self.hold = None;
        self.size = NanoCredits::ZERO;
        self.consumed = NanoCredits::ZERO;
        self.expires_at = None;
    }
}

impl OrgLease {
    /// Takes `amount` from the lease in memory if it covers it (`Ok(false)` if not, or while the
    /// lease is being replaced).
    fn try_take(
        &self,
        amount: NanoCredits,
        new_request: bool,
        now: Timestamp,
    ) -> LedgerResult<bool> {
        let mut b = lock(&self.books);
        // A lapsed lease (its keep-alive could not reach the ledger) is replaced, not spent.
        if b.busy || b.hold.is_none() || b.expires_at.is_none_or(|e| e <= now) {
            return Ok(false);
        }
        let after = b.reserved.checked_add(b.consumed)?.checked_add(amount)?;
        if after > b.size {
            return Ok(false);
        }
        b.reserved = b.reserved.checked_add(amount)?;
        if new_request {
            b.live += 1;
        }
        b.last_used = Some(Instant::now());
        Ok(true)
    }
}

/// The replica's id, kept in a file beside its spool (made on first use); a random one, with no
/// return of a predecessor's leases, if that file cannot be kept.
fn replica_id(spool: &std::path::Path) -> String {
    let path = std::path::PathBuf::from(format!("{}.lease-id", spool.display()));
    let valid = |id: &str| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if valid(id) {
            return id.to_owned();
        }
    }
    let id = hex::encode(rand::random::<[u8; 6]>());
    if let Err(err) = std::fs::write(&path, format!("{id}\n")) {
        tracing::warn!(path = %path.display(), error = %err, "cannot keep the replica's lease id");
    }
    id
}

fn lease_timeout_ms(app: &App) -> i64 {
    app.cfg.hold_timeout_ms.min(LEASE_TIMEOUT_MS)
}
