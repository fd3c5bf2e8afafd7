//! State shared by an executor's handles and its tasks: admission, outcome counters, wake-ups.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use crate::loom::Mutex;

use super::error::SpawnError;
use super::gate::Gate;
use super::keyed::KeyMap;
use super::limits::ExecLimits;
use super::metrics::ExecMetrics;
use super::registry::Registry;
use super::state::{
    in_flight_of, running_of, CLOSED, IN_FLIGHT_ONE, MAX_IN_FLIGHT, MAX_RUNNING, ROOM_WANTED,
    RUNNING_ONE,
};

/// Limits are stored (and reported) up to this, so that their sum cannot overflow; the state word enforces
/// lower ones (`MAX_RUNNING`, `MAX_IN_FLIGHT`), beyond what a runtime can hold in memory anyway.
pub(crate) const MAX_LIMIT: usize = 1 << (usize::BITS - 2);

pub(crate) struct Shared {
    /// `max_concurrency + max_pending`, precomputed for the admission check.
    admit_limit: AtomicUsize,
    max_concurrency: AtomicUsize,
    max_pending: AtomicUsize,
    /// Load-shedding limit in nanoseconds; 0 means off.
    shed_after: AtomicU64,
    /// Serialises limit updates, and the readers that read several limits together, so that nobody sees some
    /// old and some new values (see `limits`).
    limits: Mutex<()>,
    /// Holds the state word (see `state`).
    pub(crate) gate: Gate,
    /// Submitters waiting for room set `ROOM_WANTED` first; the first task to leave afterwards clears it and
    /// wakes them, so later ones touch nothing but the state word.
    room: Notify,
    pub(crate) idle: Notify,
    pub(crate) counters: Counters,
    pub(crate) registry: Registry,
    pub(crate) keys: KeyMap,
    pub(crate) handle: Handle,
    pub(crate) name: Option<Arc<str>>,
}

/// Outcome counters other than `completed` (which lives with the state word) and the blocking-pool count.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) refused: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) aborted: AtomicU64,
    pub(crate) never_started: AtomicU64,
    pub(crate) peak_pending: AtomicUsize,
    /// Blocking closures running on tokio's blocking pool; abort cannot stop them.
    pub(crate) blocking_running: AtomicUsize,
}

/// How a task left the executor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    Completed,
    Panicked,
    Aborted,
    NeverStarted,
}

/// A task counted in flight and not yet launched; [`BoundedExecutor::launch`](super::BoundedExecutor) takes it.
#[must_use = "an admitted task must be launched, or it stays in flight forever"]
#[derive(Debug)]
pub(crate) struct Admission {
    /// This admission took the in-flight count from zero: the launch takes the tasks' reference (see
    /// `shared_ref`).
    pub(crate) first: bool,
}

/// An admission refusal before the task is attached to it.
#[derive(Debug)]
pub(crate) enum Refusal {
    Full {
        in_flight: usize,
        limit: usize,
    },
    Overloaded {
        oldest_pending: Duration,
        limit: Duration,
    },
    TimedOut {
        timeout: Duration,
    },
    Closed,
}

impl Shared {
    pub(crate) fn new(
        max_concurrency: usize,
        max_pending: usize,
        shed_after: Option<Duration>,
        handle: Handle,
        name: Option<Arc<str>>,
    ) -> Self {
        let shared = Shared {
            admit_limit: AtomicUsize::new(0),
            max_concurrency: AtomicUsize::new(0),
            max_pending: AtomicUsize::new(0),
            shed_after: AtomicU64::new(0),
            limits: Mutex::new(()),
            gate: Gate::new(max_concurrency.min(MAX_RUNNING)),
            room: Notify::new(),
            idle: Notify::new(),
            counters: Counters::default(),
            registry: Registry::new(),
            keys: KeyMap::new(),
            handle,
            name,
        };
        shared.set_limits(Some(max_concurrency), Some(max_pending));
        shared.set_shed_after(shed_after);
        shared
    }

