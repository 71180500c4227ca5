//! The `creditgate` binary: command-line parsing and dispatch; each command lives in its own module.

mod config_cmd;
mod credits;
mod database;
mod keys;
mod ledger_cmd;
mod org;
mod output;
mod plans_cmd;
mod prices;
mod report_cmd;
mod serve;
mod statement_cmd;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use creditgate_core::clock::SystemClock;
use creditgate_storage::Database;

/// Database used when neither `--database` nor `CREDITGATE_DATABASE_URL` is given.
const DEFAULT_DATABASE_URL: &str = "sqlite://creditgate.db";

#[derive(Debug, Parser)]
#[command(
    name = "creditgate",
    version,
    about = "Sell and meter prepaid Claude API credits"
)]
struct Cli {
    /// Database URL: sqlite://<path> or postgres://user@host/db.
    #[arg(long, global = true, env = "CREDITGATE_DATABASE_URL")]
    database: Option<String>,
    /// Print exactly one JSON object on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (production): `--config creditgate.toml`.
    Serve(serve::ServeArgs),
    /// Check a configuration without starting: `config check --config creditgate.toml`.
    Config(config_cmd::ConfigArgs),
    /// Print a fresh random secret (for `admin_key`).
    Secret,
    /// Run a self-contained demo: throwaway database, simulated upstream, 1,000 credits.
    Demo(serve::DemoArgs),
    /// Run the simulated Anthropic upstream alone (for benchmarks).
    UpstreamSim(serve::SimArgs),
    /// Manage API keys.
    Keys(keys::KeysArgs),
    /// Inspect the price book and price a usage object.
    Prices(prices::PricesArgs),
    /// Apply pending database migrations (every command also does on start).
    Migrate,
    /// Check the ledger: `ledger verify`.
    Ledger(ledger_cmd::LedgerArgs),
    /// Manage organizations.
    Org(org::OrgArgs),
    /// Grant credits and show balances.
    Credits(credits::CreditsArgs),
    /// The plans sold: list, add, archive.
    Plans(plans_cmd::PlansArgs),
    /// List orders.
    Orders(plans_cmd::OrdersArgs),
    /// Record a payment taken outside any provider (crypto, bank transfer, chat).
    Payments(plans_cmd::PaymentsArgs),
    /// Usage, cost and cache reports of an organization (`--org`) or of all (`--all`).
    Report(report_cmd::ReportArgs),
    /// An organization's statement of account for a period: `statement --org ID`.
    Statement(statement_cmd::StatementArgs),
}

impl Cli {
    fn database_url(&self) -> &str {
        self.database.as_deref().unwrap_or(DEFAULT_DATABASE_URL)
    }
}

async fn open_database(url: &str) -> anyhow::Result<Database> {
    Ok(Database::connect(url, Arc::new(SystemClock)).await?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url().to_owned();
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Config(args) => config_cmd::run(args, cli.json),
        Command::Secret => config_cmd::secret(cli.json),
        Command::Demo(args) => serve::demo(args, cli.json).await,
        Command::UpstreamSim(args) => serve::upstream_sim(args).await,
        Command::Keys(args) => keys::run(&open_database(&url).await?, args, cli.json).await,
        Command::Prices(args) => prices::run(args),
        Command::Migrate => database::migrate(&open_database(&url).await?, &url, cli.json).await,
        Command::Ledger(args) => ledger_cmd::run(&open_database(&url).await?, args, cli.json).await,
        Command::Org(args) => org::run(&open_database(&url).await?, args, cli.json).await,
        Command::Credits(args) => credits::run(&open_database(&url).await?, args, cli.json).await,
        Command::Plans(args) => plans_cmd::plans(&open_database(&url).await?, args, cli.json).await,
        Command::Orders(args) => {
            plans_cmd::orders(&open_database(&url).await?, args, cli.json).await
        }
        Command::Payments(args) => {
            plans_cmd::payments(&open_database(&url).await?, args, cli.json).await
        }
        Command::Report(args) => report_cmd::run(&open_database(&url).await?, args, cli.json).await,
        Command::Statement(args) => {
            statement_cmd::run(&open_database(&url).await?, args, cli.json).await
        }
    }
}

/// mimalloc instead of the C library's allocator: a request allocates and frees hundreds of
/// small objects across the runtime's threads, and glibc's `malloc`/`free` (with its
/// consolidation of freed chunks) took about an eighth of the worker threads' CPU in a profile
/// of the metered path (`docs/benchmarks.md`, 2026-11-27).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CREDITGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
