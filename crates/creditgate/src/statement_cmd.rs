//! `creditgate statement --org ID`: an organization's statement of account for a period, as the
//! route `GET /v1/billing/statement` answers it (text, `--json` or `--csv`).

use anyhow::Context;
use clap::Args;
use creditgate_core::ids::OrganizationId;
use creditgate_core::statement::date;
use creditgate_gateway::statements::{to_csv, to_json, Period};
use creditgate_storage::Database;

use crate::output::emit;

#[derive(Debug, Args)]
pub struct StatementArgs {
    /// The organization.
    #[arg(long)]
    org: String,
    /// Start of the period (RFC 3339 UTC, or a date); default the current month's first day.
    #[arg(long)]
    starting_at: Option<String>,
    /// End of the period (exclusive); default a month after its start.
    #[arg(long)]
    ending_at: Option<String>,
    /// Print CSV: a header, the opening balance, one row per line, the closing balance.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
}

pub async fn run(db: &Database, args: StatementArgs, as_json: bool) -> anyhow::Result<()> {
    let org = OrganizationId::parse(&args.org).with_context(|| format!("--org {:?}", args.org))?;
    let period = Period::parse(
        args.starting_at.as_deref(),
        args.ending_at.as_deref(),
        db.now(),
    )
    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let s = db
        .statement(&org, period.starting_at, period.ending_at)
        .await?;
    if args.csv {
        print!("{}", to_csv(&s));
        return Ok(());
    }
    emit(as_json, &to_json(&org, &s), || {
        let mut out = format!(
            "{} to {}\nopening balance {}\n",
            s.starting_at.to_rfc3339(),
            s.ending_at.to_rfc3339(),
            s.opening_balance
        );
        for l in &s.lines {
            out.push_str(&format!(
                "{}  {:<10}  {:>20}  balance {:>20}  {}\n",
                date(l.at),
                l.kind.as_str(),
                l.credits.to_string(),
                l.balance_after.to_string(),
                l.reference
            ));
        }
        out.push_str(&format!("closing balance {}", s.closing_balance));
        out
    });
    Ok(())
}
