//! A decoder and encoder for frames that start with a length field.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::length_layout::Layout;
use super::skip_hook::SkipHook;
use super::split::Splitter;
use super::stats::Attachment;
use super::{CodecError, CodecMetrics, CodecStats, LengthFieldCodecBuilder, OversizePolicy};

/// Frames that start with a length field, capped by a required maximum.
///
/// Unlike tokio-util's `LengthDelimitedCodec`, it never reserves memory for the length a header claims: the read
/// buffer grows only with bytes that arrived. The maximum applies to the whole frame as buffered (header included,
/// after the adjustment). Under [`OversizePolicy::Skip`] an oversize frame is consumed and dropped as it arrives and
/// the next frame decodes normally. A header that gives a frame shorter than itself is a fatal
/// [`CodecError::FrameShorterThanHeader`], and one that gives a frame longer than this machine can address a fatal
/// [`CodecError::FrameLengthOverflow`], under either policy: no frame can be framed or skipped past there.
///
/// The decision on a frame is made once, when its header arrives: changing the maximum or the policy later applies
/// to the frames whose header has not been read yet.
///
/// As an encoder it writes a header (zeros before the field, then the field) and the item; decoding that output
/// gives the item back when `strip` is the header length (the default). It refuses, without writing anything, an
/// item that would make a frame longer than the maximum or whose length the field cannot hold.
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tidegate::codec::LengthFieldCodec;
/// use tokio_util::codec::FramedRead;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tidegate::codec::CodecError> {
/// let codec = LengthFieldCodec::builder().max_frame_length(64 * 1024).build()?;
/// let wire: &[u8] = b"\x00\x00\x00\x05hello\x00\x00\x00\x00";
/// let mut frames = FramedRead::new(wire, codec);
/// assert_eq!(frames.next().await.unwrap()?, "hello");
/// assert_eq!(frames.next().await.unwrap()?, ""); // zero-length frames are frames
/// assert!(frames.next().await.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LengthFieldCodec {
    layout: Layout,
    policy: OversizePolicy,
    state: State,
    splitter: Splitter,
    metrics: CodecMetrics,
    on_skip: SkipHook,
    stats: Option<Box<Attachment>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// A header was read and accepted: the frame is this long, header included. Kept so that a maximum lowered
    /// while the frame arrives does not undo the decision.
    Body(usize),
    /// Skipping an oversize frame: this many bytes of it have not arrived yet.
    Discarding(u64),
    Failed,
}

impl LengthFieldCodec {
    /// A builder; `max_frame_length` must be set before [`build`](LengthFieldCodecBuilder::build).
    pub fn builder() -> LengthFieldCodecBuilder {
        LengthFieldCodecBuilder::new()
    }

    /// A 4-byte big-endian length prefix counting the payload only, stripped from frames: the wire format of
    /// tokio-util's `LengthDelimitedCodec`.
    ///
    /// # Panics
    ///
    /// If `max_frame_length` is smaller than the 4-byte header.
    ///
    /// # Examples
    ///
    /// ```
    /// let codec = tidegate::codec::LengthFieldCodec::new(1 << 20);
    /// assert_eq!(codec.max_frame_length(), 1 << 20);
    /// ```
    pub fn new(max_frame_length: usize) -> Self {
        match Self::builder().max_frame_length(max_frame_length).build() {
            Ok(codec) => codec,
            Err(err) => panic!("LengthFieldCodec::new: {err}"),
        }
    }

    pub(crate) fn from_layout(layout: Layout, policy: OversizePolicy, on_skip: SkipHook) -> Self {
        LengthFieldCodec {
            layout,
            policy,
            state: State::Head,
            splitter: Splitter::default(),
            metrics: CodecMetrics::default(),
            on_skip,
            stats: None,
        }
    }

    /// The longest frame accepted, header included.
    pub fn max_frame_length(&self) -> usize {
        self.layout.max
    }

    /// Changes the maximum for the frames whose header has not been read yet.
    ///
    /// # Errors
    ///
    /// The same configuration errors as [`LengthFieldCodecBuilder::build`]; the old maximum stays then.
    pub fn set_max_frame_length(&mut self, max: usize) -> Result<(), CodecError> {
        self.layout = self.layout.with_max(max)?;
        Ok(())
    }

    /// The oversize policy.
    pub fn oversize_policy(&self) -> OversizePolicy {
        self.policy
    }

    /// Changes the oversize policy for the frames whose header has not been read yet.
    pub fn set_oversize_policy(&mut self, policy: OversizePolicy) {
        self.policy = policy;
    }

