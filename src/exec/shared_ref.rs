//! A task's reference to its executor's [`Shared`] state, without a reference count per task.
//!
//! An `Arc` clone per task costs two contended read-modify-writes (clone at spawn, drop at the end) on a
//! cache line every submitter and worker touches. Instead, one strong count is held on behalf of all tasks
//! in flight ("the tasks' reference"):
//!
//! * the admission that takes the in-flight count from 0 to 1 adds it, before its task is spawned, while the
//!   submitter's own handle keeps `Shared` alive; the count cannot return to 0 before that task leaves;
//! * the task whose leaving takes the count from 1 to 0 drops it, as its very last access;
//! * a task uses `Shared` only while it is counted in flight, or through a strong reference of its own taken
//!   while it still was (the slow path of [`SharedRef::leave`]).
//!
//! Every 0 -> 1 has its 1 -> 0, so the strong counts added and dropped balance, and the state word's
//! `SeqCst` read-modify-writes order each addition before the drop that matches it.

use std::ptr::NonNull;
use std::sync::Arc;

use super::shared::{Admission, Outcome, Shared};
use super::state::in_flight_of;

/// Valid while the task that owns it is counted in flight, that is until [`leave`](SharedRef::leave) consumes
/// it. Not `Clone`: one per task.
pub(crate) struct SharedRef {
    ptr: NonNull<Shared>,
}

// SAFETY: a `SharedRef` is a shared reference to `Shared`, which is `Send + Sync`; the protocol above keeps it
// alive as long as the reference is usable.
unsafe impl Send for SharedRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for SharedRef {}

impl SharedRef {
    /// The reference of a task just admitted into `shared`.
    #[inline]
    pub(crate) fn new(shared: &Arc<Shared>, admission: Admission) -> Self {
        if admission.first {
            // The tasks' reference, released by whichever task leaves last.
            std::mem::forget(Arc::clone(shared));
        }
        SharedRef {
            ptr: NonNull::from(&**shared),
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> &Shared {
        // SAFETY: the task owning `self` has not left (leaving consumes `self`), so it is counted in flight and
        // the tasks' reference keeps `Shared` alive.
        unsafe { self.ptr.as_ref() }
    }

    /// A strong reference, for what may outlive the task's place in flight.
    pub(crate) fn to_arc(&self) -> Arc<Shared> {
        let ptr = self.ptr.as_ptr().cast_const();
        // SAFETY: `ptr` came from an `Arc<Shared>` (see `new`) whose allocation is alive (see `get`); the
        // increment gives the `Arc` built from it a count of its own.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    /// Counts how the task ended and takes it out of flight, with its run slot if it holds one. Consumes the
    /// reference: once the task is out of flight, `Shared` may be gone.
    #[inline]
    pub(crate) fn leave(self, outcome: Outcome, holds_slot: bool) {
        let shared = self.get();
        shared.count(outcome);
        match shared
            .gate
            .state
            .try_leave_quietly(Shared::leaving(holds_slot))
        {
            // Nobody to wake: nothing left to do but, if this was the last task, drop the tasks' reference.
            Ok(prev) => self.drop_tasks_ref_if_last(prev),
            Err(()) => self.leave_and_wake(holds_slot),
        }
    }

    /// Leaving while someone waits or shutdown began: wake-ups follow the leaving, so a reference of our own,
    /// taken while still counted, keeps `Shared` alive through them.
    #[cold]
    #[inline(never)]
    fn leave_and_wake(self, holds_slot: bool) {
        let (prev, keep) = self
            .get()
            .gate
            .leave(Shared::leaving(holds_slot), holds_slot, || self.to_arc());
        if let Some(keep) = keep {
            keep.after_leave(prev);
        }
        self.drop_tasks_ref_if_last(prev);
    }

    /// `prev` is the state word that this task's leaving replaced.
    #[inline]
    fn drop_tasks_ref_if_last(self, prev: u64) {
        if in_flight_of(prev) == 1 {
            // SAFETY: this task took the in-flight count from 1 to 0, so the tasks' reference is held (see the
            // module docs) and is ours to drop; `self`, consumed, cannot be used afterwards.
            unsafe { Arc::decrement_strong_count(self.ptr.as_ptr().cast_const()) }
        }
    }
}

#[cfg(all(test, not(tidegate_loom)))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::watch;
    use tokio::time::timeout;

    use crate::exec::BoundedExecutor;

    const WAIT: Duration = Duration::from_secs(10);

    /// Tasks that wait until `gate` opens.
    fn blocked(
        exec: &BoundedExecutor,
        n: usize,
        gate: &watch::Receiver<bool>,
    ) -> Vec<crate::exec::TaskHandle<()>> {
        (0..n)
            .map(|_| {
                let mut gate = gate.clone();
                exec.try_spawn(async move {
                    gate.wait_for(|open| *open).await.ok();
                })
                .unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn tasks_in_flight_share_one_strong_reference() {
        let exec = BoundedExecutor::new(2, 8);
        let (open, gate) = watch::channel(false);
        let handles = blocked(&exec, 5, &gate);
        // The executor's own plus one for all five tasks (two running, three pending), not one per task.
        assert_eq!(Arc::strong_count(&exec.shared), 2);
        open.send(true).unwrap();
        for h in handles {
            timeout(WAIT, h).await.unwrap().unwrap();
        }
        assert_eq!(
            Arc::strong_count(&exec.shared),
            1,
            "the last task to leave drops the tasks' reference"
        );
        // And again from zero: each 0 -> 1 takes it anew.
        timeout(WAIT, exec.try_spawn(async {}).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Arc::strong_count(&exec.shared), 1);
    }

    #[tokio::test]
    async fn tasks_keep_a_dropped_executor_alive_until_the_last_leaves() {
        let exec = BoundedExecutor::new(1, 8);
        let weak = Arc::downgrade(&exec.shared);
        let (open, gate) = watch::channel(false);
        let handles = blocked(&exec, 3, &gate);
        drop(exec);
        assert_eq!(weak.strong_count(), 1, "held for the tasks in flight");
        open.send(true).unwrap();
        for h in handles {
            timeout(WAIT, h).await.unwrap().unwrap();
        }
        assert_eq!(weak.strong_count(), 0, "freed when the last task left");
    }

    /// Tasks leave on two workers while the executor is dropped, submitters wait for room (`ROOM_WANTED`) and
    /// tasks queue for slots (`WAITING`), so both the quiet and the flagged leave run, and in-flight counts
    /// cross zero many times: every executor must end freed, with nothing left over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reference_survives_racing_leaves_and_drops() {
        for round in 0..200 {
            let exec = BoundedExecutor::new(1 + round % 3, 2);
            let weak = Arc::downgrade(&exec.shared);
            let mut handles = Vec::new();
            for i in 0..16 {
                let task = async move {
                    if i % 4 == 0 {
                        tokio::task::yield_now().await;
                    }
                    i
                };
                handles.push(timeout(WAIT, exec.spawn(task)).await.unwrap().unwrap());
            }
            drop(exec);
            let mut total = 0;
            for h in handles {
                total += timeout(WAIT, h).await.unwrap().unwrap();
            }
            assert_eq!(total, (0..16).sum::<usize>());
            assert_eq!(
                weak.strong_count(),
                0,
                "round {round}: the executor was not freed"
            );
        }
    }
}
