//! A decoder and encoder for frames that end with one of several delimiters.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem::Finder;
use tokio_util::codec::{Decoder, Encoder};

use super::delimited::{DelimitedCore, State};
use super::{CodecError, CodecMetrics, OversizePolicy};

/// Frames that end with one of several byte-string delimiters, capped by a required maximum.
///
/// The frame that ends first wins (the earliest delimiter; between delimiters that start at the same byte, the one
/// listed first). Frames come out without their delimiter, and the delimiter does not count toward the maximum.
/// Scanning resumes where the previous call stopped, so a frame fed one byte at a time costs linear time, and an
/// oversize frame is detected as soon as the buffer holds more than `max` bytes that cannot be a delimiter.
///
/// At the end of the stream, bytes after the last delimiter are returned as a last frame.
///
/// As an encoder it appends the first delimiter, and refuses an item longer than the maximum or one that would not
/// decode back as one frame (a delimiter inside it).
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tidegate::codec::DelimiterCodec;
/// use tokio_util::codec::FramedRead;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tidegate::codec::CodecError> {
/// let codec = DelimiterCodec::new([&b"\0"[..], b"||"], 1024)?;
/// let mut frames = FramedRead::new(&b"a\0b||c"[..], codec);
/// assert_eq!(frames.next().await.unwrap()?, "a");
/// assert_eq!(frames.next().await.unwrap()?, "b");
/// assert_eq!(frames.next().await.unwrap()?, "c"); // the end of the stream ends the last frame
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DelimiterCodec {
    finders: Vec<Finder<'static>>,
    /// The single byte of the only delimiter, when that is the configuration: one `memchr` instead of `memmem`.
    single_byte: Option<u8>,
    longest: usize,
    /// `scanned` there: every delimiter that starts before it has been ruled out.
    core: DelimitedCore,
}

impl DelimiterCodec {
    /// A codec for frames ending with any of `delimiters` and at most `max_frame_length` bytes long.
    ///
    /// # Errors
    ///
    /// [`CodecError::EmptyDelimiter`] if there is no delimiter or one of them is empty.
    pub fn new<I, D>(delimiters: I, max_frame_length: usize) -> Result<Self, CodecError>
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[u8]>,
    {
        let finders: Vec<Finder<'static>> = delimiters
            .into_iter()
            .map(|d| Finder::new(d.as_ref()).into_owned())
            .collect();
        if finders.is_empty() || finders.iter().any(|f| f.needle().is_empty()) {
            return Err(CodecError::EmptyDelimiter);
        }
        let single_byte = match &finders[..] {
            [only] if only.needle().len() == 1 => Some(only.needle()[0]),
            _ => None,
        };
        Ok(DelimiterCodec {
            longest: finders.iter().map(|f| f.needle().len()).max().unwrap_or(1),
            finders,
            single_byte,
            core: DelimitedCore::new(max_frame_length),
        })
    }

    /// The same codec with another oversize policy.
    pub fn with_policy(mut self, policy: OversizePolicy) -> Self {
        self.core.policy = policy;
        self
    }

    /// The oversize policy.
    pub fn policy(&self) -> OversizePolicy {
        self.core.policy
    }

    /// Changes the oversize policy for frames not yet found too long.
    pub fn set_policy(&mut self, policy: OversizePolicy) {
        self.core.policy = policy;
    }

    /// The longest frame accepted, delimiter not counted.
    pub fn max_frame_length(&self) -> usize {
        self.core.max
    }

