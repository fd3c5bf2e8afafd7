//! A limited listener's report to a metrics registry.

use std::sync::{Arc, Weak};

use crate::metrics::{Collector, Family, Observe, Observer};

use super::listener::{Counters, LimitedListener};

const ACCEPTED: Family = Family::counter(
    "listener_accepted_total",
    "Connections returned by accept, each with its permit.",
);
const REJECTED: Family = Family::counter(
    "listener_rejected_total",
    "Connections accepted and closed at once with a reset because a limit refused them, by the limit (scope).",
);
const SKIPPED: Family = Family::counter(
    "listener_skipped_errors_total",
    "Accept errors that belonged to one connection (aborted, reset, protocol or network errors) and were skipped.",
);
const BACKOFFS: Family = Family::counter(
    "listener_backoffs_total",
    "Waits before retrying accept: one per resource error, and one per 64 skipped errors in a row.",
);
const PAUSES: Family = Family::counter(
    "listener_pauses_total",
    "Times accept found the limiter full and began to wait for a free slot.",
);

/// The observer holds the listener's counters weakly: it never keeps the socket open. The listener's limiter is a
/// part of its own; register it separately for `limiter_*`.
impl Observe for LimitedListener {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(ListenerObserver(Arc::downgrade(&self.counters)))
    }
}

struct ListenerObserver(Weak<Counters>);

impl Observer for ListenerObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(counters) = self.0.upgrade() else {
            return false;
        };
        let m = counters.snapshot();
        out.counter(&ACCEPTED, m.accepted);
        let global = m.rejected.saturating_sub(m.rejected_per_ip);
        out.counter_with(&REJECTED, ("scope", "global"), global);
        out.counter_with(&REJECTED, ("scope", "per_ip"), m.rejected_per_ip);
        out.counter(&SKIPPED, m.skipped_errors);
        out.counter(&BACKOFFS, m.backoffs);
        out.counter(&PAUSES, m.pauses);
        true
    }
}
