//! Encoders that can write a frame's header alone, so a large payload is queued without a copy.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{BytesCodec, Encoder};

use crate::codec::LengthFieldCodec;

/// Payloads of at least this many bytes take a [`FramedSender`](super::FramedSender)'s zero-copy path when it
/// was made with [`FramedSender::zero_copy`](super::FramedSender::zero_copy): 4 KiB. Below it, copying the payload
/// into the sender's batch costs less than the extra queue item and write slice.
pub const DEFAULT_ZERO_COPY_THRESHOLD: usize = 4 * 1024;

/// An [`Encoder`] whose frames are a header followed by the message's bytes as they are, so the header can be
/// written alone and the payload sent from its own storage (a slice of the same vectored write).
///
/// Implemented for [`LengthFieldCodec`] and tokio-util's [`BytesCodec`]. tokio-util's `LengthDelimitedCodec`
/// keeps its layout private, so its header cannot be written without encoding (copying) the payload: use
/// [`LengthFieldCodec`] for zero-copy framing.
///
/// # Examples
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use tidegate::codec::LengthFieldCodec;
/// use tidegate::watermark::HeaderEncoder;
///
/// let mut codec = LengthFieldCodec::new(1 << 20);
/// let mut header = BytesMut::new();
/// let payload = codec.encode_header(Bytes::from_static(b"hello"), &mut header).unwrap();
/// assert_eq!((&header[..], &payload[..]), (&[0, 0, 0, 5][..], &b"hello"[..]));
/// ```
pub trait HeaderEncoder<M>: Encoder<M> {
    /// The length of `msg`'s payload, compared with the zero-copy threshold.
    fn payload_len(&self, msg: &M) -> usize;

    /// Writes into `dst` the header that [`encode`](Encoder::encode) writes before `msg`'s payload, and returns
    /// the payload, which must follow the header unchanged.
    ///
    /// # Errors
    ///
    /// `msg` itself, with nothing written, when the frame cannot be encoded (too long for the codec, say):
    /// [`encode`](Encoder::encode) is then called with it and reports the error.
    fn encode_header(&mut self, msg: M, dst: &mut BytesMut) -> Result<Bytes, M>;
}

impl HeaderEncoder<Bytes> for LengthFieldCodec {
    fn payload_len(&self, msg: &Bytes) -> usize {
        msg.len()
    }

    fn encode_header(&mut self, msg: Bytes, dst: &mut BytesMut) -> Result<Bytes, Bytes> {
        match LengthFieldCodec::encode_header(self, msg.len(), dst) {
            Ok(()) => Ok(msg),
            Err(_) => Err(msg),
        }
    }
}

impl HeaderEncoder<Bytes> for BytesCodec {
    fn payload_len(&self, msg: &Bytes) -> usize {
        msg.len()
    }

    fn encode_header(&mut self, msg: Bytes, _: &mut BytesMut) -> Result<Bytes, Bytes> {
        Ok(msg)
    }
}
