//! Reading the file's sections into settings: each value comes from its `CREDITGATE_*`
//! variable if set, else from the file, else from its named default, and is checked here.

use std::net::SocketAddr;
use std::path::PathBuf;

use creditgate_core::money::{CreditUnit, Decimal};
use creditgate_core::usage::DisconnectPolicy;

use super::{
    allowed_betas, default_spool_path, positive, ConfigError, RawBilling, RawConfig, RawLimits,
    RawUpstream, DEFAULT_AUTH_FAILURES_PER_MINUTE, DEFAULT_BODY_READ_TIMEOUT_MS,
    DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_FIRST_SLICE_TOKENS, DEFAULT_HEADER_READ_TIMEOUT_MS,
    DEFAULT_HOLD_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_TIMEOUT_MS, DEFAULT_SLICE_TOKENS,
    DEFAULT_SWEEP_INTERVAL_MS, DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS,
    DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS,
};

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// Where settings come from: the environment first, then the file.
pub(super) struct Source<'e> {
    pub env: &'e dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    pub fn text(&self, var: &str, file: Option<String>) -> Option<String> {
        (self.env)(var).or(file)
    }

    pub fn num(&self, var: &str, file: Option<u64>, default: u64) -> Result<u64, ConfigError> {
        match (self.env)(var) {
            Some(v) => v
                .parse()
                .map_err(|_| invalid(format!("{var} must be an integer"))),
            None => Ok(file.unwrap_or(default)),
        }
    }

    /// A count or duration that must not be zero (`name` is its key in the file).
    pub fn positive(
        &self,
        var: &str,
        file: Option<u64>,
        default: u64,
        name: &str,
    ) -> Result<u64, ConfigError> {
        positive(self.num(var, file, default)?, name)
    }
}

/// Where the gateway listens and keeps its data, and the operator's key.
pub(super) struct Server {
    pub listen: SocketAddr,
    pub database_url: String,
    pub spool_path: PathBuf,
    pub admin_key: Option<String>,
    pub credit_lease: bool,
}

impl Server {
    pub fn read(raw: &mut RawConfig, src: &Source) -> Result<Self, ConfigError> {
        let listen = src
            .text("CREDITGATE_LISTEN", raw.listen.take())
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
            .parse()
            .map_err(|_| invalid("listen must be an address like 127.0.0.1:8080"))?;
        let database_url = src
            .text("CREDITGATE_DATABASE_URL", raw.database_url.take())
            .unwrap_or_else(|| "sqlite://creditgate.db".to_owned());
        let spool_path = src
            .text("CREDITGATE_SPOOL_PATH", raw.spool_path.take())
            .map(PathBuf::from)
            .unwrap_or_else(|| default_spool_path(&database_url));
        let admin_key = src.text("CREDITGATE_ADMIN_KEY", raw.admin_key.take());
        // Off unless asked for (`docs/ledger.md`, "Credit leases").
        let credit_lease = match (src.env)("CREDITGATE_CREDIT_LEASE") {
            Some(v) => v
                .parse()
                .map_err(|_| invalid("CREDITGATE_CREDIT_LEASE must be true or false"))?,
            None => raw.credit_lease.unwrap_or(false),
        };
        if admin_key.as_ref().is_some_and(|k| k.len() < 32) {
            return Err(invalid(
                "admin_key must be at least 32 characters; `creditgate secret` prints a fresh \
                 random one",
            ));
        }
        Ok(Self {
            listen,
            database_url,
            spool_path,
            admin_key,
            credit_lease,
        })
    }
}

/// The `[upstream]` section.
pub(super) struct Upstream {
    pub base_url: String,
    pub api_keys: Vec<String>,
    pub connect_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub allow_http: bool,
    pub allowed_betas: Vec<String>,
}

