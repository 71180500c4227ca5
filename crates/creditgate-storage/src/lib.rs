//! creditgate's storage: the SQLite and Postgres implementations of the core's storage traits,
//! chosen at start-up from a database URL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), creditgate_core::ledger::LedgerError> {
//! use std::sync::Arc;
//! use creditgate_core::clock::SystemClock;
//! use creditgate_core::ledger::LedgerStore;
//! use creditgate_storage::Database;
//!
//! let db = Database::connect("sqlite://creditgate.db", Arc::new(SystemClock)).await?;
//! let report = db.verify().await?;
//! assert!(report.is_clean());
//! # Ok(()) }
//! ```

mod access;
mod account_statement;
mod accounts;
pub mod invoices;
mod journal;
pub mod notify;
mod organizations;
pub mod payments;
pub mod postgres;
mod reports;
mod requests;
mod run;
pub mod sqlite;
mod statement;
mod usage;

use std::sync::Arc;

use creditgate_core::clock::{Clock, Timestamp};
use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::ledger::{
    AdjustRequest, Adjusted, Balance, Draw, Entry, ExtendHoldRequest, GrantRequest, Granted, Hold,
    HoldRequest, HoldResolution, LeaseRequest, LedgerError, LedgerResult, LedgerStore,
    Organization, RefundRequest, Refunded, ReleaseRequest, Released, SettleRequest, Settlement,
    VerifyReport,
};
use creditgate_core::money::NanoCredits;

pub use accounts::AcceptRefused;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The database every part of creditgate stores into, picked by URL scheme.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Database {
    /// "Now" by the store's clock.
    pub fn now(&self) -> Timestamp {
        match self {
            Database::Sqlite(s) => s.clock().now(),
            Database::Postgres(p) => p.clock().now(),
        }
    }

    /// Opens `sqlite://<path>` (the file is created if missing; `sqlite:///abs/path` for an
    /// absolute path) or connects to `postgres://…`/`postgresql://…`, then applies pending
    /// migrations. `clock` is the ledger's one source of "now".
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Database, LedgerError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(LedgerError::Unavailable(
                    "a sqlite:// URL needs a file path, e.g. sqlite://creditgate.db".to_owned(),
                ));
            }
            return Ok(Database::Sqlite(SqliteStore::open(path, clock).await?));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(PgStore::connect(url, clock).await?));
        }
        Err(LedgerError::Unavailable(format!(
            "unsupported database URL {:?}: expected sqlite://<path> or postgres://…",
            redact(url)
        )))
    }

    /// The migrations applied to this database, oldest first: `(version, name)`.
    pub async fn migrations(&self) -> LedgerResult<Vec<(i64, String)>> {
        const SQL: &str = "SELECT version, name FROM schema_migrations ORDER BY version";
        match self {
            Database::Sqlite(s) => {
                s.read(|conn, _now| {
                    let mut stmt = conn.prepare(SQL).map_err(sqlite::sqlite_error)?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map_err(sqlite::sqlite_error)?;
                    rows.collect::<Result<Vec<_>, _>>()
                        .map_err(sqlite::sqlite_error)
                })
                .await
            }
            Database::Postgres(p) => {
                let client = p.client().await?;
                let rows = client.query(SQL, &[]).await.map_err(postgres::pg_error)?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            }
        }
    }

    /// Whether the database answers: one trivial query, whatever the size of the ledger (what
    /// `/readyz` asks on every probe).
    pub async fn ping(&self) -> LedgerResult<()> {
        match self {
            Database::Sqlite(s) => {
                s.read(|conn, _now| {
                    conn.query_row("SELECT 1", [], |_| Ok(()))
                        .map_err(sqlite::sqlite_error)
                })
                .await
            }
            Database::Postgres(p) => {
                let client = p.client().await?;
                client
                    .simple_query("SELECT 1")
                    .await
                    .map_err(postgres::pg_error)?;
                Ok(())
            }
        }
    }

    /// Whether the connection to the database is encrypted: a Postgres connection made with
    /// `sslmode=require` or `verify-full`; never for SQLite (a local file).
    pub async fn connection_uses_tls(&self) -> LedgerResult<bool> {
        match self {
            Database::Sqlite(_) => Ok(false),
            Database::Postgres(p) => p.uses_tls().await,
        }
    }

    /// Which backend this is: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }
}

