//! The operator's payment commands run as a user runs them: the built binary against a
//! temporary SQLite file. `plans list/add/archive`, `payments record` (idempotent on method and
//! reference), `orders list`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

struct Workdir {
    path: PathBuf,
}

impl Workdir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("creditgate-pay-cli-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_creditgate"))
            .arg("--database")
            .arg(format!("sqlite://{}", self.path.join("c.db").display()))
            .arg("--json")
            .args(args)
            .env_remove("CREDITGATE_DATABASE_URL")
            .output()
            .expect("run creditgate")
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
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[test]
fn plans_and_manual_payments() {
    let w = Workdir::new();
    let plans = w.json(&["plans", "list"]);
    assert_eq!(plans["data"].as_array().unwrap().len(), 4);
    assert_eq!(plans["data"][1]["amount_cents"], 5000);
    w.json(&[
        "plans",
        "add",
        "--id",
        "team",
        "--name",
        "Team pack",
        "--credits",
        "50000",
        "--amount-cents",
        "24000",
        "--expires-in-days",
        "365",
    ]);
    assert!(
        !w.run(&[
            "plans",
            "add",
            "--id",
            "bad",
            "--name",
            "x",
            "--credits",
            "0",
            "--amount-cents",
            "1"
        ])
        .status
        .success(),
        "zero credits"
    );
    w.json(&["plans", "archive", "--id", "credits-1000"]);
    assert_eq!(
        w.json(&["plans", "list"])["data"].as_array().unwrap().len(),
        4
    );

    w.json(&["org", "create", "--id", "org_acme", "--name", "Acme"]);
    let record = [
        "payments",
        "record",
        "--org",
        "org_acme",
        "--method",
        "crypto",
        "--reference",
        "0xfeed",
        "--amount-cents",
        "5000",
        "--plan",
        "credits-10000",
    ];
    let first = w.json(&record);
    assert_eq!(first["status"], "credited");
    assert_eq!(first["recorded_now"], true);
    assert!(first["receipt_number"].as_str().unwrap().starts_with("CG-"));
    let again = w.json(&record);
    assert_eq!(
        (again["id"].clone(), again["recorded_now"].clone()),
        (first["id"].clone(), Value::Bool(false))
    );
    let mut other = record.to_vec();
    other[9] = "4999";
    assert!(
        !w.run(&other).status.success(),
        "the same reference for another amount"
    );
    let shown = w.json(&["credits", "show", "--org", "org_acme"]);
    assert_eq!(shown["posted"], "10000", "{shown}");
    let orders = w.json(&["orders", "list", "--org", "org_acme"]);
    assert_eq!(orders["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        w.json(&["ledger", "verify"])["problems"],
        Value::Array(vec![])
    );
}
