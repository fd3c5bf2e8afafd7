//! Encoding messages in front of a watermark queue.

use std::fmt;
use std::io;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::{SendError, Sender};

/// Frames are encoded into chunks of this size and split off without a copy, so small messages cost no
/// allocation of their own: one chunk serves many frames.
const CHUNK: usize = 8 * 1024;

/// A [`Sender`] of frames with an [`Encoder`] in front, so producers send messages.
///
/// Each clone of a `FramedSender` has its own encoder and scratch buffer (hence `&mut self`); clone one per
/// producer task. Frames are split off one shared 8 KiB chunk, so a small message costs no allocation; a chunk's
/// memory is freed when the last of its frames has been written.
///
/// [`send`](Self::send) and [`try_send`](Self::try_send) fold a refusal into the encoder's error type (and drop the
/// frame). To keep the refused frame, [`encode`](Self::encode) and send it through [`sender`](Self::sender).
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
/// framed.send(bytes::Bytes::from_static(b"hello")).await?;
/// framed.sender().close();
/// assert_eq!(task.await.unwrap().metrics.sent_bytes, 4 + 5);
/// # Ok(())
/// # }
/// ```
pub struct FramedSender<E> {
    tx: Sender<Bytes>,
    encoder: E,
    scratch: BytesMut,
}

impl<E> FramedSender<E> {
    /// Puts `encoder` in front of `tx`.
    pub fn new(tx: Sender<Bytes>, encoder: E) -> Self {
        FramedSender {
            tx,
            encoder,
            scratch: BytesMut::new(),
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

    /// Encodes `msg` into a frame without queueing it.
    ///
    /// # Errors
    ///
    /// The encoder's error.
    pub fn encode<M>(&mut self, msg: M) -> Result<Bytes, E::Error>
    where
        E: Encoder<M>,
    {
        if self.scratch.capacity() < CHUNK / 8 {
            // Too little left for a typical frame: start a new chunk rather than growing frame by frame.
            self.scratch.reserve(CHUNK);
        }
        self.encoder.encode(msg, &mut self.scratch)?;
        Ok(self.scratch.split().freeze())
    }

    /// Encodes `msg` and queues the frame now; see [`Sender::try_send`].
    ///
    /// # Errors
    ///
    /// The encoder's error, or the refusal converted with `From<SendError<Bytes>> for io::Error` (the frame is
    /// dropped).
    pub fn try_send<M>(&mut self, msg: M) -> Result<(), E::Error>
    where
        E: Encoder<M>,
    {
        let frame = self.encode(msg)?;
        self.tx.try_send(frame).map_err(refusal)
    }

    /// Encodes `msg` and queues the frame, waiting while the queue is unwritable; see [`Sender::send`].
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send), except that a full queue is waited out.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe in the sense of [`Sender::send`]: a dropped future queued nothing.
    pub async fn send<M>(&mut self, msg: M) -> Result<(), E::Error>
    where
        E: Encoder<M>,
    {
        let frame = self.encode(msg)?;
        self.tx.send(frame).await.map_err(refusal)
    }
}

fn refusal<Err: From<io::Error>>(err: SendError<Bytes>) -> Err {
    Err::from(io::Error::from(err))
}

impl<E: Clone> Clone for FramedSender<E> {
    fn clone(&self) -> Self {
        FramedSender::new(self.tx.clone(), self.encoder.clone())
    }
}

impl<E> fmt::Debug for FramedSender<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedSender")
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}
