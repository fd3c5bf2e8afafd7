//! Leak tracking: where and when outstanding buffers were acquired.

use std::backtrace::Backtrace;
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::loom::atomic::{AtomicU64, Ordering};

/// Which buffers a pool records for [`BufPool::leak_report`](super::BufPool::leak_report).
///
/// The default is [`Off`](LeakTracking::Off): acquiring then costs one branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeakTracking {
    /// Record nothing.
    #[default]
    Off,
    /// Record one buffer in `n`, with its acquisition site, time and a captured backtrace. Suited to production.
    Sampled(NonZeroU32),
    /// Record every buffer with its acquisition site and time (no backtrace: capturing one costs microseconds).
    /// Suited to tests.
    All,
}

/// An outstanding buffer listed by a [`LeakReport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeakedBuf {
    /// The buffer's capacity.
    pub capacity: usize,
    /// How long ago it was acquired.
    pub age: Duration,
    /// The call to `try_acquire`/`acquire` that handed it out.
    pub location: &'static Location<'static>,
    /// The stack at acquisition, for sampled buffers.
    pub backtrace: Option<Arc<Backtrace>>,
}

/// Outstanding buffers older than a given age, oldest first, from
/// [`BufPool::leak_report`](super::BufPool::leak_report).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeakReport {
    /// The pool's tracking mode: with `Off` the report lists nothing.
    pub tracking: LeakTracking,
    /// All buffers outstanding when the report was made, tracked or not.
    pub outstanding_buffers: u64,
    /// The tracked buffers older than the requested age, oldest first.
    pub leaks: Vec<LeakedBuf>,
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} suspected leak(s) among {} outstanding buffer(s) (tracking: {:?})",
            self.leaks.len(),
            self.outstanding_buffers,
            self.tracking
        )?;
        for leak in &self.leaks {
            writeln!(
                f,
                "  {} bytes, held for {:?}, acquired at {}",
                leak.capacity, leak.age, leak.location
            )?;
        }
        Ok(())
    }
}

struct Record {
    capacity: usize,
    acquired_at: Instant,
    location: &'static Location<'static>,
    backtrace: Option<Arc<Backtrace>>,
}

/// The registry behind leak reports. Ids are never 0, so 0 means "not tracked" in a buffer.
pub(super) struct LeakTracker {
    mode: LeakTracking,
    counter: AtomicU64,
    records: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    last_id: u64,
    live: HashMap<u64, Record>,
}

impl LeakTracker {
    pub(super) fn new(mode: LeakTracking) -> Self {
        LeakTracker {
            mode,
            counter: AtomicU64::new(0),
            records: Mutex::new(Registry::default()),
        }
    }

    /// Records a buffer if the mode samples it; returns its id, or 0 when it is not tracked.
    #[inline]
    pub(super) fn track(&self, capacity: usize, location: &'static Location<'static>) -> u64 {
        if self.mode == LeakTracking::Off {
            return 0;
        }
        self.track_sampled(capacity, location)
    }

    #[cold]
    #[inline(never)]
    fn track_sampled(&self, capacity: usize, location: &'static Location<'static>) -> u64 {
        let backtrace = match self.mode {
            LeakTracking::Off => return 0,
            LeakTracking::All => None,
            LeakTracking::Sampled(one_in) => {
                let n = self.counter.load(Ordering::Relaxed);
                self.counter.store(n + 1, Ordering::Relaxed); // a racy count is fine for sampling
                if n % u64::from(one_in.get()) != 0 {
                    return 0;
                }
                Some(Arc::new(Backtrace::force_capture()))
            }
        };
        let record = Record {
            capacity,
            acquired_at: Instant::now(),
            location,
            backtrace,
        };
        let mut records = self.records.lock();
        records.last_id += 1;
        let id = records.last_id;
        records.live.insert(id, record);
        id
    }

    #[inline]
    pub(super) fn untrack(&self, id: u64) {
        if id != 0 {
            self.forget(id);
        }
    }

    #[cold]
    #[inline(never)]
    fn forget(&self, id: u64) {
        self.records.lock().live.remove(&id);
    }

    pub(super) fn report(&self, older_than: Duration, outstanding_buffers: u64) -> LeakReport {
        let now = Instant::now();
        let mut leaks: Vec<LeakedBuf> = self
            .records
            .lock()
            .live
            .values()
            .map(|r| LeakedBuf {
                capacity: r.capacity,
                age: now.saturating_duration_since(r.acquired_at),
                location: r.location,
                backtrace: r.backtrace.clone(),
            })
            .filter(|leak| leak.age >= older_than)
            .collect();
        leaks.sort_by_key(|leak| std::cmp::Reverse(leak.age));
        LeakReport {
            tracking: self.mode,
            outstanding_buffers,
            leaks,
        }
    }
}
