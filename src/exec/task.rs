//! The future tokio runs for each admitted task: wait for the key's turn, then for a run slot, then run.
//!
//! Tasks are spawned onto tokio at admission and wait for their slot inside, so pending tasks cost no queue of
//! our own and abort works the same before and after they start. The [`Guard`] travels with the task and
//! settles the accounting in `Drop`, which covers completion, panic, abort and runtime shutdown alike.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::oneshot;

use super::gate::WaiterRef;
use super::keyed::KeyTurn;
use super::registry::Registered;
use super::shared::{Outcome, Shared};

/// The accounting of one admitted task.
pub(crate) struct Guard {
    shared: Arc<Shared>,
    waiter: Option<WaiterRef>,
    started: bool,
    completed: bool,
    blocking: bool,
    /// Boxed so that unkeyed tasks, the common case, carry (and copy) one word for it.
    keyed: Option<Box<Keyed>>,
}

struct Keyed {
    turn: KeyTurn,
    /// Resolves when the previous task with the same key has finished; `None` once it has.
    previous: Option<oneshot::Receiver<()>>,
}

impl Guard {
    pub(crate) fn new(
        shared: Arc<Shared>,
        turn: Option<KeyTurn>,
        previous: Option<oneshot::Receiver<()>>,
    ) -> Self {
        Guard {
            shared,
            waiter: None,
            started: false,
            completed: false,
            blocking: false,
            keyed: turn.map(|turn| Box::new(Keyed { turn, previous })),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Marks a task that now runs on the blocking pool, where abort cannot reach it.
    pub(crate) fn set_blocking(&mut self) {
        self.blocking = true;
        self.shared
            .counters
            .blocking_running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The task produced its output: release everything now rather than when tokio drops the future.
    pub(crate) fn complete(mut self) {
        self.completed = true;
    }

    fn poll_turn_and_slot(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(keyed) = &mut self.keyed {
            if let Some(previous) = &mut keyed.previous {
                // An error means the predecessor's sender was dropped, which is exactly "it finished".
                let _ = ready!(Pin::new(previous).poll(cx));
                keyed.previous = None;
            }
        }
        if !self.started {
            ready!(self.shared.gate.poll_acquire(cx, &mut self.waiter));
            self.started = true;
        }
        Poll::Ready(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let granted_unused = match self.waiter.take() {
            Some(waiter) => self.shared.gate.cancel(&waiter),
            None => false,
        };
        if self.started || granted_unused {
            self.shared.gate.release();
        }
        if let Some(keyed) = self.keyed.take() {
            let Keyed { turn, previous } = *keyed;
            match previous {
                None => self.shared.keys.leave(turn),
                // Cancelled before its turn: the next task with this key must still wait for our predecessor,
                // so hand our place to a small task that waits for it. Only cancellation pays this.
                Some(previous) => {
                    let shared = Arc::clone(&self.shared);
                    drop(self.shared.handle.spawn(async move {
                        let _ = previous.await;
                        shared.keys.leave(turn);
                    }));
                }
            }
        }
        if self.blocking {
            // Before `finish`, so shutdown never sees this task as neither in flight nor blocking.
            self.shared
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
        self.shared.finish(outcome);
    }
}

/// What a task does once it holds a run slot. The body takes the guard when it finishes (or, for blocking
/// work, moves it to the thread that does the work).
pub(crate) trait Body {
    type Output;

    fn poll_body(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        guard: &mut Option<Guard>,
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

    fn poll_body(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        guard: &mut Option<Guard>,
    ) -> Poll<F::Output> {
        let output = ready!(self.project().future.poll(cx));
        if let Some(guard) = guard.take() {
            guard.complete();
        }
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
        guard: Option<Guard>,
        registered: Option<Registered>,
    }
}

impl<B> Task<B> {
    pub(crate) fn new(body: B, guard: Guard) -> Self {
        Task {
            body,
            guard: Some(guard),
            registered: None,
        }
    }
}

impl<B: Body> Future for Task<B> {
    type Output = Result<B::Output, Aborted>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // While the guard is here the task is ours to cancel; a blocking body that took it runs to the end.
        if let Some(guard) = this.guard.as_ref() {
            if guard.shared.registry.is_aborting() {
                *this.guard = None;
                return Poll::Ready(Err(Aborted));
            }
        }
        let poll = poll_stages(this.body.as_mut(), this.guard, cx);
        if poll.is_pending() && this.registered.is_none() {
            if let Some(guard) = this.guard.as_ref() {
                *this.registered = Some(Registered::new(&guard.shared, cx.waker()));
            }
        }
        poll.map(Ok)
    }
}

fn poll_stages<B: Body>(
    body: Pin<&mut B>,
    guard: &mut Option<Guard>,
    cx: &mut Context<'_>,
) -> Poll<B::Output> {
    if let Some(guard) = guard {
        ready!(guard.poll_turn_and_slot(cx));
    }
    body.poll_body(cx, guard)
}