    /// Whether a fatal error happened; every later `decode` fails.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> CodecMetrics {
        self.metrics
    }

    /// Attaches shared counters (and their live maximum, from the next `decode` call), replacing any attached
    /// before, or detaches with `None`. Counts from before attaching are not added to them.
    ///
    /// # Examples
    ///
    /// See [`CodecStats`].
    pub fn set_stats(&mut self, stats: Option<&CodecStats>) {
        let range = self.layout.max_range();
        self.stats = stats.map(|s| s.attach(self.metrics, range));
    }

    /// The shared counters this decoder adds to, if attached.
    pub fn stats(&self) -> Option<&CodecStats> {
        self.stats.as_deref().map(Attachment::stats)
    }

    /// `decode` for a decoder with shared counters: take a new live maximum first, add the counts after.
    #[cold]
    #[inline(never)]
    fn decode_attached(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if let Some(max) = self.stats.as_mut().and_then(|a| a.new_max()) {
            // The stats accept only maxima every layout attached so far can take; one that a layout attached
            // later cannot take leaves this codec at its own maximum.
            let _ = self.set_max_frame_length(max);
        }
        let result = self.decode_frames(src);
        if let Some(attached) = &mut self.stats {
            attached.sync(&self.metrics);
        }
        result
    }

    /// Drops what is left of an oversize frame; returns whether all of it is gone.
    fn discard(&mut self, src: &mut BytesMut, remaining: u64) -> bool {
        let n = remaining.min(src.len() as u64);
        src.advance(n as usize);
        self.metrics.discarded_bytes += n;
        if n == remaining {
            self.state = State::Head;
            true
        } else {
            self.state = State::Discarding(remaining - n);
            false
        }
    }

    /// Decides on a frame whose header [`Layout::accepted_len`] did not accept: `Some(len)` to read it (not reached,
    /// kept so the checks stand on their own), `None` when it is being skipped, else the error that names the
    /// problem.
    #[cold]
    #[inline(never)]
    fn refuse(&mut self, value: u64) -> Result<Option<usize>, CodecError> {
        let layout = &self.layout;
        let len = layout.frame_len(value);
        if len < layout.header_len as i128 {
            let err = CodecError::FrameShorterThanHeader {
                value,
                adjustment: layout.adjustment,
                frame_len: len,
                header_len: layout.header_len,
            };
            return Err(self.fatal(err));
        }
        if len <= layout.max as i128 {
            // At most `max`, so it fits a usize.
            return Ok(Some(len as usize));
        }
        // No frame can be that long, so skipping it would swallow the rest of the stream.
        let Ok(len) = usize::try_from(len) else {
            let err = CodecError::FrameLengthOverflow {
                value,
                adjustment: layout.adjustment,
                frame_len: len,
            };
            return Err(self.fatal(err));
        };
        self.metrics.too_long += 1;
        let (len, max) = (len as u64, layout.max);
        crate::trace::debug!(
            "frame refused: too long", len = len, max = max, policy = ?self.policy
        );
        match self.policy {
            OversizePolicy::Fail => {
                self.state = State::Failed;
                Err(CodecError::FrameTooLong { len, max })
            }
            OversizePolicy::Skip => {
                self.on_skip.skipped(len, max);
                self.state = State::Discarding(len);
                Ok(None)
            }
        }
    }

    /// A malformed header: counted, and the codec stays failed.
    fn fatal(&mut self, err: CodecError) -> CodecError {
        self.metrics.malformed += 1;
        crate::trace::debug!("frame refused: malformed length header", error = %err);
        self.state = State::Failed;
        err
    }
}

impl Decoder for LengthFieldCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if self.stats.is_some() {
            return self.decode_attached(src);
        }
        self.decode_frames(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::UnexpectedEof {
                buffered: src.len(),
            }),
        }
    }
}

impl LengthFieldCodec {
    /// Inlined into `decode` so that a decoder without shared counters pays one branch for them, not a call.
    #[inline(always)]
    fn decode_frames(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        loop {
            let len = match self.state {
                State::Head => {
                    let Some(value) = self.layout.read(src) else {
                        return Ok(None);
                    };
                    match self.layout.accepted_len(value) {
                        Some(len) => len,
                        None => match self.refuse(value)? {
                            Some(len) => len,
                            None => continue,
                        },
                    }
                }
                State::Body(len) => len,
                State::Discarding(remaining) => {
                    if !self.discard(src, remaining) {
                        return Ok(None);
                    }
                    continue;
                }
                State::Failed => return Err(CodecError::Failed),
            };
            // No reservation for the missing bytes: memory follows what arrives, not what the header claims.
            if src.len() < len {
                self.state = State::Body(len);
                return Ok(None);
            }
            self.state = State::Head;
            let (frame, copied) = self.splitter.take(src, self.layout.strip, len);
            self.metrics.frames += 1;
            self.metrics.bytes += frame.len() as u64;
            self.metrics.copied_frames += u64::from(copied);
            return Ok(Some(frame));
        }
    }
}

impl LengthFieldCodec {
    /// Writes only the header that [`encode`](Encoder::encode) writes before a payload of `payload_len` bytes, for
    /// writers that send the payload from its own storage (`watermark::FramedSender`'s zero-copy path).
    pub(crate) fn encode_header(
        &self,
        payload_len: usize,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        self.layout.write_header_only(payload_len, dst)
    }
}

/// The one item type, so that `FramedWrite::new(io, codec)` infers it for `send` and `flush` alike (with a second
/// `Encoder` impl, `SinkExt::flush` could not tell which `Sink` is meant). A slice goes in as
/// `Bytes::copy_from_slice(..)`, or `Bytes::from_static(..)` for a literal.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use futures_util::SinkExt;
/// use tidegate::codec::LengthFieldCodec;
/// use tokio_util::codec::FramedWrite;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tidegate::codec::CodecError> {
/// let mut out = FramedWrite::new(Vec::new(), LengthFieldCodec::new(1024));
/// out.send(Bytes::from_static(b"hi")).await?;
/// out.flush().await?;
/// assert_eq!(out.get_ref()[..], b"\x00\x00\x00\x02hi"[..]);
/// # Ok(())
/// # }
/// ```
impl Encoder<Bytes> for LengthFieldCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.layout.write_header(item.len(), dst)?;
        dst.extend_from_slice(&item);
        Ok(())
    }
}
