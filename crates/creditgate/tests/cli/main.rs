//! The binary's tests, one test binary: each module runs the built `creditgate` (the CLI, `serve`,
//! `demo`) as a process over real sockets; `process` is their shared harness (SQLite and
//! Postgres, database outages). Postgres runs when `CREDITGATE_TEST_POSTGRES_URL` is set.

mod process;

mod accounts_cli;
mod demo_purchase;
mod demo_reload;
mod durability;
mod hostile;
mod ledger_cli;
mod operator_cli;
mod payments_cli;
mod prices_cli;
mod reload_processes;
mod replicas;
mod report_cli;
