//! Per-request directives and fault injection, from the `x-sim-fault` header or `[[sim …]]` text.

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::errors::ErrorKind;

/// The header that carries directives: `key=value;key=value`.
const FAULT_HEADER: &str = "x-sim-fault";
/// What opens a directive inside the last user message; `]]` closes it.
const TEXT_OPEN: &str = "[[sim";
const TEXT_CLOSE: &str = "]]";
/// Longest per-frame (or per-response) latency a directive may ask for.
const MAX_LATENCY_MS: u64 = 60_000;
/// Most tokens a directive may ask the simulator to generate (text or thinking).
const MAX_GENERATED_TOKENS: u64 = 1_000_000;
/// Most web searches a directive may ask for.
const MAX_WEB_SEARCHES: u64 = 100;

/// How `hostile` corrupts the integers of the final usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hostile {
    /// Every integer becomes -5.
    Negative,
    /// Every integer becomes 10^15.
    Huge,
    /// Every integer field is left out.
    Missing,
    /// Every integer becomes the string "12".
    String,
}

/// The directives of one request; `None` means "not given".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub latency: Option<Duration>,
    pub status: Option<ErrorKind>,
    pub error_after: Option<u64>,
    pub reset_after: Option<u64>,
    pub linger: Option<Duration>,
    pub overrun: Option<u64>,
    pub output_tokens: Option<u64>,
    pub thinking_tokens: Option<u64>,
    pub thinking_shown: Option<u64>,
    pub web_search: Option<u64>,
    pub chunk_tokens: Option<u64>,
    pub hostile: Option<Hostile>,
}

impl Directives {
    /// Reads the directives of a request: every `[[sim …]]` in the last user message in order,
    /// then the `x-sim-fault` header, so the header wins on conflicts.
    pub(crate) fn from_request(headers: &HeaderMap, body: &Value) -> Result<Self, String> {
        let mut directives = Directives::default();
        for inner in text_directives(&last_user_text(body)) {
            for pair in inner.split_whitespace() {
                directives.apply(pair)?;
            }
        }
        for value in headers.get_all(FAULT_HEADER) {
            let value = value
                .to_str()
                .map_err(|_| format!("{FAULT_HEADER}: header is not valid text"))?;
            for pair in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                directives.apply(pair)?;
            }
        }
        Ok(directives)
    }

    fn apply(&mut self, pair: &str) -> Result<(), String> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("sim directive `{pair}` is not key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let number = || {
            value.parse::<u64>().map_err(|_| {
                format!("sim directive `{key}` needs a non-negative integer, got `{value}`")
            })
        };
        let at_most = |limit: u64| {
            let n = number()?;
            if n > limit {
                return Err(format!(
                    "sim directive `{key}={n}` is above the limit of {limit}"
                ));
            }
            Ok(n)
        };
        match key {
            "latency_ms" => self.latency = Some(Duration::from_millis(at_most(MAX_LATENCY_MS)?)),
            "status" => {
                let code = number()?;
                let kind = u16::try_from(code)
                    .ok()
                    .and_then(ErrorKind::from_status)
                    .ok_or_else(|| {
                        format!("sim directive `status={code}` is not an API error status")
                    })?;
                self.status = Some(kind);
            }
            "error_after" => self.error_after = Some(number()?),
            "reset_after" => self.reset_after = Some(number()?),
            "linger_ms" => self.linger = Some(Duration::from_millis(at_most(MAX_LATENCY_MS)?)),
            "overrun" => self.overrun = Some(number()?),
            "output_tokens" => self.output_tokens = Some(at_most(MAX_GENERATED_TOKENS)?),
            "thinking_tokens" => self.thinking_tokens = Some(at_most(MAX_GENERATED_TOKENS)?),
            "thinking_shown" => self.thinking_shown = Some(at_most(MAX_GENERATED_TOKENS)?),
            "web_search" => self.web_search = Some(at_most(MAX_WEB_SEARCHES)?),
            "chunk_tokens" => {
                let n = at_most(MAX_GENERATED_TOKENS)?;
                if n == 0 {
                    return Err("sim directive `chunk_tokens` must be at least 1".to_owned());
                }
                self.chunk_tokens = Some(n);
            }
            "hostile" => {
                self.hostile = Some(match value {
                    "negative" => Hostile::Negative,
                    "huge" => Hostile::Huge,
                    "missing" => Hostile::Missing,
                    "string" => Hostile::String,
                    other => {
                        return Err(format!(
                        "sim directive `hostile={other}` must be negative, huge, missing or string"
                    ))
                    }
                });
            }
            other => return Err(format!("unknown sim directive `{other}`")),
        }
        Ok(())
    }
}

