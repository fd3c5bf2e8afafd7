//! The future tokio runs for each admitted task: wait for the key's turn, then for a run slot, then run.
//!
//! Tasks are spawned onto tokio at admission and wait for their slot inside, so pending tasks cost no queue of
//! our own and abort works the same before and after they start. The [`Guard`] travels with the task and
//! settles the accounting when the body completes or, failing that, in `Drop`, which covers panic, abort and
//! runtime shutdown alike.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::oneshot;

use super::gate::WaiterRef;
use super::keyed::KeyTurn;
use super::registry::Entry;
use super::shared::{Outcome, Shared};
use super::shared_ref::SharedRef;

/// The accounting of one admitted task. It travels with the task (or, for blocking work, with the closure) and
/// settles the accounting when the task completes or, failing that, when it is dropped.
///
/// The paths every task takes (create, take a slot, complete, drop) are `#[inline]`: they are called from
/// generic code instantiated in the user's crate, and measured by instruction count, calls into this crate
/// cost more than the atomic operations they wrap.
pub(crate) struct Guard {
    /// `None` once the task has left the executor (or the guard was moved out with [`take`](Guard::take)).
    shared: Option<SharedRef>,
    waiter: Option<WaiterRef>,
    /// The task's waker in the abort registry, from its first suspension until it leaves.
    registered: Option<Entry>,
    started: bool,
    completed: bool,
    blocking: bool,
    /// Boxed so that unkeyed tasks, the common case, carry (and copy) one word for it. Taken only on the slow
    /// path of leaving, so that an unkeyed task's drop glue does not call into its destructor to find `None`.
    keyed: ManuallyDrop<Option<Box<Keyed>>>,
}

struct Keyed {
    turn: KeyTurn,
    /// Resolves when the previous task with the same key has finished; `None` once it has.
    previous: Option<oneshot::Receiver<()>>,
}

impl Guard {
    /// `keyed`: the task's turn in its key's line and, if a task with the same key is in flight, the receiver
    /// that resolves when that one finishes. One `Option` for both, so an unkeyed task has nothing to drop.
    #[inline]
    pub(crate) fn new(
        shared: SharedRef,
        keyed: Option<(KeyTurn, Option<oneshot::Receiver<()>>)>,
    ) -> Self {
        Guard::with(
            Some(shared),
            keyed.map(|(turn, previous)| Box::new(Keyed { turn, previous })),
        )
    }

    #[inline]
    fn with(shared: Option<SharedRef>, keyed: Option<Box<Keyed>>) -> Self {
        Guard {
            shared,
            waiter: None,
            registered: None,
            started: false,
            completed: false,
            blocking: false,
            keyed: ManuallyDrop::new(keyed),
        }
    }

    /// Whether the task is still in flight with this guard here.
    #[inline]
    fn live(&self) -> Option<&Shared> {
        self.shared.as_ref().map(SharedRef::get)
    }

    /// Moves the accounting out (to the thread that runs blocking work), leaving a spent guard behind.
    pub(crate) fn take(&mut self) -> Guard {
        std::mem::replace(self, Guard::with(None, None))
    }

    /// The executor; only called on a live guard.
    pub(crate) fn shared(&self) -> &Shared {
        match self.live() {
            Some(shared) => shared,
            None => unreachable!("a spent guard is never asked for its executor"),
        }
    }

