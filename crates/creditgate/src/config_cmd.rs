//! `creditgate config check` (validate a config as `serve` would, without listening) and
//! `creditgate secret` (a fresh random secret for the admin key).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use creditgate_gateway::config::Setting;
use serde_json::{json, Map, Value};

use crate::output::emit;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file and the `CREDITGATE_*` overrides exactly as `serve` does, then
    /// print the effective settings with every secret redacted. Exits non-zero on any problem.
    Check {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Bytes of randomness in a secret from `creditgate secret` (256 bits).
const SECRET_BYTES: usize = 32;

pub fn run(args: ConfigArgs, as_json: bool) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Check { config } => {
            let cfg = crate::serve::preflight(config.as_deref(), None)?;
            let settings = cfg.settings();
            let from_env = |s: &Setting| std::env::var_os(s.env).is_some();
            let mut values = Map::new();
            for s in &settings {
                values.insert(s.key.to_owned(), s.value.clone());
            }
            emit(as_json, &json!({"ok": true, "settings": values}), || {
                as_toml(&settings, from_env)
            });
            if !as_json {
                eprintln!("config OK: serve would start with these settings");
            }
            Ok(())
        }
    }
}

/// The settings as TOML, grouped by section; values taken from a variable say so.
fn as_toml(settings: &[Setting], from_env: impl Fn(&Setting) -> bool) -> String {
    let mut out = String::new();
    let mut section = "";
    for s in settings {
        let (sec, name) = s.key.split_once('.').unwrap_or(("", s.key));
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        }
        let value = match &s.value {
            Value::Null => format!("# {name} is not set"),
            v => format!("{name} = {v}"),
        };
        out.push_str(&value);
        if from_env(s) {
            out.push_str(&format!("  # from {}", s.env));
        }
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// Prints a fresh random secret (hex, 256 bits from the operating system's generator).
pub fn secret(as_json: bool) -> anyhow::Result<()> {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)?;
    let secret = hex::encode(bytes);
    emit(as_json, &json!({ "secret": secret }), || secret.clone());
    Ok(())
}
