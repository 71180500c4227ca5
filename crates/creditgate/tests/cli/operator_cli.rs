//! A new operator's first run, with the built binary: the example config is refused before
//! anything listens (each placeholder named, with how to replace it), `creditgate secret` makes a
//! real admin key, `config check` validates without starting and redacts secrets, and an address
//! in use is named with a way out.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const EXAMPLE: &str = include_str!("../../../../creditgate.example.toml");
/// A real-looking upstream key (the checks look for placeholders, not for Anthropic's format).
const UPSTREAM_KEY: &str = "sk-ant-api03-operator-test-4f9a0c2b7e1d";

/// A temporary working directory, removed afterwards; commands run inside it so nothing lands in
/// the repository.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("creditgate-op-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The example config as an operator copies it, pointed at this directory's database.
    fn example(&self) -> PathBuf {
        let db = format!("sqlite://{}", self.0.join("op.db").display());
        let text = EXAMPLE.replace("sqlite://creditgate.db", &db);
        assert_ne!(text, EXAMPLE, "the example names its database");
        self.write("creditgate.toml", &text)
    }

    /// The example with both placeholders replaced by real values.
    fn fixed(&self, admin_key: &str, listen: &str) -> PathBuf {
        let text = std::fs::read_to_string(self.example())
            .unwrap()
            .replace(
                "change-me-to-a-long-random-secret-of-32-chars-or-more",
                admin_key,
            )
            .replace("sk-ant-replace-me", UPSTREAM_KEY)
            .replace(
                "listen = \"127.0.0.1:8080\"",
                &format!("listen = \"{listen}\""),
            );
        self.write("fixed.toml", &text)
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditgate"));
        cmd.args(args).current_dir(&self.0);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CREDITGATE_") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(env.iter().copied());
        cmd.output().expect("run creditgate")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Variables set for one run.
type Env<'a> = Vec<(&'a str, &'a str)>;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn secret(w: &Workdir) -> String {
    let out = w.run(&["secret"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[test]
fn serve_refuses_the_example_config_before_listening() {
    let w = Workdir::new();
    let config = w.example();
    let out = w.run(&["serve", "--config", path(&config)], &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "must not start: {err}");
    assert!(!err.contains("listening"), "{err}");
    assert!(err.contains("admin_key is a placeholder"), "{err}");
    assert!(err.contains("`creditgate secret`"), "{err}");
    assert!(
        err.contains("upstream.api_keys[0] is a placeholder"),
        "{err}"
    );
    assert!(
        !err.contains("change-me-to-a-long"),
        "no secret echoed: {err}"
    );
    assert!(
        !w.0.join("op.db").exists(),
        "refused before the database is opened"
    );
    // An override through the environment is checked the same way.
    let out = w.run(
        &["serve", "--config", path(&config)],
        &[(
            "CREDITGATE_ADMIN_KEY",
            "replace-me-with-something-at-least-32-chars",
        )],
    );
    assert!(text(&out.stderr).contains("admin_key is a placeholder"));
}

#[test]
fn secret_prints_a_fresh_key_that_serve_accepts() {
    let w = Workdir::new();
    let (a, b) = (secret(&w), secret(&w));
    assert_ne!(a, b, "each secret is fresh");
    assert!(
        a.len() >= 64 && a.chars().all(|c| c.is_ascii_hexdigit()),
        "{a}"
    );
    let out = w.run(&["--json", "secret"], &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["secret"].as_str().unwrap().len(), 64);

    let config = w.fixed(&a, "127.0.0.1:0");
    let out = w.run(&["config", "check", "--config", path(&config)], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn config_check_prints_effective_settings_with_secrets_redacted() {
    let w = Workdir::new();
    let admin = secret(&w);
    let config = w.fixed(&admin, "127.0.0.1:0");
    let env = [("CREDITGATE_PRICE_MULTIPLIER", "0.55")];
    let out = w.run(&["config", "check", "--config", path(&config)], &env);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.contains("price_multiplier = \"0.55\"  # from CREDITGATE_PRICE_MULTIPLIER"),
        "{shown}"
    );
    assert!(shown.contains("[upstream]"), "{shown}");
    assert!(
        shown.contains("admin_key = \"<redacted, 64 characters>\""),
        "{shown}"
    );
    assert!(
        !shown.contains(&admin) && !shown.contains(UPSTREAM_KEY),
        "{shown}"
    );
    assert!(
        !w.0.join("op.db").exists(),
        "a check opens no database and starts nothing"
    );

    let out = w.run(
        &["--json", "config", "check", "--config", path(&config)],
        &env,
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["settings"]["billing.price_multiplier"], "0.55");
    assert_eq!(
        v["settings"]["upstream.api_keys"][0],
        format!("<redacted, {} characters>", UPSTREAM_KEY.len())
    );
}

#[test]
fn config_check_fails_with_the_messages_serve_gives() {
    let w = Workdir::new();
    let admin = secret(&w);
    let fixed = w.fixed(&admin, "127.0.0.1:0");
    let cases: Vec<(PathBuf, Env, &str)> = vec![
        (w.example(), vec![], "admin_key is a placeholder"),
        (
            fixed.clone(),
            vec![("CREDITGATE_CREDIT_USD", "abc")],
            "billing.credit_usd",
        ),
        (
            w.write("typo.toml", "listne = \"127.0.0.1:1\"\n"),
            vec![],
            "unknown field",
        ),
        (
            fixed.clone(),
            vec![("CREDITGATE_ADMIN_KEY", "short")],
            "at least 32 characters",
        ),
        (
            fixed.clone(),
            vec![("CREDITGATE_PRICES_FILE", "missing-prices.toml")],
            "missing-prices.toml",
        ),
        (
            fixed.clone(),
            vec![("CREDITGATE_TAX_RATES", "FR=1.20")],
            "tax rate `1.20` must be a decimal from 0 to 1",
        ),
        (
            fixed,
            vec![("CREDITGATE_TAX_RATES", "XX=0.2")],
            "`XX` is not an ISO 3166-1 alpha-2 country code",
        ),
    ];
    for (config, env, needle) in cases {
        let check = w.run(&["config", "check", "--config", path(&config)], &env);
        let serve = w.run(&["serve", "--config", path(&config)], &env);
        let (check_err, serve_err) = (text(&check.stderr), text(&serve.stderr));
        assert!(
            !check.status.success() && !serve.status.success(),
            "{needle}"
        );
        assert!(check.stdout.is_empty(), "{needle}: {}", text(&check.stdout));
        assert!(check_err.contains(needle), "{needle}: {check_err}");
        assert_eq!(check_err, serve_err, "the same message as serve");
    }
}

#[test]
fn an_address_in_use_is_named_with_a_way_out() {
    let w = Workdir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let expect = |out: &Output, what: &str| {
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{what}: {err}");
        assert!(
            err.contains(&format!("cannot listen on {addr}")),
            "{what}: {err}"
        );
        assert!(err.contains("already in use"), "{what}: {err}");
        assert!(err.contains("--listen 127.0.0.1:0"), "{what}: {err}");
    };
    expect(&w.run(&["demo", "--listen", &addr], &[]), "demo");
    let config = w.fixed(&secret(&w), &addr);
    expect(&w.run(&["serve", "--config", path(&config)], &[]), "serve");
    expect(
        &w.run(&["upstream-sim", "--listen", &addr], &[]),
        "upstream-sim",
    );
    // The suggested way out works: `--listen` overrides the config's address.
    let mut child = Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args([
            "serve",
            "--config",
            path(&config),
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(&w.0)
        .env_remove("CREDITGATE_LISTEN")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains("creditgate listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(!line.contains(&addr), "{line}");
}
