//! One set of counters shared by many decoders, and the live maximum they follow.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use super::CodecMetrics;

/// Counters shared by every decoder attached to it, so that 10,000 connections' decoders report as one set of
/// series, and a live `max_frame_length` those decoders follow. Cheap to clone: clones share the counters.
///
/// Attach it with the builders' `stats` method or the codecs' `set_stats`. An attached decoder keeps its own
/// [`CodecMetrics`] as before and adds what changed to these counters at the end of each `decode` call (a few
/// relaxed atomic additions, only for counts that moved); unattached decoders pay one branch per call.
///
/// **The live maximum.** [`set_max_frame_length`](Self::set_max_frame_length) with `Some(max)` makes every attached
/// decoder take `max` at the start of its next `decode` or `decode_eof` call, exactly as if its own
/// `set_max_frame_length` were called then: a [`LengthFieldCodec`](super::LengthFieldCodec) applies it from the
/// next header (a frame whose header was read keeps the decision made on it), a line or delimiter codec and
/// [`Capped`](super::Capped) to the frame being buffered too. `None` stops following: each decoder keeps the
/// maximum it has at that moment. Values an attached length-field layout cannot hold are refused (see
/// [`max_frame_length_range`](Self::max_frame_length_range)).
///
/// Registered with a [`Registry`](crate::metrics::Registry), it reports `codec_frames_total`,
/// `codec_too_long_total`, `codec_malformed_total`, `codec_discarded_bytes_total`, `codec_bytes_total`,
/// `codec_copied_frames_total` and `codec_attached`, and its `max_frame_length` as a live setting.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tidegate::codec::{CodecStats, LineCodec};
/// use tokio_util::codec::Decoder;
///
/// let stats = CodecStats::new();
/// let mut a = LineCodec::builder().max_frame_length(64).stats(&stats).build()?;
/// let mut b = LineCodec::new(64);
/// b.set_stats(Some(&stats));
/// assert!(a.decode(&mut BytesMut::from(&b"one\n"[..]))?.is_some());
/// assert!(b.decode(&mut BytesMut::from(&b"two\n"[..]))?.is_some());
/// assert_eq!(stats.metrics().frames, 2);
///
/// stats.set_max_frame_length(Some(2))?;
/// assert!(a.decode(&mut BytesMut::from(&b"three\n"[..])).is_err()); // too long now
/// assert_eq!((a.max_frame_length(), stats.metrics().too_long), (2, 1));
/// # Ok::<(), tidegate::codec::CodecError>(())
/// ```
#[derive(Clone, Default)]
pub struct CodecStats {
    pub(super) inner: Arc<StatsInner>,
}

#[derive(Default)]
pub(super) struct StatsInner {
    frames: AtomicU64,
    bytes: AtomicU64,
    too_long: AtomicU64,
    discarded_bytes: AtomicU64,
    malformed: AtomicU64,
    copied_frames: AtomicU64,
    /// The live maximum; 0 is off (no decoder follows a maximum of 0, which only admits empty frames).
    pub(super) max_frame_length: AtomicUsize,
    /// The range every attached decoder accepts: the largest of their smallest maxima and the smallest of their
    /// largest. Only narrows while the stats live.
    floor: AtomicUsize,
    ceiling: AtomicUsize,
    /// Attached decoders alive.
    attached: AtomicUsize,
}

impl CodecStats {
    /// Counters at zero, no live maximum.
    pub fn new() -> Self {
        let stats = CodecStats::default();
        stats.inner.floor.store(1, Relaxed);
        stats.inner.ceiling.store(usize::MAX, Relaxed);
        stats
    }

    /// The sum of what every attached decoder counted while attached (`copied_frames` included).
    pub fn metrics(&self) -> CodecMetrics {
        let i = &self.inner;
        CodecMetrics {
            frames: i.frames.load(Relaxed),
            bytes: i.bytes.load(Relaxed),
            too_long: i.too_long.load(Relaxed),
            discarded_bytes: i.discarded_bytes.load(Relaxed),
            malformed: i.malformed.load(Relaxed),
            copied_frames: i.copied_frames.load(Relaxed),
        }
    }

    /// Attached decoders alive now (clones of an attached decoder are attached too).
    pub fn attached(&self) -> usize {
        self.inner.attached.load(Relaxed)
    }

