//! Postgres over TLS against the real server (`CREDITGATE_TEST_POSTGRES_URL`): `sslmode=require`
//! encrypts, `verify-full` connects only when the server's certificate checks out for the host
//! name (against `sslrootcert`), and is refused otherwise; a server without TLS is refused by
//! both. Skipped (with a note) when the variable is unset or the server has TLS off.

use std::sync::Arc;

use crate::common::*;
use creditgate_core::clock::SystemClock;
use creditgate_core::ledger::LedgerError;
use creditgate_storage::Database;

/// The server's TLS certificate file, if it has TLS on.
async fn server_certificate(admin: &str) -> Option<String> {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    let on: String = client.query_one("SHOW ssl", &[]).await.ok()?.get(0);
    let file: String = client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .ok()?
        .get(0);
    (on == "on").then_some(file)
}

fn with_host(url: &str, host: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after..];
    let (userinfo, hostpart) = match rest.split_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let port_and_path = hostpart.find([':', '/']).map_or("", |i| &hostpart[i..]);
    format!("{}{userinfo}{host}{port_and_path}", &url[..after])
}

fn param(url: &str, p: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{p}")
}

async fn connect(url: &str) -> Result<Database, LedgerError> {
    Database::connect(url, Arc::new(SystemClock)).await
}

#[tokio::test]
async fn postgres_over_tls_is_encrypted_verified_or_refused() {
    let Ok(admin) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("note: {POSTGRES_URL_VAR} is not set: the Postgres TLS test was skipped");
        return;
    };
    let Some(cert) = server_certificate(&admin).await else {
        eprintln!("note: the test Postgres has TLS off: the Postgres TLS test was skipped");
        return;
    };
    let name = format!("cg_tls_{:016x}", rand::random::<u64>());
    admin_exec(&admin, &format!("CREATE DATABASE {name}")).await;
    let url = with_database(&admin, &name);

    // require: encrypted (the server's pg_stat_ssl says so for our own connection).
    let db = connect(&param(&url, "sslmode=require"))
        .await
        .expect("require connects");
    assert!(
        db.connection_uses_tls().await.unwrap(),
        "the connection is encrypted"
    );
    drop(db);

    // verify-full against the server's own certificate, by the name in it (`localhost`).
    let verified = param(
        &with_host(&url, "localhost"),
        &format!("sslmode=verify-full&sslrootcert={cert}"),
    );
    let db = connect(&verified).await;
    let outcome = match &db {
        Ok(db) => db.connection_uses_tls().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    drop(db);
    // A certificate for another name, or one not signed by the given root, is refused.
    let wrong_name = param(
        &with_host(&url, "127.0.0.1"),
        &format!("sslmode=verify-full&sslrootcert={cert}"),
    );
    let wrong_name = connect(&wrong_name).await.map(|_| ());
    let no_root = connect(&param(&with_host(&url, "localhost"), "sslmode=verify-full"))
        .await
        .map(|_| ());
    admin_exec(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await;

    assert_eq!(
        outcome,
        Ok(true),
        "verify-full with the right root and name"
    );
    assert!(
        matches!(wrong_name, Err(LedgerError::Unavailable(_))),
        "{wrong_name:?}"
    );
    assert!(
        matches!(no_root, Err(LedgerError::Unavailable(_))),
        "{no_root:?}"
    );
}

#[tokio::test]
async fn tls_to_a_server_without_it_is_refused() {
    // A plain TCP listener that answers the TLS request with 'N' (no TLS), as Postgres does
    // with ssl = off.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if s.read_exact(&mut request).await.is_ok() {
                let _ = s.write_all(b"N").await;
            }
        }
    });
    for mode in ["require", "verify-full"] {
        let url = format!("postgres://postgres@{addr}/x?sslmode={mode}&connect_timeout=5");
        let err = connect(&url).await.unwrap_err();
        assert!(
            matches!(err, LedgerError::Unavailable(_)),
            "{mode}: {err:?}"
        );
        assert!(err.to_string().contains("TLS"), "{mode}: {err}");
    }
    let err = connect("postgres://postgres@127.0.0.1:1/x?sslmode=verify-ca")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("verify-full"), "{err}");
}
