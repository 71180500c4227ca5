//! The emails auto-reload sends the billing members (owner, admin, billing roles): what
//! happened, and what to do about it, in plain words.

use creditgate_core::accounts::Action;
use creditgate_storage::payments::{ReloadOutcome, ReloadSettings, ReloadStatus};

use crate::App;

/// What each reload buys, in words.
fn what(s: &ReloadSettings) -> String {
    match (&s.plan_id, s.amount) {
        (Some(plan), _) => format!("the plan {plan}"),
        (None, Some(credits)) => format!("{credits} credits"),
        (None, None) => "credits".to_owned(),
    }
}

const SETTINGS: &str = "Billing > Auto-reload (PUT /v1/billing/auto_reload)";

/// The subject and body of the email for `o`; `None` when nothing needs saying.
pub(super) fn message(s: &ReloadSettings, o: &ReloadOutcome) -> Option<(String, String)> {
    let org = &s.org;
    let buys = what(s);
    let order = o.order.as_deref().unwrap_or("none");
    Some(match (o.status, o.outcome.as_str()) {
        (ReloadStatus::Active, "succeeded") => (
            format!("Auto-reload bought {buys}"),
            format!(
                "Auto-reload bought {buys} for organization {org} with the saved card \
                 (order {order}). The receipt is in Billing > Orders."
            ),
        ),
        (ReloadStatus::Active, "monthly_limit") => (
            "Auto-reload stopped: monthly limit reached".to_owned(),
            format!(
                "Auto-reload did not buy {buys} for organization {org}: it would go past the \
                 monthly limit of {} credits. It starts again on {}. To reload sooner, raise \
                 the monthly limit in {SETTINGS} or buy credits in Billing.",
                s.monthly_limit,
                o.retry_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
        ),
        (ReloadStatus::Active, "daily_limit") => (
            "Auto-reload stopped: 10 reloads today".to_owned(),
            format!(
                "Auto-reload already bought credits 10 times in the last 24 hours for \
                 organization {org}, the most it does in a day. Check what is spending: a key \
                 may be running away. Buy credits in Billing if you need them now."
            ),
        ),
        (ReloadStatus::Active, "pending") => return None,
        (ReloadStatus::Active, code) => (
            "Auto-reload failed: the card was declined".to_owned(),
            format!(
                "Auto-reload could not buy {buys} for organization {org}: the payment was \
                 declined ({code}, order {order}). It will try again at {} (UTC). To fix it \
                 now, add another card in Billing > Payment methods and choose it in {SETTINGS}.",
                o.retry_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
        ),
        (_, _) => (
            "Auto-reload is paused".to_owned(),
            format!(
                "Auto-reload is paused for organization {org} and will not charge again: {} \
                 (last order {order}). To turn it back on, add a card that can be charged \
                 without you (Billing > Payment methods), then save the settings again in \
                 {SETTINGS}. Until then, buy credits in Billing before the balance runs out.",
                o.paused_reason.as_deref().unwrap_or("a payment failed")
            ),
        ),
    })
}

/// Emails the billing members and the alert settings' addresses (`docs/alerts.md`); a
/// failure to send is logged, never retried into a charge.
pub(super) async fn tell_billing_members(app: &App, s: &ReloadSettings, o: &ReloadOutcome) {
    let Some((subject, body)) = message(s, o) else {
        return;
    };
    let to = crate::notify::recipients(app, &s.org, Action::ManageBilling).await;
    crate::notify::send_all(app, &to, &subject, &body).await;
}
