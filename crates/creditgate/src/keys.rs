//! `creditgate keys …`: create (the secret is shown once), list, limit, disable, revoke — through
//! the accounts service (`members`), like `/v1/organizations/api_keys`, so every change is
//! checked the same way and audited with the actor `operator`.

use clap::{Args, Subcommand};
use creditgate_core::accounts::{Actor, KeyLimits, SpendCaps};
use creditgate_core::clock::{Clock, SystemClock, Timestamp};
use creditgate_core::ids::{ApiKeyId, OrganizationId};
use creditgate_core::keys::{ApiKeyRecord, ApiKeySecret, KeyStatus};
use creditgate_core::ledger::LedgerStore;
use creditgate_core::money::NanoCredits;
use creditgate_gateway::members::{self, Change, KeyUpdate};
use creditgate_storage::Database;
use serde_json::json;

use crate::org::fail;
use crate::output::emit;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

/// A key's limits, as flags (the `limits` object of the HTTP API). Absent flags: no limit.
#[derive(Debug, Args, Default)]
pub struct LimitFlags {
    /// Models the key may use, comma-separated (default: every model).
    #[arg(long, value_delimiter = ',')]
    allowed_models: Option<Vec<String>>,
    #[arg(long)]
    requests_per_minute: Option<u64>,
    /// Tokens per minute (input, cache writes and reads, output).
    #[arg(long)]
    tokens_per_minute: Option<u64>,
    /// Spend caps in credits, as exact decimals: per UTC day, week (from Monday), month, total.
    #[arg(long)]
    daily_spend: Option<String>,
    #[arg(long)]
    weekly_spend: Option<String>,
    #[arg(long)]
    monthly_spend: Option<String>,
    #[arg(long)]
    total_spend: Option<String>,
}

impl LimitFlags {
    fn is_empty(&self) -> bool {
        self.allowed_models.is_none()
            && self.requests_per_minute.is_none()
            && self.tokens_per_minute.is_none()
            && self.spend_flags().iter().all(|(_, v)| v.is_none())
    }

    fn spend_flags(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("--daily-spend", &self.daily_spend),
            ("--weekly-spend", &self.weekly_spend),
            ("--monthly-spend", &self.monthly_spend),
            ("--total-spend", &self.total_spend),
        ]
    }

    fn limits(&self) -> anyhow::Result<KeyLimits> {
        let mut caps = [None; 4];
        for (slot, (flag, text)) in caps.iter_mut().zip(self.spend_flags()) {
            *slot = text
                .as_deref()
                .map(|t| t.parse::<NanoCredits>())
                .transpose()
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
        }
        let [daily, weekly, monthly, total] = caps;
        Ok(KeyLimits {
            allowed_models: self.allowed_models.clone(),
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            spend: SpendCaps {
                daily,
                weekly,
                monthly,
                total,
            },
        })
    }
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once and never again.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "default")]
        name: String,
        /// Expiry as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        limits: LimitFlags,
    },
    /// List keys (prefix and last four characters only).
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Replace a key's limits by those given (`--none` removes them all).
    Limit {
        id: String,
        #[command(flatten)]
        limits: LimitFlags,
        /// Remove every limit.
        #[arg(long, conflicts_with_all = ["allowed_models", "requests_per_minute",
            "tokens_per_minute", "daily_spend", "weekly_spend", "monthly_spend", "total_spend"])]
        none: bool,
    },
    /// Stop a key from being accepted (reversible with `enable`).
    Disable { id: String },
    /// Accept a disabled key again.
    Enable { id: String },
    /// Revoke a key for good.
    Revoke { id: String },
}

/// A change made from the command line: by the operator, from no address.
fn change(db: &Database) -> Change<'_> {
    Change::new(db, Actor::operator(), None, SystemClock.now())
}

