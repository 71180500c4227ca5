//! The operator's organization commands with the built binary: create with an owner invitation
//! (into the outbox), search, grant idempotently, suspend and resume, admin keys, and the audit
//! log that records each — the same service as `/admin/v1/*`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// A temporary working directory, removed afterwards.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("creditgate-acct-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn run(&self, args: &[&str]) -> Output {
        let db = format!("sqlite://{}", self.0.join("cli.db").display());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditgate"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CREDITGATE_") {
                cmd.env_remove(name);
            }
        }
        cmd.args(["--database", &db, "--json"])
            .args(args)
            .current_dir(&self.0)
            .env("CREDITGATE_OUTBOX_DIR", self.0.join("outbox"))
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
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn organizations_are_managed_and_audited_from_the_cli() {
    let w = Workdir::new();
    let org = w.json(&[
        "org",
        "create",
        "--name",
        "Acme Research",
        "--owner-email",
        "boss@acme.example",
    ]);
    let id = org["id"].as_str().unwrap().to_owned();
    let mails: Vec<_> = std::fs::read_dir(w.0.join("outbox")).unwrap().collect();
    assert_eq!(mails.len(), 1, "the owner's invitation is in the outbox");
    let mail = std::fs::read_to_string(mails[0].as_ref().unwrap().path()).unwrap();
    assert!(mail.contains("boss@acme.example") && mail.contains("https://gateway.example/invite/"));

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
            "invite.created",
            "organization.created"
        ]
    );
    assert!(
        !log.to_string().contains(key["secret"].as_str().unwrap()),
        "no secret in the log"
    );
}
