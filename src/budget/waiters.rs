//! The queue of `reserve` calls waiting for bytes, shared by every budget of one tree.
//!
//! A release offers the freed bytes to the queued requests in arrival order and *hands them off*: the releaser
//! charges the budget on behalf of each request that fits now, marks it granted, unlinks it and wakes only its
//! task. Requests that still do not fit keep their place and are not woken, so one release wakes only the tasks it
//! lets in (not every waiter of the tree, each retrying a compare-and-swap chain: the thundering herd of issue #10).
//! A granted request whose future is dropped before it runs gives the bytes back, which offers them to the next
//! requests: a cancelled waiter cannot swallow a wake-up another one needed, nor hold bytes.
//!
//! The protocol that rules out lost wake-ups is a store-load pair on both sides, with a `SeqCst` fence between:
//! a releaser gives bytes back, fences, then reads the queued count; a waiter counts itself in, fences, then
//! retries its charge under the lock before queueing. Either the releaser sees the waiter (and takes the lock,
//! which orders it after the waiter's enqueue) or the waiter's retry sees the freed bytes. Fences rather than
//! `SeqCst` loads because loom checks fences and treats `SeqCst` accesses as acquire/release.

use std::mem;
use std::task::{Poll, Waker};

use crate::loom::atomic::{fence, AtomicUsize, Ordering};
use crate::loom::{Arc, Mutex};

use super::error::BudgetError;
use super::node::Node;

/// The end of the list.
const NIL: usize = usize::MAX;

pub(super) struct Waiters {
    /// Requests linked in the queue, read without the lock so that a release with nobody waiting takes no lock.
    queued: AtomicUsize,
    list: Mutex<List>,
}

/// How far [`Waiters::offer`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Offer {
    /// Bytes were given back: stop as soon as the root is full, since then nothing fits anywhere.
    Released,
    /// A limit changed: look at every request, also to fail those that can now never fit.
    LimitChanged,
}

/// A slab of requests threaded into a FIFO list, so that queueing, unlinking (on grant or cancellation) and the
/// walk in arrival order are all O(1) per request.
struct List {
    slots: Vec<Slot>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
}

struct Slot {
    state: State,
    prev: usize,
    next: usize,
}

enum State {
    Vacant,
    /// Linked in the list, waiting for `bytes` from `node` (and its ancestors).
    Queued {
        node: Arc<Node>,
        bytes: usize,
        waker: Waker,
    },
    /// Unlinked; the bytes were charged for the request and belong to its future.
    Granted,
    /// Unlinked; the request can never fit.
    Failed(BudgetError),
}

impl Waiters {
    pub(super) fn new() -> Self {
        Waiters {
            queued: AtomicUsize::new(0),
            list: Mutex::new(List {
                slots: Vec::new(),
                free: Vec::new(),
                head: NIL,
                tail: NIL,
            }),
        }
    }

