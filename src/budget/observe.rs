//! The budget's report to a metrics registry.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::loom::atomic::Ordering;
use crate::metrics::{Collector, Family, Observe, Observer, Outstanding, Settings, SettingsCheck};

use super::memory_budget::MemoryBudget;
use super::node::Node;

const LIMIT: Family = Family::gauge(
    "budget_limit_bytes",
    "Bytes the budget grants at most at once (unlimited budgets report 2^64-1).",
);
const USED: Family = Family::gauge(
    "budget_used_bytes",
    "Bytes currently reserved from the budget.",
);
const PEAK: Family = Family::gauge("budget_peak_bytes", "The most bytes ever reserved at once.");
const GRANTED: Family = Family::counter("budget_granted_total", "Reservations granted.");
const REFUSED: Family = Family::counter(
    "budget_refused_total",
    "Reservations refused because a limit would have been exceeded.",
);
const WAITS: Family = Family::counter(
    "budget_waits_total",
    "Reservations that had to wait for bytes to be released.",
);

impl Observe for MemoryBudget {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(BudgetObserver(Arc::downgrade(&self.node)))
    }
}

struct BudgetObserver(Weak<Node>);

impl Observer for BudgetObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(node) = self.0.upgrade() else {
            return false;
        };
        out.gauge(&LIMIT, node.limit.load(Ordering::Relaxed) as f64);
        out.gauge(&USED, node.used.load(Ordering::Relaxed) as f64);
        out.gauge(&PEAK, node.peak.load(Ordering::Relaxed) as f64);
        out.counter(&GRANTED, node.granted.load(Ordering::Relaxed));
        out.counter(&REFUSED, node.refused.load(Ordering::Relaxed));
        out.counter(&WAITS, node.waits.load(Ordering::Relaxed));
        true
    }

    /// One key, `limit`; it cannot be switched off (use a very large limit instead).
    fn settings(&self) -> Option<Settings> {
        let node = self.0.upgrade()?;
        let limit = node.limit.load(Ordering::Relaxed) as u64;
        Some(Settings::new().with(LIMIT_KEY, Some(limit)))
    }

    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let mut check = SettingsCheck::new(settings, "a budget", &[LIMIT_KEY]);
        check.required(LIMIT_KEY, usize::MAX as u64);
        check.finish()
    }

    fn apply(&self, settings: &Settings) -> bool {
        let Some(node) = self.0.upgrade() else {
            return false;
        };
        if let Some(Some(limit)) = settings.get(LIMIT_KEY) {
            // Through the handle, so that waiters see the new limit as `set_limit` promises.
            MemoryBudget { node }.set_limit(limit as usize);
        }
        true
    }

    /// See [`MemoryBudget::leak_report`].
    fn leaks(&self, older_than: Duration) -> Option<Outstanding> {
        let node = self.0.upgrade()?;
        let used = node.used.load(Ordering::Relaxed);
        Some(node.leaks.outstanding(used, older_than))
    }
}

const LIMIT_KEY: &str = "limit";
