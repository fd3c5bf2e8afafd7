//! The pool's report to a metrics registry, and its live retained cap.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::loom::atomic::Ordering;
use crate::metrics::{Collector, Family, Observe, Observer, Outstanding, Settings, SettingsCheck};

use super::pool::{BufPool, PoolLink};

const OUTSTANDING: Family = Family::gauge(
    "pool_outstanding_bytes",
    "Capacity of the buffers handed out and not yet back, unpooled ones included.",
);
const OUTSTANDING_BUFFERS: Family = Family::gauge(
    "pool_outstanding_buffers",
    "Buffers handed out and not yet back, unpooled ones included.",
);
const PEAK: Family = Family::gauge(
    "pool_peak_outstanding_bytes",
    "The most bytes seen outstanding at once, sampled at every allocation and every collection.",
);
const RETAINED: Family = Family::gauge("pool_retained_bytes", "Idle bytes kept for reuse.");
const MAX_RETAINED: Family = Family::gauge(
    "pool_max_retained_bytes",
    "The cap on idle bytes kept for reuse.",
);
const ACQUIRED: Family = Family::counter("pool_acquired_total", "Buffers handed out.");
const RETURNED: Family = Family::counter("pool_returned_total", "Buffers whose storage came back.");
const HITS: Family = Family::counter("pool_hits_total", "Acquisitions served from idle storage.");
const MISSES: Family = Family::counter(
    "pool_misses_total",
    "Pooled acquisitions that had to allocate.",
);
const UNPOOLED: Family = Family::counter(
    "pool_unpooled_total",
    "Acquisitions larger than the largest size class, allocated and freed outside the pool.",
);
const REFUSED: Family = Family::counter(
    "pool_refused_total",
    "Acquisitions refused by the memory budget.",
);
const CLASS_OUTSTANDING: Family = Family::gauge(
    "pool_class_outstanding_bytes",
    "Capacity of the outstanding buffers of one size class (class: its capacity in bytes).",
);
const CLASS_RETAINED: Family = Family::gauge(
    "pool_class_retained_bytes",
    "Idle bytes of one size class kept for reuse (class: its capacity in bytes).",
);
const CLASS_ACQUIRED: Family = Family::counter(
    "pool_class_acquired_total",
    "Buffers of one size class handed out (class: its capacity in bytes).",
);
const CLASS_MISSES: Family = Family::counter(
    "pool_class_misses_total",
    "Acquisitions of one size class that had to allocate (class: its capacity in bytes).",
);

const MAX_RETAINED_KEY: &str = "max_retained_bytes";

/// The observer holds the pool weakly: the pool leaves the registry when its last handle is dropped, even while
/// buffers are still out (their budget charges stay visible on the budget).
impl Observe for BufPool {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(PoolObserver(Arc::downgrade(&self.link)))
    }
}

struct PoolObserver(Weak<PoolLink>);

impl PoolObserver {
    /// The pool while a handle lives.
    fn link(&self) -> Option<Arc<PoolLink>> {
        self.0.upgrade().filter(|link| link.0.get().has_handles())
    }
}

impl Observer for PoolObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(link) = self.link() else {
            return false;
        };
        let m = link.0.get().metrics();
        let t = &m.total;
        out.gauge(&OUTSTANDING, t.outstanding_bytes as f64);
        out.gauge(&OUTSTANDING_BUFFERS, t.outstanding_buffers as f64);
        out.gauge(&PEAK, t.peak_outstanding_bytes as f64);
        out.gauge(&RETAINED, t.retained_bytes as f64);
        out.gauge(&MAX_RETAINED, t.max_retained_bytes as f64);
        out.counter(&ACQUIRED, t.acquired);
        out.counter(&RETURNED, t.returned);
        out.counter(&HITS, t.hits);
        out.counter(&MISSES, t.misses);
        out.counter(&UNPOOLED, t.unpooled);
        out.counter(&REFUSED, t.refused);
        for class in &m.classes {
            let label = ("class", class.capacity.to_string());
            let label = (label.0, label.1.as_str());
            out.gauge_with(&CLASS_OUTSTANDING, label, class.outstanding_bytes as f64);
            out.gauge_with(&CLASS_RETAINED, label, class.retained_bytes as f64);
            out.counter_with(&CLASS_ACQUIRED, label, class.acquired);
            out.counter_with(&CLASS_MISSES, label, class.misses);
        }
        true
    }

    /// One key, `max_retained_bytes`; it cannot be off (0 keeps nothing idle).
    fn settings(&self) -> Option<Settings> {
        let link = self.link()?;
        let max = link.0.get().max_retained_bytes.load(Ordering::Relaxed);
        Some(Settings::new().with(MAX_RETAINED_KEY, Some(max as u64)))
    }

    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let mut check = SettingsCheck::new(settings, "a pool", &[MAX_RETAINED_KEY]);
        check.required(MAX_RETAINED_KEY, usize::MAX as u64);
        check.finish()
    }

    fn apply(&self, settings: &Settings) -> bool {
        let Some(link) = self.link() else {
            return false;
        };
        if let Some(Some(max)) = settings.get(MAX_RETAINED_KEY) {
            // As `BufPool::set_max_retained_bytes`: frees idle storage above the new cap.
            link.0
                .get()
                .set_max_retained_bytes(usize::try_from(max).unwrap_or(usize::MAX));
        }
        true
    }

    /// What the pool has handed out and not had back, and, when it tracks buffers, where they were acquired.
    fn leaks(&self, older_than: Duration) -> Option<Outstanding> {
        Some(self.link()?.0.get().outstanding(older_than))
    }
}
