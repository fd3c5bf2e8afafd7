use crate::loom::atomic::Ordering::SeqCst;

use tokio::time::Instant;

use super::executor::BoundedExecutor;

/// What happened to the tasks in flight when [`BoundedExecutor::shutdown`] began.
///
/// # Examples
///
/// See [`BoundedExecutor::shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks that ran to completion during the shutdown.
    pub completed: u64,
    /// Tasks that panicked during the shutdown.
    pub panicked: u64,
    /// Tasks that had started and were cancelled (by the deadline or by their handle).
    pub aborted: u64,
    /// Tasks that were still waiting to start and were cancelled.
    pub never_started: u64,
    /// Blocking closures still running when the report was made: abort cannot stop them. Each still holds its
    /// slot and is counted in `metrics()` until it returns.
    pub detached: usize,
}

impl BoundedExecutor {
    /// Stops admitting, lets running and pending tasks finish until `deadline`, then cancels the rest and waits
    /// for them to be dropped. Every clone of the executor sees it closed; submissions fail with
    /// [`SpawnError::Closed`](super::SpawnError::Closed), including awaiting ones already waiting.
    ///
    /// The report counts the tasks that were in flight when this call began. If shutdown was already under way
    /// (another call), this call waits the same way and reports what happened during its own wait.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the deadline leaves the executor closed, with nothing cancelled: tasks run
    /// on, unbounded in time. Call it again to finish the job.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use tidegate::exec::BoundedExecutor;
    /// use tokio::time::{sleep, Instant};
    ///
    /// let exec = BoundedExecutor::new(1, 4);
    /// let _quick = exec.try_spawn(sleep(Duration::from_millis(10))).unwrap();
    /// let _slow = exec.try_spawn(sleep(Duration::from_secs(60))).unwrap();
    /// let _queued = exec.try_spawn(async {}).unwrap();
    /// let report = exec.shutdown(Instant::now() + Duration::from_secs(1)).await;
    /// assert_eq!((report.completed, report.aborted, report.never_started), (1, 1, 1));
    /// assert_eq!(exec.metrics().in_flight, 0);
    /// # }
    /// ```
    pub async fn shutdown(&self, deadline: Instant) -> ShutdownReport {
        let before = self.shared.metrics();
        self.shared.close();
        let graceful = tokio::time::timeout_at(deadline, self.wait_for_tasks(true)).await;
        if graceful.is_err() {
            self.shared.registry.abort_all();
            // Cancelled tasks are dropped by the runtime; wait for that, but not for blocking closures.
            self.wait_for_tasks(false).await;
        }
        let after = self.shared.metrics();
        ShutdownReport {
            completed: after.completed - before.completed,
            panicked: after.panicked - before.panicked,
            aborted: after.aborted - before.aborted,
            never_started: after.never_started - before.never_started,
            detached: after.in_flight,
        }
    }

    /// Waits until no task is in flight, or with `include_blocking == false`, none but running blocking
    /// closures (which abort cannot stop).
    async fn wait_for_tasks(&self, include_blocking: bool) {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // In-flight first: a blocking closure leaves `blocking_running` before `in_flight`, so this order
            // can only overestimate what is left, and the wake-up that follows corrects it.
            let in_flight = self.shared.in_flight();
            let blocking = if include_blocking {
                0
            } else {
                self.shared.counters.blocking_running.load(SeqCst)
            };
            if in_flight.saturating_sub(blocking) == 0 {
                return;
            }
            notified.await;
        }
    }
}
