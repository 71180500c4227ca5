//! `creditgate serve`, `creditgate demo` and `creditgate upstream-sim`: the long-running commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use creditgate_core::accounts::{Actor, Email, Role, User};
use creditgate_core::clock::{Clock, SystemClock};
use creditgate_core::ids::{LotId, OrganizationId, TransferId, UserId};
use creditgate_core::ledger::{GrantRequest, LedgerStore, LotCategory, LotSource};
use creditgate_core::money::NanoCredits;
use creditgate_gateway::config::Config;
use creditgate_gateway::members::{self, Change};
use creditgate_gateway::passwords::hash_password;
use creditgate_gateway::App;
use creditgate_sim::{SimConfig, Simulator};
use creditgate_storage::Database;
use serde_json::json;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); `CREDITGATE_*` variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on, overriding `listen` and `CREDITGATE_LISTEN`; port 0 picks a free
    /// port (printed on start).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Require this upstream key in `x-api-key`.
    #[arg(long)]
    api_key: Option<String>,
}

/// Credits the demo organization starts with.
const DEMO_CREDITS: i64 = 1_000;

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives right after the ready line still stops the
/// process cleanly (and the demo removes its database).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Everything `serve` checks before it opens the database or listens: the file, the
/// `CREDITGATE_*` overrides, production secrets, the price book. `config check` runs exactly this.
pub fn preflight(config: Option<&Path>, listen: Option<SocketAddr>) -> anyhow::Result<Config> {
    let mut cfg = Config::load(config, |k| std::env::var(k).ok())?;
    if let Some(addr) = listen {
        cfg.listen = addr;
    }
    cfg.check_production()?;
    creditgate_gateway::price_book(&cfg)?;
    Ok(cfg)
}

/// Binds `addr`; an address in use says which and how to pick another.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|err| {
        if err.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {addr}: the address is already in use (is another creditgate \
                 running?). Stop it, or pick another address: `--listen 127.0.0.1:0` takes a free \
                 port and prints it"
            )
        } else {
            anyhow::anyhow!("cannot listen on {addr}: {err}")
        }
    })
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = preflight(args.config.as_deref(), args.listen)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let db = Database::connect(&cfg.database_url, clock.clone())
        .await
        .with_context(|| format!("opening {}", creditgate_storage::redact(&cfg.database_url)))?;
    let listener = bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %creditgate_storage::redact(&cfg.database_url), "creditgate serving");
    eprintln!("creditgate listening on http://{addr}");
    let app = App::new(cfg, db, clock)?;
    let shutdown = shutdown_signal()?;
    creditgate_gateway::serve(app, listener, shutdown).await?;
    Ok(())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::thread_rng(), buf.as_mut_slice());
    hex::encode(buf)
}

pub async fn demo(args: DemoArgs, json_line: bool) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("creditgate-demo-{}", random_hex(6)));
    std::fs::create_dir_all(&dir)?;
    let database_url = format!("sqlite://{}", dir.join("demo.db").display());
    let result = run_demo(&args, &database_url, &dir, json_line).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// What the demo tells its user: as one JSON line (`--json`) or as text with examples.
struct Shown<'a> {
    base_url: &'a str,
    api_key: &'a str,
    api_key_id: &'a str,
    admin_key: &'a str,
    org: &'a OrganizationId,
    organization_admin_key: &'a str,
    dashboard_password: &'a str,
    outbox: &'a Path,
    database_url: &'a str,
    upstream_url: &'a str,
    order_id: &'a str,
    checkout_url: &'a str,
}

impl Shown<'_> {
    fn json(&self) -> serde_json::Value {
        json!({
            "base_url": self.base_url,
            "api_key": self.api_key,
            "api_key_id": self.api_key_id,
            "admin_key": self.admin_key,
            "organization_id": self.org,
            "organization_admin_key": self.organization_admin_key,
            "dashboard_email": DEMO_OWNER_EMAIL,
            "dashboard_password": self.dashboard_password,
            "outbox_dir": self.outbox,
            "dashboard_url": format!("{}/sign-in", self.base_url),
            "database_url": self.database_url,
            "upstream_url": self.upstream_url,
            "credit_unit": {"name": "credit", "usd": "0.005"},
            "price_multiplier": "0.70",
            "order_id": self.order_id,
            "checkout_url": self.checkout_url,
        })
    }

    fn print(&self) {
        let (base_url, key, checkout_url) = (self.base_url, self.api_key, self.checkout_url);
        println!("creditgate demo is running (Ctrl-C to stop)\n");
        println!("  base URL       {base_url}");
        println!("  API key        {key}");
        println!("  admin key      {}", self.admin_key);
        println!(
            "  organization   {} (1000 credits, 1 credit = $0.005, prices 0.70 x list)",
            self.org
        );
        println!("  dashboard      {base_url}/sign-in");
        println!(
            "  sign in        {DEMO_OWNER_EMAIL} / {}",
            self.dashboard_password
        );
        println!("  org admin key  {}", self.organization_admin_key);
        println!("  outbox         {}", self.outbox.display());
        println!("  database       {}", self.database_url);
        println!("  upstream       simulated, {}\n", self.upstream_url);
        println!("Try it:");
        println!(
            "  curl {base_url}/v1/messages -H 'x-api-key: {key}' -H 'anthropic-version: 2023-06-01' \\"
        );
        println!(
            "    -H 'content-type: application/json' \\\n    -d '{{\"model\":\"claude-haiku-4-5\",\"max_tokens\":64,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
        );
        println!("  curl {base_url}/v1/credits -H 'x-api-key: {key}'");
        println!("\nBuy the 10,000-credit pack on the sandbox (no real card is charged):");
        println!("  open {checkout_url} and pay with 4242 4242 4242 4242, or");
        println!(
            "  curl {checkout_url} -H 'content-type: application/json' -d '{{\"card\":\"4242424242424242\"}}'"
        );
    }
}

