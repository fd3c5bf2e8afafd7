//! Wakers of tasks waiting for a condition on the queue (writability, room for a large item).
//!
//! A waiting task owns a key into a small slab and removes its entry when it stops waiting (also when its future is
//! dropped), so the slab never holds more entries than there are waiting tasks. The protocol that rules out lost
//! wakeups: a waiter registers, then checks its condition, both under the lock; a waker changes the queue's state
//! first, then wakes everyone registered. Either the waiter's check sees the new state or the waker sees the entry.

use std::task::{Context, Poll, Waker};

use crate::loom::atomic::{AtomicUsize, Ordering};
use crate::loom::Mutex;

#[derive(Debug, Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

#[derive(Debug, Default)]
struct Slot {
    used: bool,
    waker: Option<Waker>,
}

#[derive(Debug)]
pub(crate) struct Gate {
    slab: Mutex<Slab>,
    /// Registered entries, read without the lock so that waking nobody costs one load.
    registered: AtomicUsize,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            slab: Mutex::new(Slab::default()),
            registered: AtomicUsize::new(0),
        }
    }

    /// `Ready` once `ready()` holds; otherwise registers `cx`'s waker under `key`.
    pub(crate) fn poll_wait(
        &self,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
        ready: impl Fn() -> bool,
    ) -> Poll<()> {
        if ready() {
            self.forget(key);
            return Poll::Ready(());
        }
        let mut slab = self.slab.lock();
        let index = match *key {
            Some(index) => index,
            None => {
                let index = slab.free.pop().unwrap_or_else(|| {
                    slab.slots.push(Slot::default());
                    slab.slots.len() - 1
                });
                slab.slots[index].used = true;
                self.registered.fetch_add(1, Ordering::AcqRel);
                *key = Some(index);
                index
            }
        };
        let slot = &mut slab.slots[index];
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        if ready() {
            drop(slab);
            self.forget(key);
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Removes `key`'s entry, if any.
    pub(crate) fn forget(&self, key: &mut Option<usize>) {
        if let Some(index) = key.take() {
            let mut slab = self.slab.lock();
            slab.slots[index] = Slot::default();
            slab.free.push(index);
            self.registered.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Wakes every registered task. Call after changing the state the tasks wait on.
    pub(crate) fn wake_all(&self) {
        // A read-modify-write, not a load: if it comes before a waiter's registration in the counter's order, the
        // waiter's increment reads from it and so sees the state change made before this call (acquire/release on
        // the same location). A plain load would need a store-load (SeqCst) argument that loom cannot check.
        if self.registered.fetch_add(0, Ordering::AcqRel) == 0 {
            return;
        }
        let wakers: Vec<Waker> = {
            let mut slab = self.slab.lock();
            slab.slots
                .iter_mut()
                .filter_map(|s| s.waker.take())
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A wait registration with a gate, removed when dropped (so a cancelled wait leaves nothing behind).
pub(crate) struct Registration<'a> {
    gate: &'a Gate,
    key: Option<usize>,
}

impl<'a> Registration<'a> {
    pub(crate) fn new(gate: &'a Gate) -> Self {
        Registration { gate, key: None }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, ready: impl Fn() -> bool) -> Poll<()> {
        self.gate.poll_wait(cx, &mut self.key, ready)
    }

    pub(crate) fn forget(&mut self) {
        self.gate.forget(&mut self.key);
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.forget();
    }
}
