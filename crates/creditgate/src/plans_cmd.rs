//! `creditgate plans …`, `creditgate orders list` and `creditgate payments record`: the
//! operator's plans, the orders, and payments taken outside any provider.

use clap::{Args, Subcommand};
use creditgate_core::accounts::Actor;
use creditgate_core::ids::OrganizationId;
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::{OrderStatus, Plan, Provider, CURRENCY};
use creditgate_gateway::payments::{order_json, ManualPayment, Payments};
use creditgate_storage::payments::OrderFilter;
use creditgate_storage::Database;
use serde_json::json;

use crate::output::emit;

#[derive(Debug, Args)]
pub struct PlansArgs {
    #[command(subcommand)]
    command: PlansCommand,
}

#[derive(Debug, Subcommand)]
enum PlansCommand {
    /// List the plans (archived ones with `--all`).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Add a plan: `--id team --name "Team pack" --credits 50000 --amount-cents 24000`.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Whole credits.
        #[arg(long)]
        credits: String,
        #[arg(long)]
        amount_cents: i64,
        /// Days until the credits expire; none when omitted.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Stop selling a plan (open checkouts keep their price).
    Archive {
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct OrdersArgs {
    #[command(subcommand)]
    command: OrdersCommand,
}

#[derive(Debug, Subcommand)]
enum OrdersCommand {
    /// Orders, newest first.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Debug, Args)]
pub struct PaymentsArgs {
    #[command(subcommand)]
    command: PaymentsCommand,
}

#[derive(Debug, Subcommand)]
enum PaymentsCommand {
    /// Record a payment taken outside any provider and credit it (idempotent on
    /// method + reference).
    Record {
        #[arg(long)]
        org: String,
        /// `crypto`, `bank_transfer`, `chat` or `other`.
        #[arg(long)]
        method: String,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        amount_cents: i64,
        #[arg(long, conflicts_with = "credits")]
        plan: Option<String>,
        /// Whole credits, when not a plan.
        #[arg(long)]
        credits: Option<String>,
    },
}

fn plan_json(p: &Plan) -> serde_json::Value {
    json!({"id": p.id, "type": "plan", "name": p.name, "credits": p.credits,
        "amount_cents": p.amount_cents, "currency": p.currency,
        "expires_in_days": p.expires_in_days, "archived": p.archived})
}

pub async fn plans(db: &Database, args: PlansArgs, as_json: bool) -> anyhow::Result<()> {
    match args.command {
        PlansCommand::List { all } => {
            let plans = db.plans(all).await?;
            let value = json!({"data": plans.iter().map(plan_json).collect::<Vec<_>>()});
            emit(as_json, &value, || {
                plans
                    .iter()
                    .map(|p| {
                        format!(
                            "{}  {} credits  {} cents{}",
                            p.id,
                            p.credits,
                            p.amount_cents,
                            if p.archived { "  (archived)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PlansCommand::Add {
            id,
            name,
            credits,
            amount_cents,
            expires_in_days,
        } => {
            let credits: NanoCredits = credits
                .parse()
                .map_err(|e| anyhow::anyhow!("--credits: {e}"))?;
            let plan = Plan {
                id,
                name,
                credits,
                amount_cents,
                currency: CURRENCY.to_owned(),
                expires_in_days,
                archived: false,
            };
            plan.validate()?;
            if !db.create_plan(&plan).await? {
                anyhow::bail!("plan {} already exists", plan.id);
            }
            emit(as_json, &plan_json(&plan), || {
                format!("added plan {}", plan.id)
            });
        }
        PlansCommand::Archive { id } => {
            let mut plan = db
                .plan(&id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("there is no plan {id}"))?;
            plan.archived = true;
            db.update_plan(&plan).await?;
            emit(as_json, &plan_json(&plan), || format!("archived plan {id}"));
        }
    }
    Ok(())
}

pub async fn orders(db: &Database, args: OrdersArgs, as_json: bool) -> anyhow::Result<()> {
    let OrdersCommand::List { org, status, limit } = args.command;
    let filter = OrderFilter {
        org: org.map(|o| OrganizationId::parse(&o)).transpose()?,
        status: status
            .map(|s| OrderStatus::parse(&s).ok_or_else(|| anyhow::anyhow!("--status: {s}?")))
            .transpose()?,
        provider: None,
        limit,
    };
    let orders = db.orders(&filter).await?;
    let value = json!({"data": orders.iter().map(|o| order_json(o, "")).collect::<Vec<_>>()});
    emit(as_json, &value, || {
        orders
            .iter()
            .map(|o| {
                format!(
                    "{}  {}  {}  {} credits  {} cents  {}",
                    o.id,
                    o.org,
                    o.status.as_str(),
                    o.credits,
                    o.amount_cents,
                    o.provider.as_str()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

pub async fn payments(db: &Database, args: PaymentsArgs, as_json: bool) -> anyhow::Result<()> {
    let PaymentsCommand::Record {
        org,
        method,
        reference,
        amount_cents,
        plan,
        credits,
    } = args.command;
    let org = OrganizationId::parse(&org).map_err(|e| anyhow::anyhow!("--org: {e}"))?;
    let payment = ManualPayment {
        method,
        reference,
        amount_cents,
        currency: CURRENCY.to_owned(),
        plan_id: plan,
        credits,
    };
    // The CLI reads no config file: tax rates come from CREDITGATE_TAX_RATES (`docs/tax.md`).
    let tax = creditgate_gateway::config::Config::load(None, |k| std::env::var(k).ok())?
        .payments
        .tax;
    let (order, created) =
        Payments::record_manual_in(db, (None, &tax), &org, payment, &Actor::operator())
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    debug_assert_eq!(order.provider, Provider::Manual);
    let mut value = order_json(&order, "");
    value["recorded_now"] = json!(created);
    emit(as_json, &value, || {
        format!(
            "{} order {} credited {} credits, receipt {}",
            if created {
                "recorded"
            } else {
                "already recorded:"
            },
            order.id,
            order.credits,
            order.receipt_number.as_deref().unwrap_or("-")
        )
    });
    Ok(())
}
