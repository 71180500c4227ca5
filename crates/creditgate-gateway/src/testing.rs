//! Helpers for the crate's unit tests that need a real ledger.

use std::path::PathBuf;
use std::sync::Arc;

use creditgate_core::clock::SystemClock;
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{GrantRequest, HoldRequest, LedgerStore};
use creditgate_core::money::NanoCredits;
use creditgate_storage::Database;

/// A fresh directory under the system's temporary directory; the test removes it.
pub(crate) fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("creditgate-{what}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A SQLite ledger in `dir` with one organization, `org_a`, granted 1,000,000 nano-credits.
pub(crate) async fn funded_ledger(dir: &std::path::Path) -> (Database, OrganizationId) {
    let url = format!("sqlite://{}", dir.join("l.db").display());
    let db = Database::connect(&url, Arc::new(SystemClock))
        .await
        .unwrap();
    let org = OrganizationId::parse("org_a").unwrap();
    db.create_organization(org.clone(), "a".into())
        .await
        .unwrap();
    db.grant(GrantRequest::purchase(
        TransferId::parse("g").unwrap(),
        org.clone(),
        LotId::parse("lot_g").unwrap(),
        NanoCredits::from_nanos(1_000_000),
    ))
    .await
    .unwrap();
    (db, org)
}

/// Places a hold of `nanos` nano-credits for `org` (a minute's timeout, no scope or limits).
pub(crate) async fn hold(db: &Database, org: &OrganizationId, id: TransferId, nanos: i64) {
    db.reserve(HoldRequest {
        transfer_id: id,
        org: org.clone(),
        amount: NanoCredits::from_nanos(nanos),
        timeout_ms: 60_000,
        scope: None,
        limits: vec![],
        memo: None,
    })
    .await
    .unwrap();
}