/// The URL without a password, for messages: neither the one in the user info
/// (`user:secret@host`) nor a query parameter (`?password=…`, `sslpassword=…`).
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &base[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme_end + 3], &base[at..]),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        // A parameter name may be percent-encoded (`pass%77ord`): hide those values too.
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _))
                    if name.to_ascii_lowercase().contains("pass") || name.contains('%') =>
                {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Database::Sqlite($store) => $call.await,
            Database::Postgres($store) => $call.await,
        }
    };
}

impl LedgerStore for Database {
    async fn create_organization(
        &self,
        id: OrganizationId,
        name: String,
    ) -> LedgerResult<Organization> {
        delegate!(self, s => s.create_organization(id, name))
    }

    async fn organization(&self, id: &OrganizationId) -> LedgerResult<Organization> {
        delegate!(self, s => s.organization(id))
    }

    async fn organizations(&self) -> LedgerResult<Vec<Organization>> {
        delegate!(self, s => s.organizations())
    }

    async fn grant(&self, req: GrantRequest) -> LedgerResult<Granted> {
        delegate!(self, s => s.grant(req))
    }

    async fn reserve(&self, req: HoldRequest) -> LedgerResult<Hold> {
        delegate!(self, s => s.reserve(req))
    }

    async fn extend_hold(&self, req: ExtendHoldRequest) -> LedgerResult<Hold> {
        delegate!(self, s => s.extend_hold(req))
    }

    async fn settle(&self, req: SettleRequest) -> LedgerResult<Settlement> {
        delegate!(self, s => s.settle(req))
    }

    async fn settle_leased_group(&self, reqs: Vec<SettleRequest>) -> LedgerResult<Vec<Settlement>> {
        delegate!(self, s => s.settle_leased_group(reqs))
    }

    async fn release(&self, req: ReleaseRequest) -> LedgerResult<Released> {
        delegate!(self, s => s.release(req))
    }

    async fn lease(&self, req: LeaseRequest) -> LedgerResult<Hold> {
        delegate!(self, s => s.lease(req))
    }

    async fn expire_holds(&self) -> LedgerResult<Vec<TransferId>> {
        delegate!(self, s => s.expire_holds())
    }

    async fn sweep_expired_lots(&self) -> LedgerResult<Vec<Draw>> {
        delegate!(self, s => s.sweep_expired_lots())
    }

    async fn refund_lot(&self, req: RefundRequest) -> LedgerResult<Refunded> {
        delegate!(self, s => s.refund_lot(req))
    }

    async fn adjust(&self, req: AdjustRequest) -> LedgerResult<Adjusted> {
        delegate!(self, s => s.adjust(req))
    }

    async fn balance(&self, org: &OrganizationId) -> LedgerResult<Balance> {
        delegate!(self, s => s.balance(org))
    }

    async fn hold(&self, id: &TransferId) -> LedgerResult<Option<(Hold, Option<HoldResolution>)>> {
        delegate!(self, s => s.hold(id))
    }

    async fn scope_spend(&self, scope: &str, since: Timestamp) -> LedgerResult<NanoCredits> {
        delegate!(self, s => s.scope_spend(scope, since))
    }

    async fn entries(&self, org: &OrganizationId) -> LedgerResult<Vec<Entry>> {
        delegate!(self, s => s.entries(org))
    }

    async fn verify(&self) -> LedgerResult<VerifyReport> {
        delegate!(self, s => s.verify())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/cg"),
            "postgres://app:***@db:5432/cg"
        );
        assert_eq!(redact("postgres://app@db/cg"), "postgres://app@db/cg");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact("postgres://app@db/cg?sslmode=require&password=s3cret"),
            "postgres://app@db/cg?sslmode=require&password=***"
        );
        assert_eq!(
            redact("postgres://db/cg?user=app&PassWord=a@b&sslpassword=k&pass%77ord=x"),
            "postgres://db/cg?user=app&PassWord=***&sslpassword=***&pass%77ord=***"
        );
        assert_eq!(
            redact("postgres://app:s3cret@db/cg?password=two"),
            "postgres://app:***@db/cg?password=***"
        );
    }
}
