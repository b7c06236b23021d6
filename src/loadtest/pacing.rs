//! Open-loop pacing for `--rate`.
//!
//! A closed-loop generator (send, wait for the answer, send the next) slows
//! down exactly when the server does, so the requests that would have
//! queued behind a stall are never sent and their latency never recorded:
//! "coordinated omission". With `--rate R`, request `i` is instead *due* at
//! `start + i / R`, whatever happened before. Connections take requests in
//! due order; a request whose due time has passed before any connection was
//! free has been waiting since then, and that wait counts in its latency.
//!
//! The time a connection sleeps past a due time because the timer is coarse
//! (tokio's is 1 ms) is the generator's own delay, not the server's, and is
//! not counted: see [`Schedule::latency`].

use std::time::Duration;

/// When each request of a paced phase is due, relative to its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Requests per second, overall.
    rate: f64,
}

impl Schedule {
    /// `rate` must be positive and finite.
    pub fn new(rate: f64) -> Option<Schedule> {
        (rate.is_finite() && rate > 0.0).then_some(Schedule { rate })
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When request `i` is due.
    pub fn due(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many requests are due strictly before `elapsed`: the number a
    /// phase of that length should send.
    pub fn due_before(&self, elapsed: Duration) -> u64 {
        let exact = elapsed.as_secs_f64() * self.rate;
        let n = exact.ceil() as u64;
        // Guard against rounding: request n-1 must be due before `elapsed`.
        if n > 0 && self.due(n - 1) >= elapsed {
            n - 1
        } else {
            n
        }
    }

    /// The latency of a request due at `due`, taken by a connection that
    /// became free at `free`, sent at `sent` and answered at `answered` (all
    /// measured from the same origin): the wait for a free connection (if the
    /// request was overdue when one became free) plus the service time. Timer
    /// oversleep (`sent` later than both `due` and `free`) is excluded.
    pub fn latency(due: Duration, free: Duration, sent: Duration, answered: Duration) -> Duration {
        let queued = free.saturating_sub(due);
        answered.saturating_sub(sent) + queued
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn due_times_are_evenly_spaced() {
        let s = Schedule::new(5000.0).unwrap();
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_micros(200));
        assert_eq!(s.due(5000), Duration::from_secs(1));
        assert_eq!(s.due(50_000), Duration::from_secs(10));
        let s = Schedule::new(3.0).unwrap();
        assert_eq!(s.due(1).as_nanos(), 333_333_333);
    }

    #[test]
    fn how_many_are_due_in_a_phase() {
        let s = Schedule::new(5000.0).unwrap();
        assert_eq!(s.due_before(Duration::from_secs(10)), 50_000);
        assert_eq!(s.due_before(Duration::ZERO), 0);
        assert_eq!(s.due_before(Duration::from_micros(1)), 1);
        assert_eq!(s.due_before(Duration::from_micros(200)), 1);
        assert_eq!(s.due_before(Duration::from_micros(201)), 2);
        let s = Schedule::new(3.0).unwrap();
        assert_eq!(s.due_before(Duration::from_secs(1)), 3);
        for i in 0..10_000 {
            let s = Schedule::new(777.7).unwrap();
            let d = s.due(i) + Duration::from_nanos(1);
            assert_eq!(s.due_before(d), i + 1, "{i}");
        }
    }

    #[test]
    fn invalid_rates() {
        assert!(Schedule::new(0.0).is_none());
        assert!(Schedule::new(-1.0).is_none());
        assert!(Schedule::new(f64::NAN).is_none());
        assert!(Schedule::new(f64::INFINITY).is_none());
    }

    #[test]
    fn latency_counts_queueing_but_not_timer_oversleep() {
        // On time: the connection was free before the due time, slept, and
        // the timer woke it 0.8 ms late. Only the 2 ms service time counts.
        assert_eq!(Schedule::latency(ms(10), ms(5), ms(11), ms(13)), ms(2));
        // Overdue: due at 10, no connection free until 40 (the server was
        // stalled); sent at once and answered 2 ms later: 32 ms.
        assert_eq!(Schedule::latency(ms(10), ms(40), ms(40), ms(42)), ms(32));
    }
}
