//! Encoding messages in front of a watermark queue.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_sink::Sink;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::bundle::Bundle;
use super::{HeaderEncoder, SendError, Sender, DEFAULT_ZERO_COPY_THRESHOLD};

/// Buffered frames are queued as one item once they reach this size: one queue operation (and later one slice of a
/// vectored write) carries many small frames, the way `FramedWrite` batches its writes. Twice `FramedWrite`'s 8 KiB
/// backpressure boundary: each batch pays for a push, a take and an allocation, which 16 KiB spreads over twice the
/// frames, and a batch still fits in L1.
const BATCH: usize = 16 * 1024;
/// The batch size of a queue whose hard cap has no room for a full [`BATCH`] and a last frame (the size batches had
/// before they grew to 16 KiB, so such queues behave as they did).
const SMALL_BATCH: usize = 8 * 1024;
/// Room reserved beyond the batch size when a batch starts, for a last frame of up to 1 KiB without the buffer
/// growing (and copying) frame by frame.
const BATCH_SLACK: usize = 1024;
/// Room kept free for one zero-copy frame's header (a length field with its offset).
const HEADER_ROOM: usize = 64;
/// Zero-copy frames are queued together (one queue operation, one wake-up of the writer) until they weigh this
/// much, or the queue's high mark if lower: their payloads are not copied, so this bounds only how long they wait
/// for a flush, not memory.
const ZERO_COPY_BATCH: usize = 64 * 1024;
/// The most frames a bundle's item list is sized for up front (bundles of smaller frames grow it as they fill).
const MAX_PRESIZED_FRAMES: usize = 128;

/// A [`Sender`] of frames with an [`Encoder`] in front, so producers send messages.
///
/// Messages are encoded into a buffer of this sender's own; [`feed`](Self::feed) queues the buffer as one item
/// when it reaches 16 KiB (8 KiB if the queue's hard cap is below 17 KiB), [`flush`](Self::flush) queues whatever is
/// buffered, and [`send`](Self::send) does both. Buffered bytes are not yet counted by the queue (at most 16 KiB plus
/// one frame per `FramedSender`).
///
/// Each clone has its own encoder and buffer (hence `&mut self`); clone one per producer task.
///
/// Made with [`zero_copy`](Self::zero_copy) (for a [`HeaderEncoder`] such as
/// [`LengthFieldCodec`](crate::codec::LengthFieldCodec)), it does not copy payloads of
/// [`DEFAULT_ZERO_COPY_THRESHOLD`] bytes or more: it writes only their header into the buffer and queues the payload
/// `Bytes` right after the buffered bytes, in the same step (so no other producer's frame lands between a header
/// and its payload); the writer sends both as slices of one vectored write.
///
/// Nothing it accepted is lost silently. A batch that meets a full queue, also one that lost the room to a racing
/// producer, stays with this sender and is queued once there is room. A batch the queue refuses for good (closed,
/// heavier than the hard cap, or refused by the budget) comes back in the error: the `io::Error` (converted into
/// `E::Error` with `From`) wraps the [`SendError<Bytes>`] that holds the frames (a zero-copy payload joined to
/// its header in one `Bytes`), see the example. Dropping a
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
    /// The size at which the copied batch in `buffer` is queued, decided when the batch starts.
    batch: usize,
    /// A batch split off the buffer that the queue has not taken yet; it goes before anything in the buffer.
    /// Keeping it here, not in a future, is what makes waiting for room cancel-safe and a lost race lossless.
    pending: Option<Bundle<Bytes>>,
    /// Zero-copy frames (buffered bytes, then a payload) split off after `pending`, before the buffer, in order.
    later: VecDeque<Bundle<Bytes>>,
    /// The weight of `later`'s last bundle, the one new zero-copy frames join until it is full.
    open_weight: usize,
    /// The weight at which that bundle is full, read from the live limits once when it opened rather than per frame.
    open_limit: usize,
    zero_copy: Option<ZeroCopy<M, E>>,
    _messages: PhantomData<fn(M)>,
}

/// The zero-copy path of a [`HeaderEncoder`], kept as plain functions so the sender needs no bound for it.
struct ZeroCopy<M, E> {
    threshold: usize,
    payload_len: fn(&E, &M) -> usize,
    encode_header: fn(&mut E, M, &mut BytesMut) -> Result<Bytes, M>,
}

