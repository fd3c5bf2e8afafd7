//! Wakers of suspended tasks, so that a shutdown deadline can reach every task that is not being polled.
//!
//! tokio's `AbortHandle` would do, but keeping one per task costs a lock and keeps each finished task's memory
//! alive until swept; measured, it more than doubled the cost of a trivial task. Instead a task registers its
//! waker the first time it suspends (a task that completes in one poll never does), and on abort every
//! registered task is woken, sees the flag and cancels itself. Tasks scheduled but not yet polled see the flag
//! on their first poll.

use std::task::Waker;

use crate::loom::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use crate::loom::Mutex;
use crate::waker_slab::WakerSlab;

/// Under loom every thread uses one shard: fewer locks to explore, and the shard choice (a process-wide
/// counter loom cannot see) does not vary between explored executions.
const SHARDS: usize = if cfg!(all(test, tidegate_loom)) { 1 } else { 8 };

pub(crate) struct Registry {
    shards: [Mutex<WakerSlab>; SHARDS],
    aborting: AtomicBool,
}

/// Where a registration lives in the registry; the task's guard removes it when the task leaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// Below `SHARDS`.
    shard: u32,
    /// A slab key, below the most tasks ever registered at once in the shard, itself below `MAX_IN_FLIGHT`
    /// (2^31 - 1). Two `u32`s keep every task's guard 16 bytes smaller than two `usize`s would.
    key: u32,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            shards: std::array::from_fn(|_| Mutex::new(WakerSlab::default())),
            aborting: AtomicBool::new(false),
        }
    }

    #[inline]
    pub(crate) fn is_aborting(&self) -> bool {
        self.aborting.load(Relaxed)
    }

    /// Wakes every registered task and makes every task cancel itself at its next poll.
    pub(crate) fn abort_all(&self) {
        self.aborting.store(true, SeqCst);
        for shard in &self.shards {
            shard.lock().wake_all_by_ref();
        }
    }

    /// Registers `waker`. Also wakes it if an abort raced with the registration: `abort_all` sets its flag
    /// before walking the shards, and we read the flag after unlocking ours, so one of the two sees the other.
    #[cold]
    pub(crate) fn register(&self, waker: &Waker) -> Entry {
        let shard = shard_index();
        let key = self.shards[shard].lock().insert(waker);
        if self.aborting.load(SeqCst) {
            waker.wake_by_ref();
        }
        Entry {
            shard: u32::try_from(shard).expect("SHARDS is small"),
            key: u32::try_from(key).expect("fewer than 2^31 tasks are in flight"),
        }
    }

    #[cold]
    pub(crate) fn deregister(&self, entry: Entry) {
        let waker = self.shards[entry.shard as usize]
            .lock()
            .remove(entry.key as usize);
        drop(waker);
    }
}

/// Spreads threads over the shards; a thread keeps its shard so its registrations rarely contend.
fn shard_index() -> usize {
    if SHARDS == 1 {
        return 0;
    }
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        if index.get() == usize::MAX {
            index.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS);
        }
        index.get()
    })
}
