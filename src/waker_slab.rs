//! Wakers of waiting tasks, by key: the one slab behind the watermark gate and the executor's abort registry.
//!
//! A waiting task inserts its waker once and keeps the key; it updates the waker when polled again and removes
//! the entry when it stops waiting (or its future is dropped), so the slab never holds more entries than there
//! are waiting tasks, and freed keys are reused. The slab is not synchronised: its owner keeps it behind a lock
//! and decides the protocol that rules out lost wake-ups (see `watermark::gate` and `exec::registry`).

use std::task::Waker;

#[derive(Debug, Default)]
pub(crate) struct WakerSlab {
    /// `Some` for registered entries. The inner `None` is a registered entry whose waker was taken by a wake.
    entries: Vec<Option<Option<Waker>>>,
    free: Vec<usize>,
}

impl WakerSlab {
    /// Registers `waker` and returns its key.
    pub(crate) fn insert(&mut self, waker: &Waker) -> usize {
        let entry = Some(Some(waker.clone()));
        match self.free.pop() {
            Some(key) => {
                self.entries[key] = entry;
                key
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        }
    }

    /// Replaces `key`'s waker, cloning only if the task's waker changed.
    pub(crate) fn update(&mut self, key: usize, waker: &Waker) {
        let slot = self.entries[key]
            .as_mut()
            .expect("update of a removed waker key");
        match slot {
            Some(current) if current.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Removes `key`'s entry and frees the key; returns its waker if it still had one.
    pub(crate) fn remove(&mut self, key: usize) -> Option<Waker> {
        let entry = self.entries[key]
            .take()
            .expect("removal of a removed waker key");
        self.free.push(key);
        entry
    }

    /// Registered entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Wakes every registered task, leaving the entries (and their wakers) in place.
    pub(crate) fn wake_all_by_ref(&self) {
        for waker in self.entries.iter().flatten().flatten() {
            waker.wake_by_ref();
        }
    }

    /// Takes every registered waker into `out`, leaving the entries registered, so the caller can wake them
    /// after releasing its lock. A woken task that waits on re-registers its waker with [`update`](Self::update).
    #[inline]
    pub(crate) fn drain_wakers(&mut self, out: &mut Vec<Waker>) {
        out.extend(self.entries.iter_mut().flatten().filter_map(Option::take));
    }
}

#[cfg(all(test, not(tidegate_loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::WakerSlab;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn keys_are_reused_and_len_counts_registered_entries() {
        let mut slab = WakerSlab::default();
        let (_, w) = waker();
        let a = slab.insert(&w);
        let b = slab.insert(&w);
        assert_ne!(a, b);
        assert_eq!(slab.len(), 2);
        assert!(slab.remove(a).is_some());
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.insert(&w), a, "a freed key is reused");
        assert_eq!(slab.entries.len(), 2, "no growth while keys are free");
    }

    #[test]
    fn wake_all_by_ref_reaches_every_registered_waker_and_only_those() {
        let mut slab = WakerSlab::default();
        let (c1, w1) = waker();
        let (c2, w2) = waker();
        let (c3, w3) = waker();
        slab.insert(&w1);
        let k2 = slab.insert(&w2);
        slab.insert(&w3);
        slab.remove(k2);
        slab.wake_all_by_ref();
        slab.wake_all_by_ref();
        assert_eq!(
            [&c1, &c2, &c3].map(|c| c.0.load(SeqCst)),
            [2, 0, 2],
            "by-ref wakes keep the wakers"
        );
    }

    #[test]
    fn drain_takes_wakers_but_keeps_entries_until_updated() {
        let mut slab = WakerSlab::default();
        let (c1, w1) = waker();
        let (c2, w2) = waker();
        let k1 = slab.insert(&w1);
        slab.insert(&w2);
        let mut out = Vec::new();
        slab.drain_wakers(&mut out);
        assert_eq!(out.len(), 2);
        out.drain(..).for_each(Waker::wake);
        assert_eq!((c1.0.load(SeqCst), c2.0.load(SeqCst)), (1, 1));
        assert_eq!(slab.len(), 2, "drained entries stay registered");
        slab.drain_wakers(&mut out);
        assert!(out.is_empty(), "a waker is taken once");
        slab.update(k1, &w1);
        slab.drain_wakers(&mut out);
        assert_eq!(out.len(), 1, "an updated entry is woken again");
        assert!(slab.remove(k1).is_none(), "its waker was drained");
    }

    #[test]
    fn update_replaces_a_different_waker() {
        let mut slab = WakerSlab::default();
        let (c1, w1) = waker();
        let (c2, w2) = waker();
        let k = slab.insert(&w1);
        slab.update(k, &w2);
        slab.wake_all_by_ref();
        assert_eq!((c1.0.load(SeqCst), c2.0.load(SeqCst)), (0, 1));
    }
}

/// Loom model of the protocol both owners use around the slab: a waiter registers and then re-checks its
/// condition under the lock; a waker changes the condition and then wakes every entry under the lock.
#[cfg(all(test, tidegate_loom))]
mod loom_tests {
    use std::future::poll_fn;
    use std::task::Poll;

    use ::loom::future::block_on;
    use ::loom::thread;

    use super::WakerSlab;
    use crate::loom::atomic::{AtomicBool, Ordering::SeqCst};
    use crate::loom::{Arc, Mutex};

    #[test]
    fn loom_waker_slab_wakes_a_waiter_registered_concurrently() {
        ::loom::model(|| {
            let ready = Arc::new(AtomicBool::new(false));
            let slab = Arc::new(Mutex::new(WakerSlab::default()));
            let waiter = {
                let (ready, slab) = (ready.clone(), slab.clone());
                thread::spawn(move || {
                    let mut key = None;
                    block_on(poll_fn(|cx| {
                        if ready.load(SeqCst) {
                            return Poll::Ready(());
                        }
                        let mut slab = slab.lock();
                        match key {
                            Some(k) => slab.update(k, cx.waker()),
                            None => key = Some(slab.insert(cx.waker())),
                        }
                        // The re-check under the lock: without it a wake between the first check and the
                        // insert is lost (loom reports the waiter as deadlocked).
                        if ready.load(SeqCst) {
                            return Poll::Ready(());
                        }
                        Poll::Pending
                    }));
                    if let Some(k) = key {
                        slab.lock().remove(k);
                    }
                })
            };
            ready.store(true, SeqCst);
            let mut wakers = Vec::new();
            slab.lock().drain_wakers(&mut wakers);
            wakers.into_iter().for_each(|w| w.wake());
            waiter.join().unwrap();
            assert_eq!(slab.lock().len(), 0);
        });
    }
}