impl<M, E> Clone for ZeroCopy<M, E> {
    fn clone(&self) -> Self {
        ZeroCopy {
            threshold: self.threshold,
            payload_len: self.payload_len,
            encode_header: self.encode_header,
        }
    }
}

impl<M, E: Encoder<M>> FramedSender<M, E> {
    /// Puts `encoder` in front of `tx`.
    pub fn new(tx: Sender<Bytes>, encoder: E) -> Self {
        FramedSender {
            tx,
            encoder,
            buffer: BytesMut::new(),
            batch: SMALL_BATCH,
            pending: None,
            later: VecDeque::new(),
            open_weight: 0,
            open_limit: 0,
            zero_copy: None,
            _messages: PhantomData,
        }
    }

    /// Puts `encoder` in front of `tx`, sending payloads of [`DEFAULT_ZERO_COPY_THRESHOLD`] bytes or more from
    /// their own storage instead of copying them (see the type's documentation).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tidegate::codec::LengthFieldCodec;
    /// use tidegate::watermark::{FramedSender, WatermarkWriter};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tidegate::codec::CodecError> {
    /// let (tx, writer) = WatermarkWriter::new(tokio::io::sink());
    /// let task = writer.spawn();
    /// let mut framed = FramedSender::zero_copy(tx, LengthFieldCodec::new(1 << 20));
    /// framed.send(Bytes::from(vec![7u8; 8192])).await?; // the 8 KiB are not copied
    /// framed.sender().close();
    /// assert_eq!(task.await.unwrap().metrics.sent_bytes, 4 + 8192);
    /// # Ok(())
    /// # }
    /// ```
    pub fn zero_copy(tx: Sender<Bytes>, encoder: E) -> Self
    where
        E: HeaderEncoder<M>,
    {
        let mut framed = Self::new(tx, encoder);
        framed.zero_copy = Some(ZeroCopy {
            threshold: DEFAULT_ZERO_COPY_THRESHOLD,
            payload_len: E::payload_len,
            encode_header: E::encode_header,
        });
        framed
    }

    /// Changes the payload size from which a sender made with [`zero_copy`](Self::zero_copy) stops copying.
    /// Default: [`DEFAULT_ZERO_COPY_THRESHOLD`]. No effect on a sender made with [`new`](Self::new).
    pub fn set_zero_copy_threshold(&mut self, threshold: usize) -> &mut Self {
        if let Some(zero_copy) = &mut self.zero_copy {
            zero_copy.threshold = threshold;
        }
        self
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
        self.buffered()
    }

