//! The ledger commands run as a user runs them: the built binary against a temporary SQLite
//! file. `migrate`, `org create`, `credits grant`, `credits show`, `ledger verify` (clean and
//! tampered), `--json` output and argument errors.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// A temporary directory holding one test's database, removed afterwards.
struct Workdir {
    path: PathBuf,
}

impl Workdir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("creditgate-cli-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    fn db_file(&self) -> PathBuf {
        self.path.join("ledger.db")
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.db_file().display())
    }

    /// Runs `creditgate --database <this db> <args>`.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_creditgate"))
            .arg("--database")
            .arg(self.url())
            .args(args)
            .env_remove("CREDITGATE_DATABASE_URL")
            .output()
            .expect("run creditgate")
    }

    /// Runs with `--json`, expects success and exactly one JSON object on stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        one_json_object(&out)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn one_json_object(out: &Output) -> Value {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stdout: {text:?}");
    let value: Value = serde_json::from_str(lines[0]).unwrap();
    assert!(value.is_object(), "{value}");
    value
}

/// Asserts a refusal: non-zero exit, nothing on stdout, `needle` in the message.
fn assert_refused(out: &Output, needle: &str) {
    assert!(!out.status.success(), "should fail: {}", stderr(out));
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr(out);
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
}

#[test]
fn org_grant_show_round_trip() {
    let w = Workdir::new();
    let migrated = w.json(&["migrate"]);
    assert_eq!(migrated["backend"], "sqlite");
    assert_eq!(migrated["migrations"][0]["name"], "0001_ledger");

    let org = w.json(&["org", "create", "--name", "Acme Inc", "--id", "acme"]);
    assert_eq!(org["id"], "acme");
    assert_eq!(org["name"], "Acme Inc");
    let generated = w.json(&["org", "create", "--name", "Beta"]);
    assert!(generated["id"].as_str().unwrap().starts_with("org_"));

    let granted = w.json(&[
        "credits",
        "grant",
        "--org",
        "acme",
        "--amount",
        "12.5",
        "--category",
        "paid",
        "--source",
        "purchase",
        "--expires",
        "2099-01-01",
        "--price-per-credit",
        "0.005",
        "--transfer-id",
        "pay-1",
    ]);
    assert_eq!(granted["transfer_id"], "pay-1");
    assert_eq!(granted["lot"]["id"], "lot_pay-1");
    assert_eq!(granted["lot"]["amount"], "12.5");
    assert_eq!(granted["lot"]["price_per_credit"], "0.005");
    assert_eq!(granted["lot"]["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(granted["repaid_overrun"], "0");
    let tiny = w.json(&[
        "credits",
        "grant",
        "--org",
        "acme",
        "--amount",
        "0.000000001",
        "--expires-in",
        "30d",
    ]);
    assert_eq!(tiny["lot"]["category"], "granted");
    assert!(tiny["transfer_id"].as_str().unwrap().starts_with("grant_"));

    let shown = w.json(&["credits", "show", "--org", "acme"]);
    assert_eq!(shown["available"], "12.500000001");
    assert_eq!(shown["posted"], "12.500000001");
    assert_eq!(shown["held"], "0");
    assert_eq!(shown["debt"], "0");
    assert_eq!(shown["active_holds"], 0);
    let lots = shown["lots"].as_array().unwrap();
    assert_eq!(lots.len(), 2);
    assert_eq!(
        lots[0]["amount"], "0.000000001",
        "the sooner expiry is drawn first"
    );

    let text = w.run(&["credits", "show", "--org", "acme"]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("available  12.500000001"), "{text}");

    let listed = w.json(&["org", "list"]);
    assert_eq!(listed["organizations"].as_array().unwrap().len(), 2);

    let verified = w.json(&["ledger", "verify"]);
    assert_eq!(verified["clean"], true);
    assert_eq!(verified["organizations"], 2);
    assert_eq!(verified["entries"], 2);
}

#[test]
fn grant_is_idempotent_on_its_transfer_id() {
    let w = Workdir::new();
    w.json(&["org", "create", "--name", "Acme", "--id", "acme"]);
    let args = [
        "credits",
        "grant",
        "--org",
        "acme",
        "--amount",
        "5",
        "--transfer-id",
        "stripe-evt-1",
    ];
    let first = w.json(&args);
    let again = w.json(&args);
    assert_eq!(first, again);
    let shown = w.json(&["credits", "show", "--org", "acme"]);
    assert_eq!(shown["available"], "5", "a replay credits once");
    // The billing service audits the grant once, not its replay.
    let audit = w.json(&["org", "audit", "--org", "acme"]);
    let grants: Vec<&Value> = audit["data"]
        .as_array()
        .expect("audit events")
        .iter()
        .filter(|e| e["action"] == "credits.granted")
        .collect();
    assert_eq!(grants.len(), 1, "{audit}");
    assert_eq!(grants[0]["details"]["transfer_id"], "stripe-evt-1");
    let other = w.run(&[
        "credits",
        "grant",
        "--org",
        "acme",
        "--amount",
        "6",
        "--transfer-id",
        "stripe-evt-1",
    ]);
    assert_refused(&other, "already used");
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let w = Workdir::new();
    w.json(&["org", "create", "--name", "Acme", "--id", "acme"]);
    let grant = |extra: &[&str]| {
        let mut args = vec!["credits", "grant", "--org", "acme"];
        args.extend_from_slice(extra);
        w.run(&args)
    };
    assert_refused(
        &grant(&["--amount", "1.0000000001"]),
        "more than 9 decimal places",
    );
    assert_refused(&grant(&["--amount", "-1"]), "must be positive");
    assert_refused(&grant(&["--amount", "0"]), "must be positive");
    assert_refused(&grant(&["--amount", "ten"]), "not a decimal number");
    assert_refused(&grant(&["--amount", "1e3"]), "not a decimal number");
    assert_refused(&grant(&["--amount", "99999999999"]), "out of range");
    assert_refused(
        &grant(&["--amount", "1", "--category", "free"]),
        "--category",
    );
    assert_refused(&grant(&["--amount", "1", "--source", "gift"]), "--source");
    assert_refused(
        &grant(&["--amount", "1", "--expires", "2001-01-01"]),
        "not in the future",
    );
    assert_refused(&grant(&["--amount", "1", "--expires", "soon"]), "--expires");
    assert_refused(
        &grant(&["--amount", "1", "--expires-in", "1y"]),
        "--expires-in",
    );
    assert_refused(
        &grant(&[
            "--amount",
            "1",
            "--expires",
            "2099-01-01",
            "--expires-in",
            "1d",
        ]),
        "cannot be used with",
    );
    assert_refused(
        &grant(&["--amount", "1", "--price-per-credit", "-0.1"]),
        "negative",
    );
    assert_refused(
        &grant(&["--amount", "1", "--transfer-id", "a b"]),
        "--transfer-id",
    );
    assert_refused(&grant(&[]), "--amount");
    assert_refused(
        &w.run(&["credits", "grant", "--org", "nobody", "--amount", "1"]),
        "does not exist",
    );
    assert_refused(
        &w.run(&["credits", "show", "--org", "x'; DROP TABLE lots;--"]),
        "--org",
    );
    assert_refused(
        &w.run(&["credits", "show", "--org", "nobody"]),
        "does not exist",
    );
    assert_refused(
        &w.run(&["org", "create", "--name", "Again", "--id", "acme"]),
        "already exists",
    );
    assert_refused(&w.run(&["org", "create", "--name", " "]), "--name");
    let bad_url = Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(["--database", "mysql://db/x", "migrate"])
        .output()
        .unwrap();
    assert_refused(&bad_url, "unsupported database URL");
    // Nothing above reached the ledger.
    assert_eq!(w.json(&["ledger", "verify"])["entries"], 0);
}

#[test]
fn database_url_comes_from_the_environment() {
    let w = Workdir::new();
    let out = Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args([
            "--json", "org", "create", "--name", "Env", "--id", "env-org",
        ])
        .env("CREDITGATE_DATABASE_URL", w.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        w.json(&["org", "list"])["organizations"][0]["id"],
        "env-org"
    );
}

#[test]
fn verify_fails_on_a_tampered_database() {
    let w = Workdir::new();
    w.json(&["org", "create", "--name", "Acme", "--id", "acme"]);
    w.json(&[
        "credits",
        "grant",
        "--org",
        "acme",
        "--amount",
        "10",
        "--transfer-id",
        "g1",
    ]);
    w.json(&[
        "credits",
        "grant",
        "--org",
        "acme",
        "--amount",
        "2",
        "--transfer-id",
        "g2",
    ]);
    assert!(w.run(&["ledger", "verify"]).status.success());

    // The schema refuses edits to the journal...
    let conn = rusqlite::Connection::open(w.db_file()).unwrap();
    let refused = conn
        .execute(
            "UPDATE entries SET amount = 1000000000000 WHERE seq = 1",
            [],
        )
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    // ...so a tamperer drops the trigger first; verify still sees it.
    conn.execute_batch(
        "DROP TRIGGER entries_append_only_update;
         UPDATE entries SET amount = 1000000000000 WHERE seq = 1;",
    )
    .unwrap();
    drop(conn);

    let out = w.run(&["--json", "ledger", "verify"]);
    assert!(!out.status.success(), "verify must fail on tampering");
    let report = one_json_object(&out);
    assert_eq!(report["clean"], false);
    let problems: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems.iter().any(|p| p.contains("entry 1 was altered")),
        "{problems:?}"
    );
    assert!(
        stderr(&out).contains("ledger verify found"),
        "{}",
        stderr(&out)
    );

    let text = w.run(&["ledger", "verify"]);
    assert!(!text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("problems"));
}

#[test]
fn keys_are_shown_once_listed_by_hint_and_revoked_for_good() {
    let w = Workdir::new();
    w.json(&["org", "create", "--name", "Acme", "--id", "org_acme"]);
    let created = w.json(&["keys", "create", "--org", "org_acme", "--name", "laptop"]);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk-cg-"), "{created}");

    let list = w.json(&["keys", "list", "--org", "org_acme"]);
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown once: {list}"
    );
    let hint = format!("{}…{}", &secret[..10], &secret[secret.len() - 4..]);
    assert_eq!(list["keys"][0]["hint"], hint.as_str());
    assert_eq!(list["keys"][0]["status"], "active");

    assert_eq!(w.json(&["keys", "disable", &id])["status"], "disabled");
    assert_eq!(w.json(&["keys", "enable", &id])["status"], "active");
    assert_eq!(w.json(&["keys", "revoke", &id])["status"], "revoked");
    let again = w.run(&["keys", "enable", &id]);
    assert!(!again.status.success(), "revocation is final");
    assert!(stderr(&again).contains("revoked"), "{}", stderr(&again));

    let missing = w.run(&["keys", "create", "--org", "org_missing"]);
    assert!(!missing.status.success());
    let bad_expiry = w.run(&["keys", "create", "--org", "org_acme", "--expires", "soon"]);
    assert!(!bad_expiry.status.success());
    assert!(
        stderr(&bad_expiry).contains("--expires"),
        "{}",
        stderr(&bad_expiry)
    );
}

