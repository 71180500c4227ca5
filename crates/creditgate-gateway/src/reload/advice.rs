//! The recommendation and the forecast, from the last days of spend (the seed Console's rule):
//! threshold ≈ two days of the busiest recent day's spend, amount ≈ a week of average spend
//! rounded up to a plan on sale; the forecast is the days of runway the available credit gives
//! at the average. Spend is read from the daily usage rollups; everything is integer nanos.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::money::NanoCredits;
use creditgate_core::payments::Plan;
use creditgate_core::reports::BucketWidth;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::App;

const DAY_MS: i64 = 86_400_000;
/// Days of spend looked at, today included.
pub const WINDOW_DAYS: i64 = 7;
/// The fewest days an average is taken over (a first busy day is not a week's pace).
pub const MIN_BASIS_DAYS: i64 = 3;

/// Recent spend: per UTC day, oldest first, today last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    pub days: Vec<NanoCredits>,
}

impl Spend {
    /// The days averaged over: from the first day with spend to today, at least
    /// [`MIN_BASIS_DAYS`]; `None` without spend.
    pub fn basis_days(&self) -> Option<i64> {
        let first = self.days.iter().position(|d| d.is_positive())?;
        let span = i64::try_from(self.days.len() - first).unwrap_or(WINDOW_DAYS);
        Some(span.clamp(MIN_BASIS_DAYS, WINDOW_DAYS))
    }

    /// Average spend per day over the basis, rounded up to the nano-credit.
    pub fn average(&self) -> Option<NanoCredits> {
        let basis = self.basis_days()?;
        let total: i128 = self.days.iter().map(|d| i128::from(d.nanos())).sum();
        let avg = (total + i128::from(basis) - 1) / i128::from(basis);
        Some(NanoCredits::from_nanos(
            i64::try_from(avg).unwrap_or(i64::MAX),
        ))
    }

    pub fn busiest(&self) -> NanoCredits {
        self.days.iter().copied().max().unwrap_or(NanoCredits::ZERO)
    }
}

/// Whole credits at or above `n`.
fn ceil_credits(n: NanoCredits) -> NanoCredits {
    let per = creditgate_core::money::NANOS_PER_CREDIT;
    let nanos = n
        .nanos()
        .div_euclid(per)
        .saturating_add(i64::from(n.nanos() % per != 0));
    NanoCredits::from_nanos(nanos.saturating_mul(per))
}

/// The recommended settings for `spend`; `None` without spend. `plans` are those on sale.
pub fn recommend(spend: &Spend, plans: &[Plan]) -> Option<Value> {
    let average = spend.average()?;
    let threshold = ceil_credits(NanoCredits::from_nanos(
        spend.busiest().nanos().saturating_mul(2),
    ));
    let week = NanoCredits::from_nanos(average.nanos().saturating_mul(WINDOW_DAYS));
    let mut on_sale: Vec<&Plan> = plans.iter().filter(|p| !p.archived).collect();
    on_sale.sort_by_key(|p| p.credits);
    let plan = on_sale
        .iter()
        .find(|p| p.credits >= week)
        .or(on_sale.last())
        .copied();
    let amount = plan.map_or_else(|| ceil_credits(week), |p| p.credits);
    Some(json!({
        "threshold": threshold.to_string(),
        "amount": amount.to_string(),
        "plan_id": plan.map(|p| p.id.clone()),
        "basis_days": spend.basis_days(),
        "average_daily_spend": average.to_string(),
    }))
}

/// Days of runway `available` gives at the average spend, to a tenth of a day (rounded down),
/// as a decimal string; `None` without spend.
pub fn runway(spend: &Spend, available: NanoCredits) -> Option<String> {
    let average = spend.average().filter(|a| a.is_positive())?;
    let tenths = (i128::from(available.nanos().max(0)) * 10) / i128::from(average.nanos());
    Some(format!("{}.{}", tenths / 10, tenths % 10))
}

/// The forecast object of `GET /v1/credits`; `null` without spend.
pub fn forecast(spend: &Spend, available: NanoCredits) -> Value {
    match (runway(spend, available), spend.average()) {
        (Some(days), Some(avg)) => json!({
            "days_of_runway": days,
            "average_daily_spend": avg.to_string(),
            "basis_days": spend.basis_days(),
        }),
        _ => Value::Null,
    }
}

fn overflow(e: creditgate_core::money::MoneyError) -> ApiError {
    ApiError::internal(format!("recent spend: {e}"))
}

/// The organization's spend per UTC day over the last [`WINDOW_DAYS`], today included.
pub async fn recent_spend(
    app: &App,
    org: &OrganizationId,
    now: Timestamp,
) -> Result<Spend, ApiError> {
    let today = now.millis().div_euclid(DAY_MS) * DAY_MS;
    let from = today - (WINDOW_DAYS - 1) * DAY_MS;
    let rows = app
        .db
        .usage_rollups(
            Some(org),
            BucketWidth::Day,
            Timestamp::from_millis(from),
            Timestamp::from_millis(today + DAY_MS),
        )
        .await?;
    let mut days = vec![NanoCredits::ZERO; usize::try_from(WINDOW_DAYS).unwrap_or(7)];
    for r in rows {
        let i = usize::try_from((r.bucket.millis() - from).div_euclid(DAY_MS)).unwrap_or(0);
        let spent = r.sums.credits.total().map_err(overflow)?;
        if let Some(day) = days.get_mut(i) {
            *day = day.checked_add(spent).map_err(overflow)?;
        }
    }
    Ok(Spend { days })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: i64) -> NanoCredits {
        NanoCredits::from_credits(n).unwrap()
    }

    fn plan(id: &str, credits: i64) -> Plan {
        Plan {
            id: id.to_owned(),
            name: id.to_owned(),
            credits: c(credits),
            amount_cents: credits / 2,
            currency: "usd".to_owned(),
            expires_in_days: None,
            archived: false,
        }
    }

    #[test]
    fn recommends_two_busiest_days_and_a_week_rounded_up_to_a_plan() {
        let spend = Spend {
            days: vec![c(0), c(0), c(0), c(100), c(300), c(200), c(100)],
        };
        assert_eq!(spend.basis_days(), Some(4));
        assert_eq!(spend.average(), Some(c(175)));
        let plans = [plan("small", 1000), plan("big", 10000)];
        let r = recommend(&spend, &plans).unwrap();
        assert_eq!(r["threshold"], "600");
        assert_eq!(r["amount"], "10000", "a week is 1,225: the next plan up");
        assert_eq!(r["plan_id"], "big");
        assert_eq!(runway(&spend, c(350)).as_deref(), Some("2.0"));
        assert_eq!(runway(&spend, c(400)).as_deref(), Some("2.2"));
    }

    #[test]
    fn a_first_day_counts_as_three_and_no_spend_recommends_nothing() {
        let one = Spend {
            days: vec![c(0), c(0), c(0), c(0), c(0), c(0), c(30)],
        };
        assert_eq!((one.basis_days(), one.average()), (Some(3), Some(c(10))));
        let none = Spend {
            days: vec![c(0); 7],
        };
        assert_eq!(recommend(&none, &[]), None);
        assert_eq!(forecast(&none, c(5)), Value::Null);
        let r = recommend(&one, &[]).unwrap();
        assert_eq!((&r["amount"], &r["plan_id"]), (&json!("70"), &Value::Null));
    }
}
