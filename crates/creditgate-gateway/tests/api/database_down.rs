//! The database becomes unreachable under a running gateway (Postgres, where a database can be
//! closed to connections): requests fail closed with 503 and nothing reaches the upstream; when
//! it comes back, so does the gateway. Runs when `CREDITGATE_TEST_POSTGRES_URL` is set.

use serde_json::json;
use tokio_postgres::NoTls;

use crate::helpers::*;

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("admin connects");
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn an_unreachable_database_fails_closed_with_503_and_forwards_nothing() {
    let Ok(admin_url) = std::env::var("CREDITGATE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: CREDITGATE_TEST_POSTGRES_URL not set");
        return;
    };
    let admin = admin(&admin_url).await;
    let name = format!("cg_gateway_down_{}", random_hex(6));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let app = TestApp::spawn_with(Setup {
        database_url: Some(with_database(&admin_url, &name)),
        ..Setup::default()
    })
    .await;

    // A first request works (and warms the key cache, so the refusal below comes from the hold).
    let ok = app.message(&body(64, "output_tokens=5")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let before = app.sim.stats();

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .await
        .unwrap();
    for stream in [false, true] {
        let mut request = body(64, "output_tokens=5");
        request["stream"] = json!(stream);
        let down = app.message(&request).await;
        assert_eq!(down.status, 503, "stream {stream}: {}", down.body);
        assert_eq!(down.body["error"]["type"], "api_error");
        assert!(down.header("request-id").is_some());
    }
    assert_eq!(
        app.sim.stats(),
        before,
        "nothing was forwarded without a hold"
    );

    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let back = app.message(&body(64, "output_tokens=5")).await;
    assert_eq!(back.status, 200, "the gateway recovers: {}", back.body);
    app.assert_ledger_clean().await;

    drop(app);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
