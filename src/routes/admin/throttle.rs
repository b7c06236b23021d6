//! Per-address throttle of failed admin logins, so the bearer token cannot be
//! brute-forced: after `max_failures` wrong or missing tokens within `window`,
//! that client address gets `429` (with `Retry-After`) until the window ends,
//! whatever token it sends.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Addresses tracked at most; past this, expired entries are dropped, and if
/// that is not enough the table starts over. Memory stays bounded even when
/// an attacker rotates through many addresses.
const MAX_TRACKED: usize = 100_000;

pub struct AuthThrottle {
    max_failures: u32,
    window: Duration,
    failures: DashMap<IpAddr, Window>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl AuthThrottle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            failures: DashMap::new(),
        }
    }

    /// `Err(retry_after)` while the address is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.failures.get(&ip) {
            Some(w)
                if now.duration_since(w.started) < self.window && w.count >= self.max_failures =>
            {
                Err(self.window - now.duration_since(w.started))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(&ip) {
            self.failures
                .retain(|_, w| now.duration_since(w.started) < self.window);
            if self.failures.len() >= MAX_TRACKED {
                self.failures.clear();
            }
        }
        let mut entry = self.failures.entry(ip).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(entry.started) >= self.window {
            *entry = Window {
                started: now,
                count: 0,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn locks_out_after_max_failures_until_the_window_ends() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check(ip(1), t0).is_ok());
            throttle.record_failure(ip(1), t0);
        }
        let retry = throttle
            .check(ip(1), t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(
            throttle.check(ip(2), t0).is_ok(),
            "other addresses are unaffected"
        );
        assert!(throttle.check(ip(1), t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn failures_in_an_old_window_do_not_count() {
        let throttle = AuthThrottle::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        throttle.record_failure(ip(1), t0);
        throttle.record_failure(ip(1), t0 + Duration::from_secs(11));
        assert!(throttle.check(ip(1), t0 + Duration::from_secs(12)).is_ok());
    }

    #[test]
    fn tracked_addresses_stay_bounded() {
        let throttle = AuthThrottle::new(5, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            throttle.record_failure(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(throttle.failures.len() <= MAX_TRACKED);
    }
}
