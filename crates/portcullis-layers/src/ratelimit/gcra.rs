//! The Generic Cell Rate Algorithm, in integer microseconds.
//!
//! A rule "`limit` requests per `window`" has an emission interval
//! `T = window / limit` and a burst tolerance `tau = window - T`. Each key
//! stores one number, its theoretical arrival time (TAT). A request at `now`
//! is allowed iff `max(tat, now) - now <= tau`; if allowed the TAT becomes
//! `max(tat, now) + T`. So a fresh key may send `limit` requests at once,
//! then one per `T`; there is no burst at window boundaries (unlike fixed
//! windows), and the state is one integer per key (unlike sliding logs).
//! The Redis script implements exactly this function.
//!
//! Guarantees, for "`limit` per `window`": a burst of at most `limit`; at
//! most `limit + d / T` requests in any interval of length `d` (so at most
//! `2 * limit - 1` in any interval of one `window`, the same bound a fixed
//! window gives at its edges, but without the edge); `limit` per `window`
//! sustained.

/// One rule's parameters, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Emission interval `T = window / limit`.
    pub interval_us: u64,
    /// The window.
    pub window_us: u64,
    /// The limit (for headers).
    pub limit: u64,
}

impl Rate {
    /// `limit` per `window`.
    pub fn new(limit: u32, window: std::time::Duration) -> Rate {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
        let limit = u64::from(limit.max(1));
        Rate { interval_us: (window_us / limit).max(1), window_us, limit }
    }

    fn tau(&self) -> u64 {
        self.window_us.saturating_sub(self.interval_us)
    }
}

/// The decision for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether this rule allows the request.
    pub allowed: bool,
    /// Requests left in the window after this one.
    pub remaining: u64,
    /// Microseconds until the quota is full again.
    pub reset_us: u64,
    /// When refused: microseconds until a request would be allowed.
    pub retry_after_us: u64,
}

/// Evaluates a request at `now` against a stored TAT (`0`: never seen).
/// Returns the outcome and the TAT to store if the request is served.
pub fn evaluate(rate: &Rate, tat: u64, now: u64) -> (Outcome, u64) {
    let tat = tat.max(now);
    let debt = tat - now;
    if debt > rate.tau() {
        let outcome =
            Outcome { allowed: false, remaining: 0, reset_us: debt, retry_after_us: debt - rate.tau() };
        return (outcome, tat);
    }
    let new_tat = tat + rate.interval_us;
    let used = new_tat - now;
    let remaining = rate.window_us.saturating_sub(used) / rate.interval_us;
    (Outcome { allowed: true, remaining, reset_us: used, retry_after_us: 0 }, new_tat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_one_per_interval() {
        let r = Rate::new(5, Duration::from_secs(10)); // T = 2s
        let mut tat = 0;
        let now = 1_000_000_000;
        for want_remaining in (0..5).rev() {
            let (o, t) = evaluate(&r, tat, now);
            assert!(o.allowed);
            assert_eq!(o.remaining, want_remaining);
            tat = t;
        }
        let (o, _) = evaluate(&r, tat, now);
        assert!(!o.allowed);
        assert_eq!(o.retry_after_us, 2_000_000);
        assert_eq!(o.reset_us, 10_000_000);
        // One interval later exactly one more request is allowed.
        let (o, t) = evaluate(&r, tat, now + 2_000_000);
        assert!(o.allowed);
        assert_eq!(o.remaining, 0);
        let (o, _) = evaluate(&r, t, now + 2_000_000);
        assert!(!o.allowed);
        // After a full window the quota is back.
        let (o, _) = evaluate(&r, t, now + 12_000_000);
        assert_eq!((o.allowed, o.remaining), (true, 4));
    }

    #[test]
    fn limit_one() {
        let r = Rate::new(1, Duration::from_secs(60));
        let (o, t) = evaluate(&r, 0, 100);
        assert_eq!((o.allowed, o.remaining), (true, 0));
        let (o, _) = evaluate(&r, t, 100 + 59_999_999);
        assert!(!o.allowed);
        assert_eq!(o.retry_after_us, 1);
        assert!(evaluate(&r, t, 100 + 60_000_000).0.allowed);
    }

    proptest::proptest! {
        // Over any sequence of arrivals: at most `limit + d / T` admitted in
        // any interval of length `d`, hence at most `2 * limit - 1` per window.
        #[test]
        fn gcra_bounds_hold(limit in 1u32..20, gaps in proptest::collection::vec(0u64..3_000_000, 1..200)) {
            let r = Rate::new(limit, Duration::from_secs(10));
            let mut tat = 0;
            let mut now = 1_000_000u64;
            let mut admitted: Vec<u64> = Vec::new();
            for g in gaps {
                now += g;
                let (o, t) = evaluate(&r, tat, now);
                if o.allowed {
                    tat = t;
                    admitted.push(now);
                }
            }
            for (i, start) in admitted.iter().enumerate() {
                let in_window = admitted[i..].iter().take_while(|&&t| t < start + r.window_us).count() as u64;
                proptest::prop_assert!(in_window < 2 * r.limit, "{} in a window, limit {}", in_window, r.limit);
                for (j, end) in admitted.iter().enumerate().skip(i) {
                    let n = (j - i + 1) as u64;
                    proptest::prop_assert!(n <= r.limit + (end - start) / r.interval_us);
                }
            }
        }
    }
}
