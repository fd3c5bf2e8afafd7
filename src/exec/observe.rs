//! The executor's report to a metrics registry, and its live limits.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::metrics::{Collector, Family, Observe, Observer, Settings, SettingsCheck};

use super::executor::BoundedExecutor;
use super::limits::ExecLimits;
use super::shared::{Shared, MAX_LIMIT};

const IN_FLIGHT: Family = Family::gauge(
    "exec_in_flight",
    "Tasks admitted and not finished (running plus pending).",
);
const RUNNING: Family = Family::gauge("exec_running", "Tasks holding a run slot.");
const PENDING: Family = Family::gauge("exec_pending", "Tasks admitted but not running yet.");
const PEAK_PENDING: Family = Family::gauge(
    "exec_peak_pending",
    "The most tasks seen pending at an admission.",
);
const ACTIVE_KEYS: Family = Family::gauge(
    "exec_active_keys",
    "Keys with at least one keyed task in flight.",
);
const PENDING_TIME_MAX: Family = Family::gauge(
    "exec_pending_time_max_seconds",
    "The longest time a task waited for a run slot.",
);
const MAX_CONCURRENCY: Family = Family::gauge(
    "exec_max_concurrency",
    "The current limit on tasks running at once.",
);
const MAX_PENDING: Family = Family::gauge(
    "exec_max_pending",
    "The current limit on admitted tasks beyond max_concurrency.",
);
const SHED_AFTER: Family = Family::gauge(
    "exec_shed_after_seconds",
    "Submissions are refused while the oldest pending task has waited longer than this (absent when off).",
);
const ADMITTED: Family = Family::counter(
    "exec_admitted_total",
    "Tasks admitted since the executor was built.",
);
const REFUSED: Family = Family::counter(
    "exec_refused_total",
    "Submissions refused: full, overloaded, timed out or closed.",
);
const COMPLETED: Family = Family::counter("exec_completed_total", "Tasks that ran to completion.");
const PANICKED: Family = Family::counter("exec_panicked_total", "Tasks that panicked.");
const ABORTED: Family = Family::counter(
    "exec_aborted_total",
    "Tasks cancelled after they started (handle abort or shutdown deadline).",
);
const NEVER_STARTED: Family = Family::counter(
    "exec_never_started_total",
    "Tasks cancelled before they started.",
);

const CONCURRENCY_KEY: &str = "max_concurrency";
const PENDING_KEY: &str = "max_pending";
const SHED_KEY: &str = "shed_after_ms";
const KEYS: [&str; 3] = [CONCURRENCY_KEY, PENDING_KEY, SHED_KEY];

/// The observer holds the executor's shared state weakly. Tasks still in flight keep that state alive after the
/// last handle is dropped (they need it to leave), so a dropped executor keeps reporting until they finish.
impl Observe for BoundedExecutor {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(ExecObserver(Arc::downgrade(&self.shared)))
    }
}

struct ExecObserver(Weak<Shared>);

impl Observer for ExecObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        let m = shared.metrics();
        out.gauge(&IN_FLIGHT, m.in_flight as f64);
        out.gauge(&RUNNING, m.running as f64);
        out.gauge(&PENDING, m.pending as f64);
        out.gauge(&PEAK_PENDING, m.peak_pending as f64);
        out.gauge(&ACTIVE_KEYS, m.active_keys as f64);
        out.gauge(&PENDING_TIME_MAX, m.pending_time_max.as_secs_f64());
        out.gauge(&MAX_CONCURRENCY, m.max_concurrency as f64);
        out.gauge(&MAX_PENDING, m.max_pending as f64);
        if let Some(shed) = shared.shed_after() {
            out.gauge(&SHED_AFTER, shed.as_secs_f64());
        }
        out.counter(&ADMITTED, m.admitted);
        out.counter(&REFUSED, m.refused);
        out.counter(&COMPLETED, m.completed);
        out.counter(&PANICKED, m.panicked);
        out.counter(&ABORTED, m.aborted);
        out.counter(&NEVER_STARTED, m.never_started);
        true
    }

    /// `max_concurrency`, `max_pending` and `shed_after_ms` (`off` when load shedding is off; a limit set
    /// through the handle with a fraction of a millisecond is reported rounded down).
    fn settings(&self) -> Option<Settings> {
        let limits = self.0.upgrade()?.limits();
        Some(
            Settings::new()
                .with(CONCURRENCY_KEY, Some(limits.max_concurrency as u64))
                .with(PENDING_KEY, Some(limits.max_pending as u64))
                .with(
                    SHED_KEY,
                    limits
                        .shed_after
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                ),
        )
    }

    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let mut check = SettingsCheck::new(settings, "an executor", &KEYS);
        let concurrency = check.required(CONCURRENCY_KEY, MAX_LIMIT as u64);
        let pending = check.required(PENDING_KEY, MAX_LIMIT as u64);
        if let (Some(0), Some(0)) = (concurrency, pending) {
            check.refuse(format!(
                "{CONCURRENCY_KEY} and {PENDING_KEY} are both 0: nothing could be admitted"
            ));
        }
        check.switchable(SHED_KEY, u64::MAX);
        check.finish()
    }

    fn apply(&self, settings: &Settings) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        let current = shared.limits();
        let count = |key: &str, old: usize| match settings.get(key) {
            Some(Some(v)) => usize::try_from(v).unwrap_or(MAX_LIMIT),
            _ => old,
        };
        let shed_after = match settings.get(SHED_KEY) {
            Some(ms) => ms.map(Duration::from_millis),
            None => current.shed_after,
        };
        shared.set_all_limits(ExecLimits::new(
            count(CONCURRENCY_KEY, current.max_concurrency),
            count(PENDING_KEY, current.max_pending),
            shed_after,
        ));
        true
    }
}
