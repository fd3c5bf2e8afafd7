//! What a queue set and its members share: the live limits, the weak list of members, and the counts of the
//! members that are gone.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::live_limits::LiveLimits;
use super::stats::Counts;
use super::{Limits, QueueSetMetrics};

/// A member queue as its set sees it, whatever its item type.
pub(crate) trait Member: Send + Sync {
    /// The queue's level and counters now.
    fn sample(&self) -> Sample;
    /// Re-decides writability after the set's marks changed, waking waiters.
    fn relimit(&self);
}

/// One member's state, read without its queue's lock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    pub(crate) queued: usize,
    pub(crate) unwritable: bool,
    pub(crate) counts: Counts,
}

pub(crate) struct SetCore {
    /// The marks of every member: a change is one store that all of them read.
    pub(crate) limits: LiveLimits,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// Weak, so the set keeps no queue alive; a member frees its slot when its queue is dropped.
    slots: Vec<Option<Weak<dyn Member>>>,
    free: Vec<usize>,
    /// The final counts of the members that are gone.
    departed: Counts,
    /// The counts last reported: a member whose queue is being dropped during a snapshot is in neither the live
    /// members nor `departed` for a moment, and a counter must not go back because of it.
    reported: Counts,
    /// The least `hard - high` a member needs (a connection's largest frame plus its batch).
    headroom: usize,
}

/// A queue's place in its set, kept by the queue for its whole life.
pub(crate) struct Membership {
    pub(crate) set: Arc<SetCore>,
    slot: usize,
}

impl SetCore {
    pub(crate) fn new(limits: Limits) -> Self {
        SetCore {
            limits: LiveLimits::new(limits),
            book: Mutex::new(Book::default()),
        }
    }

    /// Adds a member; the caller keeps the returned membership in the queue, which leaves with it.
    pub(crate) fn join(self: &Arc<Self>, member: Weak<dyn Member>) -> Membership {
        let mut book = self.book.lock();
        let slot = match book.free.pop() {
            Some(slot) => {
                book.slots[slot] = Some(member);
                slot
            }
            None => {
                book.slots.push(Some(member));
                book.slots.len() - 1
            }
        };
        Membership {
            set: Arc::clone(self),
            slot,
        }
    }

    /// The live members. Collected under the lock and used after it: dropping the last handle of a member runs its
    /// queue's drop, which takes the lock to leave.
    fn live(&self) -> Vec<Arc<dyn Member>> {
        let book = self.book.lock();
        book.slots
            .iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .collect()
    }

    pub(crate) fn set_limits(&self, limits: Limits) {
        self.limits.set(limits);
        // Members that join from now on read the new marks themselves; these re-decide their writability.
        for member in self.live() {
            member.relimit();
        }
    }

    pub(crate) fn require_headroom(&self, bytes: usize) {
        let mut book = self.book.lock();
        book.headroom = book.headroom.max(bytes);
    }

    pub(crate) fn headroom(&self) -> usize {
        self.book.lock().headroom
    }

    pub(crate) fn members(&self) -> usize {
        self.book
            .lock()
            .slots
            .iter()
            .flatten()
            .filter(|m| m.strong_count() > 0)
            .count()
    }

    pub(crate) fn metrics(&self) -> QueueSetMetrics {
        let live = self.live();
        let mut m = QueueSetMetrics::default();
        let mut counts = Counts::default();
        for member in &live {
            let sample = member.sample();
            m.members += 1;
            m.queued_bytes += sample.queued;
            m.unwritable += usize::from(sample.unwritable);
            m.largest_queued_bytes = m.largest_queued_bytes.max(sample.queued);
            counts.add(&sample.counts);
        }
        let counts = {
            let mut book = self.book.lock();
            counts.add(&book.departed);
            book.reported.max(&counts);
            book.reported
        };
        drop(live);
        m.peak_bytes = counts.peak;
        m.delivered_items = counts.delivered;
        m.refused = counts.refused;
        m.evicted = counts.evicted;
        m.writability_flips = counts.flips;
        m.sent_bytes = counts.sent_bytes;
        m.writes = counts.writes;
        m.undelivered_items = counts.undelivered_items;
        m.undelivered_bytes = counts.undelivered_bytes;
        m
    }
}

impl Membership {
    /// Leaves the set as the member's queue is dropped, handing over its final counts.
    pub(crate) fn leave(&self, last: Counts) {
        let mut book = self.set.book.lock();
        book.slots[self.slot] = None;
        book.free.push(self.slot);
        book.departed.add(&last);
    }
}
