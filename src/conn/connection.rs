//! A connection's frame stream and write side, composed so that none of the ways a connection leaks is left to
//! the handler.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::AsyncRead;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::writer_task::WriterEnd;
use super::{ConnClose, ConnectionBuilder, ConnectionMetrics};
use crate::codec::FrameReader;
use crate::watermark::{FramedSender, Sender};

/// Fed frames are queued as soon as they reach this size, as `FramedSender::feed` does under a small hard cap (it
/// batches 16 KiB under larger ones): one batch in the queue never weighs much more than this plus one frame, and a
/// connection's buffer stays small.
pub(crate) const BATCH: usize = 8 * 1024;

/// The read half as the frame reader sees it; boxed so that the stream's type is not part of the connection's.
pub(crate) type ReadSide = Box<dyn AsyncRead + Send + Unpin>;

/// A server connection: the frames the peer sends ([`next`](Self::next)) and a write side
/// ([`feed`](Self::feed)), with the rules a well-behaved server keeps built in.
///
/// * **Writes are queued once per read burst.** [`feed`](Self::feed) only encodes into a buffer (it queues the
///   buffer early once it holds 8 KiB); [`next`](Self::next) queues what was fed when it is about to wait for the
///   socket, so the frames written while handling one burst of requests reach the writer as one batch and the
///   peer in one write (Netty's `channelReadComplete`). A handler that writes outside a `next` loop calls
///   [`flush`](Self::flush) or [`send`](Self::send).
/// * **Reading pauses while the peer does not read.** While the write queue is above its high mark, `next` does
///   not read from the socket; it resumes at the low mark (Netty's auto-read). A peer that sends requests but
///   does not read the answers therefore meets TCP back-pressure, and the queue never holds more than its hard
///   cap.
/// * **Both halves end together.** When the writer stops (the peer is evicted for keeping the queue unwritable
///   longer than `evict_after`, a write fails or stalls) `next` ends with the reason. When reading ends (the peer
///   closed, a bad frame, [`close`](Self::close), a [`Shutdown`](super::Shutdown), dropping the connection) the
///   writer delivers what is queued within the drain timeout, then shuts the socket's write side down. The
///   socket closes when both are done, and the [permit](ConnectionBuilder::permit) and every reservation go with
///   it.
/// * **Idle costs little.** Between bursts the connection holds no read buffer and no write buffer, and it runs
///   one task (its writer).
///
/// `next` returns `Err(`[`ConnClose`]`)` once, with the reason, and the same reason on every later call.
///
/// # Examples
///
/// A length-prefixed echo server:
///
/// ```no_run
/// use tidegate::codec::LengthFieldCodec;
/// use tidegate::conn::Connection;
/// use tokio::net::TcpListener;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = TcpListener::bind("127.0.0.1:7000").await?;
/// let codec = LengthFieldCodec::new(64 * 1024);
/// loop {
///     let (stream, _) = listener.accept().await?;
///     let mut conn = Connection::builder().build(stream, codec.clone(), codec.clone())?;
///     tokio::spawn(async move {
///         let reason = loop {
///             match conn.next().await {
///                 // Queued at the end of the burst. A failed feed means the connection ended: next() says why.
///                 Ok(frame) => drop(conn.feed(frame).await),
///                 Err(reason) => break reason,
///             }
///         };
///         println!("connection ended: {reason:?}");
///     });
/// }
/// # }
/// ```
pub struct Connection<D, E = D, M = Bytes> {
    frames: Option<FrameReader<ReadSide, D>>,
    framed: Option<FramedSender<M, E>>,
    tx: Sender<Bytes>,
    writer: Option<JoinHandle<WriterEnd>>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Boxed: set once, at the end, and a word instead of five in every connection's task.
    closed: Option<Box<ConnClose>>,
}

impl Connection<()> {
    /// A [`ConnectionBuilder`] with the defaults.
    pub fn builder() -> ConnectionBuilder {
        ConnectionBuilder::default()
    }
}

