//! Gateway configuration: a TOML file overridden by `CREDITGATE_*` variables, validated once.
//!
//! Every size, timeout and count has a named default here. Unknown keys are errors. Secrets
//! (upstream keys, the admin key) never appear in `Debug` output or logs.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use creditgate_core::money::{CreditUnit, Decimal, NanoCredits};
use creditgate_storage::redact;
use serde::Deserialize;

mod checks;
mod effective;
pub mod invoices;
pub mod payments;
mod read;

pub use effective::Setting;
pub use invoices::InvoicesConfig;
pub use payments::{CheckoutProvider, PaymentsConfig, Seller, StripeConfig};

/// Largest request body accepted (Anthropic's own limit for Messages is 32 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest non-streaming upstream response read into memory.
pub const MAX_UPSTREAM_JSON_BYTES: usize = 64 * 1024 * 1024;
/// First output reservation of a stream, in tokens (or `max_tokens` if smaller).
pub const DEFAULT_FIRST_SLICE_TOKENS: u64 = 1024;
/// Each further output reservation of a stream, in tokens.
pub const DEFAULT_SLICE_TOKENS: u64 = 1024;
/// How long a hold may go without settling or growing before the sweeper releases it.
pub const DEFAULT_HOLD_TIMEOUT_MS: i64 = creditgate_core::ledger::DEFAULT_HOLD_TIMEOUT_MS;
/// How long the gateway keeps reading an upstream stream after its client left (`drain`).
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Time to connect to the upstream.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Longest silence tolerated on an upstream response before it is treated as lost.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Chunks buffered between the upstream reader and a client; a slow client stalls the reader
/// (and through TCP, the upstream) instead of growing memory. A chunk is the events of one read
/// of the upstream, at most [`crate::upstream::UPSTREAM_READ_BUFFER_MAX`] bytes
/// (`docs/benchmarks.md`, memory under slow readers).
pub const STREAM_BUFFER_CHUNKS: usize = 2;
/// How often the background sweeper expires stale holds and expired lots.
pub const DEFAULT_SWEEP_INTERVAL_MS: u64 = 30_000;
/// How long shutdown waits for requests in flight (and drains) before cutting them.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 25_000;
/// How often pending spooled settlements are offered to the database again.
pub const SPOOL_RETRY_INTERVAL_MS: u64 = 1_000;
/// The settlement spool of a Postgres deployment when `spool_path` is not set (in the working
/// directory). Replicas on one host must each set their own.
pub const DEFAULT_POSTGRES_SPOOL: &str = "creditgate-settlements.spool";

/// Longest a client may take to send a request's headers (and, on a kept-alive connection, to
/// start the next request) before the connection is closed: a slowloris costs a connection for
/// at most this long.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 20_000;
/// Longest a client may take to send a whole request body, once its headers arrived.
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 120_000;
/// Request bodies held in memory at once, all requests together (at least `max_body_bytes`):
/// admission reads a body in one pass that keeps nothing of it (`pricing::RequestScan`), so a
/// body costs about its own size and this bounds the gateway's memory for bodies as a whole
/// against many large bodies arriving together.
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;
/// Failed authentications one client address may make per minute before it is locked out for a
/// while (429); the lockout doubles with each repeat, up to 15 minutes.
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u64 = 30;
/// Client connections served at once; further ones wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2_048;
/// How long a cached API key lookup (or organization setting) is trusted by a replica: a key
/// revoked with the CLI stops working within this time.
pub const KEY_CACHE_TTL_MS: u64 = 5_000;
/// How long a replica trusts a cached API key lookup: a key revoked or limited on any replica
/// (or with the CLI) takes effect everywhere within this time.
pub const API_KEY_CACHE_TTL_MS: u64 = 500;

