//! The operator's organization and key commands with the built binary, on SQLite and Postgres:
//! create with an owner invitation (into the outbox), search, grant idempotently, suspend and
//! resume, admin keys, keys with limits, and the audit log that records each — the same service
//! as `/admin/v1/*` and `/v1/organizations/api_keys`.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::process::{pg_exec, random_hex, with_database, Backend, POSTGRES_URL_VAR};
use serde_json::Value;

/// A temporary working directory and a fresh database (a SQLite file in the directory, or a
/// new database on `CREDITGATE_TEST_POSTGRES_URL`), removed afterwards.
struct Workdir {
    dir: PathBuf,
    database_url: String,
    /// Postgres: the admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl Workdir {
    /// `None` (the test returns, passing) for Postgres without `CREDITGATE_TEST_POSTGRES_URL`.
    async fn on(backend: Backend) -> Option<Self> {
        let dir =
            std::env::temp_dir().join(format!("creditgate-acct-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let (database_url, postgres) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.join("cli.db").display()), None),
            Backend::Postgres => {
                let Ok(admin) = std::env::var(POSTGRES_URL_VAR) else {
                    eprintln!("skipped: {POSTGRES_URL_VAR} not set");
                    return None;
                };
                let name = format!("cg_cli_{}", random_hex(8));
                pg_exec(&admin, &format!("CREATE DATABASE {name}")).await;
                (with_database(&admin, &name), Some((admin, name)))
            }
        };
        Some(Self {
            dir,
            database_url,
            postgres,
        })
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditgate"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CREDITGATE_") {
                cmd.env_remove(name);
            }
        }
        cmd.args(["--database", &self.database_url, "--json"])
            .args(args)
            .current_dir(&self.dir)
            .env("CREDITGATE_OUTBOX_DIR", self.dir.join("outbox"))
            .env("CREDITGATE_PUBLIC_URL", "https://gateway.example");
        cmd.output().expect("run creditgate")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    }

    /// Runs `args`, which must fail; returns its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn actions(&self, org: &str) -> Vec<String> {
        let log = self.json(&["org", "audit", "--org", org]);
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn finish(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin, name)) = &self.postgres {
            pg_exec(admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
        }
    }
}

/// Declares `scenario::sqlite` and `scenario::postgres` tests of a `fn scenario(&Workdir)`.
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            use super::*;

            async fn on(backend: Backend) {
                let Some(w) = Workdir::on(backend).await else {
                    return;
                };
                let w = tokio::task::spawn_blocking(move || {
                    super::$scenario(&w);
                    w
                })
                .await
                .expect("scenario passes");
                w.finish().await;
            }

            #[tokio::test]
            async fn sqlite() {
                on(Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                on(Backend::Postgres).await
            }
        }
    )+};
}

on_both_databases!(
    organizations_are_managed_and_audited_from_the_cli,
    keys_are_limited_and_audited_from_the_cli,
);