impl Upstream {
    pub fn read(raw: RawUpstream, src: &Source) -> Result<Self, ConfigError> {
        let base_url = src
            .text("CREDITGATE_UPSTREAM_BASE_URL", raw.base_url)
            .unwrap_or_else(|| "https://api.anthropic.com".to_owned())
            .trim_end_matches('/')
            .to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(invalid(
                "upstream.base_url must start with http:// or https://",
            ));
        }
        let api_keys = match (src.env)("CREDITGATE_UPSTREAM_API_KEYS") {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => raw.api_keys.unwrap_or_default(),
        };
        let allow_http = match (src.env)("CREDITGATE_UPSTREAM_ALLOW_HTTP") {
            Some(v) => v
                .parse()
                .map_err(|_| invalid("CREDITGATE_UPSTREAM_ALLOW_HTTP must be true or false"))?,
            None => raw.allow_http.unwrap_or(false),
        };
        Ok(Self {
            base_url,
            api_keys,
            connect_timeout_ms: src.num(
                "CREDITGATE_UPSTREAM_CONNECT_TIMEOUT_MS",
                raw.connect_timeout_ms,
                DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS,
            )?,
            idle_timeout_ms: src.num(
                "CREDITGATE_UPSTREAM_IDLE_TIMEOUT_MS",
                raw.idle_timeout_ms,
                DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS,
            )?,
            allow_http,
            allowed_betas: allowed_betas(
                (src.env)("CREDITGATE_UPSTREAM_ALLOWED_BETAS"),
                raw.allowed_betas,
            )?,
        })
    }
}

/// The `[billing]` section: what a credit is and costs.
pub(super) struct Billing {
    pub credit_unit: CreditUnit,
    pub price_multiplier: Decimal,
    pub prices_file: Option<String>,
    pub default_disconnect_policy: DisconnectPolicy,
}

impl Billing {
    pub fn read(raw: RawBilling, src: &Source) -> Result<Self, ConfigError> {
        let credit_name = src
            .text("CREDITGATE_CREDIT_NAME", raw.credit_name)
            .unwrap_or_else(|| "credit".to_owned());
        let credit_usd: Decimal = src
            .text("CREDITGATE_CREDIT_USD", raw.credit_usd)
            .unwrap_or_else(|| "0.005".to_owned())
            .parse()
            .map_err(|e| invalid(format!("billing.credit_usd: {e}")))?;
        let credit_unit = CreditUnit::new(credit_name, credit_usd)
            .map_err(|e| invalid(format!("billing.credit_usd: {e}")))?;
        let price_multiplier: Decimal = src
            .text("CREDITGATE_PRICE_MULTIPLIER", raw.price_multiplier)
            .unwrap_or_else(|| "1".to_owned())
            .parse()
            .map_err(|e| invalid(format!("billing.price_multiplier: {e}")))?;
        if price_multiplier.is_negative() || price_multiplier.is_zero() {
            return Err(invalid("billing.price_multiplier must be positive"));
        }
        let policy = src
            .text("CREDITGATE_DISCONNECT_POLICY", raw.disconnect_policy)
            .unwrap_or_else(|| "drain".to_owned());
        let default_disconnect_policy = DisconnectPolicy::parse(&policy)
            .ok_or_else(|| invalid("billing.disconnect_policy must be drain or cancel"))?;
        Ok(Self {
            credit_unit,
            price_multiplier,
            prices_file: src.text("CREDITGATE_PRICES_FILE", raw.prices_file),
            default_disconnect_policy,
        })
    }
}

/// The `[limits]` section's holds and timings.
pub(super) struct Timing {
    pub first_slice_tokens: u64,
    pub slice_tokens: u64,
    pub hold_timeout_ms: i64,
    pub drain_timeout_ms: u64,
    pub sweep_interval_ms: u64,
    pub shutdown_timeout_ms: u64,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
}