pub use creditgate_core::usage::DisconnectPolicy;

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    /// The local file where settlements the database cannot take wait (`docs/gateway.md`).
    pub spool_path: PathBuf,
    pub admin_key: Option<String>,
    /// Admit requests against a credit lease held in memory (`docs/ledger.md`).
    pub credit_lease: bool,
    pub upstream_base_url: String,
    pub upstream_api_keys: Vec<String>,
    pub upstream_connect_timeout_ms: u64,
    pub upstream_idle_timeout_ms: u64,
    pub credit_unit: CreditUnit,
    pub price_multiplier: Decimal,
    pub prices_file: Option<String>,
    pub max_body_bytes: usize,
    pub first_slice_tokens: u64,
    pub slice_tokens: u64,
    pub hold_timeout_ms: i64,
    pub drain_timeout_ms: u64,
    pub sweep_interval_ms: u64,
    pub shutdown_timeout_ms: u64,
    pub default_disconnect_policy: DisconnectPolicy,
    pub payments: PaymentsConfig,
    pub accounts: AccountsConfig,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub max_connections: usize,
    pub max_body_bytes_in_flight: usize,
    pub auth_failures_per_minute: u32,
    /// Plain `http://` to a host that is not loopback, allowed explicitly.
    pub upstream_allow_http: bool,
    /// `anthropic-beta` values forwarded; every one is billed completely by the price book.
    pub upstream_allowed_betas: Vec<String>,
    pub webhooks: WebhooksConfig,
    pub invoices: InvoicesConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact(&self.database_url))
            .field("spool_path", &self.spool_path)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("upstream_base_url", &self.upstream_base_url)
            .field(
                "upstream_api_keys",
                &format!("<{} redacted>", self.upstream_api_keys.len()),
            )
            .field("credit_unit", &self.credit_unit)
            .field("price_multiplier", &self.price_multiplier)
            .field("default_disconnect_policy", &self.default_disconnect_policy)
            .field("signup_open", &self.accounts.signup_open)
            .field("smtp", &self.accounts.smtp_url.as_ref().map(|u| redact(u)))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
    /// Values `serve` will not run with (placeholders, missing secrets), one line each.
    #[error("the config is not ready to serve:\n  - {}", .0.join("\n  - "))]
    NotServable(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    database_url: Option<String>,
    spool_path: Option<String>,
    admin_key: Option<String>,
    credit_lease: Option<bool>,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    billing: RawBilling,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    payments: payments::RawPayments,
    #[serde(default)]
    tax: payments::RawTax,
    #[serde(default)]
    accounts: RawAccounts,
    #[serde(default)]
    email: RawEmail,
    #[serde(default)]
    webhooks: RawWebhooks,
    #[serde(default)]
    invoices: invoices::RawInvoices,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    allow_private_urls: Option<bool>,
    timeout_ms: Option<u64>,
}

/// How long one webhook delivery may take before it counts as failed (`docs/alerts.md`).
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 10_000;
/// The longest delivery timeout an operator may set: a delivery holds its lease meanwhile.
pub const MAX_WEBHOOK_TIMEOUT_MS: u64 = 60_000;

/// Outbound webhooks (`[webhooks]`, `docs/alerts.md`).
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// Endpoints on loopback, private, link-local or unspecified addresses are allowed (off by
    /// default: no requests into the operator's own network).
    pub allow_private_urls: bool,
    pub timeout_ms: u64,
}

