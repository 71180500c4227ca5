//! creditgate's domain, free of I/O: money, identifiers, the ledger rules and its storage trait,
//! pricing, API keys, and payments (orders, test cards, webhook signatures). The storage, HTTP and binary crates build on it.
#![deny(clippy::float_arithmetic)]

pub mod accounts;
pub mod clock;
pub mod ids;
pub mod keys;
pub mod ledger;
pub mod metering;
pub mod money;
pub mod payments;
pub mod pricing;
pub mod receipt;
pub mod reports;
pub mod statement;
pub mod usage;
