//! A decoder and encoder for lines ending in `\n` or `\r\n`.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::delimited::{DelimitedCore, State, Stats};
use super::skip_hook::SkipHook;
use super::{CodecError, CodecMetrics, LineCodecBuilder, OversizePolicy};

/// Lines ending in `\n` or `\r\n`, capped by a required maximum, as [`Bytes`] without their line ending.
///
/// The line ending does not count toward the maximum, so a line of exactly `max` bytes is accepted with either
/// ending. Scanning resumes where the previous call stopped (one `memchr` over new bytes only), and an oversize line
/// is detected as soon as more than `max` bytes of it are buffered. Lines are bytes, not `String`s: no UTF-8 check
/// is paid for, and binary protocols with text framing work.
///
/// At the end of the stream, bytes after the last line ending are returned as a last line, without a trailing `\r`;
/// a lone `\r` there is an unfinished line ending, not a line, and is dropped (as tokio-util's `LinesCodec` does).
///
/// As an encoder it appends `\n`, and refuses an item longer than the maximum, an item containing `\n`, and one
/// ending in `\r` (it would decode without it).
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tidegate::codec::LineCodec;
/// use tokio_util::codec::FramedRead;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tidegate::codec::CodecError> {
/// let mut lines = FramedRead::new(&b"GET / HTTP/1.1\r\nHost: x\n\n"[..], LineCodec::new(8 * 1024));
/// assert_eq!(lines.next().await.unwrap()?, "GET / HTTP/1.1");
/// assert_eq!(lines.next().await.unwrap()?, "Host: x");
/// assert_eq!(lines.next().await.unwrap()?, "");
/// assert!(lines.next().await.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LineCodec {
    /// `scanned` there: no `\n` before it.
    core: DelimitedCore,
    stats: Stats,
}

impl LineCodec {
    /// A codec for lines of at most `max_frame_length` bytes, line ending not counted, with the defaults of
    /// [`LineCodecBuilder`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tidegate::codec::LineCodec::new(80).max_frame_length(), 80);
    /// ```
    pub fn new(max_frame_length: usize) -> Self {
        Self::from_parts(max_frame_length, OversizePolicy::Fail, SkipHook::default())
    }

    /// A builder, for the oversize policy and the skip hook; `max_frame_length` must be set before
    /// [`build`](LineCodecBuilder::build).
    pub fn builder() -> LineCodecBuilder {
        LineCodecBuilder::default()
    }

    pub(super) fn from_parts(max: usize, policy: OversizePolicy, on_skip: SkipHook) -> Self {
        LineCodec {
            core: DelimitedCore::new(max, policy, on_skip),
            stats: Stats::default(),
        }
    }

    /// The oversize policy.
    pub fn oversize_policy(&self) -> OversizePolicy {
        self.core.policy
    }

    /// Changes the oversize policy for lines not yet found too long.
    pub fn set_oversize_policy(&mut self, policy: OversizePolicy) {
        self.core.policy = policy;
    }

    /// The longest line accepted, line ending not counted.
    pub fn max_frame_length(&self) -> usize {
        self.core.max
    }

    /// Changes the maximum for lines not yet found too long, including the one partly buffered (its line ending has
    /// not arrived, so no decision was made on it yet).
    ///
    /// # Errors
    ///
    /// None today: every maximum works for lines (`0` admits only empty ones). The `Result` is the signature every
    /// codec's `set_max_frame_length` shares.
    pub fn set_max_frame_length(&mut self, max: usize) -> Result<(), CodecError> {
        self.core.max = max;
        Ok(())
    }