async fn run_demo(
    args: &DemoArgs,
    database_url: &str,
    dir: &Path,
    json_line: bool,
) -> anyhow::Result<()> {
    let outbox = dir.join("outbox");
    let upstream_key = format!("sim-{}", random_hex(16));
    let (sim_addr, _sim, _sim_task) = creditgate_sim::spawn(SimConfig {
        api_key: Some(upstream_key.clone()),
        ..SimConfig::default()
    })
    .await?;
    let admin_key = format!("cg-admin-{}", random_hex(24));
    // Bound first, so that checkout links carry the real port.
    let listener = bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    let cfg = Config::from_toml(&format!(
        r#"
        listen = "{listen}"
        database_url = "{database_url}"
        admin_key = "{admin_key}"
        [upstream]
        base_url = "http://{sim_addr}"
        api_keys = ["{upstream_key}"]
        [billing]
        credit_name = "credit"
        credit_usd = "0.005"
        price_multiplier = "0.70"
        [payments]
        provider = "sandbox"
        public_url = "{base_url}"
        [payments.seller]
        name = "creditgate demo"
        [accounts]
        # Emailed links (invitations, password resets) open this gateway's pages.
        public_url = "{base_url}"
        [email]
        outbox_dir = "{outbox}"
        [webhooks]
        # The demo runs on this machine: its webhooks may go to receivers here too.
        allow_private_urls = true
        "#,
        listen = args.listen,
        outbox = outbox.display(),
    ))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let db = Database::connect(database_url, clock.clone()).await?;
    let org = OrganizationId::parse("org_demo")?;
    db.create_organization(org.clone(), "Demo organization".into())
        .await?;
    db.grant(GrantRequest {
        transfer_id: TransferId::parse("demo-welcome-grant")?,
        org: org.clone(),
        lot_id: LotId::parse("lot_demo_welcome")?,
        amount: NanoCredits::from_credits(DEMO_CREDITS)?,
        category: LotCategory::Granted,
        source: LotSource::Promotion,
        price_per_credit: None,
        expires_at: None,
        memo: Some("demo welcome credits".into()),
    })
    .await?;
    let (key, secret) =
        crate::keys::create_key(&db, &org, "demo key", None, Default::default()).await?;
    let (dashboard_password, organization_admin_key) = demo_owner(&db, &org).await?;
    let app = App::new(cfg, db, clock)?;
    let (order, checkout_url) = demo_checkout(&app, &org).await?;
    let shutdown = shutdown_signal()?;
    let shown = Shown {
        base_url: &base_url,
        api_key: secret.expose(),
        api_key_id: key.id.as_str(),
        admin_key: &admin_key,
        org: &org,
        organization_admin_key: &organization_admin_key,
        dashboard_password: &dashboard_password,
        outbox: &outbox,
        database_url,
        upstream_url: &format!("http://{sim_addr}"),
        order_id: order.id.as_str(),
        checkout_url: &checkout_url,
    };
    if json_line {
        println!("{}", shown.json());
    } else {
        shown.print();
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    creditgate_gateway::serve(app, listener, shutdown).await?;
    Ok(())
}

/// The demo organization's billing profile and an open sandbox checkout for the 10,000 pack.
async fn demo_checkout(
    app: &App,
    org: &OrganizationId,
) -> anyhow::Result<(creditgate_core::payments::Order, String)> {
    let profile = creditgate_core::payments::BillingProfile {
        name: Some("Demo organization".into()),
        country: Some("US".into()),
        ..Default::default()
    };
    app.db.put_billing_profile(org, &profile).await?;
    let request = creditgate_gateway::payments::CheckoutRequest {
        plan_id: Some("credits-10000".into()),
        ..Default::default()
    };
    app.payments
        .checkout(app, org, request)
        .await
        .map_err(|e| anyhow::anyhow!("demo checkout: {}", e.message))
}

/// The demo owner's email (the password is random per run).
const DEMO_OWNER_EMAIL: &str = "owner@demo.example";

/// Adds the demo owner (who can sign in) and an organization admin key; returns the owner's
/// password and the admin key's secret.
async fn demo_owner(db: &Database, org: &OrganizationId) -> anyhow::Result<(String, String)> {
    let now = SystemClock.now();
    let password = random_hex(12);
    let user = User {
        id: UserId::parse("user_demo_owner")?,
        email: Email::parse(DEMO_OWNER_EMAIL)?,
        name: "Demo owner".into(),
        created_at: now,
    };
    let hash = hash_password(password.clone())
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    db.create_user(&user, Some(&hash)).await?;
    db.add_member(org, &user.id, Role::Owner, now).await?;
    let change = Change::new(db, Actor::system(), None, now);
    let (_, secret) = members::create_admin_key(&change, org, "demo admin key")
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    Ok((password, secret.expose().to_owned()))
}

pub async fn upstream_sim(args: SimArgs) -> anyhow::Result<()> {
    let listener = bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    println!("{}", json!({"base_url": format!("http://{addr}")}));
    use std::io::Write;
    std::io::stdout().flush()?;
    let sim = Simulator::new(SimConfig {
        api_key: args.api_key,
        ..SimConfig::default()
    });
    tokio::select! {
        r = creditgate_sim::serve(listener, sim) => r?,
        _ = shutdown => {}
    }
    Ok(())
}
