//! The gateway's API tests: the real app on a loopback port, a fresh SQLite file and the
//! simulated upstream per test (see `helpers`).

mod access_matrix;
mod accounts;
mod admission;
mod alerts;
mod attacks;
mod auto_reload;
mod backpressure;
mod buying;
mod concurrency;
mod console;
mod credit_lines;
mod dashboard;
mod dashboard_money;
mod database_down;
mod disconnects;
mod estimate;
mod helpers;
mod key_limits;
mod messages;
mod metrics;
mod openapi;
mod payments;
mod progressive;
mod quote;
mod receiver;
mod reconcile;
mod reload_alerts;
mod report_exactness;
mod reports;
mod saved_cards;
mod sign_up;
mod smtp;
mod smtp_sink;
mod upstream_faults;
mod webhooks;
