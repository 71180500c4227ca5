//! `creditgate credits …`: grant credits as a new lot, show an organization's balance.

use clap::{Args, Subcommand};
use creditgate_core::accounts::Actor;
use creditgate_core::clock::{Clock, SystemClock, Timestamp};
use creditgate_core::ids::{LotId, OrganizationId, TransferId};
use creditgate_core::ledger::{LedgerStore, LotCategory, LotSource};
use creditgate_core::money::{Decimal, NanoCredits};
use creditgate_gateway::billing::{self, Expiry, Grant, GrantKey, GrantOrder};
use creditgate_gateway::members::Change;
use creditgate_storage::Database;
use serde_json::json;

use crate::output::{emit, generated_id, lot_json};

#[derive(Debug, Args)]
pub struct CreditsArgs {
    #[command(subcommand)]
    command: CreditsCommand,
}

#[derive(Debug, Subcommand)]
enum CreditsCommand {
    /// Add credits to an organization as a new lot. Repays unpaid overrun first.
    Grant(Box<GrantArgs>),
    /// Show an organization's balance, holds and spendable lots.
    Show {
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Args)]
struct GrantArgs {
    #[arg(long)]
    org: String,
    /// Credits, as an exact decimal (`12.5`, `0.000000001`).
    #[arg(long, allow_hyphen_values = true)]
    amount: String,
    /// `paid` or `granted` (granted credits are drawn first among lots expiring together).
    #[arg(long, default_value = "granted")]
    category: String,
    /// `purchase`, `auto_reload`, `promotion`, `manual` or `refund_credit`.
    #[arg(long, default_value = "manual")]
    source: String,
    /// Expiry date, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
    #[arg(long, conflicts_with = "expires_in")]
    expires: Option<String>,
    /// Expiry from now: `365d`, `12h`, `30m` or `90s`.
    #[arg(long)]
    expires_in: Option<String>,
    /// USD paid per credit for this lot, as an exact decimal (`0.005`).
    #[arg(long, allow_hyphen_values = true)]
    price_per_credit: Option<String>,
    /// Idempotency key: repeating the command with the same id and content changes nothing.
    /// Generated when omitted.
    #[arg(long)]
    transfer_id: Option<String>,
    /// Id of the new lot; `lot_<transfer id>` when omitted.
    #[arg(long)]
    lot_id: Option<String>,
    /// Free-text note stored with the transfer.
    #[arg(long)]
    memo: Option<String>,
}

pub async fn run(db: &Database, args: CreditsArgs, as_json: bool) -> anyhow::Result<()> {
    match args.command {
        CreditsCommand::Grant(args) => grant(db, *args, as_json).await,
        CreditsCommand::Show { org } => show(db, &org, as_json).await,
    }
}

async fn grant(db: &Database, args: GrantArgs, as_json: bool) -> anyhow::Result<()> {
    let org = OrganizationId::parse(&args.org).map_err(|e| anyhow::anyhow!("--org: {e}"))?;
    let now = SystemClock.now();
    let order = grant_order(args, now)?;
    let change = Change::new(db, Actor::operator(), None, now);
    let Grant {
        transfer_id,
        granted,
        ..
    } = billing::grant(&change, &org, order)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let value = json!({
        "transfer_id": transfer_id,
        "organization_id": org,
        "lot": lot_json(&granted.lot),
        "repaid_overrun": granted.repaid_overrun,
    });
    emit(as_json, &value, || {
        let mut text = format!(
            "Granted {} credits to {} as lot {} ({}, {})",
            granted.lot.amount,
            org,
            granted.lot.id,
            granted.lot.category.as_str(),
            granted
                .lot
                .expires_at
                .map_or("never expires".to_owned(), |t| { format!("expires {t}") })
        );
        if granted.repaid_overrun.is_positive() {
            text.push_str(&format!(
                "; {} repaid earlier overrun",
                granted.repaid_overrun
            ));
        }
        text
    });
    Ok(())
}