impl WebhooksConfig {
    fn read(raw: RawWebhooks, env: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let allow_private_urls = match env("CREDITGATE_WEBHOOKS_ALLOW_PRIVATE_URLS").as_deref() {
            None => raw.allow_private_urls.unwrap_or(false),
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(_) => {
                return Err(ConfigError::Invalid(
                    "CREDITGATE_WEBHOOKS_ALLOW_PRIVATE_URLS must be true or false".to_owned(),
                ))
            }
        };
        let timeout_ms = match env("CREDITGATE_WEBHOOKS_TIMEOUT_MS") {
            Some(v) => v.parse().map_err(|_| {
                ConfigError::Invalid("CREDITGATE_WEBHOOKS_TIMEOUT_MS must be an integer".into())
            })?,
            None => raw.timeout_ms.unwrap_or(DEFAULT_WEBHOOK_TIMEOUT_MS),
        };
        if !(1..=MAX_WEBHOOK_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(ConfigError::Invalid(format!(
                "webhooks.timeout_ms must be 1 to {MAX_WEBHOOK_TIMEOUT_MS}"
            )));
        }
        Ok(Self {
            allow_private_urls,
            timeout_ms,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    signup: Option<String>,
    public_url: Option<String>,
    session_idle_minutes: Option<u64>,
    trial_credits: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    smtp_url: Option<String>,
    from: Option<String>,
    outbox_dir: Option<String>,
}

/// Members, sign-in and email (`[accounts]`, `[email]`).
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// `[accounts] signup = "open"`: anyone may sign up and gets a new organization;
    /// the default `"invite"` admits only invited members.
    pub signup_open: bool,
    /// Base of the links sent by email (`https://…` also marks session cookies `Secure`).
    pub public_url: String,
    /// A session not used for this long ends.
    pub session_idle_ms: i64,
    /// Credits granted to the organization of a new sign-up (`None`: no trial).
    pub trial_credits: Option<NanoCredits>,
    /// `smtp://` or `smtps://user:pass@host:port`; without it mail goes to `outbox_dir`.
    pub smtp_url: Option<String>,
    pub email_from: String,
    pub outbox_dir: String,
}

/// Default idle lifetime of a session.
pub const DEFAULT_SESSION_IDLE_MINUTES: u64 = 12 * 60;

fn accounts_config(
    raw: RawAccounts,
    email: RawEmail,
    listen: SocketAddr,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<AccountsConfig, ConfigError> {
    let invalid = |m: &str| ConfigError::Invalid(m.to_owned());
    let pick = |name: &str, file: Option<String>| env(name).or(file);
    let signup_open = match pick("CREDITGATE_SIGNUP", raw.signup).as_deref() {
        None | Some("invite") => false,
        Some("open") => true,
        Some(_) => return Err(invalid("accounts.signup must be invite or open")),
    };
    let public_url = pick("CREDITGATE_PUBLIC_URL", raw.public_url)
        .unwrap_or_else(|| format!("http://{listen}"))
        .trim_end_matches('/')
        .to_owned();
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        return Err(invalid(
            "accounts.public_url must start with http:// or https://",
        ));
    }
    let idle = raw
        .session_idle_minutes
        .unwrap_or(DEFAULT_SESSION_IDLE_MINUTES);
    if idle == 0 || idle > 60 * 24 * 90 {
        return Err(invalid("accounts.session_idle_minutes must be 1 to 129600"));
    }
    let trial_credits = raw
        .trial_credits
        .map(|t| t.parse::<NanoCredits>())
        .transpose()
        .map_err(|e| ConfigError::Invalid(format!("accounts.trial_credits: {e}")))?
        .filter(|c| c.is_positive());
    Ok(AccountsConfig {
        signup_open,
        public_url,
        session_idle_ms: (idle * 60_000) as i64,
        trial_credits,
        smtp_url: pick("CREDITGATE_SMTP_URL", email.smtp_url),
        email_from: email
            .from
            .unwrap_or_else(|| "creditgate <no-reply@localhost>".to_owned()),
        outbox_dir: pick("CREDITGATE_OUTBOX_DIR", email.outbox_dir)
            .unwrap_or_else(|| "creditgate-outbox".to_owned()),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    base_url: Option<String>,
    api_keys: Option<Vec<String>>,
    connect_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    allow_http: Option<bool>,
    allowed_betas: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBilling {
    credit_name: Option<String>,
    credit_usd: Option<String>,
    price_multiplier: Option<String>,
    prices_file: Option<String>,
    disconnect_policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<usize>,
    first_slice_tokens: Option<u64>,
    slice_tokens: Option<u64>,
    hold_timeout_ms: Option<i64>,
    drain_timeout_ms: Option<u64>,
    sweep_interval_ms: Option<u64>,
    shutdown_timeout_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    max_connections: Option<u64>,
    max_body_bytes_in_flight: Option<u64>,
    auth_failures_per_minute: Option<u64>,
}

/// The operator's beta allow-list (default: every beta the price book bills); a beta whose costs
/// the price book cannot bill is a configuration error.
fn allowed_betas(
    env: Option<String>,
    file: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = match (env, file) {
        (Some(v), _) => v
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        (None, Some(list)) => list,
        (None, None) => creditgate_core::pricing::BILLED_BETAS
            .iter()
            .map(|b| (*b).to_owned())
            .collect(),
    };
    if let Some(unbilled) = list
        .iter()
        .find(|b| !creditgate_core::pricing::bills_beta(b))
    {
        return Err(ConfigError::Invalid(format!(
            "upstream.allowed_betas: `{unbilled}` is not a beta the price book can bill (it may \
             cost outside `usage`, e.g. container time or another model); the ones it can: {}",
            creditgate_core::pricing::BILLED_BETAS.join(", ")
        )));
    }
    Ok(list)
}

/// A limit of zero would refuse everything: it is an error, not a way to switch a limit off.
fn positive(value: u64, name: &str) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(ConfigError::Invalid(format!("{name} must be positive")));
    }
    Ok(value)
}

impl Config {
    /// Reads a TOML file (if given), applies `CREDITGATE_*` overrides from `env`, validates.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                toml::from_str::<RawConfig>(&text)
                    .map_err(|e| ConfigError::Invalid(e.message().to_owned()))?
            }
            None => RawConfig::default(),
        };
        Self::from_raw(raw, env)
    }

