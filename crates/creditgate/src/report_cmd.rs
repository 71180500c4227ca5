//! `creditgate report usage|cost|cache`: the reports of `/v1/organizations/*` (one organization,
//! `--org`) or of `/admin/v1/reports/*` (every organization, `--all`), over a whole window, as
//! text, one JSON object (`--json`) or CSV (`--csv`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use creditgate_core::ids::OrganizationId;
use creditgate_gateway::config::Config;
use creditgate_gateway::reports::{build, csv_chunks, page_json, ReportKind, ReportQuery, Scope};
use creditgate_storage::Database;
use serde_json::Value;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Usage,
    Cost,
    Cache,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Which report: usage (tokens, requests, credits), cost (USD cents, credits, list price),
    /// cache (writes, reads, credits saved, credits of writes never read).
    #[arg(value_enum)]
    kind: Kind,
    /// The organization; `--all` for every organization (the operator's view).
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    org: Option<String>,
    #[arg(long)]
    all: bool,
    /// Start of the window (RFC 3339 UTC, or a date); snapped to its bucket.
    #[arg(long)]
    starting_at: String,
    /// End of the window (exclusive); default now, at most the width's largest window.
    #[arg(long)]
    ending_at: Option<String>,
    /// 1m, 1h or 1d (default 1d; the cost report is daily only).
    #[arg(long)]
    bucket_width: Option<String>,
    /// Group by a dimension (repeatable): api_key_id, model, service_tier, context_window,
    /// inference_geo, speed, description (cost), organization_id (with --all).
    #[arg(long)]
    group_by: Vec<String>,
    /// Only these API key ids (repeatable).
    #[arg(long)]
    api_key_id: Vec<String>,
    /// Only these models (repeatable).
    #[arg(long)]
    model: Vec<String>,
    /// Print CSV (a header row, one row per bucket and result) instead of text.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// The gateway's config, for the credit unit's USD value (cost amounts).
    #[arg(long, env = "CREDITGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// The query string the HTTP routes would receive for these arguments.
fn query_string(args: &ReportArgs) -> String {
    let mut q = form_pairs(&[("starting_at", args.starting_at.as_str())]);
    let mut push = |name: &str, value: &str| {
        q.push('&');
        q.push_str(&form_pairs(&[(name, value)]));
    };
    if let Some(end) = &args.ending_at {
        push("ending_at", end);
    }
    if let Some(width) = &args.bucket_width {
        push("bucket_width", width);
    }
    for g in &args.group_by {
        push("group_by[]", g);
    }
    for k in &args.api_key_id {
        push("api_key_ids[]", k);
    }
    for m in &args.model {
        push("models[]", m);
    }
    q
}

fn form_pairs(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub async fn run(db: &Database, args: ReportArgs, as_json: bool) -> anyhow::Result<()> {
    let kind = match args.kind {
        Kind::Usage => ReportKind::Usage,
        Kind::Cost => ReportKind::Cost,
        Kind::Cache => ReportKind::Cache,
    };
    let scope = match &args.org {
        Some(org) => Scope::Organization(
            OrganizationId::parse(org).with_context(|| format!("--org {org:?}"))?,
        ),
        None => Scope::Operator,
    };
    let cfg = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?;
    let now = db.now();
    let operator = scope == Scope::Operator;
    let q = ReportQuery::parse(kind, &query_string(&args), None, operator, now)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let fail = |e: creditgate_gateway::error::ApiError| anyhow::anyhow!("{}", e.message);
    let page = build(db, &scope, &q, q.start, usize::MAX, now)
        .await
        .map_err(fail)?;
    let unit = &cfg.credit_unit;
    if args.csv {
        for chunk in csv_chunks(&q, &page, unit, operator).map_err(fail)? {
            print!("{chunk}");
        }
        return Ok(());
    }
    let json = page_json(&q, &page, unit, operator, None).map_err(fail)?;
    if as_json {
        println!("{json}");
    } else {
        print!("{}", text(kind, &json));
    }
    Ok(())
}

/// One line per bucket and result: the bucket, its grouped dimensions, and the report's main
/// numbers.
fn text(kind: ReportKind, report: &Value) -> String {
    let mut out = String::new();
    for bucket in report["data"].as_array().into_iter().flatten() {
        let start = bucket["starting_at"].as_str().unwrap_or("");
        for r in bucket["results"].as_array().into_iter().flatten() {
            let dims: Vec<String> = [
                "organization_id",
                "api_key_id",
                "model",
                "service_tier",
                "context_window",
                "inference_geo",
                "speed",
                "description",
            ]
            .iter()
            .filter_map(|d| r[*d].as_str().map(|v| format!("{d}={v}")))
            .collect();
            let numbers = match kind {
                ReportKind::Usage => format!(
                    "{} requests, {} input, {} output, {} cache read tokens, {} credits",
                    r["requests"],
                    r["uncached_input_tokens"],
                    r["output_tokens"],
                    r["cache_read_input_tokens"],
                    str_of(&r["credits"])
                ),
                ReportKind::Cost => format!(
                    "{} cents (list {}), {} credits",
                    str_of(&r["amount"]),
                    str_of(&r["list_amount"]),
                    str_of(&r["credits"])
                ),
                ReportKind::Cache => format!(
                    "{} credits, {} saved by reads, {} on writes never read",
                    str_of(&r["credits"]["total"]),
                    str_of(&r["saved_by_reads"]),
                    str_of(&r["unread_writes"]["total"])
                ),
            };
            out.push_str(&format!("{start}  {}  {numbers}\n", dims.join(" ")));
        }
    }
    if out.is_empty() {
        out.push_str("no usage in this window\n");
    }
    out
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}