    /// Marks a task that now runs on the blocking pool, where abort cannot reach it.
    pub(crate) fn set_blocking(&mut self) {
        self.blocking = true;
        self.shared()
            .counters
            .blocking_running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The task produced its output: leave now rather than when tokio drops the future.
    #[inline]
    pub(crate) fn complete(&mut self) {
        self.completed = true;
        self.leave();
    }

    /// Waits for the key's turn, then for a run slot. `Ready` on a spent guard.
    #[inline]
    fn poll_turn_and_slot(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(shared) = &self.shared else {
            return Poll::Ready(());
        };
        if let Some(keyed) = &mut *self.keyed {
            ready!(poll_turn(keyed, cx));
        }
        if !self.started {
            ready!(shared.get().gate.poll_acquire(cx, &mut self.waiter));
            self.started = true;
        }
        Poll::Ready(())
    }

    /// Registers the task's waker for a shutdown's abort the first time it suspends.
    #[inline]
    fn register_once(&mut self, cx: &mut Context<'_>) {
        if self.registered.is_none() {
            if let Some(shared) = self.live() {
                self.registered = Some(shared.registry.register(cx.waker()));
            }
        }
    }

    /// Settles the accounting and leaves the executor; a spent guard does nothing.
    #[inline]
    fn leave(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        if self.completed && self.keyed.is_none() && !self.blocking && self.registered.is_none() {
            // Completed, so it held a slot and no longer waits for one.
            debug_assert!(self.started && self.waiter.is_none());
            shared.leave(Outcome::Completed, true);
        } else {
            self.leave_slow(shared);
        }
    }

    /// Everything but completing without ever suspending: cancellation, keys, blocking work, registration.
    #[cold]
    #[inline(never)]
    fn leave_slow(&mut self, shared_ref: SharedRef) {
        let shared = shared_ref.get();
        if let Some(entry) = self.registered.take() {
            shared.registry.deregister(entry);
        }
        let granted_unused = match self.waiter.take() {
            Some(waiter) => shared.gate.cancel(&waiter),
            None => false,
        };
        if let Some(keyed) = self.keyed.take() {
            let Keyed { turn, previous } = *keyed;
            match previous {
                None => shared.keys.leave(turn),
                // Cancelled before its turn: the next task with this key must still wait for our predecessor,
                // so hand our place to a small task that waits for it. Only cancellation pays this.
                Some(previous) => {
                    let owned = shared_ref.to_arc();
                    drop(shared.handle.spawn(async move {
                        let _ = previous.await;
                        owned.keys.leave(turn);
                    }));
                }
            }
        }
        if self.blocking {
            // Before leaving, so shutdown never sees this task as neither in flight nor blocking.
            shared
                .counters
                .blocking_running
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        let outcome = if self.completed {
            Outcome::Completed
        } else if !self.started {
            Outcome::NeverStarted
        } else if std::thread::panicking() {
            Outcome::Panicked
        } else {
            Outcome::Aborted
        };
        // A slot granted to a task cancelled before it noticed is the task's to give back, like a used one.
        shared_ref.leave(outcome, self.started || granted_unused);
    }
}

/// Waits for the previous task with the same key to finish.
fn poll_turn(keyed: &mut Keyed, cx: &mut Context<'_>) -> Poll<()> {
    if let Some(previous) = &mut keyed.previous {
        // An error means the predecessor's sender was dropped, which is exactly "it finished".
        let _ = ready!(Pin::new(previous).poll(cx));
        keyed.previous = None;
    }
    Poll::Ready(())
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        self.leave();
    }
}

/// What a task does once it holds a run slot. The body completes the guard when it finishes (or, for blocking
/// work, moves it to the thread that does the work).
pub(crate) trait Body {
    type Output;

    fn poll_body(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        guard: &mut Guard,
    ) -> Poll<Self::Output>;
}

pin_project! {
    /// An ordinary future as a task body.
    pub(crate) struct Plain<F> {
        #[pin]
        future: F,
    }
}

impl<F> Plain<F> {
    pub(crate) fn new(future: F) -> Self {
        Plain { future }
    }
}

impl<F: Future> Body for Plain<F> {
    type Output = F::Output;

    #[inline]
    fn poll_body(self: Pin<&mut Self>, cx: &mut Context<'_>, guard: &mut Guard) -> Poll<F::Output> {
        let output = ready!(self.project().future.poll(cx));
        guard.complete();
        Poll::Ready(output)
    }
}

/// A task cancelled itself because of a shutdown deadline.
#[derive(Debug)]
pub(crate) struct Aborted;

pin_project! {
    /// The future handed to tokio.
    pub(crate) struct Task<B> {
        #[pin]
        body: B,
        guard: Guard,
    }
}

impl<B> Task<B> {
    pub(crate) fn new(body: B, guard: Guard) -> Self {
        Task { body, guard }
    }
}

impl<B: Body> Future for Task<B> {
    type Output = Result<B::Output, Aborted>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // While the guard is live here the task is ours to cancel; a blocking body that took it runs to the end.
        if this
            .guard
            .live()
            .is_some_and(|shared| shared.registry.is_aborting())
        {
            this.guard.leave();
            return Poll::Ready(Err(Aborted));
        }
        if this.guard.poll_turn_and_slot(cx).is_pending() {
            this.guard.register_once(cx);
            return Poll::Pending;
        }
        let poll = this.body.poll_body(cx, this.guard);
        if poll.is_pending() {
            this.guard.register_once(cx);
        }
        poll.map(Ok)
    }
}
