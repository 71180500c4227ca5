//! Failed authentications throttled per client address (reliability case J60): after a burst
//! of 401s an address gets 429 for a while, longer with each repeat, never for good.
//!
//! It works on responses, not on how a key is checked: whatever answers 401 counts as a failure.
//! Behind a reverse proxy every client has the proxy's address; raise the threshold there.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::App;

/// Failures are counted over this window.
const WINDOW: Duration = Duration::from_secs(60);
/// The first lockout; each further one in a row doubles, up to [`MAX_LOCKOUT`].
const FIRST_LOCKOUT: Duration = Duration::from_secs(10);
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Addresses tracked at once; past this, entries no longer counting or locked are dropped.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: Instant,
    failures: u32,
    /// Lockouts in a row (the next one lasts `FIRST_LOCKOUT × 2^lockouts`).
    lockouts: u32,
    locked_until: Option<Instant>,
}

/// The failure counts of recent client addresses.
pub struct AuthThrottle {
    max_failures: u32,
    records: Mutex<HashMap<IpAddr, Record>>,
}

/// IPv6 clients are counted per /64, the block one subscriber usually holds; IPv4-mapped
/// addresses as IPv4.
fn client(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl AuthThrottle {
    /// At most `max_failures` failed authentications per address per minute.
    pub fn new(max_failures: u32) -> Self {
        Self {
            max_failures: max_failures.max(1),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` must still wait, if it is locked out.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let until = records.get(&client(ip))?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts one failed authentication from `ip`; the one that reaches the threshold locks the
    /// address out.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_TRACKED {
            records.retain(|_, r| {
                now.duration_since(r.window_start) < WINDOW
                    || r.locked_until.is_some_and(|u| u > now)
            });
        }
        let r = records.entry(client(ip)).or_insert(Record {
            window_start: now,
            failures: 0,
            lockouts: 0,
            locked_until: None,
        });
        if now.duration_since(r.window_start) >= WINDOW {
            // A quiet spell as long as the longest lockout forgives earlier lockouts.
            let quiet = r
                .locked_until
                .is_none_or(|u| now.duration_since(u) >= MAX_LOCKOUT);
            if quiet {
                r.lockouts = 0;
            }
            r.window_start = now;
            r.failures = 0;
        }
        r.failures += 1;
        if r.failures >= self.max_failures {
            let lockout = FIRST_LOCKOUT
                .saturating_mul(1u32 << r.lockouts.min(16))
                .min(MAX_LOCKOUT);
            r.locked_until = Some(now + lockout);
            r.lockouts = r.lockouts.saturating_add(1);
            r.window_start = now;
            r.failures = 0;
        }
    }
}

/// Refuses a locked-out address before any work (429 with `retry-after`), and counts every 401
/// answered to an address.
pub async fn middleware(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let Some(ip) = crate::server::peer(req.extensions()).map(|a| a.ip()) else {
        return next.run(req).await;
    };
    if let Some(wait) = app.auth_throttle.locked(ip, Instant::now()) {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Too many failed authentications from this address; retry later.",
        );
        err.retry_after = Some(wait.as_secs().max(1));
        return err.into_response();
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::UNAUTHORIZED {
        app.auth_throttle.failed(ip, Instant::now());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_start_at_the_threshold_grow_and_end() {
        let t = AuthThrottle::new(3);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        let t0 = Instant::now();
        t.failed(ip, t0);
        t.failed(ip, t0);
        assert_eq!(t.locked(ip, t0), None, "below the threshold");
        t.failed(ip, t0);
        assert_eq!(t.locked(ip, t0), Some(FIRST_LOCKOUT));
        assert_eq!(t.locked(other, t0), None, "another address is unaffected");
        let after = t0 + FIRST_LOCKOUT;
        assert_eq!(t.locked(ip, after), None, "the lockout is temporary");
        for _ in 0..3 {
            t.failed(ip, after);
        }
        assert_eq!(
            t.locked(ip, after),
            Some(FIRST_LOCKOUT * 2),
            "a repeat lasts longer"
        );
        // Long quiet: the next lockout starts small again.
        let later = after + MAX_LOCKOUT * 2;
        for _ in 0..3 {
            t.failed(ip, later);
        }
        assert_eq!(t.locked(ip, later), Some(FIRST_LOCKOUT));
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let t = AuthThrottle::new(2);
        let now = Instant::now();
        t.failed("2001:db8:1:2::1".parse().unwrap(), now);
        t.failed("2001:db8:1:2:ffff::9".parse().unwrap(), now);
        assert!(t.locked("2001:db8:1:2::77".parse().unwrap(), now).is_some());
        assert!(t.locked("2001:db8:1:3::1".parse().unwrap(), now).is_none());
        t.failed("::ffff:192.0.2.1".parse().unwrap(), now);
        t.failed("192.0.2.1".parse().unwrap(), now);
        assert!(t.locked("192.0.2.1".parse().unwrap(), now).is_some());
    }
}
