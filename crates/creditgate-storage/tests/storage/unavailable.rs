//! A database that cannot be reached, or goes away, is `LedgerError::Unavailable` (the HTTP
//! layer answers 503), never a panic or a wrong answer.

use std::sync::Arc;

use crate::common::*;
use creditgate_core::clock::SystemClock;
use creditgate_core::ledger::{LedgerError, LedgerStore};
use creditgate_storage::Database;

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let err = Database::connect(
        "postgres://postgres@127.0.0.1:1/creditgate",
        Arc::new(SystemClock),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    for url in ["mysql://db/x", "sqlite://", "creditgate.db"] {
        let err = Database::connect(url, Arc::new(SystemClock))
            .await
            .unwrap_err();
        assert!(matches!(err, LedgerError::Unavailable(_)), "{url}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_is_unavailable() {
    run(Backend::Postgres, |h| async move {
        funded(&h.db, "o", 1_000).await;
        let name = h.url.rsplit('/').next().unwrap().to_owned();
        let admin = std::env::var(POSTGRES_URL_VAR).unwrap();
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .await
            .unwrap();
        client
            .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            .await
            .unwrap();
        let err = h.db.reserve(hold_req("o", "h", 1)).await.unwrap_err();
        assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
        let err = h.db.balance(&org("o")).await.unwrap_err();
        assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
        client
            .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .await
            .unwrap();
        // Back: nothing was written by the failed attempt, and the pool recovers.
        h.db.reserve(hold_req("o", "h", 1)).await.unwrap();
        assert_clean(&h.db).await;
    })
    .await;
}
