//! Encoding messages in front of a watermark queue.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_sink::Sink;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::{SendError, Sender};

/// Buffered frames are queued as one item once they reach this size: one queue operation (and later one slice of a
/// vectored write) carries many small frames, the way `FramedWrite` batches its writes. 8 KiB matches `FramedWrite`'s
/// backpressure boundary.
const BATCH: usize = 8 * 1024;
/// Room reserved when a batch starts: a batch closes at `BATCH` bytes, so this fits it plus a last frame of up to
/// 1 KiB without the buffer growing (and copying) frame by frame.
const BATCH_CAPACITY: usize = BATCH + 1024;

/// A [`Sender`] of frames with an [`Encoder`] in front, so producers send messages.
///
/// Messages are encoded into a buffer of this sender's own; [`feed`](Self::feed) queues the buffer as one item
/// when it reaches 8 KiB, [`flush`](Self::flush) queues whatever is buffered, and [`send`](Self::send) does both.
/// Buffered bytes are not yet counted by the queue (at most 8 KiB plus one frame per `FramedSender`).
///
/// Each clone has its own encoder and buffer (hence `&mut self`); clone one per producer task.
///
/// Nothing it accepted is lost silently. A batch that meets a full queue, also one that lost the room to a racing
/// producer, stays with this sender and is queued once there is room. A batch the queue refuses for good (closed,
/// heavier than the hard cap, or refused by the budget) comes back in the error: the `io::Error` (converted into
/// `E::Error` with `From`) wraps the [`SendError<Bytes>`] that holds the frames, see the example. Dropping a
/// `FramedSender` queues what it buffered if that fits without waiting; what does not is counted in
/// [`WatermarkMetrics::undelivered_items`](super::WatermarkMetrics::undelivered_items) (and as accepted).
///
/// # Examples
///
/// ```
/// use tidegate::watermark::{FramedSender, WatermarkWriter};
/// use tokio_util::codec::LengthDelimitedCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (tx, writer) = WatermarkWriter::new(tokio::io::sink());
/// let task = writer.spawn();
/// let mut framed = FramedSender::new(tx, LengthDelimitedCodec::new());
/// framed.feed(bytes::Bytes::from_static(b"hello")).await?;
/// framed.send(bytes::Bytes::from_static(b"world")).await?; // queues both frames
/// framed.sender().close();
/// assert_eq!(task.await.unwrap().metrics.sent_bytes, 2 * (4 + 5));
/// # Ok(())
/// # }
/// ```
///
/// A refused batch comes back inside the error:
///
/// ```
/// use bytes::Bytes;
/// use tidegate::watermark::{self, FramedSender, SendError};
/// use tokio_util::codec::BytesCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, _rx) = watermark::channel::<Bytes>(Default::default());
/// tx.close();
/// let mut framed = FramedSender::new(tx, BytesCodec::new());
/// let err = framed.send(Bytes::from_static(b"late")).await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
/// let refused = err.into_inner().unwrap().downcast::<SendError<Bytes>>().unwrap();
/// assert_eq!(&refused.into_inner()[..], b"late");
/// # }
/// ```
pub struct FramedSender<M, E> {
    tx: Sender<Bytes>,
    encoder: E,
    buffer: BytesMut,
    /// A batch split off the buffer that the queue has not taken yet; it goes before anything in the buffer.
    /// Keeping it here, not in a future, is what makes waiting for room cancel-safe and a lost race lossless.
    pending: Option<Bytes>,
    _messages: PhantomData<fn(M)>,
}

impl<M, E: Encoder<M>> FramedSender<M, E> {
    /// Puts `encoder` in front of `tx`.
    pub fn new(tx: Sender<Bytes>, encoder: E) -> Self {
        FramedSender {
            tx,
            encoder,
            buffer: BytesMut::new(),
            pending: None,
            _messages: PhantomData,
        }
    }

    /// The underlying sender: writability, close, metrics, sending pre-encoded frames.
    pub fn sender(&self) -> &Sender<Bytes> {
        &self.tx
    }

    /// The encoder.
    pub fn encoder_mut(&mut self) -> &mut E {
        &mut self.encoder
    }

    /// Bytes encoded but not yet queued.
    pub fn buffered_bytes(&self) -> usize {
        self.pending.as_ref().map_or(0, Bytes::len) + self.buffer.len()
    }