/// Creates a key for `org` through the accounts service (audited); returns its record and the
/// secret (to show once).
pub async fn create_key(
    db: &Database,
    org: &OrganizationId,
    name: &str,
    expires_at: Option<Timestamp>,
    limits: KeyLimits,
) -> anyhow::Result<(ApiKeyRecord, ApiKeySecret)> {
    db.organization(org)
        .await
        .map_err(|_| anyhow::anyhow!("no organization {org}"))?;
    members::create_api_key(&change(db), org, name, limits, expires_at)
        .await
        .map_err(fail)
}

fn key_json(k: &ApiKeyRecord) -> serde_json::Value {
    json!({
        "id": k.id,
        "organization_id": k.org,
        "name": k.name,
        "hint": k.hint.to_string(),
        "status": k.status,
        "created_at": k.created_at.to_rfc3339(),
        "expires_at": k.expires_at.map(|t| t.to_rfc3339()),
        "limits": k.limits,
    })
}

pub async fn run(db: &Database, args: KeysArgs, as_json: bool) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Create {
            org,
            name,
            expires,
            limits,
        } => create(db, &org, &name, expires, &limits, as_json).await?,
        KeysCommand::List { org } => {
            let org = org.map(|o| OrganizationId::parse(&o)).transpose()?;
            let keys = db.api_keys(org.as_ref()).await?;
            let value = json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()});
            emit(as_json, &value, || {
                if keys.is_empty() {
                    return "no keys".to_owned();
                }
                keys.iter()
                    .map(|k| {
                        let status = k.status.as_str();
                        format!("{}  {}  {status}  {}  {}", k.id, k.org, k.hint, k.name)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::Limit { id, limits, none } => {
            if limits.is_empty() && !none {
                anyhow::bail!("give the new limits (e.g. --daily-spend 10), or --none");
            }
            let update = KeyUpdate {
                limits: Some(limits.limits()?),
                ..KeyUpdate::default()
            };
            let key = update_key(db, &id, update).await?;
            emit(as_json, &key_json(&key), || {
                format!("{}: limits {}", key.id, json!(key.limits))
            });
        }
        KeysCommand::Disable { id } => set_status(db, &id, KeyStatus::Disabled, as_json).await?,
        KeysCommand::Enable { id } => set_status(db, &id, KeyStatus::Active, as_json).await?,
        KeysCommand::Revoke { id } => set_status(db, &id, KeyStatus::Revoked, as_json).await?,
    }
    Ok(())
}

async fn create(
    db: &Database,
    org: &str,
    name: &str,
    expires: Option<String>,
    limits: &LimitFlags,
    as_json: bool,
) -> anyhow::Result<()> {
    let org = OrganizationId::parse(org)?;
    let expires_at = match expires {
        Some(text) => Some(
            Timestamp::parse_rfc3339(&text)
                .ok_or_else(|| anyhow::anyhow!("--expires: expected YYYY-MM-DD, got {text:?}"))?,
        ),
        None => None,
    };
    let (key, secret) = create_key(db, &org, name, expires_at, limits.limits()?).await?;
    let mut value = key_json(&key);
    value["secret"] = json!(secret.expose());
    emit(as_json, &value, || {
        format!(
            "Created key {} ({}) for {}\nSecret (shown once, store it now): {}",
            key.id,
            key.name,
            key.org,
            secret.expose()
        )
    });
    Ok(())
}

/// Changes a key, found by its id alone, through the accounts service.
async fn update_key(db: &Database, id: &str, update: KeyUpdate) -> anyhow::Result<ApiKeyRecord> {
    let id = ApiKeyId::parse(id)?;
    let org = db
        .api_keys(None)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .map(|k| k.org)
        .ok_or_else(|| anyhow::anyhow!("no key {id}"))?;
    members::update_api_key(&change(db), &org, &id, update)
        .await
        .map_err(fail)
}

async fn set_status(
    db: &Database,
    id: &str,
    status: KeyStatus,
    as_json: bool,
) -> anyhow::Result<()> {
    let update = KeyUpdate {
        status: Some(status),
        ..KeyUpdate::default()
    };
    let key = update_key(db, id, update).await?;
    emit(as_json, &key_json(&key), || {
        format!("{} is now {}", key.id, key.status.as_str())
    });
    Ok(())
}
