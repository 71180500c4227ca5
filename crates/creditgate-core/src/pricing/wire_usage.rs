//! Anthropic's `usage` object, read defensively: hostile values are clamped by fixed rules and flagged.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::number_text::NumberText;

/// The largest token count accepted in one usage field (100× the largest context window).
/// Larger reported values are clamped to it and flagged.
pub const MAX_USAGE_TOKENS: u64 = 100_000_000;
/// The largest server-tool request count accepted in one usage field.
pub const MAX_SERVER_TOOL_REQUESTS: u64 = 100_000;
/// How much of a hostile value a flag quotes.
const MAX_REPORTED_CHARS: usize = 64;

/// Token usage of one request, as Anthropic reports it (after clamping).
///
/// `cache_5m` / `cache_1h` are the `cache_creation` TTL split when the upstream sent one; how
/// they combine with the aggregate `cache_creation_input_tokens` is [`Usage::cache_writes`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens (after the last cache breakpoint).
    pub input_tokens: u64,
    /// All cache writes together (5m + 1h).
    pub cache_creation_input_tokens: u64,
    /// `cache_creation.ephemeral_5m_input_tokens`.
    pub cache_5m: Option<u64>,
    /// `cache_creation.ephemeral_1h_input_tokens`.
    pub cache_1h: Option<u64>,
    pub cache_read_input_tokens: u64,
    /// All output, thinking included: what is billed.
    pub output_tokens: u64,
    /// `output_tokens_details.thinking_tokens`: a breakdown inside `output_tokens`, not billed apart.
    pub thinking_tokens: Option<u64>,
    pub web_search_requests: u64,
    pub web_fetch_requests: u64,
    /// `"standard"` or `"fast"`: what the request actually ran at.
    pub speed: Option<String>,
    /// The region actually used (`"us"`, `"global"`, `"not_available"`).
    pub inference_geo: Option<String>,
    /// `"standard"`, `"priority"` or `"batch"`.
    pub service_tier: Option<String>,
}

/// Something odd about a usage object, and what was done about it. Flags go on the receipt and
/// raise an alert; none of them ever lets a usage event increase a balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum UsageFlag {
    /// A required field (`input_tokens`, `output_tokens`) was absent or null: counted as 0.
    Missing { field: String },
    /// A negative count: counted as 0.
    Negative { field: String, reported: String },
    /// A count with a fraction or exponent (`12.5`, `1e3`): rounded up.
    NotAnInteger {
        field: String,
        reported: String,
        used: u64,
    },
    /// A count sent as a string or another non-number: a numeric string is read (rounded up),
    /// anything else counts as 0.
    WrongType {
        field: String,
        reported: String,
        used: u64,
    },
    /// A count above the field's limit ([`MAX_USAGE_TOKENS`], [`MAX_SERVER_TOOL_REQUESTS`]):
    /// clamped to the limit.
    Clamped {
        field: String,
        reported: String,
        used: u64,
    },
    /// The `cache_creation` split does not add up to `cache_creation_input_tokens`; priced by
    /// the rule of [`Usage::cache_writes`].
    CacheSplitMismatch {
        aggregate: u64,
        ephemeral_5m: u64,
        ephemeral_1h: u64,
    },
    /// `thinking_tokens` exceeds `output_tokens`; the thinking sub-line shows `output_tokens`.
    ThinkingExceedsOutput { thinking: u64, output: u64 },
    /// `usage.speed` is `"fast"` but the model has no fast rates: priced at standard rates.
    FastModeUnpriced { model: String },
    /// `usage.speed` is neither `"standard"` nor `"fast"`: priced at standard rates.
    UnknownSpeed { reported: String },
    /// The upstream reported `service_tier: "batch"` for a request not sent as a batch: priced
    /// at full rates.
    BatchTierNotRequested,
}

/// The cache writes to bill, split by TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheWrites {
    pub five_minute: u64,
    pub one_hour: u64,
    /// The split was present and did not add up to the aggregate.
    pub mismatch: bool,
}

