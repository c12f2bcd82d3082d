//! Authorization requests refused before their client is known (unknown client, redirect
//! URI not registered): nothing about them is written, but an address sending many is
//! slowed down. Counted per address in memory, per replica: a limit on noise, not a
//! security boundary (brute force on credentials is counted durably elsewhere).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use relais_telemetry::metrics::Counter;

/// Addresses remembered at most; past it, windows already over are forgotten first.
const MAX_ADDRESSES: usize = 50_000;

pub struct Refusals {
    per_window: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (Instant, u32)>>,
    refused: Counter,
    limited: Counter,
}

/// What the limiter says of one more refusal.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with the refusal.
    Refuse,
    /// The address is over its limit: answer "too many", in this many seconds again.
    Slow(u32),
}

impl Refusals {
    /// Counting into `refused` (every refusal) and `limited` (those answered "too many").
    pub fn new(per_window: u32, window: Duration, refused: Counter, limited: Counter) -> Self {
        Refusals {
            per_window,
            window,
            seen: Mutex::default(),
            refused,
            limited,
        }
    }

    /// Counts one refusal for `address` at `now`.
    pub fn count(&self, address: &str, now: Instant) -> Verdict {
        self.refused.inc();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= MAX_ADDRESSES {
            let window = self.window;
            seen.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = seen.entry(address.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 <= self.per_window {
            return Verdict::Refuse;
        }
        self.limited.inc();
        let left = self.window.saturating_sub(now.duration_since(entry.0));
        Verdict::Slow(u32::try_from(left.as_secs().max(1)).unwrap_or(u32::MAX))
    }

    /// Refusals counted, and of them those answered "too many", since start.
    pub fn totals(&self) -> (u64, u64) {
        (self.refused.get(), self.limited.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_limit_is_slowed_until_its_window_ends() {
        let r = Refusals::new(
            3,
            Duration::from_secs(60),
            Counter::default(),
            Counter::default(),
        );
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.count("192.0.2.1", t0), Verdict::Refuse);
        }
        assert_eq!(r.count("192.0.2.1", t0), Verdict::Slow(60));
        assert_eq!(
            r.count("192.0.2.1", t0 + Duration::from_secs(45)),
            Verdict::Slow(15)
        );
        // Another address is not concerned; a new window starts afresh.
        assert_eq!(r.count("192.0.2.2", t0), Verdict::Refuse);
        assert_eq!(
            r.count("192.0.2.1", t0 + Duration::from_secs(61)),
            Verdict::Refuse
        );
        assert_eq!(r.totals(), (7, 2));
    }
}