impl<D, E, M> Connection<D, E, M>
where
    D: Decoder,
    D::Error: Into<io::Error>,
    E: Encoder<M>,
{
    pub(crate) fn new(
        frames: FrameReader<ReadSide, D>,
        tx: Sender<Bytes>,
        encoder: E,
        writer: JoinHandle<WriterEnd>,
        shutdown: Option<CancellationToken>,
    ) -> Self {
        Connection {
            frames: Some(frames),
            framed: Some(FramedSender::new(tx.clone(), encoder)),
            tx,
            writer: Some(writer),
            shutdown: shutdown.map(|token| Box::pin(token.cancelled_owned())),
            closed: None,
        }
    }

    /// The next frame from the peer, or why the connection ended.
    ///
    /// Before it waits for the socket, it queues what [`feed`](Self::feed) buffered (the end of a read burst);
    /// while the write queue is unwritable it does not read.
    ///
    /// # Errors
    ///
    /// Why the connection ended; the same reason again on every later call.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a frame is only taken from the read buffer in the poll that returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::codec::LengthFieldCodec;
    /// use tidegate::conn::{ConnClose, Connection};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (server, mut peer) = tokio::io::duplex(1024);
    /// let codec = LengthFieldCodec::new(1024);
    /// let mut conn = Connection::builder().build(server, codec.clone(), codec).unwrap();
    ///
    /// peer.write_all(b"\0\0\0\x02hi\0\0\0\x03you").await.unwrap();
    /// peer.shutdown().await.unwrap(); // the peer is done sending
    /// let reason = loop {
    ///     match conn.next().await {
    ///         Ok(frame) => conn.feed(frame).await.unwrap(), // both answers go out in one write
    ///         Err(reason) => break reason,
    ///     }
    /// };
    /// assert!(matches!(reason, ConnClose::PeerClosed));
    /// let mut answers = Vec::new();
    /// peer.read_to_end(&mut answers).await.unwrap(); // delivered, then the socket was closed
    /// assert_eq!(answers, b"\0\0\0\x02hi\0\0\0\x03you");
    /// # }
    /// ```
    pub async fn next(&mut self) -> Result<D::Item, ConnClose> {
        poll_fn(|cx| self.poll_next_frame(cx)).await
    }

    /// The poll form of [`next`](Self::next).
    pub fn poll_next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<D::Item, ConnClose>> {
        if let Some(reason) = &self.closed {
            return Poll::Ready(Err(ConnClose::clone(reason)));
        }
        if let Some(reason) = self.poll_stopped(cx) {
            return Poll::Ready(Err(self.end(reason)));
        }
        if self.tx.is_closed() {
            // Closed by the writer (it stopped: its task ends in a moment, and wakes this one with the reason) or
            // through `sender().close()` (it drains, then ends). Either way reading is over.
            return Poll::Pending;
        }
        if !self.tx.is_writable() {
            // Auto-read off: the socket is not read, so a peer that does not read meets TCP back-pressure.
            ready!(self.tx.poll_writable(cx));
        }
        let Some(frames) = self.frames.as_mut() else {
            return Poll::Ready(Err(self.end(ConnClose::Closed)));
        };
        match Pin::new(frames).poll_next(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Ok(frame)),
            Poll::Ready(Some(Err(err))) => {
                Poll::Ready(Err(self.end(ConnClose::from_read(err.into()))))
            }
            Poll::Ready(None) => Poll::Ready(Err(self.end(ConnClose::PeerClosed))),
            Poll::Pending => {
                self.poll_queue_burst(cx);
                Poll::Pending
            }
        }
    }

    /// Encodes `msg` into the write buffer, which [`next`](Self::next) queues at the end of the read burst. Once
    /// the buffer holds 8 KiB or more it is queued at once, waiting while the queue is unwritable or has no room
    /// under the hard cap.
    ///
    /// # Errors
    ///
    /// The encoder's error, or a refusal of the queue (converted from an `io::Error` that holds the refused frames
    /// as a [`SendError`](crate::watermark::SendError)): the connection has ended (the next
    /// [`next`](Self::next) says why), or the memory budget could not grant the batch at once. Unlike
    /// [`FramedSender::flush`], the connection does not wait for budget: a handler blocked on the budget would stop
    /// reading and writing for every peer that shares it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: `msg` is buffered before any wait, so a cancelled call loses nothing; the end of the burst
    /// (or [`flush`](Self::flush)) queues it.
    pub async fn feed(&mut self, msg: M) -> Result<(), E::Error> {
        // Poll functions, not `FramedSender::feed`: the handler's task holds this future for as long as it waits,
        // and the async one would add ~300 bytes to every connection's task, idle or not. (`start_send` only
        // encodes; it needs no `poll_ready` first.)
        let framed = self.write_side()?;
        Pin::new(&mut *framed).start_send(msg)?;
        if framed.buffered_bytes() >= BATCH {
            poll_fn(|cx| Pin::new(&mut *framed).poll_flush(cx)).await?;
        }
        Ok(())
    }

    /// Queues what [`feed`](Self::feed) buffered, waiting while the queue is unwritable or has no room.
    ///
    /// # Errors
    ///
    /// As [`feed`](Self::feed).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the frames stay buffered until the queue takes them.
    pub async fn flush(&mut self) -> Result<(), E::Error> {
        let framed = self.write_side()?;
        poll_fn(|cx| Pin::new(&mut *framed).poll_flush(cx)).await
    }

    /// [`feed`](Self::feed), then [`flush`](Self::flush): for writes outside a `next` loop.
    ///
    /// # Errors
    ///
    /// As [`feed`](Self::feed).
    ///
    /// # Cancel safety
    ///
    /// As [`flush`](Self::flush); once `msg` is buffered, a cancelled call leaves it buffered.
    pub async fn send(&mut self, msg: M) -> Result<(), E::Error> {
        self.feed(msg).await?;
        self.flush().await
    }

    fn write_side(&mut self) -> Result<&mut FramedSender<M, E>, io::Error> {
        let reason = self.close_reason().unwrap_or(ConnClose::Closed);
        self.framed
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, reason))
    }

    /// Stops reading and closes the connection gracefully: what was fed is queued, the writer delivers the queue
    /// within the drain timeout and shuts the socket down. [`next`](Self::next) then returns
    /// [`ConnClose::Closed`]. No effect on a connection that has ended already.
    pub fn close(&mut self) {
        if self.closed.is_none() {
            self.end(ConnClose::Closed);
        }
    }

    /// Why the connection ended, once [`next`](Self::next) has seen it.
    pub fn close_reason(&self) -> Option<ConnClose> {
        self.closed.as_deref().cloned()
    }

    /// The write queue's sender: clone it to push pre-encoded frames from other tasks (a broadcast group), or to
    /// watch writability. Frames sent through it go after what was fed and queued before them.
    pub fn sender(&self) -> &Sender<Bytes> {
        &self.tx
    }

    /// The decoder, to change its limits live; `None` once the connection has ended.
    pub fn decoder_mut(&mut self) -> Option<&mut D> {
        self.frames.as_mut().map(FrameReader::decoder_mut)
    }

    /// A snapshot of the connection's buffers and write queue.
    pub fn metrics(&self) -> ConnectionMetrics {
        let frames = self.frames.as_ref();
        ConnectionMetrics {
            read_buffered_bytes: frames.map_or(0, FrameReader::buffered_bytes),
            read_allocated_bytes: frames.map_or(0, FrameReader::allocated_bytes),
            write_buffered_bytes: self.framed.as_ref().map_or(0, FramedSender::buffered_bytes),
            write: self.tx.metrics(),
        }
    }

    /// The end of a read burst: queue what the handler fed, as one batch. A refusal ends nothing here: a closed
    /// queue means the writer stopped, and its task gives the reason; the refused frames are counted in the
    /// queue's metrics.
    fn poll_queue_burst(&mut self, cx: &mut Context<'_>) {
        if let Some(framed) = self.framed.as_mut() {
            if framed.buffered_bytes() > 0 {
                let _refused = Pin::new(framed).poll_flush(cx);
            }
        }
    }
}