impl Usage {
    /// Reads Anthropic's usage object (`message.usage`, or a stream's merged usage). Never
    /// panics; every irregular value is clamped by the rules of [`UsageFlag`] and flagged:
    ///
    /// - absent or `null` optional fields are 0 (or `None`) without a flag;
    /// - negative numbers are 0; fractions and exponents are rounded up; numeric strings are
    ///   read; booleans, arrays, objects and other strings are 0;
    /// - counts above [`MAX_USAGE_TOKENS`] (tokens) or [`MAX_SERVER_TOOL_REQUESTS`]
    ///   (server-tool requests) are clamped to that limit.
    ///
    /// ```
    /// use creditgate_core::pricing::Usage;
    /// let (u, flags) = Usage::from_json(&serde_json::json!({
    ///     "input_tokens": 406, "output_tokens": 50, "cache_read_input_tokens": -5,
    /// }));
    /// assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_input_tokens), (406, 50, 0));
    /// assert_eq!(flags.len(), 1);
    /// ```
    pub fn from_json(v: &Value) -> (Usage, Vec<UsageFlag>) {
        let mut flags = Vec::new();
        let mut r = Reader {
            root: v,
            flags: &mut flags,
        };
        let usage = Usage {
            input_tokens: r.required(&["input_tokens"], MAX_USAGE_TOKENS),
            cache_creation_input_tokens: r
                .optional(&["cache_creation_input_tokens"], MAX_USAGE_TOKENS)
                .unwrap_or(0),
            cache_5m: r.optional(
                &["cache_creation", "ephemeral_5m_input_tokens"],
                MAX_USAGE_TOKENS,
            ),
            cache_1h: r.optional(
                &["cache_creation", "ephemeral_1h_input_tokens"],
                MAX_USAGE_TOKENS,
            ),
            cache_read_input_tokens: r
                .optional(&["cache_read_input_tokens"], MAX_USAGE_TOKENS)
                .unwrap_or(0),
            output_tokens: r.required(&["output_tokens"], MAX_USAGE_TOKENS),
            thinking_tokens: r.optional(
                &["output_tokens_details", "thinking_tokens"],
                MAX_USAGE_TOKENS,
            ),
            web_search_requests: r
                .optional(
                    &["server_tool_use", "web_search_requests"],
                    MAX_SERVER_TOOL_REQUESTS,
                )
                .unwrap_or(0),
            web_fetch_requests: r
                .optional(
                    &["server_tool_use", "web_fetch_requests"],
                    MAX_SERVER_TOOL_REQUESTS,
                )
                .unwrap_or(0),
            speed: r.text(&["speed"]),
            inference_geo: r.text(&["inference_geo"]),
            service_tier: r.text(&["service_tier"]),
        };
        (usage, flags)
    }

    /// The cache writes to bill. No split: all of `cache_creation_input_tokens` is 5-minute.
    /// A split (a missing half counts 0) that adds up to less than the aggregate is billed as
    /// given plus the remainder as 5-minute writes; one that adds up to more is trusted as
    /// given. Either way nothing reported is billed below the 5-minute rate, nothing is dropped,
    /// and the result never decreases when any of the three numbers grows (1h ≥ 5m rate).
    pub fn cache_writes(&self) -> CacheWrites {
        let aggregate = self.cache_creation_input_tokens;
        if self.cache_5m.is_none() && self.cache_1h.is_none() {
            return CacheWrites {
                five_minute: aggregate,
                one_hour: 0,
                mismatch: false,
            };
        }
        let (s5, s1) = (self.cache_5m.unwrap_or(0), self.cache_1h.unwrap_or(0));
        let split = s5.saturating_add(s1);
        if split <= aggregate {
            CacheWrites {
                five_minute: aggregate - s1,
                one_hour: s1,
                mismatch: split != aggregate,
            }
        } else {
            CacheWrites {
                five_minute: s5,
                one_hour: s1,
                mismatch: true,
            }
        }
    }

    /// The prompt size a prompt-length tier is keyed on: input + cache reads + cache writes
    /// (as billed by [`Usage::cache_writes`]).
    pub fn prompt_tokens(&self) -> u64 {
        let w = self.cache_writes();
        self.input_tokens
            .saturating_add(self.cache_read_input_tokens)
            .saturating_add(w.five_minute)
            .saturating_add(w.one_hour)
    }
}

struct Reader<'a> {
    root: &'a Value,
    flags: &'a mut Vec<UsageFlag>,
}