/// The command's flags as a grant order; the rules every grant obeys are the billing service's.
fn grant_order(args: GrantArgs, now: Timestamp) -> anyhow::Result<GrantOrder> {
    let amount: NanoCredits = args
        .amount
        .parse()
        .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
    let category = LotCategory::parse(&args.category).ok_or_else(|| {
        anyhow::anyhow!(
            "--category must be paid or granted, not {:?}",
            args.category
        )
    })?;
    let source = LotSource::parse(&args.source).ok_or_else(|| {
        anyhow::anyhow!(
            "--source must be purchase, auto_reload, promotion, manual or refund_credit, not {:?}",
            args.source
        )
    })?;
    let expiry = match (&args.expires, &args.expires_in) {
        (Some(text), _) => Expiry::At(Timestamp::parse_rfc3339(text).ok_or_else(|| {
            anyhow::anyhow!("--expires: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, got {text:?}")
        })?),
        (None, Some(text)) => Expiry::At(now.plus_millis(parse_duration_ms(text)?)),
        (None, None) => Expiry::Never,
    };
    let price_per_credit = match &args.price_per_credit {
        Some(text) => Some(
            text.parse::<Decimal>()
                .map_err(|e| anyhow::anyhow!("--price-per-credit: {e}"))?,
        ),
        None => None,
    };
    let transfer = match &args.transfer_id {
        Some(id) => TransferId::parse(id).map_err(|e| anyhow::anyhow!("--transfer-id: {e}"))?,
        None => TransferId::parse(&generated_id("grant"))?,
    };
    let lot = match &args.lot_id {
        Some(id) => Some(LotId::parse(id).map_err(|e| anyhow::anyhow!("--lot-id: {e}"))?),
        None => None,
    };
    Ok(GrantOrder {
        amount,
        category,
        source: Some(source),
        price_per_credit,
        expiry,
        memo: args.memo,
        key: GrantKey::Ids { transfer, lot },
    })
}

async fn show(db: &Database, org: &str, as_json: bool) -> anyhow::Result<()> {
    let org = OrganizationId::parse(org).map_err(|e| anyhow::anyhow!("--org: {e}"))?;
    let b = db.balance(&org).await?;
    let value = json!({
        "organization_id": b.org,
        "available": b.available,
        "posted": b.posted,
        "held": b.held,
        "debt": b.debt,
        "active_holds": b.active_holds,
        "lots": b.lots.iter().map(lot_json).collect::<Vec<_>>(),
    });
    emit(as_json, &value, || {
        let mut text = format!(
            "Organization {}\n  available  {}\n  posted     {} (unpaid overrun {})\n  held       {} ({} active holds)\n  lots (in draw order):",
            b.org, b.available, b.posted, b.debt, b.held, b.active_holds
        );
        if b.lots.is_empty() {
            text.push_str(" none");
        }
        for l in &b.lots {
            text.push_str(&format!(
                "\n    {}  {}  {}  {} of {}  {}",
                l.id,
                l.category.as_str(),
                l.source.as_str(),
                l.remaining,
                l.amount,
                l.expires_at
                    .map_or("never expires".to_owned(), |t| format!("expires {t}"))
            ));
        }
        text
    });
    Ok(())
}

/// Longest relative expiry accepted: 100 years.
const MAX_EXPIRES_IN_DAYS: i64 = 36_500;

/// Parses `365d`, `12h`, `30m`, `90s` into milliseconds.
fn parse_duration_ms(text: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("--expires-in: expected e.g. 365d, 12h, 30m or 90s, got {text:?}");
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        _ => return Err(bad()),
    };
    if n <= 0 || n.saturating_mul(unit_ms) > MAX_EXPIRES_IN_DAYS * 86_400_000 {
        anyhow::bail!("--expires-in must be positive and at most {MAX_EXPIRES_IN_DAYS}d");
    }
    Ok(n * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("365d").unwrap(), 365 * 86_400_000);
        assert_eq!(parse_duration_ms("12h").unwrap(), 12 * 3_600_000);
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        for bad in ["", "d", "0d", "-1d", "1y", "1.5d", "99999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
