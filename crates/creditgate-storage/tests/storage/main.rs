//! The storage crate's tests, one binary: the ledger contract and the model test on both
//! databases, the gateway's tables, accounts, payments, the expiry race, Postgres faults and TLS,
//! and an unavailable database. Postgres runs when `CREDITGATE_TEST_POSTGRES_URL` is set.

#[macro_use]
mod common;

mod accounts;
mod contract;
mod expiry_race;
mod gateway_tables;
mod lease;
mod model;
mod notify;
mod payments;
mod postgres_faults;
mod settle_group;
mod tls;
mod unavailable;