    /// Admits one task or says why not. One CAS when there is room.
    #[inline]
    pub(crate) fn try_admit(&self) -> Result<Admission, Refusal> {
        let shed = self.shed_after.load(Relaxed);
        if shed != 0 {
            self.check_shedding(Duration::from_nanos(shed))?;
        }
        let limit = self.admit_limit.load(Relaxed);
        let prev = match self.gate.state.try_admit(limit) {
            Ok(prev) => prev,
            Err(cur) if cur & CLOSED != 0 => return Err(Refusal::Closed),
            Err(cur) => {
                return Err(Refusal::Full {
                    in_flight: in_flight_of(cur),
                    limit,
                })
            }
        };
        // Peak tracking costs a load on the hot path and an RMW only when the peak actually rises.
        let pending = (in_flight_of(prev) + 1).saturating_sub(running_of(prev));
        if pending > self.counters.peak_pending.load(Relaxed) {
            self.counters.peak_pending.fetch_max(pending, Relaxed);
        }
        Ok(Admission {
            first: in_flight_of(prev) == 0,
        })
    }

    #[cold]
    fn check_shedding(&self, limit: Duration) -> Result<(), Refusal> {
        match self.gate.oldest_wait() {
            Some(oldest_pending) if oldest_pending > limit => Err(Refusal::Overloaded {
                oldest_pending,
                limit,
            }),
            _ => Ok(()),
        }
    }

