//! Postgres under conditions the ledger does not choose: a database whose default isolation is
//! REPEATABLE READ, and serialization failures and deadlocks injected into the ledger's
//! transactions (catalogue E28). Skipped (passing) when `CREDITGATE_TEST_POSTGRES_URL` is unset.

use std::sync::Arc;

use crate::common::*;
use creditgate_core::clock::ManualClock;
use creditgate_core::ledger::{LedgerError, LedgerStore};
use creditgate_storage::Database;
use rand::Rng;
use tokio::sync::Barrier;

/// A fresh database prepared by `setup` (run as the admin on the new database before the
/// ledger connects); dropped when the scenario ends.
async fn with_database<F, Fut>(setup: &[&str], scenario: F)
where
    F: FnOnce(Database, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Ok(admin) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("note: {POSTGRES_URL_VAR} is not set: skipped");
        return;
    };
    let name = format!("cg_test_{:016x}", rand::thread_rng().gen::<u64>());
    admin_exec(&admin, &format!("CREATE DATABASE {name}")).await;
    let url = crate::common::with_database(&admin, &name);
    for sql in setup {
        admin_exec(&url, &sql.replace("{db}", &name)).await;
    }
    let db = Database::connect(&url, Arc::new(ManualClock::new(START)))
        .await
        .expect("connect postgres");
    let outcome = tokio::spawn(scenario(db, url)).await;
    admin_exec(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Issue 7, leak 3: on a database whose default isolation is REPEATABLE READ, 120 concurrent
/// holds against a balance covering 10 admitted 25 (the snapshot predated the row lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admission_is_exact_when_the_default_isolation_is_repeatable_read() {
    let setup = ["ALTER DATABASE {db} SET default_transaction_isolation = 'repeatable read'"];
    with_database(&setup, |db, _| async move {
        funded(&db, "o", 10_000).await;
        let barrier = Arc::new(Barrier::new(120));
        let mut tasks = Vec::new();
        for i in 0..120 {
            let (db, barrier) = (db.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                db.reserve(hold_req("o", &format!("rr-{i}"), 1_000)).await
            }));
        }
        let mut admitted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => admitted += 1,
                Err(LedgerError::Insufficient { .. }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(admitted, 10);
        let b = db.balance(&org("o")).await.unwrap();
        assert_eq!((b.held, b.available), (nc(10_000), nc(0)));
        assert_clean(&db).await;
    })
    .await;
}

/// A constraint trigger that fails the first `n` commits that inserted into `table` with
/// `sqlstate` (a sequence counts the attempts: it is not rolled back with them).
fn inject_at_commit(table: &str, sqlstate: &str, n: u32) -> Vec<String> {
    vec![
        "CREATE SEQUENCE cg_injected".to_owned(),
        format!(
            "CREATE FUNCTION cg_inject() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('cg_injected') <= {n} THEN
                     RAISE EXCEPTION 'injected fault' USING ERRCODE = '{sqlstate}';
                 END IF;
                 RETURN NULL;
             END $$"
        ),
        format!(
            "CREATE CONSTRAINT TRIGGER cg_inject AFTER INSERT ON {table}
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cg_inject()"
        ),
    ]
}

/// Installs the triggers after the ledger's migrations created the tables.
async fn install(url: &str, statements: &[String]) {
    for sql in statements {
        admin_exec(url, sql).await;
    }
}

async fn injected_value(url: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query_one("SELECT last_value FROM cg_injected", &[])
        .await
        .unwrap()
        .get(0)
}

/// E28: a serialization failure at COMMIT of a settle is retried; the charge is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serialization_failure_at_commit_is_retried_and_applied_once() {
    with_database(&[], |db, url| async move {
        funded(&db, "o", 1_000).await;
        db.reserve(hold_req("o", "h", 300)).await.unwrap();
        install(&url, &inject_at_commit("charges", "40001", 2)).await;
        let settled = db.settle(settle_req("h", "s", 250)).await.unwrap();
        assert_eq!(settled.charged, nc(250));
        assert_eq!(
            injected_value(&url).await,
            3,
            "two failures, then the commit"
        );
        let again = db.settle(settle_req("h", "s", 250)).await.unwrap();
        assert_eq!(again, settled, "a replay, not a second charge");
        let b = db.balance(&org("o")).await.unwrap();
        assert_eq!((b.posted, b.held), (nc(750), nc(0)));
        assert_clean(&db).await;
    })
    .await;
}

/// E28: a deadlock reported while placing a hold is retried; the hold is placed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_retried_and_applied_once() {
    with_database(&[], |db, url| async move {
        funded(&db, "o", 1_000).await;
        install(&url, &inject_at_commit("holds", "40P01", 3)).await;
        db.reserve(hold_req("o", "h", 400)).await.unwrap();
        assert_eq!(injected_value(&url).await, 4);
        let b = db.balance(&org("o")).await.unwrap();
        assert_eq!((b.held, b.active_holds), (nc(400), 1));
        assert_clean(&db).await;
    })
    .await;
}

/// A fault that outlasts every retry fails the operation with `Unavailable`, and nothing of it
/// was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_never_clears_writes_nothing() {
    with_database(&[], |db, url| async move {
        funded(&db, "o", 1_000).await;
        install(&url, &inject_at_commit("holds", "40001", 1_000)).await;
        let err = db.reserve(hold_req("o", "h", 400)).await.unwrap_err();
        assert!(matches!(err, LedgerError::Unavailable(_)), "{err}");
        let b = db.balance(&org("o")).await.unwrap();
        assert_eq!((b.held, b.active_holds), (nc(0), 0));
        assert_clean(&db).await;
    })
    .await;
}