    /// Parses TOML text (for tests and the example config).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw = toml::from_str::<RawConfig>(text)
            .map_err(|e| ConfigError::Invalid(e.message().to_owned()))?;
        Self::from_raw(raw, |_| None)
    }

    fn from_raw(
        mut raw: RawConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let src = read::Source { env: &env };
        let server = read::Server::read(&mut raw, &src)?;
        let upstream = read::Upstream::read(raw.upstream, &src)?;
        let billing = read::Billing::read(raw.billing, &src)?;
        let timing = read::Timing::read(&raw.limits, &src)?;
        let capacity = read::Capacity::read(&raw.limits, &src)?;
        let payments = PaymentsConfig::from_raw(raw.payments, raw.tax, &env)?;
        let accounts = accounts_config(raw.accounts, raw.email, server.listen, &env)?;
        let webhooks = WebhooksConfig::read(raw.webhooks, &env)?;
        let invoices = InvoicesConfig::read(raw.invoices, billing.credit_unit.usd)?;
        Ok(Self {
            accounts,
            listen: server.listen,
            database_url: server.database_url,
            spool_path: server.spool_path,
            admin_key: server.admin_key,
            credit_lease: server.credit_lease,
            upstream_base_url: upstream.base_url,
            upstream_api_keys: upstream.api_keys,
            upstream_connect_timeout_ms: upstream.connect_timeout_ms,
            upstream_idle_timeout_ms: upstream.idle_timeout_ms,
            upstream_allow_http: upstream.allow_http,
            upstream_allowed_betas: upstream.allowed_betas,
            credit_unit: billing.credit_unit,
            price_multiplier: billing.price_multiplier,
            prices_file: billing.prices_file,
            default_disconnect_policy: billing.default_disconnect_policy,
            max_body_bytes: capacity.max_body_bytes,
            max_body_bytes_in_flight: capacity.max_body_bytes_in_flight,
            max_connections: capacity.max_connections,
            auth_failures_per_minute: capacity.auth_failures_per_minute,
            first_slice_tokens: timing.first_slice_tokens,
            slice_tokens: timing.slice_tokens,
            hold_timeout_ms: timing.hold_timeout_ms,
            drain_timeout_ms: timing.drain_timeout_ms,
            sweep_interval_ms: timing.sweep_interval_ms,
            shutdown_timeout_ms: timing.shutdown_timeout_ms,
            header_read_timeout_ms: timing.header_read_timeout_ms,
            body_read_timeout_ms: timing.body_read_timeout_ms,
            payments,
            webhooks,
            invoices,
        })
    }
}