    /// Encodes `msg` into the buffer, and queues the buffer once it holds 8 KiB or more.
    ///
    /// # Errors
    ///
    /// The encoder's error, or a refusal of the queue with the refused frames inside (see the type's
    /// documentation).
    ///
    /// # Cancel safety
    ///
    /// As [`flush`](Self::flush): `msg` is buffered before any wait, so a cancelled call loses nothing.
    pub async fn feed(&mut self, msg: M) -> Result<(), E::Error> {
        self.encode(msg)?;
        if self.buffer.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues the buffered frames, waiting while the queue is unwritable or has no room for them under the hard
    /// cap, and while the budget cannot grant their bytes.
    ///
    /// # Errors
    ///
    /// A refusal of the queue, converted into the encoder's error type, with the refused frames inside; frames
    /// encoded after them stay buffered.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the frames stay with this sender until the queue takes them, so a cancelled flush loses
    /// nothing; the next flush (or drop) queues them.
    pub async fn flush(&mut self) -> Result<(), E::Error> {
        while self.take_batch() {
            self.tx
                .send_from(&mut self.pending)
                .await
                .map_err(refusal)?;
        }
        Ok(())
    }

    /// Encodes `msg` and queues it with everything buffered before it: [`feed`](Self::feed) then
    /// [`flush`](Self::flush).
    ///
    /// # Errors
    ///
    /// As [`feed`](Self::feed) and [`flush`](Self::flush).
    ///
    /// # Cancel safety
    ///
    /// As [`flush`](Self::flush).
    pub async fn send(&mut self, msg: M) -> Result<(), E::Error> {
        self.encode(msg)?;
        self.flush().await
    }
}

/// The `Sink` counterpart of [`feed`](FramedSender::feed) and [`flush`](FramedSender::flush): `poll_ready` queues
/// a full buffer (waiting while the queue is unwritable or has no room for it), `start_send` encodes, `poll_flush`
/// and `poll_close` queue what is buffered. `start_send` only buffers, so it never fails for lack of room. Unlike
/// [`flush`](FramedSender::flush), the sink does not wait for the budget: a batch the budget cannot grant now is
/// refused (and handed back in the error). Closing the sink does not close the queue; call [`Sender::close`] for
/// that.
impl<M, E: Encoder<M>> Sink<M> for FramedSender<M, E> {
    type Error = E::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.pending.is_none() && this.buffer.len() < BATCH {
            return Poll::Ready(Ok(()));
        }
        this.poll_queue_buffer(cx)
    }

    fn start_send(self: Pin<&mut Self>, msg: M) -> Result<(), Self::Error> {
        self.get_mut().encode(msg)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_queue_buffer(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}

impl<M, E: Encoder<M>> FramedSender<M, E> {
    fn encode(&mut self, msg: M) -> Result<(), E::Error> {
        if self.buffer.is_empty() {
            self.buffer.reserve(BATCH_CAPACITY);
        }
        self.encoder.encode(msg, &mut self.buffer)
    }

    fn poll_queue_buffer(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E::Error>> {
        while self.take_batch() {
            ready!(self.tx.poll_send_from(cx, &mut self.pending)).map_err(refusal)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<M, E> FramedSender<M, E> {
    /// Makes sure the next batch to queue is in `pending`; `false` if nothing is buffered.
    fn take_batch(&mut self) -> bool {
        if self.pending.is_none() && !self.buffer.is_empty() {
            self.pending = Some(self.buffer.split().freeze());
        }
        self.pending.is_some()
    }
}

// Nothing is pinned structurally: the encoder is only used through `&mut`.
impl<M, E> Unpin for FramedSender<M, E> {}

impl<M, E> Drop for FramedSender<M, E> {
    fn drop(&mut self) {
        // Best effort without waiting: what the queue refuses has no caller left to hand it back to, so it is
        // counted as accepted and undelivered instead of vanishing. After one refusal the rest is lost too, so the
        // peer never gets later frames without the earlier ones.
        let mut refused = false;
        while self.take_batch() {
            let Some(frames) = self.pending.take() else {
                break;
            };
            if refused {
                self.tx.lose(frames);
            } else if let Err(err) = self.tx.push_uncounted(frames) {
                refused = true;
                self.tx.lose(err.into_inner());
            }
        }
    }
}

/// Keeps the `SendError` (and so the refused frames) as the `io::Error`'s inner error.
fn refusal<Err: From<io::Error>>(err: SendError<Bytes>) -> Err {
    Err::from(io::Error::new(err.io_kind(), err))
}

impl<M, E: Clone> Clone for FramedSender<M, E> {
    fn clone(&self) -> Self {
        FramedSender {
            tx: self.tx.clone(),
            encoder: self.encoder.clone(),
            buffer: BytesMut::new(),
            pending: None,
            _messages: PhantomData,
        }
    }
}

impl<M, E> fmt::Debug for FramedSender<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedSender")
            .field("tx", &self.tx)
            .field("pending_batch", &self.pending.as_ref().map(Bytes::len))
            .field("buffered_bytes", &self.buffer.len())
            .finish_non_exhaustive()
    }
}
