//! The effective settings, every secret redacted: what `creditgate config check` prints.

use serde_json::{json, Value};

use super::{redact, Config};

/// One effective setting: its key in the file (`section.name`), the variable that overrides it,
/// and its value (secrets replaced by a description of their length).
#[derive(Debug, Clone)]
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub value: Value,
}

fn secret(value: &str) -> Value {
    Value::from(format!("<redacted, {} characters>", value.chars().count()))
}

impl Config {
    /// Every setting with its effective value, in the order of the example config.
    ///
    /// Longer than a screen on purpose: it is a table, one entry per setting, kept in one list
    /// so that its order follows the example config and no setting is printed twice.
    pub fn settings(&self) -> Vec<Setting> {
        let s = |key, env, value: Value| Setting { key, env, value };
        vec![
            s(
                "listen",
                "CREDITGATE_LISTEN",
                json!(self.listen.to_string()),
            ),
            s(
                "database_url",
                "CREDITGATE_DATABASE_URL",
                json!(redact(&self.database_url)),
            ),
            s(
                "spool_path",
                "CREDITGATE_SPOOL_PATH",
                json!(self.spool_path.display().to_string()),
            ),
            s(
                "admin_key",
                "CREDITGATE_ADMIN_KEY",
                self.admin_key.as_deref().map_or(Value::Null, secret),
            ),
            s(
                "credit_lease",
                "CREDITGATE_CREDIT_LEASE",
                json!(self.credit_lease),
            ),
            s(
                "upstream.base_url",
                "CREDITGATE_UPSTREAM_BASE_URL",
                json!(self.upstream_base_url),
            ),
            s(
                "upstream.api_keys",
                "CREDITGATE_UPSTREAM_API_KEYS",
                Value::Array(self.upstream_api_keys.iter().map(|k| secret(k)).collect()),
            ),
            s(
                "upstream.allow_http",
                "CREDITGATE_UPSTREAM_ALLOW_HTTP",
                json!(self.upstream_allow_http),
            ),
            s(
                "upstream.allowed_betas",
                "CREDITGATE_UPSTREAM_ALLOWED_BETAS",
                json!(self.upstream_allowed_betas),
            ),
            s(
                "upstream.connect_timeout_ms",
                "CREDITGATE_UPSTREAM_CONNECT_TIMEOUT_MS",
                json!(self.upstream_connect_timeout_ms),
            ),
            s(
                "upstream.idle_timeout_ms",
                "CREDITGATE_UPSTREAM_IDLE_TIMEOUT_MS",
                json!(self.upstream_idle_timeout_ms),
            ),
            s(
                "billing.credit_name",
                "CREDITGATE_CREDIT_NAME",
                json!(self.credit_unit.name),
            ),
            s(
                "billing.credit_usd",
                "CREDITGATE_CREDIT_USD",
                json!(self.credit_unit.usd.to_string()),
            ),
            s(
                "billing.price_multiplier",
                "CREDITGATE_PRICE_MULTIPLIER",
                json!(self.price_multiplier.to_string()),
            ),
            s(
                "billing.prices_file",
                "CREDITGATE_PRICES_FILE",
                json!(self.prices_file),
            ),
            s(
                "billing.disconnect_policy",
                "CREDITGATE_DISCONNECT_POLICY",
                json!(self.default_disconnect_policy.as_str()),
            ),
            s(
                "limits.max_body_bytes",
                "CREDITGATE_MAX_BODY_BYTES",
                json!(self.max_body_bytes),
            ),
            s(
                "limits.first_slice_tokens",
                "CREDITGATE_FIRST_SLICE_TOKENS",
                json!(self.first_slice_tokens),
            ),
            s(
                "limits.slice_tokens",
                "CREDITGATE_SLICE_TOKENS",
                json!(self.slice_tokens),
            ),
            s(
                "limits.hold_timeout_ms",
                "CREDITGATE_HOLD_TIMEOUT_MS",
                json!(self.hold_timeout_ms),
            ),
            s(
                "limits.drain_timeout_ms",
                "CREDITGATE_DRAIN_TIMEOUT_MS",
                json!(self.drain_timeout_ms),
            ),
            s(
                "limits.sweep_interval_ms",
                "CREDITGATE_SWEEP_INTERVAL_MS",
                json!(self.sweep_interval_ms),
            ),
            s(
                "limits.shutdown_timeout_ms",
                "CREDITGATE_SHUTDOWN_TIMEOUT_MS",
                json!(self.shutdown_timeout_ms),
            ),
            s(
                "limits.header_read_timeout_ms",
                "CREDITGATE_HEADER_READ_TIMEOUT_MS",
                json!(self.header_read_timeout_ms),
            ),
            s(
                "limits.body_read_timeout_ms",
                "CREDITGATE_BODY_READ_TIMEOUT_MS",
                json!(self.body_read_timeout_ms),
            ),
            s(
                "limits.max_body_bytes_in_flight",
                "CREDITGATE_MAX_BODY_BYTES_IN_FLIGHT",
                json!(self.max_body_bytes_in_flight),
            ),
            s(
                "limits.auth_failures_per_minute",
                "CREDITGATE_AUTH_FAILURES_PER_MINUTE",
                json!(self.auth_failures_per_minute),
            ),
            s(
                "limits.max_connections",
                "CREDITGATE_MAX_CONNECTIONS",
                json!(self.max_connections),
            ),
            s(
                "webhooks.allow_private_urls",
                "CREDITGATE_WEBHOOKS_ALLOW_PRIVATE_URLS",
                json!(self.webhooks.allow_private_urls),
            ),
            s(
                "webhooks.timeout_ms",
                "CREDITGATE_WEBHOOKS_TIMEOUT_MS",
                json!(self.webhooks.timeout_ms),
            ),
            s(
                "tax.rates",
                "CREDITGATE_TAX_RATES",
                json!(self
                    .payments
                    .tax
                    .rates()
                    .collect::<std::collections::BTreeMap<_, _>>()),
            ),
            s(
                "tax.prices_include_tax",
                "CREDITGATE_TAX_PRICES_INCLUDE_TAX",
                json!(self.payments.tax.prices_include_tax),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the example config documents is listed, so a new setting cannot be forgotten
    /// by `config check`.
    #[test]
    fn every_documented_key_is_listed_and_secrets_are_redacted() {
        let text = include_str!("../../../../creditgate.example.toml");
        let cfg = Config::from_toml(text).unwrap();
        let listed: Vec<&str> = cfg.settings().iter().map(|s| s.key).collect();
        let doc: toml::Table = toml::from_str(text).unwrap();
        let mut documented = Vec::new();
        for (name, value) in &doc {
            match value.as_table() {
                Some(section) => {
                    documented.extend(section.keys().map(|k| format!("{name}.{k}")));
                }
                None => documented.push(name.clone()),
            }
        }
        for key in documented {
            assert!(listed.contains(&key.as_str()), "{key} is not listed");
        }
        let shown = serde_json::to_string(
            &cfg.settings()
                .iter()
                .map(|s| s.value.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(!shown.contains("change-me"), "{shown}");
        assert!(!shown.contains("sk-ant-"), "{shown}");
    }
}
