//! The future behind [`MemoryBudget::reserve`](super::MemoryBudget::reserve) once the bytes did not fit at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::loom::Arc;

use super::error::BudgetError;
use super::node::Node;
use super::waiters::Offer;

/// A queued request for `bytes` from `node`. Resolves once the bytes were charged for it (`Ok`) or can never fit.
///
/// Dropping it before it resolves removes the request; if bytes had already been handed to it, they are given back
/// and offered to the next requests, so a cancelled wait neither holds bytes nor swallows another task's wake-up.
/// `reserve` awaits it once; polled again after it resolved, it would start a new request.
pub(super) struct Wait<'a> {
    node: &'a Arc<Node>,
    bytes: usize,
    /// The request's key in the queue while it is queued.
    key: Option<usize>,
}

impl<'a> Wait<'a> {
    pub(super) fn new(node: &'a Arc<Node>, bytes: usize) -> Self {
        Wait {
            node,
            bytes,
            key: None,
        }
    }
}

impl Future for Wait<'_> {
    type Output = Result<(), BudgetError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let waiters = &this.node.waiters;
        match this.key {
            None => match waiters.enqueue(this.node, this.bytes, cx.waker()) {
                Ok(Some(key)) => {
                    this.key = Some(key);
                    Poll::Pending
                }
                Ok(None) => Poll::Ready(Ok(())),
                Err(err) => Poll::Ready(Err(err)),
            },
            Some(key) => {
                let outcome = waiters.poll(key, cx.waker());
                if outcome.is_ready() {
                    this.key = None;
                }
                outcome
            }
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        if self.node.waiters.cancel(key) {
            // Handed bytes this future will never use: give them back and pass them on.
            self.node.give_back(self.bytes);
            self.node.waiters.offer(Offer::Released);
        }
    }
}
