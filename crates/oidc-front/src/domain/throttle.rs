//! Brute-force blocking: how failures count and how long a block lasts (no I/O).

use time::{Duration, OffsetDateTime};

/// Who failures count against, as stored and as operators list and clear them.
pub fn client_subject(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// A client id named from an address (before its credentials were checked).
pub fn pair_subject(client_id: &str, ip: &str) -> String {
    format!("client:{client_id}@ip:{ip}")
}

pub fn address_subject(ip: &str) -> String {
    format!("ip:{ip}")
}

/// The kind of a subject, for the operators' metric: `client`, `client_address` or
/// `address`.
pub fn kind_of(subject: &str) -> &'static str {
    match subject.split_once(':') {
        Some(("ip", _)) => "address",
        Some(("client", rest)) if rest.contains("@ip:") => "client_address",
        _ => "client",
    }
}

/// The limits, from configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_failures: u32,
    pub window: Duration,
    pub base_block: Duration,
    pub max_block: Duration,
}

/// A subject's counters as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    pub failures: u32,
    pub window_started_at: OffsetDateTime,
    pub blocks: u32,
    pub blocked_until: Option<OffsetDateTime>,
}

impl Limits {
    /// The counters after one more failure at `now`.
    pub fn after_failure(&self, previous: Option<Counter>, now: OffsetDateTime) -> Counter {
        let mut c = match previous {
            Some(c) if now - c.window_started_at < self.window => Counter {
                failures: c.failures + 1,
                ..c
            },
            Some(c) => Counter {
                failures: 1,
                window_started_at: now,
                ..c
            },
            None => Counter {
                failures: 1,
                window_started_at: now,
                blocks: 0,
                blocked_until: None,
            },
        };
        if c.failures >= self.max_failures {
            // Each new block lasts twice the one before, up to the cap.
            let factor = 1i32 << c.blocks.min(16);
            let length = (self.base_block * factor).min(self.max_block);
            c.blocks += 1;
            c.blocked_until = Some(now + length);
            c.failures = 0;
            c.window_started_at = now;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn limits() -> Limits {
        Limits {
            max_failures: 3,
            window: Duration::minutes(10),
            base_block: Duration::minutes(1),
            max_block: Duration::minutes(5),
        }
    }

    #[test]
    fn blocks_grow_and_stop_at_the_cap() {
        let l = limits();
        let t = datetime!(2026-11-23 10:00 UTC);
        let mut c = None;
        let mut lengths = Vec::new();
        for round in 0..5 {
            for i in 0..3 {
                let next = l.after_failure(c, t + Duration::seconds(round * 100 + i));
                c = Some(next);
            }
            let now = t + Duration::seconds(round * 100 + 2);
            lengths.push(c.and_then(|c| c.blocked_until).map(|u| u - now));
        }
        let minutes: Vec<i64> = lengths
            .into_iter()
            .map(|d| d.map(|d| d.whole_minutes()).unwrap_or(0))
            .collect();
        assert_eq!(minutes, vec![1, 2, 4, 5, 5]);
    }

    #[test]
    fn subjects_name_their_kind() {
        assert_eq!(kind_of(&client_subject("sp-a")), "client");
        assert_eq!(
            kind_of(&pair_subject("sp-a", "2001:db8::1")),
            "client_address"
        );
        assert_eq!(kind_of(&address_subject("203.0.113.7")), "address");
    }

    #[test]
    fn failures_outside_the_window_start_over() {
        let l = limits();
        let t = datetime!(2026-11-23 10:00 UTC);
        let c = l.after_failure(None, t);
        let c = l.after_failure(Some(c), t + Duration::minutes(1));
        let c = l.after_failure(Some(c), t + Duration::minutes(30));
        assert_eq!(c.failures, 1);
        assert_eq!(c.blocked_until, None);
    }
}