impl<D, E, M> Connection<D, E, M> {
    /// Whether the writer task has stopped or the shutdown was triggered, and why.
    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Option<ConnClose> {
        if let Some(writer) = self.writer.as_mut() {
            if let Poll::Ready(end) = Pin::new(writer).poll(cx) {
                self.writer = None;
                return Some(match end {
                    Ok(WriterEnd::Finished(report)) => ConnClose::from_writer(report.reason),
                    Ok(WriterEnd::Cut) | Err(_) => ConnClose::Aborted,
                });
            }
        }
        let shutdown = self.shutdown.as_mut()?;
        shutdown
            .as_mut()
            .poll(cx)
            .is_ready()
            .then_some(ConnClose::ShutDown)
    }

    /// Ends reading and lets the writer drain: queues what was fed (without waiting; what does not fit is counted
    /// as undelivered), closes the queue (which starts the writer task's drain deadline) and drops the read half.
    fn end(&mut self, reason: ConnClose) -> ConnClose {
        self.framed = None;
        self.tx.close();
        self.frames = None;
        self.shutdown = None;
        self.closed = Some(Box::new(reason.clone()));
        reason
    }
}

impl<D, E, M> Drop for Connection<D, E, M> {
    fn drop(&mut self) {
        if self.closed.is_none() {
            self.end(ConnClose::Closed);
        }
    }
}

impl<D, E, M> fmt::Debug for Connection<D, E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("frames", &self.frames)
            .field("framed", &self.framed)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