    /// Whether a fatal error happened; every later `decode` fails.
    pub fn is_failed(&self) -> bool {
        self.core.state == State::Failed
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> CodecMetrics {
        self.core.metrics
    }

    /// Attaches shared counters (and their live maximum, from the next `decode` call), replacing any attached
    /// before, or detaches with `None`. Counts from before attaching are not added to them.
    ///
    /// # Examples
    ///
    /// See [`CodecStats`](super::CodecStats).
    pub fn set_stats(&mut self, stats: Option<&super::CodecStats>) {
        self.stats.set(&self.core, stats);
    }

    /// The shared counters this decoder adds to, if attached.
    pub fn stats(&self) -> Option<&super::CodecStats> {
        self.stats.get()
    }
}

impl LineCodec {
    /// `decode` or `decode_eof` for a decoder with shared counters: takes a new live maximum first and adds the
    /// counts after. The stats are set aside while the plain call runs, so that its code stays as it is without
    /// them: measured with callgrind, moving the loop into a helper cost the line decoder 15 instructions a call.
    #[cold]
    #[inline(never)]
    fn attached(
        &mut self,
        src: &mut BytesMut,
        call: fn(&mut Self, &mut BytesMut) -> Result<Option<Bytes>, CodecError>,
    ) -> Result<Option<Bytes>, CodecError> {
        let mut stats = std::mem::take(&mut self.stats);
        stats.follow(&mut self.core);
        let result = call(self, src);
        stats.sync(&self.core);
        self.stats = stats;
        result
    }
}

/// Length of the line in `buf[..end]` without a trailing `\r`.
#[inline]
fn without_cr(buf: &[u8], end: usize) -> usize {
    if end > 0 && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

impl Decoder for LineCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if self.stats.is_attached() {
            return self.attached(src, Self::decode);
        }
        loop {
            match self.core.state {
                State::Reading => {}
                State::Discarding => match memchr::memchr(b'\n', src) {
                    Some(i) => {
                        src.advance(i + 1);
                        self.core.metrics.discarded_bytes += i as u64 + 1;
                        self.core.state = State::Reading;
                    }
                    None => {
                        self.core.metrics.discarded_bytes += src.len() as u64;
                        src.clear();
                        return Ok(None);
                    }
                },
                State::Failed => return Err(CodecError::Failed),
            }
            // `min` guards against a caller that shrank the buffer between calls.
            let from = self.core.scanned.min(src.len());
            match memchr::memchr(b'\n', &src[from..]) {
                Some(i) => {
                    let newline = from + i;
                    let content = without_cr(src, newline);
                    if content > self.core.max {
                        self.core.too_long(src, content, newline + 1)?;
                        continue;
                    }
                    return Ok(Some(self.core.take(src, content, newline + 1)));
                }
                None => {
                    // A trailing `\r` may be the start of `\r\n`, so it does not count yet.
                    let content = without_cr(src, src.len());
                    if content <= self.core.max {
                        self.core.scanned = src.len();
                        return Ok(None);
                    }
                    self.core.too_long(src, content, src.len())?;
                    self.core.state = State::Discarding;
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if self.stats.is_attached() {
            return self.attached(src, Self::decode_eof);
        }
        if let Some(line) = self.decode(src)? {
            return Ok(Some(line));
        }
        if src.is_empty() {
            self.core.state = State::Reading;
            return Ok(None);
        }
        if src[..] == b"\r"[..] {
            self.core.scanned = 0;
            src.clear();
            return Ok(None);
        }
        let content = without_cr(src, src.len());
        let len = src.len();
        Ok(Some(self.core.take(src, content, len)))
    }
}

/// The one item type, so that `FramedWrite` infers it for `send` and `flush` alike; see
/// [`LengthFieldCodec`](super::LengthFieldCodec#impl-Encoder<Bytes>-for-LengthFieldCodec).
impl Encoder<Bytes> for LineCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.core.check_encodable_len(item.len())?;
        if let Some(position) = memchr::memchr(b'\n', &item) {
            return Err(CodecError::DelimiterInFrame { position });
        }
        if item.last() == Some(&b'\r') {
            return Err(CodecError::DelimiterInFrame {
                position: item.len() - 1,
            });
        }
        dst.reserve(item.len() + 1);
        dst.extend_from_slice(&item);
        dst.extend_from_slice(b"\n");
        Ok(())
    }
}
