//! The stream and the frames being written to it, shared by the writer task and the senders that write for it.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::AsyncWrite;

use super::direct_write::{DirectWrite, NOOP_WAKER};
use super::receiver::Receiver;
use super::shared::Shared;
use super::vectored::{poll_write_batch, MAX_IOVECS};

/// Writes a sender makes for an idle writer before it goes back to its own work: a sender about to wait for room
/// writes what is queued, but does not become the writer of a queue that other tasks keep filling.
const DIRECT_WRITES: usize = 16;

pub(crate) struct WriterCore<W> {
    shared: Arc<Shared<Bytes>>,
    stream: Mutex<Stream<W>>,
}

pub(crate) struct Stream<W> {
    io: W,
    /// Frames taken from the queue and not yet completely written; the front may be partly written.
    batch: VecDeque<Bytes>,
    front_written: usize,
    staging: Vec<u8>,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// The writer task's last poll of the stream returned `Pending`: the stream holds its waker, and a poll by
    /// anyone else would replace it.
    io_waiting: bool,
    /// The writer stopped: nobody writes any more.
    stopped: bool,
    /// An error a sender's write met, for the writer task to stop with.
    failed: Option<io::Error>,
}

/// What the writer task does next.
pub(crate) enum Next {
    Write,
    Flush,
    /// Nothing to write or flush: wait for frames.
    Wait,
}

impl<W> WriterCore<W> {
    pub(crate) fn new(io: W, shared: Arc<Shared<Bytes>>) -> Self {
        WriterCore {
            shared,
            stream: Mutex::new(Stream {
                io,
                batch: VecDeque::new(),
                front_written: 0,
                staging: Vec::new(),
                unflushed: false,
                io_waiting: false,
                stopped: false,
                failed: None,
            }),
        }
    }

    /// The next step of the writer task, or the error a sender's write met.
    pub(crate) fn next(&self) -> io::Result<Next> {
        let mut stream = self.stream.lock();
        if let Some(err) = stream.failed.take() {
            return Err(err);
        }
        stream.top_up(&self.shared);
        if !stream.batch.is_empty() {
            return Ok(Next::Write);
        }
        if std::mem::take(&mut stream.unflushed) {
            return Ok(Next::Flush);
        }
        Ok(Next::Wait)
    }

    /// Waits for frames (`Ready(false)` once the queue is closed and drained), or for a sender's handover: frames
    /// it left in the batch, an error, or bytes to flush (a sender may have written between [`next`](Self::next)
    /// and this wait).
    pub(crate) fn poll_wait(&self, cx: &mut Context<'_>, rx: &mut Receiver<Bytes>) -> Poll<bool> {
        let mut stream = self.stream.lock();
        if !stream.batch.is_empty() || stream.failed.is_some() || stream.unflushed {
            return Poll::Ready(true);
        }
        // An idle writer keeps no batch storage: the queue and the batch swap allocations, so both would stay
        // alive between bursts. The next burst's first push allocates again.
        stream.batch = VecDeque::new();
        rx.poll_take(cx, &mut stream.batch)
    }

    /// Stops the writer for good and hands back the frames it held.
    pub(crate) fn stop(&self) -> VecDeque<Bytes> {
        let mut stream = self.stream.lock();
        stream.stopped = true;
        stream.front_written = 0;
        std::mem::take(&mut stream.batch)
    }

    pub(crate) fn held_frames(&self) -> usize {
        self.stream.lock().batch.len()
    }
}

impl<W: AsyncWrite + Unpin> WriterCore<W> {
    /// One write of the batch (topped up from the queue first); `Ready(Ok)` at once if a sender wrote it all.
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_io(|stream, shared| stream.poll_write(cx, shared).map_ok(|_| ()))
    }

    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_io(|stream, _| Pin::new(&mut stream.io).poll_flush(cx))
    }

    pub(crate) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_io(|stream, _| Pin::new(&mut stream.io).poll_shutdown(cx))
    }

    /// One poll of the stream by the writer task, recording whether the stream now holds its waker.
    fn poll_io(
        &self,
        op: impl FnOnce(&mut Stream<W>, &Shared<Bytes>) -> Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        let mut stream = self.stream.lock();
        let polled = op(&mut stream, &self.shared);
        stream.io_waiting = polled.is_pending();
        polled
    }
}

impl<W: AsyncWrite + Unpin + Send> DirectWrite for WriterCore<W> {
    fn write_queued(&self) -> bool {
        let shared = &*self.shared;
        // Never wait for the stream: a writer (or another sender) using it now is writing this queue already.
        let Some(mut stream) = self.stream.try_lock() else {
            return false;
        };
        if stream.io_waiting || stream.stopped || stream.failed.is_some() {
            return false;
        }
        let mut cx = Context::from_waker(&NOOP_WAKER);
        let mut wrote = false;
        for _ in 0..DIRECT_WRITES {
            if shared.is_aborted() {
                break;
            }
            match stream.poll_write(&mut cx, shared) {
                Poll::Ready(Ok(true)) => wrote = true,
                Poll::Ready(Ok(false)) => break,
                Poll::Ready(Err(err)) => {
                    stream.failed = Some(err);
                    break;
                }
                Poll::Pending => break,
            }
        }
        // Whatever is left (frames the stream did not take, an error, a flush) is the writer's, and it needs no
        // wake-up: it is not waiting on the stream, and it waits for frames only with the queue and this batch
        // empty, so the push of any frame taken here woke it, and it will find the rest here under this lock.
        wrote
    }
}

impl<W: AsyncWrite + Unpin> Stream<W> {
    /// Tops the batch up from the queue and writes once: `Ready(Ok(false))` if there was nothing to write.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        shared: &Shared<Bytes>,
    ) -> Poll<io::Result<bool>> {
        self.top_up(shared);
        if self.batch.is_empty() {
            return Poll::Ready(Ok(false));
        }
        let written = std::task::ready!(poll_write_batch(
            &mut self.io,
            cx,
            &self.batch,
            self.front_written,
            &mut self.staging,
        ))?;
        self.unflushed = true;
        self.advance(written, shared);
        Poll::Ready(Ok(true))
    }
}

impl<W> Stream<W> {
    /// Takes what arrived meanwhile without waiting, so one write carries it all; drops empty frames at the front.
    fn top_up(&mut self, shared: &Shared<Bytes>) {
        if self.batch.len() < MAX_IOVECS {
            shared.try_take(&mut self.batch);
        }
        // Empty frames are delivered by being taken: writing them would look like a zero-length write.
        let mut skipped = 0;
        while self.batch.front().is_some_and(Bytes::is_empty) {
            self.batch.pop_front();
            skipped += 1;
        }
        if skipped > 0 {
            shared.release(skipped, 0);
        }
    }

    /// Accounts `n` written bytes: frames completely written leave the batch and the queue's accounting.
    fn advance(&mut self, mut n: usize, shared: &Shared<Bytes>) {
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
