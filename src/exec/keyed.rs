//! Per-key ordering: tasks with the same key run one at a time, in submission order.
//!
//! Each keyed task holds a `oneshot::Sender` that is dropped when it finishes (any way: completion, panic,
//! abort, never started). The next task with the same key waits on the matching receiver before asking for a
//! run slot. The map only holds keys with a task in flight, so it is bounded by the executor's limits.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash};

use tokio::sync::oneshot;

use crate::loom::Mutex;

use super::error::SpawnError;
use super::executor::BoundedExecutor;
use super::handle::TaskHandle;
use super::shared::Refusal;
use super::task::Plain;

pub(crate) struct KeyMap {
    hasher: RandomState,
    tails: Mutex<Tails>,
}

#[derive(Default)]
struct Tails {
    next_seq: u64,
    /// Key hash -> the last submitted task with that key: its sequence number and its "finished" receiver.
    last: HashMap<u64, (u64, oneshot::Receiver<()>)>,
}

/// A keyed task's place in its key's line; dropping the sender lets the next task go.
pub(crate) struct KeyTurn {
    hash: u64,
    seq: u64,
    _done: oneshot::Sender<()>,
}

impl KeyMap {
    pub(crate) fn new() -> Self {
        KeyMap {
            hasher: RandomState::new(),
            tails: Mutex::new(Tails::default()),
        }
    }

    /// Keys are compared by a 64-bit SipHash with a per-executor random seed. A collision between two keys
    /// (about 2^-64 per pair) only makes them share a line: ordering is never broken, parallelism is lost.
    pub(crate) fn hash<K: Hash>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Joins the key's line. Returns this task's turn and, if a task with the same key is in flight, the
    /// receiver that resolves when it finishes. The lock order defines the submission order.
    pub(crate) fn join(&self, hash: u64) -> (KeyTurn, Option<oneshot::Receiver<()>>) {
        let (tx, rx) = oneshot::channel();
        let mut tails = self.tails.lock();
        let seq = tails.next_seq;
        tails.next_seq += 1;
        let previous = tails.last.insert(hash, (seq, rx)).map(|(_, rx)| rx);
        (
            KeyTurn {
                hash,
                seq,
                _done: tx,
            },
            previous,
        )
    }

    /// Leaves the line; the key is forgotten if no later task joined it.
    pub(crate) fn leave(&self, turn: KeyTurn) {
        let mut tails = self.tails.lock();
        if tails
            .last
            .get(&turn.hash)
            .is_some_and(|(seq, _)| *seq == turn.seq)
        {
            tails.last.remove(&turn.hash);
        }
        drop(tails);
        drop(turn);
    }

    /// Keys with at least one task in flight.
    pub(crate) fn active(&self) -> usize {
        self.tails.lock().last.len()
    }
}

impl BoundedExecutor {
    /// Admits `future` now or refuses it now, to run after every earlier task submitted with the same `key`
    /// has finished. Tasks with different keys run in parallel. Keyed tasks count against the same limits; a
    /// task waiting for its key's turn is pending.
    ///
    /// # Errors
    ///
    /// As [`try_spawn`](BoundedExecutor::try_spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::{Arc, Mutex};
    ///
    /// let exec = tidegate::exec::BoundedExecutor::new(8, 64);
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let mut handles = Vec::new();
    /// for i in 0..5 {
    ///     let log = Arc::clone(&log);
    ///     let connection_id = 7u64;
    ///     handles.push(exec.try_spawn_keyed(connection_id, async move {
    ///         tokio::task::yield_now().await; // even when tasks yield, order holds
    ///         log.lock().unwrap().push(i);
    ///     }).unwrap());
    /// }
    /// for h in handles {
    ///     h.await.unwrap();
    /// }
    /// assert_eq!(*log.lock().unwrap(), [0, 1, 2, 3, 4]);
    /// # }
    /// ```
    pub fn try_spawn_keyed<K, F>(
        &self,
        key: K,
        future: F,
    ) -> Result<TaskHandle<F::Output>, SpawnError<F>>
    where
        K: Hash,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.shared.try_admit() {
            Ok(admission) => Ok(self.launch(
                admission,
                Plain::new(future),
                Some(self.shared.keys.hash(&key)),
            )),
            Err(refusal) => Err(self.shared.refuse(refusal, future)),
        }
    }

    /// Waits for room in the backlog, then admits `future` behind earlier tasks with the same `key`.
    ///
    /// # Errors
    ///
    /// As [`spawn`](BoundedExecutor::spawn).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped wait admitted nothing and took no place in the key's line (the place is taken at
    /// admission, so ordering follows the order in which the awaiting calls were admitted).
    pub async fn spawn_keyed<K, F>(
        &self,
        key: K,
        future: F,
    ) -> Result<TaskHandle<F::Output>, SpawnError<F>>
    where
        K: Hash,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let hash = self.shared.keys.hash(&key);
        // The common case admits at once, without building the waiting future.
        let admitted = match self.shared.try_admit() {
            Err(Refusal::Full { .. }) => self.shared.admit_wait(None).await,
            other => other,
        };
        match admitted {
            Ok(admission) => Ok(self.launch(admission, Plain::new(future), Some(hash))),
            Err(refusal) => Err(self.shared.refuse(refusal, future)),
        }
    }
}
