//! A report's results in Anthropic's Admin API shapes (`docs/accounts.md`), and the same results as
//! CSV rows. Amounts are exact decimal strings (credits, USD cents); counts are integers.

use creditgate_core::money::{CreditUnit, MoneyError, NanoCredits};
use creditgate_core::pricing::LineCategory;
use creditgate_core::reports::{pico_usd_cents, usd_cents, Group, Sums};
use serde_json::{json, Map, Value};

use super::query::ReportKind;

/// A grouped dimension's value: null when not grouped, or grouped but not reported.
fn dim(v: &Option<String>) -> Value {
    match v.as_deref() {
        None | Some("") => Value::Null,
        Some(v) => json!(v),
    }
}

/// The dimension fields every result carries (null unless grouped by them).
fn dimensions(group: &Group, operator: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if operator {
        m.insert("organization_id".into(), dim(&group.org));
    }
    m.insert("api_key_id".into(), dim(&group.key_id));
    m.insert("workspace_id".into(), Value::Null);
    m.insert("model".into(), dim(&group.model));
    m.insert("service_tier".into(), dim(&group.service_tier));
    m.insert("context_window".into(), dim(&group.context_window));
    m.insert("inference_geo".into(), dim(&group.inference_geo));
    m.insert("speed".into(), dim(&group.speed));
    m
}

/// A `usage_report/messages` result: Anthropic's token fields, plus `requests` and `credits`
/// (what the ledger charged for them).
pub fn usage_result(group: &Group, s: &Sums, operator: bool) -> Result<Value, MoneyError> {
    let t = &s.tokens;
    let mut m = dimensions(group, operator);
    m.insert("uncached_input_tokens".into(), json!(t.input));
    m.insert(
        "cache_creation".into(),
        json!({"ephemeral_1h_input_tokens": t.cache_write_1h,
               "ephemeral_5m_input_tokens": t.cache_write_5m}),
    );
    m.insert("cache_read_input_tokens".into(), json!(t.cache_read));
    m.insert("output_tokens".into(), json!(t.output));
    m.insert(
        "server_tool_use".into(),
        json!({"web_search_requests": t.web_search_requests}),
    );
    m.insert("requests".into(), json!(s.requests));
    m.insert("credits".into(), json!(s.credits.total()?));
    Ok(Value::Object(m))
}

/// Anthropic's `cost_type` and `token_type` of a cost line.
fn line_types(category: LineCategory) -> (&'static str, Option<&'static str>, &'static str) {
    match category {
        LineCategory::Input => ("tokens", Some("uncached_input_tokens"), "Input Tokens"),
        LineCategory::CacheWrite5m => (
            "tokens",
            Some("cache_creation.ephemeral_5m_input_tokens"),
            "Cache Write (5m) Tokens",
        ),
        LineCategory::CacheWrite1h => (
            "tokens",
            Some("cache_creation.ephemeral_1h_input_tokens"),
            "Cache Write (1h) Tokens",
        ),
        LineCategory::CacheRead => (
            "tokens",
            Some("cache_read_input_tokens"),
            "Cache Read Tokens",
        ),
        LineCategory::Output => ("tokens", Some("output_tokens"), "Output Tokens"),
        LineCategory::WebSearch => ("web_search", None, "Web Search"),
        LineCategory::WebFetch => ("web_fetch", None, "Web Fetch"),
    }
}

fn cost_fields(
    m: &mut Map<String, Value>,
    credits: NanoCredits,
    list: creditgate_core::usage::PicoUsd,
    unit: &CreditUnit,
) -> Result<(), MoneyError> {
    m.insert(
        "amount".into(),
        json!(usd_cents(credits, unit)?.to_string()),
    );
    m.insert("currency".into(), json!("USD"));
    m.insert("credits".into(), json!(credits));
    m.insert(
        "list_amount".into(),
        json!(pico_usd_cents(list).to_string()),
    );
    Ok(())
}

