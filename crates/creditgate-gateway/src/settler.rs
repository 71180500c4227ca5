//! Settlements of requests admitted against credit leases, posted in groups (`docs/ledger.md`,
//! "Credit leases"): one task takes every leased settlement queued while the last group was
//! being posted and posts them together (`LedgerStore::settle_leased_group`), so that their
//! organization is locked, its lots and holds read, and each lot drawn and its state written
//! once per group instead of once per request. Each request still waits for its own result,
//! which is what the ledger committed: a group is one transaction, synced before it is answered
//! like any settle, so every read after the answer sees the charge.
//!
//! A group the ledger refuses (a replay of a settle already posted, a request id already used,
//! one request's bad input) is posted again one request at a time with the ordinary `settle`,
//! which replays or refuses each on its own; a group that found the database unavailable answers
//! each request so, and each retries or spools as without groups.

use std::sync::{Arc, OnceLock, Weak};

use creditgate_core::ledger::{LedgerError, LedgerResult, LedgerStore, SettleRequest, Settlement};
use creditgate_storage::Database;
use tokio::sync::{mpsc, oneshot};

/// Most settlements posted in one group (a larger queue is posted in several).
pub const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<LedgerResult<Settlement>>;

/// The queue of leased settlements and its task, started on first use.
pub struct Settler {
    db: Database,
    queue: OnceLock<mpsc::UnboundedSender<(SettleRequest, Reply)>>,
    counts: crate::metrics::SettleCounts,
}

impl Settler {
    /// A settler posting to `db`, counting its groups in `counts` (the metrics').
    pub fn new(db: Database, counts: crate::metrics::SettleCounts) -> Self {
        Self {
            db,
            queue: OnceLock::new(),
            counts,
        }
    }

    /// Posts a settlement and returns its own result: a leased one with whatever other leased
    /// ones are queued, any other directly.
    pub async fn settle(self: &Arc<Self>, req: SettleRequest) -> LedgerResult<Settlement> {
        if req.leased.is_none() {
            return self.db.settle(req).await;
        }
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(post_forever(Arc::downgrade(self), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let stopped = || LedgerError::Unavailable("the settlement queue stopped".to_owned());
        queue.send((req, reply)).map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Posts one group and answers each of its requests.
    async fn post(&self, group: Vec<(SettleRequest, Reply)>) {
        if let [_] = group.as_slice() {
            self.post_alone(group).await;
            return;
        }
        let reqs: Vec<SettleRequest> = group.iter().map(|(req, _)| req.clone()).collect();
        match Box::pin(self.db.settle_leased_group(reqs)).await {
            Ok(settled) if settled.len() == group.len() => {
                self.counts.groups.inc();
                self.counts.grouped.inc_by(group.len() as u64);
                for ((_, reply), s) in group.into_iter().zip(settled) {
                    let _ = reply.send(Ok(s));
                }
            }
            Err(LedgerError::Unavailable(e)) => {
                for (_, reply) in group {
                    let _ = reply.send(Err(LedgerError::Unavailable(e.clone())));
                }
            }
            refused => {
                if let Err(err) = refused {
                    tracing::info!(error = %err, size = group.len(), "a group of settlements was refused; posting each on its own");
                }
                self.post_alone(group).await;
            }
        }
    }

    /// Posts each settlement with the ordinary settle, all at once (the database still commits
    /// what arrives together in one go).
    async fn post_alone(&self, group: Vec<(SettleRequest, Reply)>) {
        self.counts.alone.inc_by(group.len() as u64);
        let posts = group.into_iter().map(|(req, reply)| async move {
            let _ = reply.send(self.db.settle(req).await);
        });
        futures_util::future::join_all(posts).await;
    }
}

/// Posts group after group until the settler is gone: each group is everything queued when the
/// previous one was answered (up to [`MAX_GROUP`]).
async fn post_forever(
    settler: Weak<Settler>,
    mut queue: mpsc::UnboundedReceiver<(SettleRequest, Reply)>,
) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let Some(settler) = settler.upgrade() else {
            return;
        };
        settler.post(group).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use creditgate_core::ids::{OrganizationId, TransferId};
    use creditgate_core::ledger::{LeasedHold, Settlement};
    use creditgate_core::money::NanoCredits;

    fn leased(n: u32, hold: &str) -> SettleRequest {
        SettleRequest {
            transfer_id: TransferId::parse(&format!("{hold}:settle")).unwrap(),
            hold: TransferId::parse(hold).unwrap(),
            amount: NanoCredits::from_nanos(1_000 + i64::from(n)),
            memo: None,
            usage: None,
            leased: Some(LeasedHold {
                org: OrganizationId::parse("org_a").unwrap(),
                amount: NanoCredits::from_nanos(2_000),
                created_at: creditgate_core::clock::Timestamp::from_millis(1),
                scope: None,
                memo: None,
            }),
        }
    }

    async fn all(settler: &Arc<Settler>, reqs: &[SettleRequest]) -> Vec<LedgerResult<Settlement>> {
        futures_util::future::join_all(reqs.iter().map(|r| settler.settle(r.clone()))).await
    }

    /// Settlements queued together are posted as one group; a group with a replay and a reused
    /// request id in it is posted again one by one, so each gets its own answer and every other
    /// charge is posted exactly once.
    #[tokio::test]
    async fn a_group_is_posted_together_and_a_refused_one_one_by_one() {
        let dir = crate::testing::temp_dir("settler");
        let (db, org) = crate::testing::funded_ledger(&dir).await;
        crate::testing::hold(&db, &org, TransferId::parse("req_own").unwrap(), 10).await;
        let counts = crate::metrics::SettleCounts::default();
        let settler = Arc::new(Settler::new(db.clone(), counts.clone()));

        let first: Vec<SettleRequest> = (0..10).map(|n| leased(n, &format!("req_{n}"))).collect();
        let posted = all(&settler, &first).await;
        assert!(posted.iter().all(Result::is_ok), "{posted:?}");
        assert_eq!(
            (
                counts.groups.get(),
                counts.grouped.get(),
                counts.alone.get()
            ),
            (1, 10, 0)
        );

        // A replay of req_3 and a reused request id (req_own names a hold of its own).
        let mut second: Vec<SettleRequest> =
            (10..18).map(|n| leased(n, &format!("req_{n}"))).collect();
        second.push(first[3].clone());
        second.push(leased(99, "req_own"));
        let answers = all(&settler, &second).await;
        assert_eq!(
            counts.alone.get(),
            10,
            "the refused group was posted one by one"
        );
        for (req, answer) in second.iter().zip(&answers).take(8) {
            assert_eq!(answer.as_ref().unwrap().charged, req.amount);
        }
        assert_eq!(
            answers[8], posted[3],
            "the replay answers as the first settle"
        );
        assert!(
            matches!(answers[9], Err(LedgerError::IdempotencyConflict(_))),
            "{:?}",
            answers[9]
        );

        let charged: i64 = (0..18).map(|n| 1_000 + n).sum();
        let b = db.balance(&org).await.unwrap();
        assert_eq!(b.posted, NanoCredits::from_nanos(1_000_000 - charged));
        assert!(db.verify().await.unwrap().is_clean());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
