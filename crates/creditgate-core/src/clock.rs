//! Time as the ledger sees it: unix milliseconds from one injected clock.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A point in time in unix milliseconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// `self + ms`, saturating at the ends of the range.
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// RFC 3339 in UTC with second precision, e.g. `2026-11-22T02:09:22Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }

    /// Midnight UTC on the first day of this instant's calendar month.
    pub fn month_start(self) -> Self {
        let (y, m, _) = civil_from_days(self.0.div_euclid(86_400_000));
        Self(days_from_civil(y, m, 1) * 86_400_000)
    }

    /// Midnight UTC on the first day of the next calendar month.
    pub fn next_month_start(self) -> Self {
        let (y, m, _) = civil_from_days(self.0.div_euclid(86_400_000));
        let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Self(days_from_civil(y, m, 1) * 86_400_000)
    }

    /// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let (date, time) = match s.split_once('T') {
            Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
            None => (s, None),
        };
        let mut parts = date.splitn(3, '-');
        let y: i64 = parts.next()?.parse().ok()?;
        let m: u32 = parts.next()?.parse().ok()?;
        let d: u32 = parts.next()?.parse().ok()?;
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        let mut secs = days_from_civil(y, m, d) * 86_400;
        if let Some(t) = time {
            let mut tp = t.splitn(3, ':');
            let h: i64 = tp.next()?.parse().ok()?;
            let mi: i64 = tp.next()?.parse().ok()?;
            let s: i64 = tp.next()?.parse().ok()?;
            if h > 23 || mi > 59 || s > 60 {
                return None;
            }
            secs += h * 3600 + mi * 60 + s;
        }
        Some(Self(secs.checked_mul(1000)?))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The one source of "now" for the ledger (expiry of lots and holds). Injected so that tests can
/// drive time; production uses [`SystemClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// Wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to; shared between clones.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_starts() {
        let t = Timestamp::parse_rfc3339("2026-12-31T23:59:59Z").unwrap();
        assert_eq!(t.month_start().to_rfc3339(), "2026-12-01T00:00:00Z");
        assert_eq!(t.next_month_start().to_rfc3339(), "2027-01-01T00:00:00Z");
        let first = Timestamp::parse_rfc3339("2028-02-01").unwrap();
        assert_eq!(first.month_start(), first);
        assert_eq!(
            first.next_month_start().to_rfc3339(),
            "2028-03-01T00:00:00Z"
        );
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-22T02:09:22Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T02:09:22Z");
        assert_eq!(
            Timestamp::from_millis(0).to_rfc3339(),
            "1970-01-01T00:00:00Z"
        );
        let d = Timestamp::parse_rfc3339("2024-02-29").unwrap();
        assert_eq!(d.to_rfc3339(), "2024-02-29T00:00:00Z");
        assert!(Timestamp::parse_rfc3339("2024-13-01").is_none());
        assert!(Timestamp::parse_rfc3339("2026-02-29").is_none());
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }
}
