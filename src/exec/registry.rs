//! Wakers of suspended tasks, so that a shutdown deadline can reach every task that is not being polled.
//!
//! tokio's `AbortHandle` would do, but keeping one per task costs a lock and keeps each finished task's memory
//! alive until swept; measured, it more than doubled the cost of a trivial task. Instead a task registers its
//! waker the first time it suspends (a task that completes in one poll never does), and on abort every
//! registered task is woken, sees the flag and cancels itself. Tasks scheduled but not yet polled see the flag
//! on their first poll.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Waker;

use parking_lot::Mutex;

use super::shared::Shared;

const SHARDS: usize = 8;

pub(crate) struct Registry {
    shards: [Mutex<Slab>; SHARDS],
    aborting: AtomicBool,
}

#[derive(Default)]
struct Slab {
    entries: Vec<Option<Waker>>,
    free: Vec<usize>,
}

/// A task's entry; dropping it (when the task's future is dropped) removes the waker.
pub(crate) struct Registered {
    shared: Arc<Shared>,
    shard: usize,
    index: usize,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            shards: std::array::from_fn(|_| Mutex::new(Slab::default())),
            aborting: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_aborting(&self) -> bool {
        self.aborting.load(Relaxed)
    }

    /// Wakes every registered task and makes every task cancel itself at its next poll.
    pub(crate) fn abort_all(&self) {
        self.aborting.store(true, SeqCst);
        for shard in &self.shards {
            for waker in shard.lock().entries.iter().flatten() {
                waker.wake_by_ref();
            }
        }
    }
}

impl Registered {
    /// Registers `waker`. Also wakes it if an abort raced with the registration: `abort_all` sets its flag
    /// before walking the shards, and we read the flag after unlocking ours, so one of the two sees the other.
    pub(crate) fn new(shared: &Arc<Shared>, waker: &Waker) -> Self {
        let shard = shard_index();
        let index = {
            let mut slab = shared.registry.shards[shard].lock();
            match slab.free.pop() {
                Some(index) => {
                    slab.entries[index] = Some(waker.clone());
                    index
                }
                None => {
                    slab.entries.push(Some(waker.clone()));
                    slab.entries.len() - 1
                }
            }
        };
        if shared.registry.aborting.load(SeqCst) {
            waker.wake_by_ref();
        }
        Registered {
            shared: Arc::clone(shared),
            shard,
            index,
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut slab = self.shared.registry.shards[self.shard].lock();
        slab.entries[self.index] = None;
        slab.free.push(self.index);
    }
}

/// Spreads threads over the shards; a thread keeps its shard so its registrations rarely contend.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        if index.get() == usize::MAX {
            index.set(NEXT.fetch_add(1, Relaxed) % SHARDS);
        }
        index.get()
    })
}
