//! Opt-in tracking of a budget's reservations: where and when each was made, for leak reports.
//!
//! Off by default; then a reservation costs one relaxed load and a branch here, and its drop one branch. The mode
//! and the records use `std`'s atomics and `parking_lot`'s lock even under loom: they are touched only when
//! tracking is on, which no loom model does, and they never order the budget's own accounting.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::buf::LeakTracking;
use crate::metrics::Outstanding;

/// `mode`'s encoding: 0 is off, `ALL` records everything, any other value `n` records one reservation in `n`.
const ALL: u64 = u64::MAX;

pub(super) struct ReservationLeaks {
    mode: AtomicU64,
    /// Counts reservations for sampling; racy increments are fine there.
    seen: AtomicU64,
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    last_id: u64,
    live: HashMap<u64, Record>,
}

struct Record {
    bytes: usize,
    acquired_at: Instant,
    location: &'static Location<'static>,
}

impl ReservationLeaks {
    pub(super) fn new() -> Self {
        ReservationLeaks {
            mode: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            records: Mutex::new(Records::default()),
        }
    }

    pub(super) fn mode(&self) -> LeakTracking {
        match self.mode.load(Ordering::Relaxed) {
            0 => LeakTracking::Off,
            ALL => LeakTracking::All,
            n => LeakTracking::Sampled(
                u32::try_from(n)
                    .ok()
                    .and_then(std::num::NonZeroU32::new)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            ),
        }
    }

    /// Switching off forgets every record: their reservations are no longer listed, and their memory is freed.
    pub(super) fn set_mode(&self, mode: LeakTracking) {
        let encoded = match mode {
            LeakTracking::Off => 0,
            LeakTracking::All => ALL,
            LeakTracking::Sampled(n) => u64::from(n.get()),
        };
        self.mode.store(encoded, Ordering::Relaxed);
        if encoded == 0 {
            self.records.lock().live = HashMap::new();
        }
    }

    /// Records a new reservation if the mode samples it; its id, or 0 when it is not tracked.
    #[inline]
    pub(super) fn track(&self, bytes: usize, location: &'static Location<'static>) -> u64 {
        match self.mode.load(Ordering::Relaxed) {
            0 => 0,
            mode => self.track_sampled(mode, bytes, location),
        }
    }

    #[cold]
    #[inline(never)]
    fn track_sampled(&self, mode: u64, bytes: usize, location: &'static Location<'static>) -> u64 {
        if mode != ALL {
            let n = self.seen.fetch_add(1, Ordering::Relaxed);
            if n % mode != 0 {
                return 0;
            }
        }
        self.insert(Record {
            bytes,
            acquired_at: Instant::now(),
            location,
        })
    }

    fn insert(&self, record: Record) -> u64 {
        let mut records = self.records.lock();
        records.last_id += 1;
        let id = records.last_id;
        records.live.insert(id, record);
        id
    }

    #[inline]
    pub(super) fn untrack(&self, id: u64) {
        if id != 0 {
            self.records.lock().live.remove(&id);
        }
    }

    /// A tracked reservation now holds `bytes`.
    pub(super) fn resize(&self, id: u64, bytes: usize) {
        if let Some(record) = self.records.lock().live.get_mut(&id) {
            record.bytes = bytes;
        }
    }

    /// `moved` bytes of tracked reservation `id` become a reservation of their own, with the same site and age.
    /// Returns its id (0 if `id` is no longer recorded).
    pub(super) fn split(&self, id: u64, moved: usize) -> u64 {
        let mut records = self.records.lock();
        let Some(record) = records.live.get_mut(&id) else {
            return 0;
        };
        record.bytes -= moved;
        let part = Record {
            bytes: moved,
            acquired_at: record.acquired_at,
            location: record.location,
        };
        records.last_id += 1;
        let part_id = records.last_id;
        records.live.insert(part_id, part);
        part_id
    }

    /// `used` bytes held in all, and the tracked reservations that hold bytes.
    pub(super) fn outstanding(&self, used: usize, older_than: Duration) -> Outstanding {
        let held = Outstanding::new(used as u64);
        if self.mode() == LeakTracking::Off {
            return held;
        }
        let now = Instant::now();
        let tracked: Vec<_> = self
            .records
            .lock()
            .live
            .values()
            .filter(|r| r.bytes > 0)
            .map(|r| {
                let age = now.saturating_duration_since(r.acquired_at);
                (r.location, r.bytes as u64, age)
            })
            .collect();
        held.with_tracked(older_than, tracked)
    }
}
