//! The one task of a connection: its watermark writer, with a deadline once reading has stopped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::shutdown::Tracked;
use crate::watermark::{Sender, WriterReport};

/// How the writer task ended.
#[derive(Debug)]
pub(crate) enum WriterEnd {
    /// The writer stopped by itself: the queue was closed and drained, or it failed (eviction, an error).
    Finished(WriterReport),
    /// Reading had stopped and the drain timeout passed first: the writer and its queue were dropped.
    Cut,
}

pin_project! {
    /// Runs a writer until it stops; once its queue is closed (the connection closes it when reading ends, also
    /// when dropped) or the shutdown was triggered, for at most `drain` more. A writer that can drain finishes
    /// well before the deadline.
    ///
    /// Closing the queue wakes the writer (it waits on the queue, or on the queue's reason during a write), and so
    /// this future: no signal of its own is needed.
    ///
    /// Written by hand, not as an `async fn`: the task's allocation is the size of this future for the whole life
    /// of the connection, and a `select!` with a timeout around the writer cost about 500 bytes more per idle
    /// connection. The timer is allocated only once draining starts.
    pub(crate) struct WriterTask<F> {
        #[pin]
        writer: F,
        queue: Sender<Bytes>,
        triggered: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        tracked: Option<Tracked>,
        drain: Duration,
        deadline: Option<Pin<Box<Sleep>>>,
    }
}

impl<F> WriterTask<F> {
    pub(crate) fn new(
        writer: F,
        queue: Sender<Bytes>,
        tracked: Option<Tracked>,
        drain: Duration,
    ) -> Self {
        let triggered = tracked
            .as_ref()
            .map(|t| Box::pin(t.token().clone().cancelled_owned()));
        WriterTask {
            writer,
            queue,
            triggered,
            tracked,
            drain,
            deadline: None,
        }
    }
}

impl<F: Future<Output = WriterReport>> Future for WriterTask<F> {
    type Output = WriterEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WriterEnd> {
        let this = self.project();
        if let Poll::Ready(report) = this.writer.poll(cx) {
            if let Some(tracked) = this.tracked.take() {
                if report.reason.is_graceful() {
                    tracked.drained();
                }
            }
            return Poll::Ready(WriterEnd::Finished(report));
        }
        if this.deadline.is_none() {
            let closed = this.queue.is_closed();
            let triggered = this
                .triggered
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(cx).is_ready());
            if !(closed || triggered) {
                return Poll::Pending;
            }
            *this.triggered = None;
            *this.deadline = Some(Box::pin(tokio::time::sleep(*this.drain)));
        }
        match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
            // Cut: the tracker counts it as such when dropped; the writer is dropped with this future.
            Some(Poll::Ready(())) => {
                crate::trace::debug!(
                    "connection writer cut: the drain timeout passed", drain = ?this.drain
                );
                this.tracked.take();
                Poll::Ready(WriterEnd::Cut)
            }
            _ => Poll::Pending,
        }
    }
}
#[cfg(all(test, not(tidegate_loom)))]
mod tests {
    use std::time::Duration;

    use super::WriterTask;
    use crate::watermark::WatermarkWriter;

    /// The writer task's future is allocated for the connection's whole life, so its size is what an idle
    /// connection pays for its one task. It was 9.9 KB when the vectored write kept its `IoSlice` array in the
    /// future and the drain deadline was a `select!` around the writer.
    #[test]
    fn the_writer_task_future_stays_small() {
        let (tx, writer) = WatermarkWriter::new(tokio::io::sink());
        let task = WriterTask::new(writer.run(), tx, None, Duration::from_secs(1));
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1536, "writer task future of {size} bytes");
    }
}
