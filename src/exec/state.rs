//! The executor's state word: in-flight count, running count and three flags in one `AtomicU64`.
//!
//! Every task admits itself, takes its run slot and leaves through this one word, so the uncontended path is
//! one compare-and-swap at admission, one when the slot is taken and one when the task leaves (which gives
//! the slot back too). The flags ride along for free: the value an operation reads or replaces says whether
//! anyone waits for a slot or for room, or whether the executor is closed, so each race between a waiter
//! announcing itself and a task leaving is settled by the modification order of this one location (which loom
//! checks) rather than by a store-load argument over two words (which it cannot).
//!
//! ```text
//! bit 63     CLOSED       shutdown began: admission refuses
//! bit 62     WAITING      the slot queue is non-empty, or a task holding its lock is about to queue
//! bit 61     ROOM_WANTED  a submitter waits for room in the backlog
//! bits 30-60 in flight    admitted tasks that have not left (31 bits)
//! bits 0-29  running      tasks holding a run slot (30 bits)
//! ```

use crate::loom::atomic::{AtomicU64, Ordering::SeqCst};

pub(crate) const RUNNING_ONE: u64 = 1;
const RUNNING_MASK: u64 = (1 << 30) - 1;
pub(crate) const IN_FLIGHT_ONE: u64 = 1 << 30;
const IN_FLIGHT_SHIFT: u32 = 30;
const IN_FLIGHT_MASK: u64 = (1 << 31) - 1;
pub(crate) const ROOM_WANTED: u64 = 1 << 61;
pub(crate) const WAITING: u64 = 1 << 62;
pub(crate) const CLOSED: u64 = 1 << 63;
const FLAGS: u64 = CLOSED | WAITING | ROOM_WANTED;

/// The most tasks that may hold a run slot at once; higher limits are clamped to it. About a billion tasks
/// already exceeds what a runtime can hold in memory (tokio's task header alone is over 64 bytes).
pub(crate) const MAX_RUNNING: usize = RUNNING_MASK as usize;
/// The most tasks in flight; the admission limit is clamped to it, so the count never carries into the flags.
pub(crate) const MAX_IN_FLIGHT: usize = IN_FLIGHT_MASK as usize;

#[inline]
pub(crate) fn running_of(word: u64) -> usize {
    (word & RUNNING_MASK) as usize
}

#[inline]
pub(crate) fn in_flight_of(word: u64) -> usize {
    ((word >> IN_FLIGHT_SHIFT) & IN_FLIGHT_MASK) as usize
}

/// Alone on its cache line(s), with the one per-task counter, away from the read-mostly limits: measured on
/// 2 workers, keeping what every task writes together and apart from the rest cut the per-task cost.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct State {
    word: AtomicU64,
    /// Tasks that ran to completion.
    pub(crate) completed: AtomicU64,
}

impl State {
    #[inline]
    pub(crate) fn load(&self) -> u64 {
        self.word.load(SeqCst)
    }