impl Reader<'_> {
    fn lookup(&self, path: &[&str]) -> Option<&Value> {
        let mut v = self.root;
        for key in path {
            v = v.as_object()?.get(*key)?;
        }
        Some(v).filter(|v| !v.is_null())
    }

    fn required(&mut self, path: &[&str], max: u64) -> u64 {
        match self.optional(path, max) {
            Some(n) => n,
            None => {
                self.flags.push(UsageFlag::Missing {
                    field: path.join("."),
                });
                0
            }
        }
    }

    fn optional(&mut self, path: &[&str], max: u64) -> Option<u64> {
        let value = self.lookup(path)?;
        let field = path.join(".");
        let (raw, number, well_typed) = match value {
            Value::Number(n) => (n.to_string(), NumberText::parse(&n.to_string()), true),
            Value::String(s) => (s.clone(), NumberText::parse(s.trim()), false),
            other => (other.to_string(), None, false),
        };
        let reported = truncate(&raw);
        let Some(number) = number else {
            self.flags.push(UsageFlag::WrongType {
                field,
                reported,
                used: 0,
            });
            return Some(0);
        };
        if number.negative && !number.is_zero() {
            self.flags.push(UsageFlag::Negative { field, reported });
            return Some(0);
        }
        let magnitude = number.ceil_magnitude_u64();
        let used = magnitude.min(max);
        let exact_integer = raw.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if !well_typed {
            self.flags.push(UsageFlag::WrongType {
                field,
                reported,
                used,
            });
        } else if magnitude > max {
            self.flags.push(UsageFlag::Clamped {
                field,
                reported,
                used,
            });
        } else if !exact_integer {
            self.flags.push(UsageFlag::NotAnInteger {
                field,
                reported,
                used,
            });
        }
        Some(used)
    }

    fn text(&mut self, path: &[&str]) -> Option<String> {
        match self.lookup(path)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.flags.push(UsageFlag::WrongType {
                    field: path.join("."),
                    reported: truncate(&other.to_string()),
                    used: 0,
                });
                None
            }
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_REPORTED_CHARS {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX_REPORTED_CHARS).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_recorded_usage_object() {
        let (u, flags) = Usage::from_json(&json!({
            "input_tokens": 11306,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 163,
            "service_tier": "standard",
            "inference_geo": "not_available",
            "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}
        }));
        assert!(flags.is_empty(), "{flags:?}");
        assert_eq!(u.input_tokens, 11306);
        assert_eq!(u.output_tokens, 163);
        assert_eq!((u.cache_5m, u.cache_1h), (Some(0), Some(0)));
        assert_eq!(u.web_search_requests, 1);
        assert_eq!(u.inference_geo.as_deref(), Some("not_available"));
    }

    #[test]
    fn reads_thinking_speed_and_geo() {
        let (u, flags) = Usage::from_json(&json!({
            "input_tokens": 28, "output_tokens": 106,
            "output_tokens_details": {"thinking_tokens": 67},
            "speed": "fast", "inference_geo": "us"
        }));
        assert!(flags.is_empty());
        assert_eq!(u.thinking_tokens, Some(67));
        assert_eq!(u.speed.as_deref(), Some("fast"));
        assert_eq!(u.inference_geo.as_deref(), Some("us"));
        assert_eq!(u.cache_5m, None);
    }

    #[test]
    fn hostile_values_are_clamped_and_flagged() {
        let (u, flags) = Usage::from_json(&json!({
            "input_tokens": -40,
            "output_tokens": "250",
            "cache_read_input_tokens": 1e30,
            "cache_creation_input_tokens": 12.2,
            "cache_creation": {"ephemeral_5m_input_tokens": true, "ephemeral_1h_input_tokens": null},
            "server_tool_use": {"web_search_requests": "many"},
            "speed": 7
        }));
        assert_eq!(u.input_tokens, 0);
        assert_eq!(u.output_tokens, 250);
        assert_eq!(u.cache_read_input_tokens, MAX_USAGE_TOKENS);
        assert_eq!(u.cache_creation_input_tokens, 13);
        assert_eq!(u.cache_5m, Some(0));
        assert_eq!(u.cache_1h, None);
        assert_eq!(u.web_search_requests, 0);
        assert_eq!(u.speed, None);
        let kinds: Vec<String> = flags
            .iter()
            .map(|f| {
                serde_json::to_value(f).unwrap()["flag"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "negative",
                "not_an_integer",
                "wrong_type",
                "clamped",
                "wrong_type",
                "wrong_type",
                "wrong_type"
            ]
        );
        assert!(flags.contains(&UsageFlag::Negative {
            field: "input_tokens".into(),
            reported: "-40".into()
        }));
        assert!(flags.contains(&UsageFlag::WrongType {
            field: "output_tokens".into(),
            reported: "250".into(),
            used: 250
        }));
        assert!(flags.iter().any(
            |f| matches!(f, UsageFlag::Clamped { field, .. } if field == "cache_read_input_tokens")
        ));
        assert!(flags
            .iter()
            .any(|f| matches!(f, UsageFlag::NotAnInteger { used: 13, .. })));
    }

    #[test]
    fn missing_and_non_object_usage() {
        let (u, flags) = Usage::from_json(&json!({}));
        assert_eq!(u, Usage::default());
        assert_eq!(
            flags,
            vec![
                UsageFlag::Missing {
                    field: "input_tokens".into()
                },
                UsageFlag::Missing {
                    field: "output_tokens".into()
                }
            ]
        );
        let (u, flags) = Usage::from_json(&json!("garbage"));
        assert_eq!(u, Usage::default());
        assert_eq!(flags.len(), 2);
    }

    #[test]
    fn cache_split_rule() {
        let u = |agg, s5, s1| Usage {
            cache_creation_input_tokens: agg,
            cache_5m: s5,
            cache_1h: s1,
            ..Usage::default()
        };
        let w = |five_minute, one_hour, mismatch| CacheWrites {
            five_minute,
            one_hour,
            mismatch,
        };
        assert_eq!(u(100, None, None).cache_writes(), w(100, 0, false));
        assert_eq!(u(100, Some(40), Some(60)).cache_writes(), w(40, 60, false));
        assert_eq!(u(100, Some(20), Some(30)).cache_writes(), w(70, 30, true));
        assert_eq!(u(100, None, Some(100)).cache_writes(), w(0, 100, false));
        assert_eq!(u(100, Some(80), Some(60)).cache_writes(), w(80, 60, true));
        assert_eq!(u(0, Some(0), Some(0)).cache_writes(), w(0, 0, false));
        assert_eq!(
            u(10, Some(u64::MAX), Some(1)).cache_writes(),
            w(u64::MAX, 1, true)
        );
    }
}
