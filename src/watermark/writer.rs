//! The task that drains a watermark queue into a stream.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;

use super::direct_write::DirectWrite;
use super::watchdog::{guard, Watchdog};
use super::writer_core::{Next, WriterCore};
use super::{
    channel, CloseReason, Config, Receiver, Sender, WatermarkMetrics, WatermarkWriterBuilder,
};

/// Drains a watermark queue of [`Bytes`] frames into an [`AsyncWrite`] (typically a `TcpStream`'s write half).
///
/// It writes many queued frames per syscall with `poll_write_vectored` (copying small frames into one buffer
/// instead when the stream has no vectored writes), resumes partial writes, treats a zero-length write as
/// [`std::io::ErrorKind::WriteZero`], and flushes whenever the queue runs dry. A frame stops counting against the queue
/// only once it is completely written, so the hard cap bounds everything the writer holds.
///
/// It stops, and every [`Sender::closed`] returns the reason, when:
///
/// * a sender calls [`close`](Sender::close) (or all senders are dropped): it writes what is queued, flushes and
///   shuts the stream down ([`CloseReason::Closed`]);
/// * a sender calls [`abort`](Sender::abort): queued frames are dropped at once ([`CloseReason::Aborted`]);
/// * writing fails, the peer is evicted, or a write stalls: queued frames are dropped and the stream is dropped
///   without a shutdown.
///
/// Dropped frames are counted in [`WatermarkMetrics::undelivered_items`] and `undelivered_bytes`.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use tidegate::watermark::WatermarkWriter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (client, mut server) = tokio::io::duplex(64);
/// let (tx, writer) = WatermarkWriter::builder().build(client);
/// let task = writer.spawn();
/// tx.send(Bytes::from_static(b"hello ")).await.unwrap();
/// tx.send(Bytes::from_static(b"world")).await.unwrap();
/// tx.close();
/// let report = task.await.unwrap();
/// assert!(report.reason.is_graceful());
/// assert_eq!(report.metrics.sent_bytes, 11);
///
/// let mut got = String::new();
/// tokio::io::AsyncReadExt::read_to_string(&mut server, &mut got).await.unwrap();
/// assert_eq!(got, "hello world");
/// # }
/// ```
#[must_use = "the writer writes nothing until it is run or spawned"]
pub struct WatermarkWriter<W> {
    /// The stream and the frames being written, shared with senders that write while this writer is idle.
    core: Arc<WriterCore<W>>,
    rx: Receiver<Bytes>,
    watchdog: Watchdog,
}

/// What a finished writer reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WriterReport {
    /// Why it stopped.
    pub reason: CloseReason,
    /// The queue's counters when it stopped: `sent_bytes`, `delivered_items`, `undelivered_items`, ...
    pub metrics: WatermarkMetrics,
}

impl WatermarkWriter<()> {
    /// Starts a builder; see [`WatermarkWriterBuilder`] for the defaults. The stream's type is given to
    /// [`build`](WatermarkWriterBuilder::build), so `WatermarkWriter::builder()` needs no annotation.
    pub fn builder() -> WatermarkWriterBuilder {
        WatermarkWriterBuilder::default()
    }
}

impl<W> WatermarkWriter<W> {
    /// The queue this writer drains, for the registry's observer.
    pub(crate) fn receiver(&self) -> &Receiver<Bytes> {
        &self.rx
    }
}

impl<W: AsyncWrite + Unpin + Send> WatermarkWriter<W> {
    /// Wraps `io` with the default limits, no budget and no eviction.
    pub fn new(io: W) -> (Sender<Bytes>, Self) {
        WatermarkWriterBuilder::default().build(io)
    }