    /// Counts one more task in flight unless the executor is closed or `limit` are in flight. Returns the word
    /// before the change, or the word that refused it. `limit` is at most `MAX_IN_FLIGHT` (the caller clamps
    /// it once, when limits change).
    #[inline]
    pub(crate) fn try_admit(&self, limit: usize) -> Result<u64, u64> {
        debug_assert!(limit <= MAX_IN_FLIGHT);
        let mut cur = self.load();
        loop {
            if cur & CLOSED != 0 || in_flight_of(cur) >= limit {
                return Err(cur);
            }
            match self
                .word
                .compare_exchange_weak(cur, cur + IN_FLIGHT_ONE, SeqCst, SeqCst)
            {
                Ok(prev) => return Ok(prev),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes a run slot if fewer than `limit` are held. With `fair`, only while nobody waits for one, so
    /// newcomers do not overtake queued tasks. `limit` is at most `MAX_RUNNING`.
    #[inline]
    pub(crate) fn try_take(&self, limit: usize, fair: bool) -> bool {
        debug_assert!(limit <= MAX_RUNNING);
        let mut cur = self.load();
        while running_of(cur) < limit && !(fair && cur & WAITING != 0) {
            match self
                .word
                .compare_exchange_weak(cur, cur + RUNNING_ONE, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
        false
    }

    /// Subtracts `delta` (a slot, a task in flight, or both) only while no flag is set, so that a task leaving
    /// a quiet executor needs nothing after this. `Err` means a flag is set: use [`leave`](Self::leave).
    #[inline]
    pub(crate) fn try_leave_quietly(&self, delta: u64) -> Result<u64, ()> {
        let mut cur = self.load();
        loop {
            if cur & FLAGS != 0 {
                return Err(());
            }
            match self
                .word
                .compare_exchange_weak(cur, cur - delta, SeqCst, SeqCst)
            {
                Ok(prev) => return Ok(prev),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Subtracts `delta` unconditionally; returns the word before.
    #[inline]
    pub(crate) fn leave(&self, delta: u64) -> u64 {
        self.word.fetch_sub(delta, SeqCst)
    }

    /// Sets `flag`; returns the word before.
    #[inline]
    pub(crate) fn set(&self, flag: u64) -> u64 {
        self.word.fetch_or(flag, SeqCst)
    }

    /// After a leave that replaced `prev`: whether this caller is the one to wake the submitters waiting for
    /// room (the first to see `ROOM_WANTED` clears it; later leavers pay one CAS, no lock).
    #[inline]
    pub(crate) fn take_room_wanted(&self, prev: u64) -> bool {
        prev & ROOM_WANTED != 0 && self.clear(ROOM_WANTED)
    }

    /// Clears `flag`; returns whether it was set.
    #[inline]
    pub(crate) fn clear(&self, flag: u64) -> bool {
        self.word.fetch_and(!flag, SeqCst) & flag != 0
    }
}

#[cfg(all(test, not(tidegate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_at_their_limits_never_reach_the_flags() {
        let state = State::default();
        let full = ((MAX_IN_FLIGHT as u64 - 1) << IN_FLIGHT_SHIFT) | (MAX_RUNNING as u64 - 1);
        state.word.store(full, SeqCst);
        assert!(state.try_admit(MAX_IN_FLIGHT).is_ok());
        assert!(state.try_take(MAX_RUNNING, true));
        let word = state.load();
        assert_eq!(word & FLAGS, 0, "a count carried into the flags");
        assert_eq!(
            (in_flight_of(word), running_of(word)),
            (MAX_IN_FLIGHT, MAX_RUNNING)
        );
        assert_eq!(
            state.try_admit(MAX_IN_FLIGHT),
            Err(word),
            "no room left in the count"
        );
        assert!(!state.try_take(MAX_RUNNING, false));
        // Leaving with a slot takes one from each count and touches nothing else.
        assert_eq!(
            state.try_leave_quietly(IN_FLIGHT_ONE + RUNNING_ONE),
            Ok(word)
        );
        assert_eq!(state.load(), full);
    }

    #[test]
    fn flags_send_leavers_the_long_way_and_block_fair_takers() {
        let state = State::default();
        state.try_admit(2).unwrap();
        state.try_admit(2).unwrap();
        assert!(state.try_take(1, true));
        for flag in [ROOM_WANTED, WAITING, CLOSED] {
            state.set(flag);
            assert_eq!(state.try_leave_quietly(IN_FLIGHT_ONE), Err(()));
            assert!(state.clear(flag) && !state.clear(flag));
        }
        state.set(WAITING);
        assert!(
            !state.try_take(2, true),
            "a fair taker must not overtake a queued task"
        );
        assert!(state.try_take(2, false));
        assert!(state.take_room_wanted(state.set(ROOM_WANTED) | ROOM_WANTED));
        assert!(
            !state.take_room_wanted(ROOM_WANTED),
            "only the first leaver wakes"
        );
        let before = state.load();
        assert_eq!(state.try_admit(5), Ok(before));
        assert_eq!(state.set(CLOSED) & CLOSED, 0);
        assert!(state.try_admit(5).is_err(), "closed");
    }
}
