//! What `serve` refuses before it opens the database or listens: missing or placeholder secrets.
//!
//! Every problem is reported at once, each saying which value to replace and how, so an operator
//! who copied the example config fixes it in one pass.

use super::{Config, ConfigError};

/// Fragments that mark a value as a placeholder someone forgot to replace (compared
/// case-insensitively). The example config's values contain some of them on purpose.
const PLACEHOLDER_MARKERS: [&str; 14] = [
    "change-me",
    "change_me",
    "changeme",
    "replace-me",
    "replace_me",
    "replaceme",
    "placeholder",
    "your-",
    "your_",
    "example",
    "xxxx",
    "...",
    "<",
    ">",
];

/// Fewest different characters accepted in an admin key: a random secret of 32 or more
/// characters has at least 16 (hex), a hand-typed `aaaa…` or `1234…` has a few.
const MIN_DISTINCT_CHARS: usize = 10;

/// How to make a real admin key, said in every message about one.
const MAKE_ADMIN_KEY: &str =
    "make one with `creditgate secret` and put it in admin_key (or CREDITGATE_ADMIN_KEY)";

/// Why `value` is clearly a placeholder, if it is.
pub(super) fn placeholder_reason(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    PLACEHOLDER_MARKERS
        .iter()
        .find(|m| lower.contains(*m))
        .map(|m| format!("it contains \"{m}\""))
}

/// Why `key` cannot be an operator's random secret, if it cannot.
fn weak_admin_key(key: &str) -> Option<String> {
    if let Some(reason) = placeholder_reason(key) {
        return Some(reason);
    }
    let mut distinct: Vec<char> = key.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    (distinct.len() < MIN_DISTINCT_CHARS).then(|| {
        format!(
            "it uses only {} different characters, so it is not random",
            distinct.len()
        )
    })
}

/// Why the upstream URL would send keys and prompts unencrypted across a network, if it would:
/// plain `http://` is accepted only to this machine (a simulator, a local proxy) or when the
/// operator says so.
fn insecure_upstream(cfg: &Config) -> Option<String> {
    if !cfg.upstream_base_url.starts_with("http://") || cfg.upstream_allow_http {
        return None;
    }
    let host = reqwest::Url::parse(&cfg.upstream_base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!(
            "upstream.base_url is plain http:// to {host:?}, which is not this machine: the \
             upstream keys and every prompt would cross the network unencrypted. Use https://, \
             or set upstream.allow_http = true (CREDITGATE_UPSTREAM_ALLOW_HTTP=true) if that \
             network is trusted"
        )
    })
}

impl Config {
    /// Checks what `serve` (production) needs beyond what the demo needs: a real admin key and
    /// real upstream keys. `creditgate config check` runs the same checks.
    pub fn check_production(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        match &self.admin_key {
            None => problems.push(format!(
                "admin_key (or CREDITGATE_ADMIN_KEY) is required: a fresh install has no default \
                 secret; {MAKE_ADMIN_KEY}"
            )),
            Some(key) => {
                if let Some(reason) = weak_admin_key(key) {
                    problems.push(format!(
                        "admin_key is a placeholder ({reason}), and anyone who has read the \
                         example config knows it; {MAKE_ADMIN_KEY}"
                    ));
                }
            }
        }
        if self.upstream_api_keys.is_empty() {
            problems.push(
                "upstream.api_keys (or CREDITGATE_UPSTREAM_API_KEYS) needs at least one Anthropic \
                 API key"
                    .into(),
            );
        }
        for (i, key) in self.upstream_api_keys.iter().enumerate() {
            if let Some(reason) = placeholder_reason(key) {
                problems.push(format!(
                    "upstream.api_keys[{i}] is a placeholder ({reason}): replace it with an \
                     Anthropic API key (sk-ant-api03-…, created in the Claude Console), in the \
                     file or in CREDITGATE_UPSTREAM_API_KEYS (comma-separated)"
                ));
            }
        }
        if let Some(problem) = insecure_upstream(self) {
            problems.push(problem);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::NotServable(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servable(toml: &str) -> Result<(), String> {
        Config::from_toml(toml)
            .map_err(|e| e.to_string())?
            .check_production()
            .map_err(|e| e.to_string())
    }

    const REAL_ADMIN: &str = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6";

    #[test]
    fn the_example_config_is_refused_with_every_placeholder_named() {
        let err = servable(include_str!("../../../../creditgate.example.toml")).unwrap_err();
        assert!(err.contains("admin_key is a placeholder"), "{err}");
        assert!(err.contains("creditgate secret"), "{err}");
        assert!(
            err.contains("upstream.api_keys[0] is a placeholder"),
            "{err}"
        );
        assert!(
            !err.contains("sk-ant-replace-me"),
            "values are not echoed: {err}"
        );
    }

    #[test]
    fn plain_http_upstreams_are_refused_unless_loopback_or_allowed() {
        let with = |base_url: &str, extra: &str| {
            servable(&format!(
                "admin_key = \"{REAL_ADMIN}\"\n[upstream]\nbase_url = \"{base_url}\"\n\
                 api_keys = [\"sk-ant-api03-abcdefghijklmnop\"]\n{extra}"
            ))
        };
        for ok in [
            "https://api.anthropic.com",
            "http://127.0.0.1:8081",
            "http://127.9.9.9",
            "http://[::1]:8081",
            "http://localhost:8081",
        ] {
            assert!(with(ok, "").is_ok(), "{ok}: {:?}", with(ok, ""));
        }
        for refused in [
            "http://api.anthropic.com",
            "http://10.0.0.5:8081",
            "http://127.0.0.1.example.net",
            "http://localhost.example.net",
        ] {
            let err = with(refused, "").unwrap_err();
            assert!(
                err.contains("upstream.base_url is plain http://"),
                "{refused}: {err}"
            );
            assert!(with(refused, "allow_http = true").is_ok(), "{refused}");
        }
    }

    #[test]
    fn obvious_placeholders_and_weak_keys_are_refused() {
        let with = |admin: &str, upstream: &str| {
            servable(&format!(
                "admin_key = \"{admin}\"\n[upstream]\napi_keys = [\"{upstream}\"]"
            ))
        };
        assert!(with(REAL_ADMIN, "sk-ant-api03-abcdefghijklmnop").is_ok());
        for admin in [
            "CHANGEME-0123456789abcdefghijklmnopqrstuvwxyz",
            "your-admin-secret-goes-here-0123456789abcdef",
            "<put a long random secret here, 32 characters>",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "12121212121212121212121212121212",
        ] {
            let err = with(admin, "sk-ant-api03-abcdefghijklmnop").unwrap_err();
            assert!(err.contains("admin_key"), "{admin}: {err}");
        }
        for upstream in ["sk-ant-...", "sk-ant-xxxxxxxx", "YOUR_ANTHROPIC_KEY"] {
            let err = with(REAL_ADMIN, upstream).unwrap_err();
            assert!(err.contains("upstream.api_keys[0]"), "{upstream}: {err}");
        }
        let err = servable("").unwrap_err();
        assert!(err.contains("admin_key (or CREDITGATE_ADMIN_KEY) is required"));
        assert!(err.contains("upstream.api_keys (or CREDITGATE_UPSTREAM_API_KEYS)"));
    }
}