    pub(crate) fn with_config(
        io: W,
        config: Config,
        evict_after: Option<Duration>,
        stall_timeout: Option<Duration>,
    ) -> (Sender<Bytes>, Self) {
        let (tx, rx) = channel(config);
        let watchdog = Watchdog {
            evict_after,
            stall_timeout,
        };
        let core = Arc::new(WriterCore::new(io, rx.shared_arc().clone()));
        let writer = WatermarkWriter { core, rx, watchdog };
        (tx, writer)
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime, and lets senders write for the spawned writer.
    ///
    /// While the writer is idle (waiting for frames, not for the stream), a sender that finds the queue at or above
    /// its low mark after a send, or is about to wait for room, takes the stream and writes what is queued itself,
    /// as Netty writes from the event loop: a stream that keeps up then costs no trip through the scheduler to the
    /// writer task and back, and the queue does not turn unwritable. A sender never waits on the stream: at the first `Pending` or error it hands
    /// the stream and what is left back to the writer, which keeps every wait, the watchdog and the report. Frames
    /// go out in queue order whoever writes them, and are counted the same way. A writer run in a task of your own
    /// ([`run`](Self::run)) is not written for.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(self) -> JoinHandle<WriterReport>
    where
        W: 'static,
    {
        tokio::spawn(self.with_direct_writes().run())
    }

    /// Lets senders write queued frames themselves while this writer is idle (see [`spawn`](Self::spawn)), for a
    /// writer about to be spawned. Needs a `'static` stream: the queue keeps a (weak) handle to the writer.
    pub(crate) fn with_direct_writes(self) -> Self
    where
        W: 'static,
    {
        let core: Weak<dyn DirectWrite> = Arc::downgrade(&self.core) as Weak<WriterCore<W>>;
        self.rx.shared().set_direct_writer(core);
        self
    }

    /// Writes queued frames until the queue is closed and drained, aborted, or the stream fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the writer: the queue closes with [`CloseReason::ReceiverDropped`] and the frames
    /// it held are counted as undelivered.
    pub async fn run(mut self) -> WriterReport {
        let reason = match self.drain().await {
            Ok(()) => CloseReason::Closed,
            Err(reason) => reason,
        };
        let held = self.core.stop();
        let shared = self.rx.shared();
        if !reason.is_graceful() {
            crate::trace::debug!(
                "watermark writer stopped", reason = %reason, held_frames = held.len()
            );
            shared.close(reason.clone(), true);
        }
        // Empty after a graceful end: everything was written.
        shared.discard(held);
        // After a failure the queue's reason is authoritative: an abort that raced the failure stays the reason.
        let reason = match reason.is_graceful() {
            true => reason,
            false => shared.reason().unwrap_or(reason),
        };
        WriterReport {
            reason,
            metrics: shared.metrics(),
        }
    }

    async fn drain(&mut self) -> Result<(), CloseReason> {
        let core = &*self.core;
        let shared = self.rx.shared_arc().clone();
        loop {
            let next = core.next().map_err(|err| CloseReason::Io(Arc::new(err)))?;
            match next {
                Next::Write => {
                    let write = poll_fn(|cx| core.poll_write(cx));
                    guard(&mut self.watchdog, &shared, write).await?;
                }
                Next::Flush => {
                    let flush = poll_fn(|cx| core.poll_flush(cx));
                    guard(&mut self.watchdog, &shared, flush).await?;
                }
                Next::Wait => {
                    let more = poll_fn(|cx| core.poll_wait(cx, &mut self.rx)).await;
                    if shared.is_aborted() {
                        return Err(CloseReason::Aborted);
                    }
                    if !more {
                        let shutdown = poll_fn(|cx| core.poll_shutdown(cx));
                        return guard(&mut self.watchdog, &shared, shutdown).await;
                    }
                }
            }
        }
    }
}

/// A writer dropped mid-run (its task aborted, its `run` future cancelled) still holds frames it took from the
/// queue: they count as undelivered and stop counting against the marks and the budget, as the receiver's own drop
/// does for what it holds.
impl<W> Drop for WatermarkWriter<W> {
    fn drop(&mut self) {
        let held = self.core.stop();
        if held.is_empty() {
            return;
        }
        let shared = self.rx.shared();
        // Close first, so that the bytes released below cannot let a sender queue more into a dead queue.
        shared.close(CloseReason::ReceiverDropped, true);
        shared.discard(held);
    }
}

impl<W> fmt::Debug for WatermarkWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkWriter")
            .field("held_frames", &self.core.held_frames())
            .field("evict_after", &self.watchdog.evict_after)
            .field("stall_timeout", &self.watchdog.stall_timeout)
            .finish_non_exhaustive()
    }
}