/// The text of the last user message: its string content, or its text blocks and the text of
/// its tool results, joined by newlines.
fn last_user_text(body: &Value) -> String {
    let Some(message) = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
    else {
        return String::new();
    };
    let mut texts = Vec::new();
    collect_text(message.get("content").unwrap_or(&Value::Null), &mut texts);
    texts.join("\n")
}

fn collect_text<'a>(content: &'a Value, out: &mut Vec<&'a str>) {
    match content {
        Value::String(s) => out.push(s),
        Value::Array(blocks) => {
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str) {
                            out.push(text);
                        }
                    }
                    Some("tool_result") => {
                        collect_text(block.get("content").unwrap_or(&Value::Null), out);
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The insides of every `[[sim …]]` in a text, in order.
fn text_directives(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(TEXT_OPEN) {
        let after = &rest[start + TEXT_OPEN.len()..];
        let Some(end) = after.find(TEXT_CLOSE) else {
            break;
        };
        let inner = &after[..end];
        // `[[simple]]` is not a directive: the keyword must stand alone.
        if inner.is_empty() || inner.starts_with(char::is_whitespace) {
            found.push(inner);
            rest = &after[end + TEXT_CLOSE.len()..];
        } else {
            rest = after;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn body(text: &str) -> Value {
        json!({"messages": [
            {"role": "user", "content": "[[sim output_tokens=99]] earlier turn"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": text}]}
        ]})
    }

    #[test]
    fn reads_directives_from_the_last_user_message_only() {
        let d = Directives::from_request(
            &HeaderMap::new(),
            &body("please [[sim output_tokens=7 chunk_tokens=3]] and [[sim hostile=huge]]"),
        )
        .unwrap();
        assert_eq!(d.output_tokens, Some(7));
        assert_eq!(d.chunk_tokens, Some(3));
        assert_eq!(d.hostile, Some(Hostile::Huge));
        assert_eq!(d.thinking_tokens, None);
    }

    #[test]
    fn header_wins_over_text() {
        let mut headers = HeaderMap::new();
        headers.insert(
            FAULT_HEADER,
            HeaderValue::from_static("output_tokens=5; status=529 ;latency_ms=3"),
        );
        let d =
            Directives::from_request(&headers, &body("[[sim output_tokens=7 overrun=2]]")).unwrap();
        assert_eq!(d.output_tokens, Some(5));
        assert_eq!(d.overrun, Some(2));
        assert_eq!(d.status, Some(ErrorKind::Overloaded));
        assert_eq!(d.latency, Some(Duration::from_millis(3)));
    }

    #[test]
    fn rejects_malformed_directives() {
        let none = HeaderMap::new();
        for text in [
            "[[sim bogus=1]]",
            "[[sim output_tokens]]",
            "[[sim output_tokens=-1]]",
            "[[sim status=418]]",
            "[[sim chunk_tokens=0]]",
            "[[sim hostile=sneaky]]",
            "[[sim latency_ms=999999999]]",
        ] {
            assert!(
                Directives::from_request(&none, &body(text)).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn ignores_lookalikes_and_unclosed_directives() {
        let d =
            Directives::from_request(&HeaderMap::new(), &body("[[simple]] [[sim output_tokens=3"))
                .unwrap();
        assert_eq!(d, Directives::default());
    }

    #[test]
    fn finds_directives_in_tool_results() {
        let b = json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "[[sim web_search=2]]"}
        ]}]});
        let d = Directives::from_request(&HeaderMap::new(), &b).unwrap();
        assert_eq!(d.web_search, Some(2));
    }
}