    /// Changes the maximum for frames not yet found too long.
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.core.max = max;
    }

    /// Whether a fatal error happened; every later `decode` fails.
    pub fn is_failed(&self) -> bool {
        self.core.state == State::Failed
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> CodecMetrics {
        self.core.metrics
    }

    /// The earliest delimiter in `hay[from..]`: its start and length.
    #[inline]
    fn find(&self, hay: &[u8], from: usize) -> Option<(usize, usize)> {
        if let Some(byte) = self.single_byte {
            return memchr::memchr(byte, &hay[from..]).map(|i| (from + i, 1));
        }
        let mut best: Option<(usize, usize)> = None;
        for finder in &self.finders {
            let d = finder.needle().len();
            // A later delimiter only wins if it starts strictly earlier, so search only up to there.
            let end = best.map_or(hay.len(), |(s, _)| (s + d - 1).min(hay.len()));
            if end < from {
                continue;
            }
            if let Some(i) = finder.find(&hay[from..end]) {
                best = Some((from + i, d));
            }
        }
        best
    }

    /// Where scanning resumes after finding nothing in `len` bytes: a delimiter may still start in the last
    /// `longest - 1` bytes.
    fn resume_at(&self, len: usize) -> usize {
        len.saturating_sub(self.longest - 1)
    }

    /// Drops bytes up to and including the next delimiter; returns whether it was found.
    fn discard(&mut self, src: &mut BytesMut) -> bool {
        let (n, found) = match self.find(src, 0) {
            Some((start, d)) => (start + d, true),
            None => (self.resume_at(src.len()), false),
        };
        src.advance(n);
        self.core.metrics.discarded_bytes += n as u64;
        if found {
            self.core.state = State::Reading;
        }
        found
    }

    /// Whether `frame ++ delimiter ++ anything` would decode as `frame`: no delimiter starts inside `frame`, not even
    /// one that runs past its end.
    fn check_encodable(&self, frame_and_delim: &[u8], frame_len: usize) -> Result<(), CodecError> {
        if let Some((start, _)) = self.find(frame_and_delim, 0) {
            if start < frame_len {
                return Err(CodecError::DelimiterInFrame { position: start });
            }
        }
        let tail_from = self.resume_at(frame_and_delim.len()).min(frame_len);
        for p in tail_from..frame_len {
            let tail = &frame_and_delim[p..];
            if self.finders.iter().any(|f| f.needle().starts_with(tail)) {
                return Err(CodecError::DelimiterInFrame { position: p });
            }
        }
        Ok(())
    }
}

impl Decoder for DelimiterCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        loop {
            match self.core.state {
                State::Reading => {}
                State::Discarding => {
                    if !self.discard(src) {
                        return Ok(None);
                    }
                }
                State::Failed => return Err(CodecError::Failed),
            }
            // `min` guards against a caller that shrank the buffer between calls.
            let from = self.core.scanned.min(src.len());
            match self.find(src, from) {
                Some((start, d)) => {
                    if start > self.core.max {
                        self.core.too_long(src, start, start + d)?;
                        continue;
                    }
                    return Ok(Some(self.core.take(src, start, start + d)));
                }
                None => {
                    let resume = self.resume_at(src.len());
                    if resume <= self.core.max {
                        self.core.scanned = resume;
                        return Ok(None);
                    }
                    // At least `resume` bytes precede any delimiter still to come.
                    self.core.too_long(src, resume, resume)?;
                    self.core.state = State::Discarding;
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if self.core.state == State::Discarding {
            self.core.metrics.discarded_bytes += src.len() as u64;
            src.clear();
            self.core.state = State::Reading;
        }
        if src.is_empty() {
            return Ok(None);
        }
        let len = src.len();
        if len > self.core.max {
            self.core.too_long(src, len, len)?;
            return Ok(None);
        }
        Ok(Some(self.core.take(src, len, len)))
    }
}

impl Encoder<&[u8]> for DelimiterCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        self.core.check_encodable_len(item.len())?;
        let start = dst.len();
        dst.extend_from_slice(item);
        dst.extend_from_slice(self.finders[0].needle());
        if let Err(err) = self.check_encodable(&dst[start..], item.len()) {
            dst.truncate(start);
            return Err(err);
        }
        Ok(())
    }
}

impl Encoder<Bytes> for DelimiterCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&item[..], dst)
    }
}