/// The `cost_report` results of one group: one total, or (grouped by description) one per cost
/// line that was used. `amount` is the charge in USD cents at the credit's value, `credits` the
/// charge, `list_amount` the same usage at Anthropic's list price in cents.
pub fn cost_results(
    group: &Group,
    s: &Sums,
    by_line: bool,
    unit: &CreditUnit,
    operator: bool,
) -> Result<Vec<Value>, MoneyError> {
    let base = {
        let mut m = dimensions(group, operator);
        m.remove("api_key_id");
        m.remove("speed");
        for k in ["cost_type", "token_type", "description"] {
            m.insert(k.into(), Value::Null);
        }
        m
    };
    if !by_line {
        let mut m = base;
        cost_fields(&mut m, s.credits.total()?, s.list.total()?, unit)?;
        m.insert("requests".into(), json!(s.requests));
        return Ok(vec![Value::Object(m)]);
    }
    let mut out = Vec::new();
    for ((category, credits), (_, list)) in s.credits.each().into_iter().zip(s.list.each()) {
        if !credits.is_positive() && list.pico() == 0 && s.tokens.quantity(category) == 0 {
            continue;
        }
        let (cost_type, token_type, words) = line_types(category);
        let mut m = base.clone();
        m.insert("cost_type".into(), json!(cost_type));
        m.insert("token_type".into(), json!(token_type));
        let model = group.model.as_deref().unwrap_or("");
        m.insert(
            "description".into(),
            json!(format!("{model} Usage - {words}")),
        );
        cost_fields(&mut m, credits, list, unit)?;
        m.insert("requests".into(), Value::Null);
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// A `cache_report` result: per key and model, the cache tokens, their credits, what reads saved
/// against the uncached rate, and the credits of writes never read within their TTL.
pub fn cache_result(
    group: &Group,
    s: &Sums,
    unread: (NanoCredits, NanoCredits),
    operator: bool,
) -> Result<Value, MoneyError> {
    let mut m = Map::new();
    if operator {
        m.insert("organization_id".into(), dim(&group.org));
    }
    m.insert("api_key_id".into(), dim(&group.key_id));
    m.insert("model".into(), dim(&group.model));
    let t = &s.tokens;
    let c = &s.credits;
    m.insert("requests".into(), json!(s.requests));
    m.insert("uncached_input_tokens".into(), json!(t.input));
    m.insert(
        "cache_creation".into(),
        json!({"ephemeral_1h_input_tokens": t.cache_write_1h,
               "ephemeral_5m_input_tokens": t.cache_write_5m}),
    );
    m.insert("cache_read_input_tokens".into(), json!(t.cache_read));
    m.insert(
        "credits".into(),
        json!({
            "total": c.total()?,
            "uncached_input": c.input,
            "cache_write_5m": c.cache_write_5m,
            "cache_write_1h": c.cache_write_1h,
            "cache_read": c.cache_read,
        }),
    );
    m.insert("saved_by_reads".into(), json!(s.cache_savings));
    m.insert(
        "unread_writes".into(),
        json!({
            "total": unread.0.checked_add(unread.1)?,
            "ephemeral_5m": unread.0,
            "ephemeral_1h": unread.1,
        }),
    );
    Ok(Value::Object(m))
}

/// The CSV columns of a report (dotted paths into a result), after `starting_at,ending_at`.
pub fn csv_columns(kind: ReportKind, operator: bool) -> Vec<&'static str> {
    let mut cols = Vec::new();
    if operator {
        cols.push("organization_id");
    }
    cols.extend_from_slice(match kind {
        ReportKind::Usage => &[
            "api_key_id",
            "workspace_id",
            "model",
            "service_tier",
            "context_window",
            "inference_geo",
            "speed",
            "requests",
            "uncached_input_tokens",
            "cache_creation.ephemeral_5m_input_tokens",
            "cache_creation.ephemeral_1h_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
            "server_tool_use.web_search_requests",
            "credits",
        ][..],
        ReportKind::Cost => &[
            "workspace_id",
            "description",
            "cost_type",
            "token_type",
            "model",
            "service_tier",
            "context_window",
            "inference_geo",
            "requests",
            "currency",
            "amount",
            "list_amount",
            "credits",
        ],
        ReportKind::Cache => &[
            "api_key_id",
            "model",
            "requests",
            "uncached_input_tokens",
            "cache_creation.ephemeral_5m_input_tokens",
            "cache_creation.ephemeral_1h_input_tokens",
            "cache_read_input_tokens",
            "credits.total",
            "credits.uncached_input",
            "credits.cache_write_5m",
            "credits.cache_write_1h",
            "credits.cache_read",
            "saved_by_reads",
            "unread_writes.total",
            "unread_writes.ephemeral_5m",
            "unread_writes.ephemeral_1h",
        ],
    });
    cols
}

/// One CSV field (RFC 4180: quoted when it holds a comma, quote or line break). A field that
/// a spreadsheet would run as a formula is prefixed with `'`.
pub fn csv_field(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = if v.is_string() && text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The CSV line of one result of the bucket `[start, end)`.
pub fn csv_line(start: &str, end: &str, result: &Value, columns: &[&str]) -> String {
    let mut fields = vec![start.to_owned(), end.to_owned()];
    for col in columns {
        let pointer = format!("/{}", col.replace('.', "/"));
        fields.push(csv_field(result.pointer(&pointer).unwrap_or(&Value::Null)));
    }
    let mut line = fields.join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field(&json!("a,b")), "\"a,b\"");
        assert_eq!(csv_field(&json!("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field(&json!("=HYPERLINK(1)")), "'=HYPERLINK(1)");
        assert_eq!(csv_field(&json!("-1")), "'-1");
        assert_eq!(csv_field(&json!(12)), "12");
        assert_eq!(csv_field(&Value::Null), "");
    }
}
