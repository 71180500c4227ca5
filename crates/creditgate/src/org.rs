//! `creditgate org …`: create, list and search organizations, suspend and resume them, grant
//! credits, set their credit line, issue admin keys, set their gateway policy, read the audit log — through the same
//! accounts service as the operator API (`/admin/v1/*`), so every change is audited.

use clap::{Args, Subcommand};
use creditgate_core::accounts::{parse_name, Actor, Email};
use creditgate_core::clock::{Clock, SystemClock};
use creditgate_core::ids::OrganizationId;
use creditgate_core::ledger::{LotCategory, Organization};
use creditgate_core::money::NanoCredits;
use creditgate_core::usage::DisconnectPolicy;
use creditgate_gateway::billing::{self, Expiry, GrantKey, GrantOrder};
use creditgate_gateway::config::Config;
use creditgate_gateway::mail::Mailer;
use creditgate_gateway::members::{self, Change};
use creditgate_gateway::organization_api::{admin_key_json, audit_json};
use creditgate_storage::Database;
use serde_json::{json, Value};

use crate::output::emit;

/// Most organizations `org list` prints.
const MAX_LISTED: i64 = 10_000;

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(subcommand)]
    command: OrgCommand,
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organization (a customer account).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Id to use (1-128 of A-Z a-z 0-9 _ - . :); generated as `org_…` when omitted.
        #[arg(long)]
        id: Option<String>,
        /// Invite this email as the owner (mailed over SMTP, or written to the outbox
        /// directory: `CREDITGATE_SMTP_URL`, `CREDITGATE_OUTBOX_DIR`, `CREDITGATE_PUBLIC_URL`).
        #[arg(long)]
        owner_email: Option<String>,
    },
    /// Rename an organization.
    Rename {
        org: String,
        #[arg(long)]
        name: String,
    },
    /// Invite the owner of an organization that has none (created without one, or whose
    /// owner's invitation expired); a pending owner invitation is withdrawn first.
    InviteOwner {
        org: String,
        #[arg(long)]
        email: String,
    },
    /// List organizations, or those whose id or name contains `--search`.
    List {
        #[arg(long)]
        search: Option<String>,
    },
    /// Suspend an organization: its API keys get 403 until it is resumed.
    Suspend { org: String },
    /// Resume a suspended organization.
    Resume { org: String },
    /// Grant credits as a new lot, idempotent on `--reference`.
    Grant {
        org: String,
        /// Credits, as an exact decimal.
        #[arg(long)]
        amount: String,
        /// `granted` (promotion) or `paid`.
        #[arg(long, default_value = "granted")]
        category: String,
        #[arg(long)]
        expires_in_days: Option<i64>,
        /// Idempotency key: the same reference never grants twice.
        #[arg(long)]
        reference: String,
        #[arg(long)]
        memo: Option<String>,
    },
    /// Create an organization admin key (`sk-cg-admin-…`); its secret is printed once.
    AdminKey {
        org: String,
        #[arg(long, default_value = "automation")]
        name: String,
    },
    /// The audit log, newest first (of one organization with `--org`).
    Audit {
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Choose what happens to a stream whose client disconnects: `drain` (keep reading the
    /// upstream, charge the exact usage), `cancel` (stop it, charge exact input and estimated
    /// output) or `default` (the operator's `billing.disconnect_policy`). Running gateways apply
    /// it to new requests within seconds.
    SetPolicy {
        #[arg(long)]
        org: String,
        #[arg(long, value_parser = ["drain", "cancel", "default"])]
        disconnect: String,
    },
    /// Set how an organization pays (`docs/credit-lines.md`): `--mode invoiced` with a
    /// `--limit` in credits lets its requests spend past zero up to the limit, billed by a
    /// monthly invoice; `--mode prepaid` ends the line (its limit becomes 0).
    CreditLine {
        org: String,
        #[arg(long, value_parser = ["prepaid", "invoiced"])]
        mode: Option<String>,
        /// Credits, as an exact decimal (>= 0).
        #[arg(long)]
        limit: Option<String>,
    },
}

fn org_json(org: &Organization) -> Value {
    json!({
        "id": org.id,
        "name": org.name,
        "created_at": org.created_at.to_rfc3339(),
    })
}

fn org_id(text: &str) -> anyhow::Result<OrganizationId> {
    OrganizationId::parse(text).map_err(|e| anyhow::anyhow!("organization: {e}"))
}

/// The service's errors carry Anthropic's envelope; the CLI prints their message.
pub(crate) fn fail(e: creditgate_gateway::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}

pub async fn run(db: &Database, args: OrgArgs, as_json: bool) -> anyhow::Result<()> {
    let change = Change::new(db, Actor::operator(), None, SystemClock.now());
    match args.command {
        OrgCommand::Create {
            name,
            id,
            owner_email,
        } => create(&change, &name, id, owner_email, as_json).await?,
        OrgCommand::List { search } => list(db, search.as_deref(), as_json).await?,
        OrgCommand::Rename { org, name } => {
            let org = org_id(&org)?;
            members::rename_organization(&change, &org, &name)
                .await
                .map_err(fail)?;
            emit(as_json, &json!({"id": org, "name": name}), || {
                format!("{org}: renamed to {name}")
            });
        }
        OrgCommand::InviteOwner { org, email } => {
            invite_owner(&change, &org, &email, as_json).await?
        }
        OrgCommand::Suspend { org } => suspend(&change, &org, true, as_json).await?,
        OrgCommand::Resume { org } => suspend(&change, &org, false, as_json).await?,
        OrgCommand::Grant {
            org,
            amount,
            category,
            expires_in_days,
            reference,
            memo,
        } => {
            let org = org_id(&org)?;
            let amount: NanoCredits = amount
                .parse()
                .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
            let category = LotCategory::parse(&category)
                .ok_or_else(|| anyhow::anyhow!("--category must be granted or paid"))?;
            let order = GrantOrder {
                amount,
                category,
                source: None,
                price_per_credit: None,
                expiry: expires_in_days.map_or(Expiry::Never, Expiry::InDays),
                memo,
                key: GrantKey::Reference(reference),
            };
            grant(&change, &org, order, as_json).await?
        }
        OrgCommand::AdminKey { org, name } => admin_key(&change, &org, &name, as_json).await?,
        OrgCommand::Audit { org, limit } => audit(db, org.as_deref(), limit, as_json).await?,
        OrgCommand::SetPolicy { org, disconnect } => {
            set_policy(&change, &org, &disconnect, as_json).await?
        }
        OrgCommand::CreditLine { org, mode, limit } => {
            credit_line(&change, &org, mode.as_deref(), limit, as_json).await?
        }
    }
    Ok(())
}

/// `org list`: organizations whose id or name contains `search`.
async fn list(db: &Database, search: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let orgs = db
        .search_organizations(search.unwrap_or(""), MAX_LISTED)
        .await?;
    let value = json!({"organizations": orgs.iter().map(org_json).collect::<Vec<_>>()});
    emit(as_json, &value, || {
        if orgs.is_empty() {
            return "no organizations".to_owned();
        }
        orgs.iter()
            .map(|o| format!("{}  {}  {}", o.id, o.created_at, o.name))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `org grant`: through the billing service, idempotent on the reference.
async fn grant(
    change: &Change<'_>,
    org: &OrganizationId,
    order: GrantOrder,
    as_json: bool,
) -> anyhow::Result<()> {
    let grant = billing::grant(change, org, order).await.map_err(fail)?;
    let (g, replayed) = (grant.granted, grant.replayed);
    let value = json!({"lot": crate::output::lot_json(&g.lot), "replayed": replayed});
    emit(as_json, &value, || {
        let again = if replayed {
            " (already granted: nothing changed)"
        } else {
            ""
        };
        format!(
            "Granted {} credits to {org} as {}{again}",
            g.lot.amount, g.lot.id
        )
    });
    Ok(())
}

/// `org set-policy`: `drain`, `cancel` or `default` (the operator's).
async fn set_policy(
    change: &Change<'_>,
    org: &str,
    disconnect: &str,
    as_json: bool,
) -> anyhow::Result<()> {
    let org = org_id(org)?;
    let text = (disconnect != "default").then_some(disconnect);
    let policy = billing::parse_policy(text).map_err(fail)?;
    billing::set_disconnect_policy(change, &org, policy)
        .await
        .map_err(fail)?;
    let policy = policy.map(DisconnectPolicy::as_str);
    let value = json!({"id": org, "disconnect_policy": policy});
    emit(as_json, &value, || {
        format!("{org}: disconnect policy {}", policy.unwrap_or("default"))
    });
    Ok(())
}

/// `org credit-line`: through the billing service, as `POST /admin/v1/organizations/{id}`
/// `{"billing_mode","credit_limit"}`.
async fn credit_line(
    change: &Change<'_>,
    org: &str,
    mode: Option<&str>,
    limit: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    let org = org_id(org)?;
    if mode.is_none() && limit.is_none() {
        anyhow::bail!("give --mode, --limit or both");
    }
    let mode = mode
        .map(billing::parse_billing_mode)
        .transpose()
        .map_err(fail)?;
    let limit = limit
        .map(|l| billing::parse_credit_limit(&Value::String(l)))
        .transpose()
        .map_err(fail)?;
    let line = billing::next_credit_line(change, &org, mode, limit)
        .await
        .map_err(fail)?;
    billing::set_credit_line(change, &org, line)
        .await
        .map_err(fail)?;
    let value = json!({"id": org, "billing_mode": line.mode.as_str(), "credit_limit": line.limit});
    emit(as_json, &value, || {
        format!(
            "{org}: {} with a credit limit of {}",
            line.mode.as_str(),
            line.limit
        )
    });
    Ok(())
}

/// `org create`: through the accounts service, so the owner (if any) gets an invitation.
async fn create(
    change: &Change<'_>,
    name: &str,
    id: Option<String>,
    owner_email: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    parse_name("--name", name)?;
    let id = id.as_deref().map(org_id).transpose()?;
    let email = owner_email.as_deref().map(Email::parse).transpose()?;
    let (mailer, public_url) = mailer()?;
    let owner = email.as_ref().map(|e| (e, &mailer, public_url.as_str()));
    let org = members::create_organization(change, id, name, owner)
        .await
        .map_err(fail)?;
    emit(as_json, &org_json(&org), || {
        format!("Created organization {} ({})", org.id, org.name)
    });
    Ok(())
}

/// Where the CLI's email goes, and the base of its links: `CREDITGATE_SMTP_URL`, else
/// `CREDITGATE_OUTBOX_DIR`, with links under `CREDITGATE_PUBLIC_URL`.
fn mailer() -> anyhow::Result<(Mailer, String)> {
    let cfg = Config::load(None, |k| std::env::var(k).ok())?;
    Ok((Mailer::from_config(&cfg.accounts)?, cfg.accounts.public_url))
}

/// `org invite-owner`: through the same service as `POST /admin/v1/organizations/{id}`
/// `{"owner_email"}`.
async fn invite_owner(
    change: &Change<'_>,
    org: &str,
    email: &str,
    as_json: bool,
) -> anyhow::Result<()> {
    let org = org_id(org)?;
    let email = Email::parse(email)?;
    let (mailer, public_url) = mailer()?;
    let invite = members::invite_owner(change, &org, &email, &mailer, &public_url)
        .await
        .map_err(fail)?;
    let value = json!({"id": invite.id, "organization_id": org, "email": email,
        "role": "owner", "expires_at": invite.expires_at.to_rfc3339()});
    emit(as_json, &value, || {
        format!("Invited {email} to own {org} (invitation {})", invite.id)
    });
    Ok(())
}

/// `org admin-key`: a new organization admin key, its secret shown once.
async fn admin_key(
    change: &Change<'_>,
    org: &str,
    name: &str,
    as_json: bool,
) -> anyhow::Result<()> {
    let org = org_id(org)?;
    let (key, secret) = members::create_admin_key(change, &org, name)
        .await
        .map_err(fail)?;
    let mut value = admin_key_json(&key);
    value["secret"] = json!(secret.expose());
    emit(as_json, &value, || {
        format!(
            "Admin key {} for {org} (shown once):\n{}",
            key.id,
            secret.expose()
        )
    });
    Ok(())
}

/// `org audit`: the audit log, of one organization or of all.
async fn audit(db: &Database, org: Option<&str>, limit: i64, as_json: bool) -> anyhow::Result<()> {
    let org = org.map(org_id).transpose()?;
    let events = db
        .audit_log(org.as_ref(), None, limit.clamp(1, 10_000))
        .await?;
    let value = json!({"data": events.iter().map(audit_json).collect::<Vec<_>>()});
    emit(as_json, &value, || {
        events
            .iter()
            .map(|e| {
                format!(
                    "{}  {}  {} {}  {}:{}",
                    e.at,
                    e.org.as_deref().unwrap_or("-"),
                    e.actor.kind,
                    e.actor.id.as_deref().unwrap_or(""),
                    e.action,
                    e.target_id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn suspend(
    change: &Change<'_>,
    org: &str,
    suspended: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let org = org_id(org)?;
    members::set_suspended(change, &org, suspended)
        .await
        .map_err(fail)?;
    let status = if suspended { "suspended" } else { "active" };
    emit(as_json, &json!({"id": org, "status": status}), || {
        format!("{org}: {status}")
    });
    Ok(())
}
