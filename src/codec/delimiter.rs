//! A decoder and encoder for frames that end with one of several delimiters.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem::Finder;
use tokio_util::codec::{Decoder, Encoder};

use super::delimited::{DelimitedCore, State, Stats};
use super::skip_hook::SkipHook;
use super::{CodecError, CodecMetrics, DelimiterCodecBuilder, OversizePolicy};

/// Frames that end with one of several byte-string delimiters, capped by a required maximum.
///
/// A frame ends at the delimiter that **starts earliest**; between delimiters that start at the same byte, the one
/// listed first wins. So with `["\r\n\r\n", "\n"]`, `a\r\n\r\nb\n` is `a`, `b`, and with `["\n", "\r\n"]`,
/// `a\r\n` is `a`. Frames come out without their delimiter, and the delimiter does not count toward the maximum.
///
/// The frames do not depend on how the bytes are split between reads: they are what the rule above gives on the
/// whole stream. When one delimiter occurs inside another (as `\n` in `\r\n\r\n`), a match is only final once
/// the longer delimiter that may have started earlier has arrived or cannot arrive any more, so the decoder waits for
/// up to `longest delimiter - 1` more bytes, and at the end of the stream takes the earliest complete delimiter.
/// Every non-empty set of non-empty delimiters frames unambiguously this way; a delimiter that can never win (one
/// that starts with a delimiter listed before it) is allowed and simply never matches.
///
/// Scanning resumes where the previous call stopped, so a frame fed one byte at a time costs linear time, and an
/// oversize frame is detected as soon as the buffer holds more than `max` bytes that cannot start its delimiter.
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
    /// Whether a delimiter occurs inside another one other than at its end (or is a proper prefix of one listed
    /// before it): then a match found may still lose to a longer delimiter that started earlier and has not fully
    /// arrived. Without such pairs (the usual case) a match is final at once and no look-ahead is paid for.
    overlapping: bool,
    /// `scanned` there: every delimiter that starts before it has been ruled out.
    core: DelimitedCore,
    stats: Stats,
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
        let finders = delimiters
            .into_iter()
            .map(|d| Finder::new(d.as_ref()).into_owned())
            .collect();
        Self::from_parts(
            finders,
            max_frame_length,
            OversizePolicy::Fail,
            SkipHook::default(),
        )
    }

    /// A builder, for the oversize policy and the skip hook; the delimiters and `max_frame_length` must be set
    /// before [`build`](DelimiterCodecBuilder::build).
    pub fn builder() -> DelimiterCodecBuilder {
        DelimiterCodecBuilder::default()
    }

    pub(super) fn from_parts(
        finders: Vec<Finder<'static>>,
        max: usize,
        policy: OversizePolicy,
        on_skip: SkipHook,
    ) -> Result<Self, CodecError> {
        if finders.is_empty() || finders.iter().any(|f| f.needle().is_empty()) {
            return Err(CodecError::EmptyDelimiter);
        }
        let single_byte = match &finders[..] {
            [only] if only.needle().len() == 1 => Some(only.needle()[0]),
            _ => None,
        };
        let needles: Vec<&[u8]> = finders.iter().map(|f| f.needle()).collect();
        let overlapping = needles.iter().enumerate().any(|(i, d)| {
            needles.iter().enumerate().any(|(j, e)| {
                // `d` at offset `o` of `e`, ending before `e` does; at offset 0 it only loses to `e` listed first.
                j != i
                    && e.len() > d.len()
                    && (0..e.len() - d.len()).any(|o| e[o..].starts_with(d) && (o > 0 || j < i))
            })
        });
        Ok(DelimiterCodec {
            longest: finders.iter().map(|f| f.needle().len()).max().unwrap_or(1),
            overlapping,
            finders,
            single_byte,
            core: DelimitedCore::new(max, policy, on_skip),
            stats: Stats::default(),
        })
    }

    /// The oversize policy.
    pub fn oversize_policy(&self) -> OversizePolicy {
        self.core.policy
    }

    /// Changes the oversize policy for frames not yet found too long.
    pub fn set_oversize_policy(&mut self, policy: OversizePolicy) {
        self.core.policy = policy;
    }

    /// The longest frame accepted, delimiter not counted.
    pub fn max_frame_length(&self) -> usize {
        self.core.max
    }

    /// Changes the maximum for frames not yet found too long, including the one partly buffered (its delimiter
    /// has not arrived, so no decision was made on it yet).
    ///
    /// # Errors
    ///
    /// None today: every maximum works for delimited frames (`0` admits only empty ones). The `Result` is the
    /// signature every codec's `set_max_frame_length` shares.
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

    /// The earliest complete delimiter in `hay[from..]`: its start and index.
    #[inline]
    fn find(&self, hay: &[u8], from: usize) -> Option<(usize, usize)> {
        if let Some(byte) = self.single_byte {
            return memchr::memchr(byte, &hay[from..]).map(|i| (from + i, 0));
        }
        let mut best: Option<(usize, usize)> = None;
        for (index, finder) in self.finders.iter().enumerate() {
            let d = finder.needle().len();
            // A later delimiter only wins if it starts strictly earlier, so search only up to there.
            let end = best.map_or(hay.len(), |(s, _)| (s + d - 1).min(hay.len()));
            if end < from {
                continue;
            }
            if let Some(i) = finder.find(&hay[from..end]) {
                best = Some((from + i, index));
            }
        }
        best
    }

    /// The delimiter that ends the frame at the front of `hay`, once that is certain: its start and length.
    /// Delimiters starting before `from` have been ruled out. Before the end of the stream, a match is not certain
    /// while a delimiter that would beat it may still be arriving.
    #[inline]
    fn boundary(&self, hay: &[u8], from: usize, eof: bool) -> Option<(usize, usize)> {
        let (start, index) = self.find(hay, from)?;
        if self.overlapping && !eof && self.may_lose(hay, start, index) {
            return None;
        }
        Some((start, self.finders[index].needle().len()))
    }

    /// Whether a delimiter that starts before `start` (or at it and is listed before `index`) has its first bytes at
    /// the end of `hay`, so it may still complete and win.
    fn may_lose(&self, hay: &[u8], start: usize, index: usize) -> bool {
        // Only a suffix shorter than the longest delimiter can be an unfinished one.
        (self.resume_at(hay.len())..=start).any(|p| {
            let tail = &hay[p..];
            self.finders.iter().enumerate().any(|(j, e)| {
                let e = e.needle();
                e.len() > tail.len() && e.starts_with(tail) && (p < start || j < index)
            })
        })
    }

    /// Where scanning resumes after finding nothing in `len` bytes: a delimiter may still start in the last
    /// `longest - 1` bytes.
    fn resume_at(&self, len: usize) -> usize {
        len.saturating_sub(self.longest - 1)
    }

    /// Drops bytes up to and including the delimiter that ends the oversize frame (at the end of the stream, all of
    /// them); returns whether the frame is gone.
    fn discard(&mut self, src: &mut BytesMut, eof: bool) -> bool {
        let (n, found) = match self.boundary(src, 0, eof) {
            Some((start, d)) => (start + d, true),
            None if eof => (src.len(), true),
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
        // The first delimiter is listed first, so only a delimiter starting inside `frame` can beat it.
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

impl DelimiterCodec {
    /// `next_frame` for a decoder with shared counters: take a new live maximum first, add the counts after.
    #[cold]
    #[inline(never)]
    fn next_frame_attached(
        &mut self,
        src: &mut BytesMut,
        eof: bool,
    ) -> Result<Option<Bytes>, CodecError> {
        self.stats.follow(&mut self.core);
        let result = self.next_frame(src, eof);
        self.stats.sync(&self.core);
        result
    }

    /// One frame, or `None` when more bytes are needed; at the end of the stream (`eof`) the bytes after the last
    /// delimiter end a last frame.
    fn next_frame(&mut self, src: &mut BytesMut, eof: bool) -> Result<Option<Bytes>, CodecError> {
        loop {
            match self.core.state {
                State::Reading => {}
                State::Discarding => {
                    if !self.discard(src, eof) {
                        return Ok(None);
                    }
                }
                State::Failed => return Err(CodecError::Failed),
            }
            // `min` guards against a caller that shrank the buffer between calls.
            let from = self.core.scanned.min(src.len());
            if let Some((start, d)) = self.boundary(src, from, eof) {
                if start > self.core.max {
                    self.core.too_long(src, start, start + d)?;
                    continue;
                }
                return Ok(Some(self.core.take(src, start, start + d)));
            }
            let len = src.len();
            if eof {
                if len == 0 {
                    return Ok(None);
                }
                if len > self.core.max {
                    self.core.too_long(src, len, len)?;
                    return Ok(None);
                }
                return Ok(Some(self.core.take(src, len, len)));
            }
            // A delimiter that ends the frame may still start in the last `longest - 1` bytes, or (when one was
            // found but may lose) at or after that point; nothing before it can.
            let resume = self.resume_at(len);
            if resume <= self.core.max {
                self.core.scanned = resume;
                return Ok(None);
            }
            // At least `resume` bytes precede the delimiter still to come.
            self.core.too_long(src, resume, resume)?;
            self.core.state = State::Discarding;
        }
    }
}

impl Decoder for DelimiterCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if !self.stats.is_attached() {
            return self.next_frame(src, false);
        }
        self.next_frame_attached(src, false)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if !self.stats.is_attached() {
            return self.next_frame(src, true);
        }
        self.next_frame_attached(src, true)
    }
}

/// The one item type, so that `FramedWrite` infers it for `send` and `flush` alike; see
/// [`LengthFieldCodec`](super::LengthFieldCodec#impl-Encoder<Bytes>-for-LengthFieldCodec).
impl Encoder<Bytes> for DelimiterCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.core.check_encodable_len(item.len())?;
        let start = dst.len();
        dst.extend_from_slice(&item);
        dst.extend_from_slice(self.finders[0].needle());
        if let Err(err) = self.check_encodable(&dst[start..], item.len()) {
            dst.truncate(start);
            return Err(err);
        }
        Ok(())
    }
}
