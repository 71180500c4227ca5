//! `creditgate prices list` and `creditgate prices quote`, run as the built binary.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn creditgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(args)
        .output()
        .expect("the creditgate binary runs")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "exactly one JSON line: {text}");
    serde_json::from_str(&text).unwrap()
}

fn quote(extra: &[&str]) -> Value {
    let mut args = vec!["prices", "quote"];
    args.extend_from_slice(extra);
    stdout_json(&creditgate(&args))
}

/// A file under this test binary's scratch directory.
fn scratch(name: &str, contents: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("prices_cli-{name}"));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn quote_prints_one_exact_json_object() {
    // Sonnet 4.5, 406 in + 50 out: 406 × $3/M + 50 × $15/M = $0.001218 + $0.00075.
    let v = quote(&[
        "--model",
        "claude-sonnet-4-5",
        "--usage",
        r#"{"input_tokens":406,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
            "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},
            "output_tokens":50,"service_tier":"standard","inference_geo":"not_available"}"#,
    ]);
    assert_eq!(v["total"], "0.001968");
    assert_eq!(v["list_usd"], "0.001968");
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    assert!(v["price_version"]
        .as_str()
        .unwrap()
        .starts_with("20261024-"));
    let lines = v["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["category"], "input");
    assert_eq!(lines[0]["credits"], "0.001218");
    assert_eq!(lines[4]["category"], "output");
    assert_eq!(lines[4]["credits"], "0.00075");
}

#[test]
fn quote_applies_batch_multiplier_and_credit_value() {
    // Opus 5.5 with 1h writes and geo "us", as a batch, at ×0.70 and 1 credit = $0.005:
    // list = (1,000 × 4 + 2,000 × 8 + 500 × 20) × 0.5 × 1.1 = 30,000 × 0.55 = 16,500 µ$;
    // charged = $0.0165 × 0.7 = $0.01155 = 2.31 credits.
    let v = quote(&[
        "--model",
        "claude-opus-5-5",
        "--usage",
        r#"{"input_tokens":1000,"cache_creation_input_tokens":2000,
            "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":2000},
            "output_tokens":500,"inference_geo":"us","service_tier":"batch"}"#,
        "--batch",
        "--multiplier",
        "0.70",
        "--credit-usd",
        "0.005",
    ]);
    assert_eq!(v["total"], "2.31");
    assert_eq!(v["list_usd"], "0.0165");
    assert_eq!(v["charged_usd"], "0.01155");
    assert_eq!(v["modifiers"]["batch"], true);
    assert_eq!(v["modifiers"]["us_geo"], true);
}

#[test]
fn quote_fast_mode_and_web_search() {
    // Opus 5.5 fast ($8/$40) with two searches: 1,000 × 8 + 100 × 40 = 12,000 µ$ + $0.02.
    let v = quote(&[
        "--model",
        "claude-opus-5-5",
        "--usage",
        r#"{"input_tokens":1000,"output_tokens":100,"speed":"fast",
            "server_tool_use":{"web_search_requests":2,"web_fetch_requests":0}}"#,
    ]);
    assert_eq!(v["total"], "0.032");
    assert_eq!(v["lines"][5]["category"], "web_search");
    assert_eq!(v["lines"][5]["credits"], "0.02");
}

