//! An organization's statement of account for a period (`docs/statements.md`): the opening
//! balance, every movement of its balance in order, and the closing balance, where the opening
//! plus the lines is the closing, exactly.
//!
//! The balance is the ledger's: the remaining credit of the organization's lots minus its debt
//! (the overdraft account). Holds move nothing, so they are not on it. The storage reads the
//! journal's entries; this module orders them, sums usage per UTC day and chains the balances.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::money::{MoneyError, NanoCredits};

/// One UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// What moved the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Credits bought through an order (checkout, auto-reload, a recorded payment).
    Purchase,
    /// Credits the operator granted outside an order.
    Grant,
    /// Requests charged, summed per UTC day.
    Usage,
    /// An order's remainder refunded, or clawed back after a provider's refund or dispute.
    Refund,
    /// Credits of lots that reached their expiry.
    Expiry,
    /// An operator's adjustment (or a movement of a kind this statement does not name).
    Adjustment,
    /// Credits returned when an invoice of a credit line was paid.
    Invoice,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Purchase => "purchase",
            LineKind::Grant => "grant",
            LineKind::Usage => "usage",
            LineKind::Refund => "refund",
            LineKind::Expiry => "expiry",
            LineKind::Adjustment => "adjustment",
            LineKind::Invoice => "invoice",
        }
    }
}

/// A movement other than usage, as the journal holds it: one transfer's net effect on the
/// balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub at: Timestamp,
    pub kind: LineKind,
    pub credits: NanoCredits,
    pub reference: String,
}

/// The charges settled in one UTC day (their net effect: negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDay {
    /// Midnight UTC of the day.
    pub day: Timestamp,
    pub credits: NanoCredits,
    pub requests: i64,
}

/// One line of the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The movement's time; a usage line's is the last millisecond of its day (or of the
    /// period, when the period ends earlier), so it sorts after that day's other movements.
    pub at: Timestamp,
    pub kind: LineKind,
    pub credits: NanoCredits,
    pub balance_after: NanoCredits,
    pub reference: String,
    /// Requests summed into a usage line.
    pub requests: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub starting_at: Timestamp,
    pub ending_at: Timestamp,
    pub opening_balance: NanoCredits,
    pub closing_balance: NanoCredits,
    pub lines: Vec<Line>,
}

/// Orders the movements and the usage days (within a day: the movements by time, then the
/// day's usage), and chains each line's balance from `opening`. Movements of zero are left out.
pub fn build(
    starting_at: Timestamp,
    ending_at: Timestamp,
    opening: NanoCredits,
    movements: Vec<Movement>,
    usage: Vec<UsageDay>,
) -> Result<Statement, MoneyError> {
    let mut lines: Vec<Line> = movements
        .into_iter()
        .filter(|m| m.credits != NanoCredits::ZERO)
        .map(|m| Line {
            at: m.at,
            kind: m.kind,
            credits: m.credits,
            balance_after: NanoCredits::ZERO,
            reference: m.reference,
            requests: None,
        })
        .collect();
    lines.extend(usage.into_iter().map(|u| {
        let end_of_day = u.day.plus_millis(DAY_MS - 1).min(ending_at.plus_millis(-1));
        Line {
            at: end_of_day,
            kind: LineKind::Usage,
            credits: u.credits,
            balance_after: NanoCredits::ZERO,
            reference: match u.requests {
                1 => "1 request".to_owned(),
                n => format!("{n} requests"),
            },
            requests: Some(u.requests),
        }
    }));
    // Stable: movements keep the journal's order within the same millisecond, and a usage line
    // (its day's last millisecond) follows every other movement of its day.
    lines.sort_by_key(|l| (l.at, l.kind == LineKind::Usage));
    let mut balance = opening;
    for line in &mut lines {
        balance = balance.checked_add(line.credits)?;
        line.balance_after = balance;
    }
    Ok(Statement {
        starting_at,
        ending_at,
        opening_balance: opening,
        closing_balance: balance,
        lines,
    })
}

/// The UTC date (`YYYY-MM-DD`) of an instant.
pub fn date(at: Timestamp) -> String {
    let text = at.to_rfc3339();
    text[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: i64) -> NanoCredits {
        NanoCredits::from_credits(n).unwrap()
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn movement(at: i64, kind: LineKind, credits: i64) -> Movement {
        Movement {
            at: t(at),
            kind,
            credits: c(credits),
            reference: format!("{kind:?}-{at}"),
        }
    }

    #[test]
    fn lines_chain_from_the_opening_to_the_closing_balance() {
        let day2 = 2 * DAY_MS;
        let s = build(
            t(DAY_MS),
            t(4 * DAY_MS),
            c(100),
            vec![
                movement(day2 + 5, LineKind::Purchase, 1000),
                movement(DAY_MS + 7, LineKind::Grant, 50),
                movement(day2 + 9, LineKind::Refund, 0),
                movement(3 * DAY_MS + 1, LineKind::Expiry, -30),
            ],
            vec![
                UsageDay {
                    day: t(DAY_MS),
                    credits: c(-20),
                    requests: 3,
                },
                UsageDay {
                    day: t(day2),
                    credits: c(-400),
                    requests: 9,
                },
            ],
        )
        .unwrap();
        let kinds: Vec<_> = s.lines.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LineKind::Grant,
                LineKind::Usage,
                LineKind::Purchase,
                LineKind::Usage,
                LineKind::Expiry
            ]
        );
        let balances: Vec<_> = s.lines.iter().map(|l| l.balance_after).collect();
        assert_eq!(balances, [c(150), c(130), c(1130), c(730), c(700)]);
        assert_eq!(s.closing_balance, c(700));
        assert_eq!(s.lines[1].reference, "3 requests");
        assert_eq!(s.lines[1].at, t(2 * DAY_MS - 1));
    }

    #[test]
    fn a_usage_day_cut_by_the_period_is_dated_inside_it() {
        let s = build(
            t(0),
            t(DAY_MS / 2),
            c(0),
            vec![],
            vec![UsageDay {
                day: t(0),
                credits: c(-1),
                requests: 1,
            }],
        )
        .unwrap();
        assert_eq!(s.lines[0].at, t(DAY_MS / 2 - 1));
        assert_eq!(date(s.lines[0].at), "1970-01-01");
    }

    #[test]
    fn an_empty_period_keeps_the_opening_balance() {
        let s = build(t(0), t(DAY_MS), c(-5), vec![], vec![]).unwrap();
        assert_eq!(s.closing_balance, c(-5));
        assert!(s.lines.is_empty());
    }
}
