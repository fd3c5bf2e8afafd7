//! The queue's weight and writability, packed into one atomic word.
//!
//! Keeping both in one word makes the hysteresis exact under concurrency: every change of the weight decides the
//! new writability from the same value it changed, so a sender pushing the queue over `high` and a receiver draining
//! it to `low` can never leave the flag contradicting the weight, whatever their interleaving.

use crate::loom::atomic::{AtomicUsize, Ordering};

use super::Limits;

/// Set while the queue is unwritable; the other bits count queued bytes.
const UNWRITABLE: usize = 1 << (usize::BITS - 1);

/// The outcome of a change of weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    /// Queued bytes after the change.
    pub(crate) bytes: usize,
    /// Whether the change flipped writability.
    pub(crate) flipped: bool,
}

#[derive(Debug)]
pub(crate) struct Level {
    word: AtomicUsize,
}

impl Level {
    pub(crate) fn new() -> Self {
        Level {
            word: AtomicUsize::new(0),
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.word.load(Ordering::SeqCst) & !UNWRITABLE
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.word.load(Ordering::SeqCst) & UNWRITABLE == 0
    }

    /// Adds `weight` unless that takes the queue over `hard`; `Err` carries the bytes queued at the refusal.
    pub(crate) fn try_add(&self, weight: usize, limits: &Limits) -> Result<Change, usize> {
        let mut word = self.word.load(Ordering::SeqCst);
        loop {
            let bytes = word & !UNWRITABLE;
            let new = match bytes.checked_add(weight) {
                Some(new) if new <= limits.hard() => new,
                _ => return Err(bytes),
            };
            let unwritable = word & UNWRITABLE != 0 || new > limits.high();
            match self.try_store(word, new, unwritable) {
                Ok(change) => return Ok(change),
                Err(now) => word = now,
            }
        }
    }

    /// Subtracts `weight`, which must have been added before; an unwritable queue turns writable at or below `low`.
    pub(crate) fn sub(&self, weight: usize, low: usize) -> Change {
        let mut word = self.word.load(Ordering::SeqCst);
        loop {
            let bytes = word & !UNWRITABLE;
            debug_assert!(weight <= bytes, "released {weight} of {bytes} queued bytes");
            let new = bytes - weight;
            let unwritable = word & UNWRITABLE != 0 && new > low;
            match self.try_store(word, new, unwritable) {
                Ok(change) => return change,
                Err(now) => word = now,
            }
        }
    }

    /// Re-decides writability after the marks changed; returns whether it flipped.
    pub(crate) fn relimit(&self, limits: &Limits) -> bool {
        let mut word = self.word.load(Ordering::SeqCst);
        loop {
            let bytes = word & !UNWRITABLE;
            let unwritable = if word & UNWRITABLE != 0 {
                bytes > limits.low()
            } else {
                bytes > limits.high()
            };
            match self.try_store(word, bytes, unwritable) {
                Ok(change) => return change.flipped,
                Err(now) => word = now,
            }
        }
    }

    fn try_store(&self, old: usize, bytes: usize, unwritable: bool) -> Result<Change, usize> {
        let new = bytes | if unwritable { UNWRITABLE } else { 0 };
        if new == old {
            return Ok(Change {
                bytes,
                flipped: false,
            });
        }
        self.word
            .compare_exchange_weak(old, new, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| Change {
                bytes,
                flipped: (old ^ new) & UNWRITABLE != 0,
            })
    }
}

#[cfg(all(test, not(tidegate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_flips_above_high_and_back_at_low() {
        let limits = Limits::new(10, 20, 30);
        let level = Level::new();
        assert!(
            !level.try_add(20, &limits).unwrap().flipped,
            "at high is still writable"
        );
        assert!(level.try_add(1, &limits).unwrap().flipped);
        assert!(!level.is_writable());
        assert!(
            !level.sub(5, limits.low()).flipped,
            "16 bytes: between the marks stays unwritable"
        );
        assert!(!level.is_writable());
        assert_eq!(
            level.sub(6, limits.low()),
            Change {
                bytes: 10,
                flipped: true
            }
        );
        assert!(level.is_writable());
        assert_eq!(
            level.try_add(21, &limits),
            Err(10),
            "31 bytes would pass hard"
        );
        assert_eq!(level.bytes(), 10);
    }

    #[test]
    fn relimit_applies_the_marks_that_matter_for_the_current_state() {
        let level = Level::new();
        level.try_add(15, &Limits::new(10, 20, 30)).unwrap();
        assert!(level.relimit(&Limits::new(5, 12, 30)));
        assert!(!level.is_writable());
        assert!(
            !level.relimit(&Limits::new(12, 14, 30)),
            "15 > low: stays unwritable"
        );
        assert!(level.relimit(&Limits::new(15, 20, 30)));
        assert!(level.is_writable());
    }
}
