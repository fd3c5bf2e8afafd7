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
/// Buffered bytes are not yet counted by the queue (at most 8 KiB plus one frame per `FramedSender`). Dropping a
/// `FramedSender` queues what it buffered if that fits without waiting.
///
/// Each clone has its own encoder and buffer (hence `&mut self`); clone one per producer task.
///
/// Refusals reach the caller through the encoder's error type (`E::Error: From<io::Error>`, converted with
/// `From<SendError<Bytes>> for io::Error`) and the refused frames are dropped. To get a refused frame back, encode
/// it yourself and use [`Sender::try_send`] on [`sender`](Self::sender).
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
pub struct FramedSender<M, E> {
    tx: Sender<Bytes>,
    encoder: E,
    buffer: BytesMut,
    _messages: PhantomData<fn(M)>,
}

impl<M, E: Encoder<M>> FramedSender<M, E> {
    /// Puts `encoder` in front of `tx`.
    pub fn new(tx: Sender<Bytes>, encoder: E) -> Self {
        FramedSender {
            tx,
            encoder,
            buffer: BytesMut::new(),
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
        self.buffer.len()
    }

    /// Encodes `msg` into the buffer, and queues the buffer once it holds 8 KiB or more.
    ///
    /// # Errors
    ///
    /// The encoder's error, or a refusal of the queue (see the type's documentation).
    ///
    /// # Cancel safety
    ///
    /// If cancelled while queueing a full buffer, the buffered frames (including `msg`) are dropped.
    pub async fn feed(&mut self, msg: M) -> Result<(), E::Error> {
        self.encode(msg)?;
        if self.buffer.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues the buffered frames as one item, waiting while the queue is unwritable.
    ///
    /// # Errors
    ///
    /// A refusal of the queue, converted into the encoder's error type.
    ///
    /// # Cancel safety
    ///
    /// If cancelled while waiting, the buffered frames are dropped.
    pub async fn flush(&mut self) -> Result<(), E::Error> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let frames = self.buffer.split().freeze();
        self.tx.send(frames).await.map_err(refusal)
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
/// a full buffer (waiting while the queue is unwritable), `start_send` encodes, `poll_flush` and `poll_close` queue
/// what is buffered. Closing the sink does not close the queue; call [`Sender::close`] for that.
impl<M, E: Encoder<M>> Sink<M> for FramedSender<M, E> {
    type Error = E::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.buffer.len() < BATCH {
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
        if self.buffer.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.tx).poll_ready(cx)).map_err(refusal)?;
        let frames = self.buffer.split().freeze();
        Poll::Ready(Pin::new(&mut self.tx).start_send(frames).map_err(refusal))
    }
}

// Nothing is pinned structurally: the encoder is only used through `&mut`.
impl<M, E> Unpin for FramedSender<M, E> {}

impl<M, E> Drop for FramedSender<M, E> {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            // Best effort: a refusal here has no one to report to, and the queue counts nothing it did not accept.
            let _ = self.tx.try_send(self.buffer.split().freeze());
        }
    }
}

fn refusal<Err: From<io::Error>>(err: SendError<Bytes>) -> Err {
    Err::from(io::Error::from(err))
}

impl<M, E: Clone> Clone for FramedSender<M, E> {
    fn clone(&self) -> Self {
        FramedSender {
            tx: self.tx.clone(),
            encoder: self.encoder.clone(),
            buffer: BytesMut::new(),
            _messages: PhantomData,
        }
    }
}

impl<M, E> fmt::Debug for FramedSender<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedSender")
            .field("tx", &self.tx)
            .field("buffered_bytes", &self.buffer.len())
            .finish_non_exhaustive()
    }
}
