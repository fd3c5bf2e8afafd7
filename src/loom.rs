//! Synchronisation primitives that the loom model checker can replace.
//!
//! Lock-free paths (budget accounting, the pool's return path, the executor's run slots) use these names so that
//! `RUSTFLAGS="--cfg tidegate_loom" cargo test --lib --release loom` explores their interleavings with loom.
//! See `scripts/loom.sh`.

#[cfg(not(all(test, tidegate_loom)))]
pub(crate) use std::sync::{atomic, Arc};

#[cfg(all(test, tidegate_loom))]
pub(crate) use loom::sync::{atomic, Arc};

/// A mutex whose `lock` returns the guard directly (no poisoning), as `parking_lot`'s does.
#[cfg(not(all(test, tidegate_loom)))]
pub(crate) use parking_lot::Mutex;

/// Loom's mutex behind `parking_lot`'s signature, so code under the model reads the same.
#[cfg(all(test, tidegate_loom))]
#[derive(Debug)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(all(test, tidegate_loom))]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }
}

/// A bounded multi-producer multi-consumer free list.
#[cfg(not(all(test, tidegate_loom)))]
pub(crate) type FreeList<T> = crossbeam_queue::ArrayQueue<T>;

/// Loom cannot see inside crossbeam's queue, so the model uses a mutex-protected deque with the same contract.
#[cfg(all(test, tidegate_loom))]
pub(crate) struct FreeList<T> {
    items: loom::sync::Mutex<std::collections::VecDeque<T>>,
    capacity: usize,
}

#[cfg(all(test, tidegate_loom))]
impl<T> FreeList<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        FreeList {
            items: loom::sync::Mutex::new(std::collections::VecDeque::new()),
            capacity,
        }
    }

    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut items = self.items.lock().unwrap();
        if items.len() == self.capacity {
            return Err(item);
        }
        items.push_back(item);
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.items.lock().unwrap().pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }
}
