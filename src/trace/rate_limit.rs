//! One warning per second per call site, and a count of the ones held back.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use tokio::time::Instant;

/// At most one event per window.
const WINDOW_MS: u64 = 1000;

/// A per-call-site limiter: lock-free, allocation-free, `const`-constructible so each call site keeps one in a
/// `static`.
///
/// The window is read from tokio's clock, so a paused test clock drives it; outside a runtime that is the system's
/// monotonic clock.
#[derive(Debug)]
pub(crate) struct RateLimit {
    /// Milliseconds since [`epoch`] before which events are held back.
    next_ms: AtomicU64,
    /// Events held back since the last one let through.
    suppressed: AtomicU64,
}

impl RateLimit {
    pub(crate) const fn new() -> Self {
        RateLimit {
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last admitted)` if this event may be logged, `None` if it is held back.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(now_ms())
    }

    /// Every call is either admitted or counted exactly once, so the `suppressed` values reported plus the count
    /// still pending always equal the events held back, however callers race.
    fn admit_at(&self, now: u64) -> Option<u64> {
        let next = self.next_ms.load(Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(next, now + WINDOW_MS, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let ms = Instant::now().saturating_duration_since(epoch).as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX - WINDOW_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_window_and_the_next_reports_the_held_back() {
        let limit = RateLimit::new();
        assert_eq!(limit.admit_at(5), Some(0));
        for t in 5..1005 {
            assert_eq!(limit.admit_at(t), None, "at {t}");
        }
        assert_eq!(limit.admit_at(1005), Some(1000));
        assert_eq!(limit.admit_at(1006), None);
        assert_eq!(limit.admit_at(5000), Some(1));
    }

    #[test]
    fn racing_callers_lose_no_count() {
        let limit = RateLimit::new();
        let admitted: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).filter(|_| limit.admit_at(7).is_some()).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap() as u64).sum()
        });
        assert_eq!(admitted, 1);
        assert_eq!(limit.admit_at(7 + WINDOW_MS), Some(3999));
    }
}
