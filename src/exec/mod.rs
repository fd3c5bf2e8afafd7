//! A bounded executor: bounded concurrency, a bounded backlog, and explicit, lossless rejection.
//!
//! `tokio::spawn` never refuses, and a task queue nobody bounded is how one slow dependency turns into an
//! out-of-memory kill. A [`BoundedExecutor`] runs futures (and blocking closures) on tokio with two limits:
//!
//! * `max_concurrency`: tasks running at once;
//! * `max_pending`: admitted tasks waiting beyond those. At most `max_concurrency + max_pending` are in flight.
//!
//! Beyond that, [`try_spawn`](BoundedExecutor::try_spawn) refuses at once and hands the future back inside
//! [`SpawnError`]; [`spawn`](BoundedExecutor::spawn) waits for room (cancel-safe);
//! [`spawn_timeout`](BoundedExecutor::spawn_timeout) waits with a deadline. With
//! [`shed_after`](ExecutorBuilder::shed_after), the executor also refuses while its oldest waiting task has waited too
//! long. Every form returns a [`TaskHandle`]: await it for the output or a [`TaskError`], or abort the task.
//!
//! [`try_spawn_keyed`](BoundedExecutor::try_spawn_keyed) runs tasks with the same key one at a time in
//! submission order (responses of one connection stay in order) while different keys run in parallel.
//! [`shutdown`](BoundedExecutor::shutdown) drains until a deadline, cancels the rest and reports exact counts.
//!
//! A panicking task is counted and releases its slot; the executor carries on. Limits can be changed live, and
//! [`metrics`](BoundedExecutor::metrics) returns an [`ExecMetrics`] snapshot.
//!
//! # Cost
//!
//! Tasks are spawned onto tokio when admitted and wait for their run slot inside. The in-flight count, the
//! running count and the "someone waits" flags share one atomic word, so admission is one compare-and-swap,
//! taking a slot one more, and finishing one more plus the completion counter; there is no reference count
//! per task, and locks are only taken when a task has to wait. Measured by instruction count on the
//! `exec_spawn_trivial` bench, a bounded spawn costs less than `tokio::spawn` behind a `Semaphore`.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tidegate::exec::{BoundedExecutor, SpawnError};
//!
//! let exec = BoundedExecutor::builder().max_concurrency(2).max_pending(1).name("handlers").build().unwrap();
//! let (release, gate) = tokio::sync::watch::channel(false);
//! let mut handles = Vec::new();
//! for i in 0..3 {
//!     let mut gate = gate.clone();
//!     handles.push(exec.try_spawn(async move { gate.wait_for(|open| *open).await.ok(); i }).unwrap());
//! }
//! // Two running, one pending: the fourth is refused and comes back intact.
//! let refused = exec.try_spawn(async { 3 }).unwrap_err();
//! assert!(matches!(refused, SpawnError::Full { in_flight: 3, limit: 3, .. }));
//! let elsewhere = tokio::spawn(refused.into_inner());
//!
//! release.send(true).unwrap();
//! let mut total = elsewhere.await.unwrap();
//! for h in handles {
//!     total += h.await.unwrap();
//! }
//! assert_eq!(total, 6);
//! let m = exec.metrics();
//! assert_eq!((m.admitted, m.refused, m.completed, m.in_flight), (3, 1, 3, 0));
//! # }
//! ```

mod blocking;
mod builder;
mod error;
mod executor;
mod gate;
mod handle;
mod keyed;
mod limits;
#[cfg(all(test, tidegate_loom))]
mod loom_tests;
mod metrics;
#[cfg(not(all(test, tidegate_loom)))]
mod observe;
mod registry;
mod shared;
mod shared_ref;
mod shutdown;
mod state;
mod task;

pub use builder::{ExecutorBuilder, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_PENDING};
pub use error::{BuildError, SpawnError, TaskError};
pub use executor::BoundedExecutor;
pub use handle::TaskHandle;
pub use limits::ExecLimits;
pub use metrics::ExecMetrics;
pub use shutdown::ShutdownReport;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<BoundedExecutor>();
        assert_send_sync::<TaskHandle<u8>>();
        assert_send_sync::<SpawnError<()>>();
        assert_send_sync::<ExecMetrics>();
        assert_send_sync::<ExecutorBuilder>();
        assert_send_sync::<BuildError>();
    }

    /// Limits far beyond what the state word can count are reported as set (as before the counts shared one
    /// word) and clamped where they are enforced, without a count ever reaching the word's flags.
    #[tokio::test]
    async fn huge_limits_are_reported_and_admit_normally() {
        let exec = BoundedExecutor::builder()
            .max_concurrency(usize::MAX)
            .max_pending(usize::MAX)
            .build()
            .unwrap();
        assert_eq!(exec.max_concurrency(), shared::MAX_LIMIT);
        assert_eq!(exec.max_pending(), shared::MAX_LIMIT);
        let handles: Vec<_> = (0..100u64)
            .map(|i| exec.try_spawn(async move { i }).unwrap())
            .collect();
        assert_eq!((exec.metrics().in_flight, exec.is_closed()), (100, false));
        let mut total = 0;
        for h in handles {
            total += tokio::time::timeout(std::time::Duration::from_secs(10), h)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(total, 4950);
        let m = exec.metrics();
        assert_eq!(
            (m.admitted, m.completed, m.in_flight, m.running),
            (100, 100, 0, 0)
        );
    }
}