    /// Waits for room in the backlog; callers try [`try_admit`](Self::try_admit) first. Cancel-safe: returning
    /// `Ok` is the last step, so a dropped wait has admitted nothing.
    pub(crate) async fn admit_wait(&self, timeout: Option<Duration>) -> Result<Admission, Refusal> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Enabled and announced before re-checking: a task finishing in between either leaves room we see
            // here or sees the flag and wakes us.
            notified.as_mut().enable();
            self.gate.state.set(ROOM_WANTED);
            match self.try_admit() {
                Err(Refusal::Full { .. }) => {}
                other => return other,
            }
            match (deadline, timeout) {
                (Some(deadline), Some(timeout)) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(Refusal::TimedOut { timeout });
                    }
                }
                _ => notified.await,
            }
        }
    }

    /// Counts a refusal and hands the task back inside the error.
    pub(crate) fn refuse<T>(&self, refusal: Refusal, task: T) -> SpawnError<T> {
        self.counters.refused.fetch_add(1, Relaxed);
        if !matches!(refusal, Refusal::Closed) {
            crate::trace::warn_limited!("executor refused a task", refusal = ?refusal);
        }
        match refusal {
            Refusal::Full { in_flight, limit } => SpawnError::Full {
                task,
                in_flight,
                limit,
            },
            Refusal::Overloaded {
                oldest_pending,
                limit,
            } => SpawnError::Overloaded {
                task,
                oldest_pending,
                limit,
            },
            Refusal::TimedOut { timeout } => SpawnError::TimedOut { task, timeout },
            Refusal::Closed => SpawnError::Closed { task },
        }
    }

    /// Counts how an admitted task ended. The task leaves with [`leave`](Self::leave) right after.
    #[inline]
    pub(crate) fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Completed => &self.gate.state.completed,
            Outcome::Panicked => &self.counters.panicked,
            Outcome::Aborted => &self.counters.aborted,
            Outcome::NeverStarted => &self.counters.never_started,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// What a task leaving gives back: its place in flight and, if it holds one, its run slot.
    #[inline]
    pub(crate) fn leaving(holds_slot: bool) -> u64 {
        IN_FLIGHT_ONE + if holds_slot { RUNNING_ONE } else { 0 }
    }

    /// The wake-ups a task that left owes, given the state word it replaced (the gate granted freed slots).
    #[cold]
    pub(crate) fn after_leave(&self, prev: u64) {
        if self.gate.state.take_room_wanted(prev) {
            // Every waiter retries; those that lose re-announce themselves.
            self.room.notify_waiters();
        }
        if prev & CLOSED != 0 {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        in_flight_of(self.gate.state.load())
    }

    /// Stops admission; returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        let was_open = self.gate.state.set(CLOSED) & CLOSED == 0;
        // Waiters in `admit_wait` re-check and see `Closed`.
        self.room.notify_waiters();
        was_open
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.gate.state.load() & CLOSED != 0
    }

    pub(crate) fn set_limits(&self, max_concurrency: Option<usize>, max_pending: Option<usize>) {
        let _serial = self.limits.lock();
        self.store_limits(max_concurrency, max_pending);
    }

    /// Sets all three limits in one step: [`limits`](Self::limits) sees all the old values or all the new ones.
    pub(crate) fn set_all_limits(&self, limits: ExecLimits) {
        let _serial = self.limits.lock();
        self.store_shed_after(limits.shed_after);
        self.store_limits(Some(limits.max_concurrency), Some(limits.max_pending));
    }

    /// The three limits as last set together; takes the limits' lock (a cold path: `try_spawn` reads only the
    /// precomputed admission limit, so it never waits here).
    pub(crate) fn limits(&self) -> ExecLimits {
        let _serial = self.limits.lock();
        ExecLimits::new(
            self.max_concurrency(),
            self.max_pending(),
            self.shed_after(),
        )
    }

    /// Called with the limits' lock held.
    fn store_limits(&self, max_concurrency: Option<usize>, max_pending: Option<usize>) {
        if let Some(max) = max_concurrency {
            self.max_concurrency.store(max.min(MAX_LIMIT), SeqCst);
        }
        if let Some(max) = max_pending {
            self.max_pending.store(max.min(MAX_LIMIT), SeqCst);
        }
        let (c, p) = (self.max_concurrency(), self.max_pending());
        // Clamped so that admitting up to the limit can never carry into the flags.
        self.admit_limit.store((c + p).min(MAX_IN_FLIGHT), SeqCst);
        if max_concurrency.is_some() {
            self.gate.set_limit(c);
        }
        // A raised limit makes room that no finishing task will announce.
        self.room.notify_waiters();
    }

    pub(crate) fn max_concurrency(&self) -> usize {
        self.max_concurrency.load(SeqCst)
    }

    pub(crate) fn max_pending(&self) -> usize {
        self.max_pending.load(SeqCst)
    }

    pub(crate) fn set_shed_after(&self, limit: Option<Duration>) {
        let _serial = self.limits.lock();
        self.store_shed_after(limit);
    }

    fn store_shed_after(&self, limit: Option<Duration>) {
        // Zero means "off", so a zero limit is stored as one nanosecond: shed as soon as anyone waits.
        let nanos = limit.map_or(0, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.shed_after.store(nanos, Relaxed);
    }

    pub(crate) fn shed_after(&self) -> Option<Duration> {
        match self.shed_after.load(Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The snapshot behind `metrics()` and the shutdown report: the one place that reads the counters.
    pub(crate) fn metrics(&self) -> ExecMetrics {
        let c = &self.counters;
        let (completed, panicked, aborted, never_started) = (
            self.gate.state.completed.load(Relaxed),
            c.panicked.load(Relaxed),
            c.aborted.load(Relaxed),
            c.never_started.load(Relaxed),
        );
        let in_flight = self.in_flight();
        let gate = self.gate.stats();
        let started = completed + panicked + aborted + gate.running as u64;
        let mean_nanos = gate
            .waited_total
            .as_nanos()
            .checked_div(u128::from(started))
            .unwrap_or(0);
        let limits = self.limits();
        ExecMetrics {
            name: self.name.as_deref().map(str::to_owned),
            max_concurrency: limits.max_concurrency,
            max_pending: limits.max_pending,
            in_flight,
            running: gate.running,
            pending: in_flight.saturating_sub(gate.running),
            peak_pending: c.peak_pending.load(Relaxed),
            admitted: in_flight as u64 + completed + panicked + aborted + never_started,
            refused: c.refused.load(Relaxed),
            completed,
            panicked,
            aborted,
            never_started,
            active_keys: self.keys.active(),
            pending_time_max: gate.waited_max,
            pending_time_mean: Duration::from_nanos(u64::try_from(mean_nanos).unwrap_or(u64::MAX)),
        }
    }
}