    /// Charges `bytes` to `node` if they fit now (`Ok(None)`), fails if they never can, or queues the request and
    /// returns its key.
    pub(super) fn enqueue(
        &self,
        node: &Arc<Node>,
        bytes: usize,
        waker: &Waker,
    ) -> Result<Option<usize>, BudgetError> {
        let mut list = self.list.lock();
        self.queued.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `offer`; see the module docs.
        fence(Ordering::SeqCst);
        // Under the lock, a charge that rolls back needs no offer: every walk of the queue is ordered after it.
        let settled = match node.take(bytes) {
            Ok(()) => Ok(None),
            Err(_) => node.never_fits(bytes).map_or(Ok(Some(())), Err),
        };
        match settled {
            Ok(Some(())) => Ok(Some(list.push_back(State::Queued {
                node: Arc::clone(node),
                bytes,
                waker: waker.clone(),
            }))),
            Ok(None) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Ok(None)
            }
            Err(err) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(err)
            }
        }
    }

    /// `Ready` once the request under `key` is granted or failed (its key is then free); otherwise keeps `waker`.
    pub(super) fn poll(&self, key: usize, waker: &Waker) -> Poll<Result<(), BudgetError>> {
        let mut list = self.list.lock();
        let slot = &mut list.slots[key];
        let (outcome, replaced) = match &mut slot.state {
            State::Queued { waker: kept, .. } => {
                if kept.will_wake(waker) {
                    return Poll::Pending;
                }
                (Poll::Pending, Some(mem::replace(kept, waker.clone())))
            }
            State::Granted => (Poll::Ready(Ok(())), None),
            State::Failed(err) => (Poll::Ready(Err(*err)), None),
            State::Vacant => {
                // Unreachable: only the future that owns a key frees its slot, and it forgets the key then. Should
                // it happen anyway, a refusal beats a hang.
                debug_assert!(false, "a reserve future polled a vacant slot");
                return Poll::Ready(Err(never_queued()));
            }
        };
        if outcome.is_ready() {
            list.release(key);
        }
        drop(list);
        // Dropped outside the lock: dropping a waker may drop a task, whose reserve future then takes this lock.
        drop(replaced);
        outcome
    }

    /// Removes the request under `key` for a dropped future. Returns whether bytes had been granted to it: the
    /// caller must then give them back (and offer them), outside this lock.
    pub(super) fn cancel(&self, key: usize) -> bool {
        let mut list = self.list.lock();
        let state = mem::replace(&mut list.slots[key].state, State::Vacant);
        match state {
            State::Queued { .. } => {
                list.unlink(key);
                self.queued.fetch_sub(1, Ordering::Relaxed);
            }
            State::Vacant => debug_assert!(false, "a reserve future cancelled a vacant slot"),
            State::Granted | State::Failed(_) => {}
        }
        if !matches!(state, State::Vacant) {
            list.release(key);
        }
        drop(list);
        // `state` (with its waker) is dropped outside the lock, for the reason given in `poll`.
        matches!(state, State::Granted)
    }

    /// Offers the bytes free now to the queued requests, oldest first; wakes those granted (or failed).
    ///
    /// Call after giving bytes back or changing a limit. Costs one fence and one load when nobody waits; otherwise
    /// the walk stops at the first full root on a release, so a release that lets one waiter in among many is
    /// O(1), but a walk can visit every queued request when the root has room and the requests are held back by
    /// their own budgets' limits.
    pub(super) fn offer(&self, how: Offer) {
        // Pairs with the fence in `enqueue`; see the module docs.
        fence(Ordering::SeqCst);
        if self.queued.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut woken = Wakeups::default();
        {
            let mut list = self.list.lock();
            let settled = list.offer(how, &mut woken);
            self.queued.fetch_sub(settled, Ordering::Relaxed);
        }
        woken.wake();
    }
}

impl List {
    fn push_back(&mut self, state: State) -> usize {
        let slot = Slot {
            state,
            prev: self.tail,
            next: NIL,
        };
        let key = match self.free.pop() {
            Some(key) => {
                self.slots[key] = slot;
                key
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        match self.tail {
            NIL => self.head = key,
            tail => self.slots[tail].next = key,
        }
        self.tail = key;
        key
    }

    fn unlink(&mut self, key: usize) {
        let Slot { prev, next, .. } = self.slots[key];
        match prev {
            NIL => self.head = next,
            prev => self.slots[prev].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.slots[next].prev = prev,
        }
    }

    /// Frees an unlinked slot for reuse.
    fn release(&mut self, key: usize) {
        self.slots[key].state = State::Vacant;
        self.free.push(key);
    }

    /// Settles every queued request that fits now (or never will) in arrival order; returns how many.
    fn offer(&mut self, how: Offer, woken: &mut Wakeups) -> usize {
        let Some(State::Queued { node, .. }) = self.slots.get(self.head).map(|slot| &slot.state)
        else {
            return 0;
        };
        // Every request of the tree charges the root, so a full root means nothing can be granted.
        let head = Arc::clone(node);
        let root = head.root();
        let mut settled = 0;
        let mut key = self.head;
        while key != NIL {
            if how == Offer::Released && root.is_full() {
                break;
            }
            let slot = &mut self.slots[key];
            let next = slot.next;
            if let State::Queued { node, bytes, .. } = &slot.state {
                let outcome = match node.take(*bytes) {
                    Ok(()) => Some(State::Granted),
                    Err(_) => node.never_fits(*bytes).map(State::Failed),
                };
                if let Some(outcome) = outcome {
                    if let State::Queued { waker, .. } = mem::replace(&mut slot.state, outcome) {
                        woken.push(waker);
                    }
                    self.unlink(key);
                    settled += 1;
                }
            }
            key = next;
        }
        settled
    }
}

/// The error a future gets if its slot was somehow lost: it surfaces as a refusal instead of a panic or a hang.
fn never_queued() -> BudgetError {
    BudgetError::Exhausted {
        requested: 0,
        used: 0,
        limit: 0,
    }
}

/// Wakers collected under the lock and woken after it: one without allocating, more in a vector.
#[derive(Default)]
struct Wakeups {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Wakeups {
    fn push(&mut self, waker: Waker) {
        match self.first {
            None => self.first = Some(waker),
            Some(_) => self.rest.push(waker),
        }
    }

    fn wake(self) {
        self.first
            .into_iter()
            .chain(self.rest)
            .for_each(Waker::wake);
    }
}
