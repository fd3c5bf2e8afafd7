//! Wakers of tasks waiting for a condition on the queue (writability, room for a large item).
//!
//! A waiting task owns a key into a small slab and removes its entry when it stops waiting (also when its future is
//! dropped), so the slab never holds more entries than there are waiting tasks. The protocol that rules out lost
//! wakeups: a waiter registers, then checks its condition, both under the lock; a waker changes the queue's state
//! first, then wakes everyone registered. Either the waiter's check sees the new state or the waker sees the entry.

use std::task::{Context, Poll, Waker};

use crate::loom::atomic::{AtomicUsize, Ordering};
use crate::loom::Mutex;
use crate::waker_slab::WakerSlab;

#[derive(Debug)]
pub(crate) struct Gate {
    slab: Mutex<WakerSlab>,
    /// Registered entries, read without the lock so that waking nobody costs one load.
    registered: AtomicUsize,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            slab: Mutex::new(WakerSlab::default()),
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
        match *key {
            Some(index) => slab.update(index, cx.waker()),
            None => {
                *key = Some(slab.insert(cx.waker()));
                self.registered.fetch_add(1, Ordering::AcqRel);
            }
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
            let waker = self.slab.lock().remove(index);
            // Dropped outside the lock: a waker's drop may run arbitrary code.
            drop(waker);
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
        let mut wakers = Vec::new();
        self.slab.lock().drain_wakers(&mut wakers);
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