    /// The live maximum, or `None` when attached decoders keep their own.
    pub fn max_frame_length(&self) -> Option<usize> {
        match self.inner.max_frame_length.load(Relaxed) {
            0 => None,
            max => Some(max),
        }
    }

    /// The smallest and largest maximum every decoder attached so far accepts (`1..=usize::MAX` until a
    /// length-field codec, whose header and field width bound it, is attached).
    pub fn max_frame_length_range(&self) -> (usize, usize) {
        (
            self.inner.floor.load(Relaxed),
            self.inner.ceiling.load(Relaxed),
        )
    }

    /// Sets the maximum every attached decoder takes at its next `decode` call (see the type docs), or stops
    /// following with `None`.
    ///
    /// # Errors
    ///
    /// [`CodecError::MaxOutOfRange`](super::CodecError::MaxOutOfRange) if `max` is outside
    /// [`max_frame_length_range`](Self::max_frame_length_range); nothing changes then.
    pub fn set_max_frame_length(&self, max: Option<usize>) -> Result<(), super::CodecError> {
        if let Some(max) = max {
            let (floor, ceiling) = self.max_frame_length_range();
            if max < floor || max > ceiling {
                return Err(super::CodecError::MaxOutOfRange {
                    max,
                    min: floor,
                    limit: ceiling,
                });
            }
        }
        self.inner.max_frame_length.store(max.unwrap_or(0), Relaxed);
        Ok(())
    }

    /// What an attached decoder holds: this handle, and what it has already added to the counters.
    pub(super) fn attach(&self, counts: CodecMetrics, range: (usize, usize)) -> Box<Attachment> {
        self.inner.floor.fetch_max(range.0, Relaxed);
        self.inner.ceiling.fetch_min(range.1, Relaxed);
        self.inner.attached.fetch_add(1, Relaxed);
        Box::new(Attachment {
            stats: self.clone(),
            reported: counts,
            seen_max: 0,
        })
    }
}

impl fmt::Debug for CodecStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecStats")
            .field("metrics", &self.metrics())
            .field("max_frame_length", &self.max_frame_length())
            .field("attached", &self.attached())
            .finish()
    }
}

/// A decoder's link to its [`CodecStats`]; boxed so that an unattached decoder grows by one pointer only.
#[derive(Debug)]
pub(super) struct Attachment {
    stats: CodecStats,
    /// The decoder's counts already added to the shared counters.
    reported: CodecMetrics,
    /// The live maximum last taken (0: none yet, or off).
    seen_max: usize,
}

impl Attachment {
    pub(super) fn stats(&self) -> &CodecStats {
        &self.stats
    }

    /// A live maximum the decoder has not taken yet.
    #[inline]
    pub(super) fn new_max(&mut self) -> Option<usize> {
        let max = self.stats.inner.max_frame_length.load(Relaxed);
        if max == self.seen_max {
            return None;
        }
        self.seen_max = max;
        (max != 0).then_some(max)
    }

    /// Adds what the decoder counted since the last call.
    #[inline]
    pub(super) fn sync(&mut self, now: &CodecMetrics) {
        let i = &self.stats.inner;
        let was = &mut self.reported;
        add(&i.frames, &mut was.frames, now.frames);
        add(&i.bytes, &mut was.bytes, now.bytes);
        add(&i.too_long, &mut was.too_long, now.too_long);
        add(
            &i.discarded_bytes,
            &mut was.discarded_bytes,
            now.discarded_bytes,
        );
        add(&i.malformed, &mut was.malformed, now.malformed);
        add(&i.copied_frames, &mut was.copied_frames, now.copied_frames);
    }
}

#[inline]
fn add(shared: &AtomicU64, was: &mut u64, now: u64) {
    if now != *was {
        shared.fetch_add(now.wrapping_sub(*was), Relaxed);
        *was = now;
    }
}

impl Clone for Attachment {
    /// A cloned decoder is attached too; its counts start where the original's were, already reported.
    fn clone(&self) -> Self {
        self.stats.inner.attached.fetch_add(1, Relaxed);
        Attachment {
            stats: self.stats.clone(),
            reported: self.reported,
            seen_max: self.seen_max,
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.stats.inner.attached.fetch_sub(1, Relaxed);
    }
}