#[test]
fn disconnect_policy_is_set_per_organization() {
    let w = Workdir::new();
    w.json(&["org", "create", "--name", "Acme", "--id", "org_acme"]);
    let set = w.json(&[
        "org",
        "set-policy",
        "--org",
        "org_acme",
        "--disconnect",
        "cancel",
    ]);
    assert_eq!(set["disconnect_policy"], "cancel");
    let back = w.json(&[
        "org",
        "set-policy",
        "--org",
        "org_acme",
        "--disconnect",
        "default",
    ]);
    assert!(back["disconnect_policy"].is_null(), "{back}");
    let bad = w.run(&[
        "org",
        "set-policy",
        "--org",
        "org_acme",
        "--disconnect",
        "maybe",
    ]);
    assert!(!bad.status.success());
    let nobody = w.run(&[
        "org",
        "set-policy",
        "--org",
        "org_none",
        "--disconnect",
        "drain",
    ]);
    assert!(!nobody.status.success());
}

#[test]
fn a_credit_line_is_set_per_organization() {
    let w = Workdir::new();
    w.json(&["org", "create", "--name", "Acme", "--id", "org_acme"]);
    let set = w.json(&[
        "org",
        "credit-line",
        "org_acme",
        "--mode",
        "invoiced",
        "--limit",
        "5000",
    ]);
    assert_eq!(
        (&set["billing_mode"], &set["credit_limit"]),
        (&serde_json::json!("invoiced"), &serde_json::json!("5000"))
    );
    let negative = w.run(&["org", "credit-line", "org_acme", "--limit=-1"]);
    assert!(!negative.status.success());
    assert!(
        stderr(&negative).contains("credit_limit"),
        "{}",
        stderr(&negative)
    );
    let back = w.json(&["org", "credit-line", "org_acme", "--mode", "prepaid"]);
    assert_eq!(back["credit_limit"], "0");
    let prepaid_limit = w.run(&["org", "credit-line", "org_acme", "--limit", "10"]);
    assert!(!prepaid_limit.status.success(), "a limit needs invoiced");
    let nobody = w.run(&["org", "credit-line", "org_none", "--mode", "invoiced"]);
    assert!(!nobody.status.success());
}
