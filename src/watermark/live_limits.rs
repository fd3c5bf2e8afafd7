//! The marks a running queue reads: changed in one step, read whole.

use crate::loom::atomic::{fence, AtomicUsize, Ordering};

use super::Limits;

/// Limits that can be changed while senders and the receiver run, as a sequence lock: a change makes the
/// sequence odd, stores the three marks and makes it even again; a reader of all three retries if the sequence
/// moved under it. So a reader sees all the old marks or all the new ones, never a mix (a mix such as the new high
/// with the old hard could let a queue pass a hard cap lower than its high mark, or flip on marks nobody set).
///
/// Readers that need one mark read that mark alone ([`low`](Self::low), [`hard`](Self::hard)): one value cannot
/// be half old. The paths that decide with two marks ([`get`](Self::get) for a push) pay two more loads of the
/// sequence, which costs nothing while nobody writes.
#[derive(Debug)]
pub(crate) struct LiveLimits {
    seq: AtomicUsize,
    low: AtomicUsize,
    high: AtomicUsize,
    hard: AtomicUsize,
}

impl LiveLimits {
    pub(crate) fn new(limits: Limits) -> Self {
        LiveLimits {
            seq: AtomicUsize::new(0),
            low: AtomicUsize::new(limits.low),
            high: AtomicUsize::new(limits.high),
            hard: AtomicUsize::new(limits.hard),
        }
    }

    /// All three marks, from one configuration.
    #[inline]
    pub(crate) fn get(&self) -> Limits {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            let limits = Limits {
                low: self.low.load(Ordering::Relaxed),
                high: self.high.load(Ordering::Relaxed),
                hard: self.hard.load(Ordering::Relaxed),
            };
            // Orders the mark loads before the second sequence load (the reader's half of the seqlock).
            fence(Ordering::Acquire);
            if before & 1 == 0 && self.seq.load(Ordering::Relaxed) == before {
                return limits;
            }
            backoff();
        }
    }

    /// The low mark alone.
    #[inline]
    pub(crate) fn low(&self) -> usize {
        self.low.load(Ordering::Relaxed)
    }

    /// The hard cap alone.
    #[inline]
    pub(crate) fn hard(&self) -> usize {
        self.hard.load(Ordering::Relaxed)
    }

    /// Replaces the marks in one step. Concurrent changes are serialized: the last one to finish wins whole.
    pub(crate) fn set(&self, limits: Limits) {
        let mut seq = self.seq.load(Ordering::Relaxed);
        loop {
            if seq & 1 == 1 {
                backoff();
                seq = self.seq.load(Ordering::Relaxed);
                continue;
            }
            match self
                .seq
                .compare_exchange_weak(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => seq = now,
            }
        }
        // Orders the odd sequence before the mark stores: a reader that sees a new mark sees the sequence moved.
        fence(Ordering::Release);
        self.low.store(limits.low, Ordering::Relaxed);
        self.high.store(limits.high, Ordering::Relaxed);
        self.hard.store(limits.hard, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

/// Waits a moment for a writer in the middle of a change (a few stores long).
#[cfg(not(all(test, tidegate_loom)))]
fn backoff() {
    std::hint::spin_loop();
}

/// Under loom a spinning thread must yield, or the model never lets the writer finish.
#[cfg(all(test, tidegate_loom))]
fn backoff() {
    loom::thread::yield_now();
}

#[cfg(all(test, not(tidegate_loom)))]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;

    /// Two valid configurations whose mixes are all recognisable (every mark differs).
    const A: Limits = Limits {
        low: 1,
        high: 2,
        hard: 3,
    };
    const B: Limits = Limits {
        low: 10,
        high: 20,
        hard: 30,
    };

    #[test]
    fn a_reader_never_sees_a_mix_of_two_configurations() {
        let live = Arc::new(LiveLimits::new(A));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = std::thread::spawn({
            let (live, stop) = (live.clone(), stop.clone());
            move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    live.set(if swaps % 2 == 0 { B } else { A });
                    swaps += 1;
                }
                swaps
            }
        });
        for _ in 0..1_000_000 {
            let limits = live.get();
            assert!(limits == A || limits == B, "mixed marks {limits:?}");
        }
        stop.store(true, Ordering::Relaxed);
        assert!(writer.join().unwrap() > 0);
    }
}
