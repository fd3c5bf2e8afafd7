//! The task that drains a watermark queue into a stream.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::shared::{Shared, Stats};
use super::{
    channel, CloseReason, Config, ConfigBuilder, Limits, Receiver, Sender, WatermarkMetrics,
};
use crate::MemoryBudget;

/// Slices per vectored write. Linux's `IOV_MAX` is 1024; 256 already carries 17 KiB of 64-byte frames per syscall
/// while keeping the slice array (built on the stack on every poll) at 4 KiB.
const MAX_IOVECS: usize = 256;
/// For streams without vectored writes, small frames are copied into one buffer of up to this size per write.
const COALESCE_BYTES: usize = 16 * 1024;

/// Builds a [`WatermarkWriter`].
///
/// Defaults: [`Limits::default()`], no budget, no eviction, no stall timeout.
#[derive(Debug, Clone, Default)]
pub struct WriterBuilder {
    config: ConfigBuilder,
    evict_after: Option<Duration>,
    stall_timeout: Option<Duration>,
}

impl WriterBuilder {
    /// The queue's marks. Default: [`Limits::default()`].
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.config.limits(limits);
        self
    }

    /// Charges `budget` for queued bytes. Default: none.
    pub fn budget(&mut self, budget: MemoryBudget) -> &mut Self {
        self.config.budget(budget);
        self
    }

    /// Disconnects the peer with [`CloseReason::Evicted`] once the queue has stayed unwritable (over the high mark
    /// and not yet drained to the low mark) for longer than `after`. Default: never.
    pub fn evict_after(&mut self, after: Duration) -> &mut Self {
        self.evict_after = Some(after);
        self
    }

    /// Fails with [`CloseReason::Stalled`] when one write (or flush or shutdown) makes no progress for `timeout`.
    /// Default: none.
    pub fn stall_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.stall_timeout = Some(timeout);
        self
    }

    /// Wraps `io`: returns the handle producers send frames through and the writer to run (or
    /// [`spawn`](WatermarkWriter::spawn)).
    pub fn build<W: AsyncWrite + Unpin + Send>(
        &self,
        io: W,
    ) -> (Sender<Bytes>, WatermarkWriter<W>) {
        WatermarkWriter::with_config(
            io,
            self.config.build(),
            self.evict_after,
            self.stall_timeout,
        )
    }
}

/// Drains a watermark queue of [`Bytes`] frames into an [`AsyncWrite`] (typically a `TcpStream`'s write half).
///
/// It writes many queued frames per syscall with `poll_write_vectored` (copying small frames into one buffer
/// instead when the stream has no vectored writes), resumes partial writes, treats a zero-length write as
/// [`io::ErrorKind::WriteZero`], and flushes whenever the queue runs dry. A frame stops counting against the queue
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

struct Watchdog {
    reason: watch::Receiver<Option<CloseReason>>,
    /// Only with eviction: each flip moves the deadline. Without it nobody needs the writer woken on flips.
    writability: Option<watch::Receiver<bool>>,
    evict_after: Option<Duration>,
    stall_timeout: Option<Duration>,
}

impl WatermarkWriter<()> {
    /// Starts a builder; see [`WriterBuilder`] for the defaults.
    pub fn builder() -> WriterBuilder {
        WriterBuilder::default()
    }
}

impl<W: AsyncWrite + Unpin + Send> WatermarkWriter<W> {
    /// Wraps `io` with the default limits, no budget and no eviction.
    pub fn new(io: W) -> (Sender<Bytes>, Self) {
        WriterBuilder::default().build(io)
    }

    fn with_config(
        io: W,
        config: Config,
        evict_after: Option<Duration>,
        stall_timeout: Option<Duration>,
    ) -> (Sender<Bytes>, Self) {
        let (tx, rx) = channel(config);
        let watchdog = Watchdog {
            reason: rx.shared().subscribe_reason(),
            writability: evict_after.map(|_| rx.shared().subscribe_writability()),
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
            if matches!(reason, CloseReason::Evicted { .. }) {
                shared
                    .stats
                    .evicted
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
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
        Stats::bump(&shared.stats.writes, 1);
        Stats::bump(&shared.stats.sent_bytes, n as u64);
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

/// One write of as much of the batch as the stream takes: vectored if the stream supports it, else coalesced.
async fn write_batch<W: AsyncWrite + Unpin>(
    io: &mut W,
    batch: &VecDeque<Bytes>,
    front_written: usize,
    staging: &mut Vec<u8>,
) -> io::Result<usize> {
    let chunks = batch.iter().enumerate().map(|(i, frame)| {
        if i == 0 {
            &frame[front_written..]
        } else {
            &frame[..]
        }
    });
    let n = if io.is_write_vectored() {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(chunks.filter(|c| !c.is_empty())) {
            *slot = IoSlice::new(chunk);
            count += 1;
        }
        poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count])).await?
    } else {
        staging.clear();
        for chunk in chunks {
            if !staging.is_empty() && staging.len() + chunk.len() > COALESCE_BYTES {
                break;
            }
            if staging.is_empty() && chunk.len() >= COALESCE_BYTES {
                // A large frame is written from its own storage, not copied.
                return write_nonzero(io, chunk).await;
            }
            staging.extend_from_slice(chunk);
        }
        write_nonzero(io, staging).await?
    };
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}

async fn write_nonzero<W: AsyncWrite + Unpin>(io: &mut W, buf: &[u8]) -> io::Result<usize> {
    poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, buf)).await
}

/// Runs one I/O operation while watching for an abort, eviction and a stall.
async fn guard<T, S, F>(dog: &mut Watchdog, shared: &Shared<S>, op: F) -> Result<T, CloseReason>
where
    F: Future<Output = io::Result<T>>,
{
    let mut op = pin!(op);
    let stall_at = dog.stall_timeout.map(|t| Instant::now() + t);
    loop {
        let evict_at = dog
            .evict_after
            .and_then(|after| Some(shared.unwritable_since()? + after));
        tokio::select! {
            biased;
            done = &mut op => return done.map_err(|err| CloseReason::Io(Arc::new(err))),
            _ = dog.reason.changed() => {
                if shared.is_aborted() {
                    return Err(CloseReason::Aborted);
                }
            }
            // A flip moves the eviction deadline: go round and recompute it.
            _ = writability_changed(&mut dog.writability) => {}
            () = sleep_until_some(evict_at) => {
                return Err(CloseReason::Evicted { after: dog.evict_after.unwrap_or_default() });
            }
            () = sleep_until_some(stall_at) => {
                return Err(CloseReason::Stalled { timeout: dog.stall_timeout.unwrap_or_default() });
            }
        }
    }
}

async fn writability_changed(watch: &mut Option<watch::Receiver<bool>>) {
    match watch {
        // The sender half lives in the queue's state, which this writer keeps alive: `changed` cannot fail.
        Some(watch) => drop(watch.changed().await),
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
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
