//! The task that drains a watermark queue into a stream.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::vectored::{write_batch, MAX_IOVECS};
use super::watchdog::{guard, Watchdog};
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
    io: W,
    rx: Receiver<Bytes>,
    /// Frames taken from the queue and not yet completely written; the front may be partly written.
    batch: VecDeque<Bytes>,
    front_written: usize,
    staging: Vec<u8>,
    /// Bytes were written since the last flush.
    unflushed: bool,
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
        let writer = WatermarkWriter {
            io,
            rx,
            batch: VecDeque::new(),
            front_written: 0,
            staging: Vec::new(),
            unflushed: false,
            watchdog,
        };
        (tx, writer)
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(self) -> JoinHandle<WriterReport>
    where
        W: 'static,
    {
        tokio::spawn(self.run())
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
        let shared = self.rx.shared();
        if !reason.is_graceful() {
            crate::trace::debug!(
                "watermark writer stopped", reason = %reason, held_frames = self.batch.len()
            );
            shared.close(reason.clone(), true);
            shared.discard(self.batch.drain(..));
        }
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
        loop {
            if self.batch.is_empty() {
                if std::mem::take(&mut self.unflushed) {
                    guard(&mut self.watchdog, self.rx.shared(), self.io.flush()).await?;
                }
                // An idle writer keeps no batch storage: the queue and the batch swap allocations, so both would
                // stay alive between bursts. The next burst's first push allocates again.
                self.batch = VecDeque::new();
                let more = poll_fn(|cx| self.rx.poll_take(cx, &mut self.batch)).await;
                if self.rx.shared().is_aborted() {
                    return Err(CloseReason::Aborted);
                }
                if !more {
                    return guard(&mut self.watchdog, self.rx.shared(), self.io.shutdown()).await;
                }
            } else if self.batch.len() < MAX_IOVECS {
                // Top up without waiting, so one write carries everything that arrived meanwhile.
                self.rx.shared().try_take(&mut self.batch);
            }
            self.skip_empty();
            if self.batch.is_empty() {
                continue;
            }
            let written = {
                let write = write_batch(
                    &mut self.io,
                    &self.batch,
                    self.front_written,
                    &mut self.staging,
                );
                guard(&mut self.watchdog, self.rx.shared(), write).await?
            };
            self.unflushed = true;
            self.advance(written);
        }
    }

    /// Empty frames are delivered by being taken: writing them would look like a zero-length write.
    fn skip_empty(&mut self) {
        let mut skipped = 0;
        while self.batch.front().is_some_and(Bytes::is_empty) {
            self.batch.pop_front();
            skipped += 1;
        }
        if skipped > 0 {
            self.rx.shared().release(skipped, 0);
        }
    }

    /// Accounts `n` written bytes: frames completely written leave the batch and the queue's accounting.
    fn advance(&mut self, mut n: usize) {
        let shared = self.rx.shared();
        shared.record_write(n);
        let (mut items, mut bytes) = (0u64, 0usize);
        while n > 0 {
            let Some(front) = self.batch.front() else {
                break;
            };
            let left = front.len() - self.front_written;
            if n < left {
                self.front_written += n;
                break;
            }
            n -= left;
            bytes += front.len();
            items += 1;
            self.front_written = 0;
            self.batch.pop_front();
        }
        shared.release(items, bytes);
    }
}

/// A writer dropped mid-run (its task aborted, its `run` future cancelled) still holds frames it took from the
/// queue: they count as undelivered and stop counting against the marks and the budget, as the receiver's own drop
/// does for what it holds.
impl<W> Drop for WatermarkWriter<W> {
    fn drop(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let shared = self.rx.shared();
        // Close first, so that the bytes released below cannot let a sender queue more into a dead queue.
        shared.close(CloseReason::ReceiverDropped, true);
        shared.discard(self.batch.drain(..));
    }
}

impl<W> fmt::Debug for WatermarkWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkWriter")
            .field("held_frames", &self.batch.len())
            .field("front_written", &self.front_written)
            .field("evict_after", &self.watchdog.evict_after)
            .field("stall_timeout", &self.watchdog.stall_timeout)
            .finish_non_exhaustive()
    }
}