impl Timing {
    pub fn read(raw: &RawLimits, src: &Source) -> Result<Self, ConfigError> {
        let hold_timeout_ms = match (src.env)("CREDITGATE_HOLD_TIMEOUT_MS") {
            Some(v) => v
                .parse()
                .map_err(|_| invalid("hold_timeout_ms must be an integer"))?,
            None => raw.hold_timeout_ms.unwrap_or(DEFAULT_HOLD_TIMEOUT_MS),
        };
        if hold_timeout_ms < 1000 {
            return Err(invalid("limits.hold_timeout_ms must be at least 1000"));
        }
        let first_slice_tokens = src.num(
            "CREDITGATE_FIRST_SLICE_TOKENS",
            raw.first_slice_tokens,
            DEFAULT_FIRST_SLICE_TOKENS,
        )?;
        let slice_tokens = src.num(
            "CREDITGATE_SLICE_TOKENS",
            raw.slice_tokens,
            DEFAULT_SLICE_TOKENS,
        )?;
        if first_slice_tokens == 0 || slice_tokens == 0 {
            return Err(invalid("slice sizes must be positive"));
        }
        Ok(Self {
            first_slice_tokens,
            slice_tokens,
            hold_timeout_ms,
            drain_timeout_ms: src.num(
                "CREDITGATE_DRAIN_TIMEOUT_MS",
                raw.drain_timeout_ms,
                DEFAULT_DRAIN_TIMEOUT_MS,
            )?,
            sweep_interval_ms: src.num(
                "CREDITGATE_SWEEP_INTERVAL_MS",
                raw.sweep_interval_ms,
                DEFAULT_SWEEP_INTERVAL_MS,
            )?,
            shutdown_timeout_ms: src.num(
                "CREDITGATE_SHUTDOWN_TIMEOUT_MS",
                raw.shutdown_timeout_ms,
                DEFAULT_SHUTDOWN_TIMEOUT_MS,
            )?,
            header_read_timeout_ms: src.positive(
                "CREDITGATE_HEADER_READ_TIMEOUT_MS",
                raw.header_read_timeout_ms,
                DEFAULT_HEADER_READ_TIMEOUT_MS,
                "limits.header_read_timeout_ms",
            )?,
            body_read_timeout_ms: src.positive(
                "CREDITGATE_BODY_READ_TIMEOUT_MS",
                raw.body_read_timeout_ms,
                DEFAULT_BODY_READ_TIMEOUT_MS,
                "limits.body_read_timeout_ms",
            )?,
        })
    }
}

/// The `[limits]` section's bounds on bodies, connections and failed sign-ins.
pub(super) struct Capacity {
    pub max_body_bytes: usize,
    pub max_body_bytes_in_flight: usize,
    pub max_connections: usize,
    pub auth_failures_per_minute: u32,
}

impl Capacity {
    pub fn read(raw: &RawLimits, src: &Source) -> Result<Self, ConfigError> {
        let max_body_bytes = src.num(
            "CREDITGATE_MAX_BODY_BYTES",
            raw.max_body_bytes.map(|v| v as u64),
            DEFAULT_MAX_BODY_BYTES as u64,
        )? as usize;
        let max_body_bytes_in_flight = src.num(
            "CREDITGATE_MAX_BODY_BYTES_IN_FLIGHT",
            raw.max_body_bytes_in_flight,
            (DEFAULT_MAX_BODY_BYTES_IN_FLIGHT as u64).max(max_body_bytes as u64),
        )? as usize;
        if max_body_bytes_in_flight < max_body_bytes {
            return Err(invalid(
                "limits.max_body_bytes_in_flight must be at least limits.max_body_bytes",
            ));
        }
        let max_connections = src.positive(
            "CREDITGATE_MAX_CONNECTIONS",
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS as u64,
            "limits.max_connections",
        )? as usize;
        let auth_failures_per_minute = src.positive(
            "CREDITGATE_AUTH_FAILURES_PER_MINUTE",
            raw.auth_failures_per_minute,
            DEFAULT_AUTH_FAILURES_PER_MINUTE,
            "limits.auth_failures_per_minute",
        )?;
        Ok(Self {
            max_body_bytes,
            max_body_bytes_in_flight,
            max_connections,
            auth_failures_per_minute: u32::try_from(auth_failures_per_minute).unwrap_or(u32::MAX),
        })
    }
}
