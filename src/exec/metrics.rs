use std::time::Duration;

/// A snapshot of a [`BoundedExecutor`](super::BoundedExecutor)'s counters, from
/// [`metrics`](super::BoundedExecutor::metrics). The counts are read one after another, not atomically together,
/// so under load they can disagree by a task or two; after a workload they settle. The two limits are read
/// together: never one from before a [`set_limits`](super::BoundedExecutor::set_limits) and one from after.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let exec = tidegate::exec::BoundedExecutor::new(2, 8);
/// exec.try_spawn(async {}).unwrap().await.unwrap();
/// let m = exec.metrics();
/// assert_eq!((m.admitted, m.completed, m.running, m.pending), (1, 1, 0, 0));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ExecMetrics {
    /// The executor's name, if the builder gave it one.
    pub name: Option<String>,
    /// The current limit on tasks running at once.
    pub max_concurrency: usize,
    /// The current limit on admitted tasks beyond `max_concurrency`.
    pub max_pending: usize,
    /// Tasks admitted and not finished (`running + pending`).
    pub in_flight: usize,
    /// Tasks holding a run slot.
    pub running: usize,
    /// Tasks admitted but not running: waiting for a run slot, for their key's turn, or for the runtime to poll
    /// them for the first time. The last group is why this can briefly exceed `max_pending` while slots are
    /// free; `in_flight <= max_concurrency + max_pending` always holds.
    pub pending: usize,
    /// The highest `pending` seen at an admission.
    pub peak_pending: usize,
    /// Tasks admitted since the executor was built.
    pub admitted: u64,
    /// Submissions refused (full, overloaded, timed out or closed).
    pub refused: u64,
    /// Tasks that ran to completion.
    pub completed: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Tasks cancelled after they started (handle abort or shutdown deadline).
    pub aborted: u64,
    /// Tasks cancelled before they started.
    pub never_started: u64,
    /// Keys with at least one keyed task in flight.
    pub active_keys: usize,
    /// The longest time a task waited in the queue for a run slot.
    pub pending_time_max: Duration,
    /// The mean time started tasks waited for a run slot (tasks that got one at once count as zero).
    pub pending_time_mean: Duration,
}
