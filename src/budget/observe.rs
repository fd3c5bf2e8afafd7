//! The budget's report to a metrics registry.

use std::sync::{Arc, Weak};

use crate::loom::atomic::Ordering;
use crate::metrics::{Collector, Family, Observe, Observer};

use super::memory_budget::MemoryBudget;
use super::node::Node;

const LIMIT: Family = Family::gauge(
    "budget_limit_bytes",
    "Bytes the budget grants at most at once (unlimited budgets report 2^64-1).",
);
const USED: Family = Family::gauge("budget_used_bytes", "Bytes currently reserved from the budget.");
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
}
