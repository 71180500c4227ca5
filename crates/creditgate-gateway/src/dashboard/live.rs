//! The overview's live balance: `GET /live/balance`, a server-sent event stream that reads the
//! organization's balance every [`POLL`] and sends it when it changed (`docs/dashboard.md`).
//!
//! Polling the ledger rather than listening to this process's settlements is deliberate: on
//! Postgres a charge may be settled by another replica, and the balance read is one indexed
//! query. A charge shows within one poll.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use creditgate_core::accounts::Action;
use creditgate_core::clock::Timestamp;
use creditgate_core::ledger::Balance;
use futures_util::stream;
use serde_json::json;

use super::format::Amount;
use super::pages::PageResult;
use super::viewer::Viewer;
use crate::App;

/// How often the balance is read: a charge is on the page within this (plus the network).
pub const POLL: Duration = Duration::from_millis(400);
/// How often the session behind a stream is checked: a stream ends soon after sign-out.
const SESSION_CHECK_MS: i64 = 30_000;

struct Watch {
    app: Arc<App>,
    viewer: Viewer,
    last: Option<(i64, i64, i64)>,
    session_checked: Timestamp,
    first: bool,
}

/// `GET /live/balance`.
pub async fn balance(State(app): State<Arc<App>>, viewer: Viewer) -> PageResult {
    viewer.caller.require(Action::Read)?;
    let watch = Watch {
        session_checked: app.clock.now(),
        app,
        viewer,
        last: None,
        first: true,
    };
    let events = stream::unfold(watch, next_event);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn event(b: &Balance, app: &App) -> Event {
    let unit = &app.cfg.credit_unit;
    let data = json!({
        "available": b.available,
        "available_usd": Amount::of(b.available, unit).usd,
        "pending": b.held,
        "pending_usd": Amount::of(b.held, unit).usd,
        "balance": b.posted,
        "balance_usd": Amount::of(b.posted, unit).usd,
    });
    Event::default().event("balance").data(data.to_string())
}

/// Waits for the next change of the balance; `None` (the stream ends) once the session is gone
/// or the database cannot be read.
async fn next_event(mut w: Watch) -> Option<(Result<Event, Infallible>, Watch)> {
    loop {
        if !w.first {
            tokio::time::sleep(POLL).await;
        }
        w.first = false;
        let now = w.app.clock.now();
        if now.millis() - w.session_checked.millis() > SESSION_CHECK_MS {
            let hash = w.viewer.caller.session.as_deref()?;
            w.app.db.session(hash, now).await.ok()??;
            w.session_checked = now;
        }
        let b = w.app.balance(&w.viewer.caller.org).await.ok()?;
        let seen = (b.available.nanos(), b.held.nanos(), b.posted.nanos());
        if w.last != Some(seen) {
            w.last = Some(seen);
            let e = event(&b, &w.app);
            return Some((Ok(e), w));
        }
    }
}
