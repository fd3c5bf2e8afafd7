//! Senders writing queued frames to the stream themselves while the queue's writer is idle.
//!
//! Handing every high-mark fill to the writer task costs a trip through the scheduler: the sender parks, the writer
//! wakes, writes, and wakes the sender again (on a current-thread runtime, an eventfd write and an `epoll_wait`
//! per fill). A sender that finds the queue at its low mark after a send, or is about to wait for room, instead
//! takes the stream, if nobody is using it, and writes what is queued from its own task, as Netty writes from the
//! event loop. The writer stays the owner of every wait on the stream: a
//! sender never waits on it and never writes while the writer waits for it (the stream holds the writer's waker
//! then), and it hands the stream back at the first `Pending` or error.

use std::sync::{Arc, LazyLock};
use std::task::{Wake, Waker};

/// A writer that senders may write for. Held weakly by the queue, so a finished writer is simply gone.
pub(crate) trait DirectWrite: Send + Sync {
    /// Writes queued frames to the stream from the caller's task if the stream is free, without waiting; hands
    /// anything left (frames the stream did not take now, an error) to the writer task. Returns whether a byte was
    /// written.
    fn write_queued(&self) -> bool;
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// The waker of a sender's write: a `Pending` stream is handed to the writer task, which polls it again with its
/// own waker, so the sender needs no wake-up.
pub(crate) static NOOP_WAKER: LazyLock<Waker> = LazyLock::new(|| Waker::from(Arc::new(Noop)));