/// Beside the SQLite file (`<file>.spool`); for Postgres, [`DEFAULT_POSTGRES_SPOOL`].
fn default_spool_path(database_url: &str) -> PathBuf {
    match database_url.strip_prefix("sqlite://") {
        Some(file) => PathBuf::from(format!("{}.spool", file.split('?').next().unwrap_or(file))),
        None => PathBuf::from(DEFAULT_POSTGRES_SPOOL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../../../creditgate.example.toml");
        let cfg = Config::from_toml(text).unwrap();
        assert_eq!(cfg.credit_unit.usd.to_string(), "0.005");
        assert_eq!(cfg.price_multiplier.to_string(), "0.7");
        assert!(
            cfg.check_production().is_err(),
            "the example's secrets are placeholders"
        );
        assert!(
            !format!("{cfg:?}").contains("sk-ant-"),
            "secrets must not be printed"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Config::from_toml("listne = \"127.0.0.1:1\"").is_err());
        assert!(Config::from_toml("[billing]\ncredit_usd = \"abc\"").is_err());
        assert!(Config::from_toml("[billing]\ndisconnect_policy = \"maybe\"").is_err());
        assert!(Config::from_toml("admin_key = \"short\"").is_err());
        assert!(Config::from_toml("").unwrap().check_production().is_err());
    }

    #[test]
    fn tax_rates_are_checked() {
        let cfg = Config::from_toml("[tax]\nrates = { FR = \"0.20\", de = \"0.19\" }").unwrap();
        let fr = cfg.payments.tax.apply(Some("FR"), 5_000);
        assert_eq!((fr.tax_cents, fr.amount_cents), (1_000, 6_000));
        assert_eq!(cfg.payments.tax.apply(Some("DE"), 100).tax_cents, 19);
        for (bad, says) in [
            (
                "[tax]\nrates = { FR = \"1.5\" }",
                "tax rate `1.5` must be a decimal from 0 to 1",
            ),
            ("[tax]\nrates = { FR = \"-0.1\" }", "tax rate `-0.1`"),
            (
                "[tax]\nrates = { XX = \"0.1\" }",
                "`XX` is not an ISO 3166-1 alpha-2",
            ),
            ("[tax]\nrates = { FR = 0.2 }", "invalid type"),
            ("[tax]\nrate = { FR = \"0.2\" }", "unknown field"),
        ] {
            let err = Config::from_toml(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let env = Config::load(None, |k| match k {
            "CREDITGATE_TAX_RATES" => Some("FR=0.20, IE=0.23".into()),
            "CREDITGATE_TAX_PRICES_INCLUDE_TAX" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        assert!(env.payments.tax.prices_include_tax);
        assert_eq!(
            env.payments.tax.apply(Some("FR"), 6_000).subtotal_cents,
            5_000
        );
        let bad = Config::load(None, |k| {
            (k == "CREDITGATE_TAX_RATES").then(|| "FR:0.2".into())
        });
        assert!(bad.unwrap_err().to_string().contains("COUNTRY=RATE"));
    }

    #[test]
    fn only_betas_the_price_book_bills_can_be_allowed() {
        let all = Config::from_toml("").unwrap().upstream_allowed_betas;
        assert!(all.iter().any(|b| b == "claude-code-20250219"), "{all:?}");
        let one = Config::from_toml("[upstream]\nallowed_betas = [\"claude-code-20250219\"]")
            .unwrap()
            .upstream_allowed_betas;
        assert_eq!(one, ["claude-code-20250219"]);
        let err = Config::from_toml("[upstream]\nallowed_betas = [\"code-execution-2025-08-25\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`code-execution-2025-08-25` is not a beta"),
            "{err}"
        );
        let none = Config::load(None, |k| {
            (k == "CREDITGATE_UPSTREAM_ALLOWED_BETAS").then(|| " ".to_owned())
        })
        .unwrap();
        assert!(none.upstream_allowed_betas.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let cfg = Config::load(None, |k| match k {
            "CREDITGATE_PRICE_MULTIPLIER" => Some("0.5".into()),
            "CREDITGATE_UPSTREAM_API_KEYS" => Some("a, b".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.price_multiplier.to_string(), "0.5");
        assert_eq!(cfg.upstream_api_keys, ["a", "b"]);
        let shown = format!(
            "{:?}",
            Config::from_toml("database_url = \"postgres://u:pw@h/db\"").unwrap()
        );
        assert!(!shown.contains("pw@"), "{shown}");
    }
}