    /// Encodes `msg` into the buffer, and queues the buffer once it holds a batch (16 KiB, or 8 KiB under a hard cap
    /// below 17 KiB) or more, or a zero-copy payload waits after it.
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
        if self.is_full() {
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
        if this.pending.is_none() && !this.is_full() {
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
    #[inline]
    fn encode(&mut self, msg: M) -> Result<(), E::Error> {
        if self.zero_copy.is_some() {
            return self.encode_zero_copy(msg);
        }
        self.encode_copied(msg)
    }

    #[inline]
    fn encode_copied(&mut self, msg: M) -> Result<(), E::Error> {
        if self.buffer.is_empty() {
            // Decided once per batch, from the marks in force when it starts.
            self.batch = match self.tx.limits().hard() >= BATCH + BATCH_SLACK {
                true => BATCH,
                false => SMALL_BATCH,
            };
            self.buffer.reserve(self.batch + BATCH_SLACK);
        }
        self.encoder.encode(msg, &mut self.buffer)
    }

    fn encode_zero_copy(&mut self, msg: M) -> Result<(), E::Error> {
        match self.try_zero_copy(msg) {
            None => Ok(()),
            Some(msg) => self.encode_copied(msg),
        }
    }

    /// Writes `msg`'s header and splits the payload off if it is large enough; gives `msg` back otherwise.
    fn try_zero_copy(&mut self, msg: M) -> Option<M> {
        let zc = self.zero_copy.as_ref()?;
        if (zc.payload_len)(&self.encoder, &msg) < zc.threshold {
            return Some(msg);
        }
        // Headers share one block: a fresh one only when it runs out, not one allocation per frame.
        if self.buffer.capacity() - self.buffer.len() < HEADER_ROOM {
            self.buffer.reserve(SMALL_BATCH + BATCH_SLACK);
        }
        match (zc.encode_header)(&mut self.encoder, msg, &mut self.buffer) {
            Ok(payload) => {
                self.split_off(payload);
                None
            }
            Err(msg) => Some(msg),
        }
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
        if self.pending.is_none() {
            self.pending = self.later.pop_front();
            if self.later.is_empty() {
                self.open_weight = 0;
            }
        }
        if self.pending.is_none() && !self.buffer.is_empty() {
            self.pending = Some(Bundle::one(self.buffer.split().freeze()));
        }
        if self.pending.is_none() && self.buffer.capacity() > 0 {
            // All queued: the buffer's spare tail would keep the whole batch allocation alive after the writer
            // sent it, so an idle sender lets it go; the next batch allocates anew.
            self.buffer = BytesMut::new();
        }
        self.pending.is_some()
    }

    fn buffered(&self) -> usize {
        let weight = |bundle: &Bundle<Bytes>| bundle.weight_with(Bytes::len);
        self.pending.as_ref().map_or(0, weight)
            + self.later.iter().map(weight).sum::<usize>()
            + self.buffer.len()
    }

    /// Whether `feed` queues what is buffered: a batch of copied frames, or a full bundle of zero-copy frames.
    fn is_full(&self) -> bool {
        self.buffer.len() >= self.batch || (!self.later.is_empty() && self.bundle_is_full())
    }

    fn bundle_is_full(&self) -> bool {
        self.later.len() > 1 || self.open_weight >= self.open_limit
    }

    /// Queues the buffer (ending with `payload`'s header) and then `payload`, together, after what is pending.
    fn split_off(&mut self, payload: Bytes) {
        let header = (!self.buffer.is_empty()).then(|| self.buffer.split().freeze());
        let weight = header.as_ref().map_or(0, Bytes::len) + payload.len();
        if let Some(open) = self.later.back_mut() {
            if self.open_weight < self.open_limit {
                self.open_weight += weight;
                open.tail.extend(header);
                open.tail.push(payload);
                return;
            }
        }
        let limit = ZERO_COPY_BATCH.min(self.tx.limits().high());
        // Room for the header and payload of as many frames of this size as the bundle takes, so the tail does not
        // grow (and move every item) several times per bundle.
        let frames = (limit / weight.max(1)).clamp(1, MAX_PRESIZED_FRAMES);
        let mut tail = Vec::with_capacity(2 * frames);
        let head = match header {
            Some(header) => {
                tail.push(payload);
                header
            }
            // An encoder without a header: the payload opens the bundle.
            None => payload,
        };
        self.open_weight = weight;
        self.open_limit = limit;
        self.later.push_back(Bundle { head, tail });
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

/// Keeps the `SendError` (and so the refused frames) as the `io::Error`'s inner error. A zero-copy payload is
/// joined to its header here: a copy only on the refusal path, so the error holds one `Bytes` as for any batch.
fn refusal<Err: From<io::Error>>(err: SendError<Bundle<Bytes>>) -> Err {
    let err = err.map_item(|bundle| {
        if bundle.tail.is_empty() {
            return bundle.head;
        }
        let mut joined = BytesMut::with_capacity(bundle.weight_with(Bytes::len));
        bundle
            .into_iter()
            .for_each(|part| joined.extend_from_slice(&part));
        joined.freeze()
    });
    Err::from(io::Error::new(err.io_kind(), err))
}

impl<M, E: Clone> Clone for FramedSender<M, E> {
    fn clone(&self) -> Self {
        FramedSender {
            tx: self.tx.clone(),
            encoder: self.encoder.clone(),
            buffer: BytesMut::new(),
            batch: SMALL_BATCH,
            pending: None,
            later: VecDeque::new(),
            open_weight: 0,
            open_limit: 0,
            zero_copy: self.zero_copy.clone(),
            _messages: PhantomData,
        }
    }
}

impl<M, E> fmt::Debug for FramedSender<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedSender")
            .field("tx", &self.tx)
            .field("buffered_bytes", &self.buffered())
            .field(
                "zero_copy_threshold",
                &self.zero_copy.as_ref().map(|zc| zc.threshold),
            )
            .finish_non_exhaustive()
    }
}