fn organizations_are_managed_and_audited_from_the_cli(w: &Workdir) {
    let org = w.json(&[
        "org",
        "create",
        "--name",
        "Acme Research",
        "--owner-email",
        "boss@acme.example",
    ]);
    let id = org["id"].as_str().unwrap().to_owned();
    let mails: Vec<_> = std::fs::read_dir(w.dir.join("outbox")).unwrap().collect();
    assert_eq!(mails.len(), 1, "the owner's invitation is in the outbox");
    let mail = std::fs::read_to_string(mails[0].as_ref().unwrap().path()).unwrap();
    assert!(mail.contains("boss@acme.example") && mail.contains("https://gateway.example/join/"));

    // The owner has not joined: the operator may invite another (the first link dies).
    let again = w.json(&["org", "invite-owner", &id, "--email", "chief@acme.example"]);
    assert_eq!(again["role"], "owner");
    assert_eq!(std::fs::read_dir(w.dir.join("outbox")).unwrap().count(), 2);
    assert!(w
        .refused(&["org", "invite-owner", &id, "--email", "not-an-email"])
        .contains("email"));
    assert_eq!(
        w.json(&["org", "rename", &id, "--name", "Acme Research Ltd"])["name"],
        "Acme Research Ltd"
    );
    assert!(w
        .refused(&["org", "rename", &id, "--name", ""])
        .contains("name"));

    let found = w.json(&["org", "list", "--search", "ACME"]);
    assert_eq!(found["organizations"][0]["id"], id.as_str());
    let grant = [
        "org",
        "grant",
        &id,
        "--amount",
        "12.5",
        "--reference",
        "welcome",
    ];
    let first = w.json(&grant);
    let again = w.json(&grant);
    assert_eq!(
        (first["replayed"].as_bool(), again["replayed"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(first["lot"]["id"], again["lot"]["id"]);
    assert_eq!(w.json(&["credits", "show", "--org", &id])["posted"], "12.5");
    assert_eq!(w.json(&["org", "suspend", &id])["status"], "suspended");
    assert_eq!(w.json(&["org", "resume", &id])["status"], "active");
    let key = w.json(&["org", "admin-key", &id, "--name", "ci"]);
    assert!(key["secret"].as_str().unwrap().starts_with("sk-cg-admin-"));
    let bad = w.run(&["org", "grant", &id, "--amount", "0", "--reference", "zero"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("amount"));

    let log = w.json(&["org", "audit", "--org", &id]);
    let actions: Vec<_> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "admin_key.created",
            "organization.reactivated",
            "organization.suspended",
            "credits.granted",
            "organization.renamed",
            "invite.created",
            "invite.deleted",
            "invite.created",
            "organization.created"
        ]
    );
    assert!(
        !log.to_string().contains(key["secret"].as_str().unwrap()),
        "no secret in the log"
    );
}

fn keys_are_limited_and_audited_from_the_cli(w: &Workdir) {
    let org = w.json(&["org", "create", "--name", "Acme", "--id", "org_acme"]);
    assert_eq!(org["id"], "org_acme");
    let key = w.json(&[
        "keys",
        "create",
        "--org",
        "org_acme",
        "--name",
        "ci",
        "--allowed-models",
        "claude-haiku-4-5,claude-sonnet-4-5",
        "--requests-per-minute",
        "60",
        "--daily-spend",
        "10.5",
    ]);
    let id = key["id"].as_str().unwrap().to_owned();
    let secret = key["secret"].as_str().unwrap().to_owned();
    let limits = &key["limits"];
    assert_eq!(
        limits["allowed_models"],
        serde_json::json!(["claude-haiku-4-5", "claude-sonnet-4-5"])
    );
    assert_eq!(limits["requests_per_minute"], 60);
    assert_eq!(limits["spend"]["daily"], "10.5");
    assert_eq!(limits["tokens_per_minute"], Value::Null);

    // `limit` replaces the limits by those given, exactly as the HTTP API's `limits`.
    let limited = w.json(&[
        "keys",
        "limit",
        &id,
        "--tokens-per-minute",
        "5000",
        "--total-spend",
        "100",
    ]);
    assert_eq!(limited["limits"]["tokens_per_minute"], 5000);
    assert_eq!(limited["limits"]["spend"]["total"], "100");
    assert_eq!(limited["limits"]["requests_per_minute"], Value::Null);
    let listed = w.json(&["keys", "list", "--org", "org_acme"]);
    assert_eq!(listed["keys"][0]["limits"], limited["limits"]);

    // Bad limits are refused with the HTTP API's words and change nothing.
    assert!(w
        .refused(&["keys", "limit", &id, "--requests-per-minute", "0"])
        .contains("requests_per_minute"));
    assert!(w
        .refused(&["keys", "limit", &id, "--daily-spend", "0"])
        .contains("spend"));
    assert!(w.refused(&["keys", "limit", &id]).contains("--none"));
    assert!(w
        .refused(&["keys", "create", "--org", "org_acme", "--name", ""])
        .contains("name"));
    assert!(w
        .refused(&["keys", "create", "--org", "org_missing"])
        .contains("org_missing"));
    assert_eq!(
        w.json(&["keys", "list", "--org", "org_acme"])["keys"][0]["limits"],
        limited["limits"]
    );

    let cleared = w.json(&["keys", "limit", &id, "--none"]);
    assert_eq!(cleared["limits"]["spend"]["total"], Value::Null);
    assert_eq!(w.json(&["keys", "disable", &id])["status"], "disabled");
    assert_eq!(w.json(&["keys", "revoke", &id])["status"], "revoked");
    assert!(w.refused(&["keys", "enable", &id]).contains("revoked"));

    assert_eq!(
        w.actions("org_acme"),
        [
            "api_key.updated",
            "api_key.updated",
            "api_key.updated",
            "api_key.updated",
            "api_key.created",
            "organization.created"
        ]
    );
    let log = w.json(&["org", "audit", "--org", "org_acme"]);
    let created = &log["data"][4];
    assert_eq!(created["actor"]["type"], "operator");
    assert_eq!(created["target"]["id"], id.as_str());
    assert_eq!(created["details"]["limits"]["spend"]["daily"], "10.5");
    assert_eq!(
        log["data"][3]["details"]["limits"]["tokens_per_minute"],
        5000
    );
    assert_eq!(log["data"][0]["details"]["status"], "revoked");
    assert!(!log.to_string().contains(&secret), "no secret in the log");
}