#[test]
fn quote_flags_hostile_usage() {
    let v = quote(&[
        "--model",
        "claude-haiku-4-5",
        "--usage",
        r#"{"input_tokens":-5,"output_tokens":"20"}"#,
    ]);
    // 20 × $5/M = $0.0001.
    assert_eq!(v["total"], "0.0001");
    let flags: Vec<&str> = v["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap())
        .collect();
    assert_eq!(flags, ["negative", "wrong_type"]);
}

#[test]
fn quote_reprices_old_usage_with_at() {
    // Sonnet 4.5 with a 250k prompt: the >200k tier only for usage before 2026-04-30.
    let usage = r#"{"input_tokens":250000,"output_tokens":1000}"#;
    let now = quote(&["--model", "claude-sonnet-4-5", "--usage", usage]);
    assert_eq!(now["total"], "0.765");
    let then = quote(&[
        "--model",
        "claude-sonnet-4-5",
        "--usage",
        usage,
        "--at",
        "2026-04-01",
    ]);
    assert_eq!(then["total"], "1.5225");
}

#[test]
fn unknown_model_fails_with_close_matches() {
    let out = creditgate(&[
        "prices",
        "quote",
        "--model",
        "claude-sonet-4-5",
        "--usage",
        r#"{"input_tokens":1,"output_tokens":1}"#,
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown model `claude-sonet-4-5`"), "{err}");
    assert!(err.contains("claude-sonnet-4-5"), "{err}");
}

#[test]
fn bad_arguments_fail_cleanly() {
    for args in [
        &[
            "prices",
            "quote",
            "--model",
            "claude-opus-5-5",
            "--usage",
            "not json",
        ][..],
        &[
            "prices",
            "quote",
            "--model",
            "claude-opus-5-5",
            "--usage",
            "{}",
            "--multiplier",
            "0.7e1",
        ],
        &[
            "prices",
            "quote",
            "--model",
            "claude-opus-5-5",
            "--usage",
            "{}",
            "--credit-usd",
            "0",
        ],
        &[
            "prices",
            "quote",
            "--model",
            "claude-opus-5-5",
            "--usage",
            "{}",
            "--at",
            "2026-13-01",
        ],
        &["prices", "list", "--prices", "/nonexistent/prices.toml"],
    ] {
        let out = creditgate(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error:"),
            "{args:?}"
        );
    }
}

#[test]
fn list_shows_every_model() {
    let out = creditgate(&["prices", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("price version 20261024-"));
    for id in [
        "claude-opus-5-5",
        "claude-haiku-5-5",
        "claude-sonnet-4-5-20250929",
        "claude-3-haiku-20240307",
    ] {
        assert!(text.contains(id), "{id}");
    }

    let v = stdout_json(&creditgate(&["prices", "list", "--json"]));
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 24);
    let haiku = models
        .iter()
        .find(|m| m["id"] == "claude-haiku-5-5")
        .unwrap();
    assert_eq!(haiku["rates"]["cache_write_5m"], "0.125");
    assert_eq!(haiku["long_context"]["threshold_tokens"], 100_000);
    assert_eq!(v["modifiers"]["batch"], "0.5");
}

#[test]
fn operator_price_file_extends_the_book() {
    let file = scratch(
        "operator.toml",
        r#"effective_from = "2026-12-01"

[models.claude-sonnet-4-6]
display_name = "Claude Sonnet 4.6"
input = "2.5"
output = "12.5"
cache_write_5m = "3.125"
cache_write_1h = "5"
cache_read = "0.25"

[models.house-model]
input = "1"
output = "2"
cache_write_5m = "1.25"
cache_write_1h = "2"
cache_read = "0.1"
"#,
    );
    let path = file.to_str().unwrap();
    // 1,000 × 2.5 + 1,000 × 12.5 = 15,000 µ$.
    let v = quote(&[
        "--model",
        "claude-sonnet-4-6",
        "--usage",
        r#"{"input_tokens":1000,"output_tokens":1000}"#,
        "--prices",
        path,
    ]);
    assert_eq!(v["total"], "0.015");
    assert!(v["price_version"]
        .as_str()
        .unwrap()
        .starts_with("20261201-"));
    let v = quote(&[
        "--model",
        "house-model",
        "--usage",
        r#"{"input_tokens":1000000,"output_tokens":0}"#,
        "--prices",
        path,
    ]);
    assert_eq!(v["total"], "1");

    let bad = scratch(
        "bad.toml",
        "effective_from = \"2026-12-01\"\nsurprise = true\n",
    );
    let out = creditgate(&["prices", "list", "--prices", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("surprise"));
}

#[test]
fn litellm_price_file_is_imported_exactly() {
    let file = scratch(
        "litellm.json",
        r#"{"claude-opus-4-8": {"input_cost_per_token": 6e-06, "output_cost_per_token": 3e-05,
             "cache_creation_input_token_cost": 7.5e-06, "cache_creation_input_token_cost_above_1hr": 1.2e-05,
             "cache_read_input_token_cost": 6e-07, "litellm_provider": "anthropic", "mode": "chat"}}"#,
    );
    // 1,000 × $6/M + 1,000 × $30/M = 36,000 µ$.
    let v = quote(&[
        "--model",
        "claude-opus-4-8",
        "--usage",
        r#"{"input_tokens":1000,"output_tokens":1000}"#,
        "--prices",
        file.to_str().unwrap(),
    ]);
    assert_eq!(v["total"], "0.036");
}
