//! What the delimiter and line codecs share: the oversize policy, the scan position, and how frames are cut out.

use bytes::{Buf, Bytes, BytesMut};

use super::skip_hook::SkipHook;
use super::split::Splitter;
use super::stats::Attachment;
use super::{CodecError, CodecMetrics, CodecStats, OversizePolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Reading,
    /// Dropping an oversize frame's bytes until its end arrives (`OversizePolicy::Skip`).
    Discarding,
    Failed,
}

/// The state of a codec whose frames end with a delimiter, apart from how the delimiter is found.
#[derive(Debug, Clone)]
pub(super) struct DelimitedCore {
    pub(super) max: usize,
    pub(super) policy: OversizePolicy,
    pub(super) state: State,
    /// No frame ends before this offset of the buffer: scanning resumes here.
    pub(super) scanned: usize,
    splitter: Splitter,
    pub(super) metrics: CodecMetrics,
    pub(super) on_skip: SkipHook,
}

/// The shared counters of a line or delimiter codec, if attached.
#[derive(Debug, Clone, Default)]
pub(super) struct Stats(pub(super) Option<Box<Attachment>>);

impl Stats {
    /// See `LengthFieldCodec::set_stats`; every maximum works for these codecs.
    pub(super) fn set(&mut self, core: &DelimitedCore, stats: Option<&CodecStats>) {
        self.0 = stats.map(|s| s.attach(core.metrics, (0, usize::MAX)));
    }

    #[inline]
    pub(super) fn is_attached(&self) -> bool {
        self.0.is_some()
    }

    /// Before a `decode` call of an attached codec: takes a new live maximum.
    pub(super) fn follow(&mut self, core: &mut DelimitedCore) {
        if let Some(max) = self.0.as_mut().and_then(|a| a.new_max()) {
            core.max = max;
        }
    }

    /// After a `decode` call of an attached codec: adds the counts.
    pub(super) fn sync(&mut self, core: &DelimitedCore) {
        if let Some(attached) = &mut self.0 {
            attached.sync(&core.metrics);
        }
    }

    pub(super) fn get(&self) -> Option<&CodecStats> {
        self.0.as_deref().map(Attachment::stats)
    }
}

impl DelimitedCore {
    pub(super) fn new(max: usize, policy: OversizePolicy, on_skip: SkipHook) -> Self {
        DelimitedCore {
            max,
            policy,
            state: State::Reading,
            scanned: 0,
            splitter: Splitter::default(),
            metrics: CodecMetrics::default(),
            on_skip,
        }
    }

    /// Applies the oversize policy to a frame of at least `len` bytes: fails for good, or (`Skip`) drops the
    /// `consumed` bytes seen of it so far.
    pub(super) fn too_long(
        &mut self,
        src: &mut BytesMut,
        len: usize,
        consumed: usize,
    ) -> Result<(), CodecError> {
        self.metrics.too_long += 1;
        crate::trace::debug!(
            "frame refused: too long", len = len, max = self.max, policy = ?self.policy
        );
        self.scanned = 0;
        match self.policy {
            OversizePolicy::Fail => {
                self.state = State::Failed;
                Err(CodecError::FrameTooLong {
                    len: len as u64,
                    max: self.max,
                })
            }
            OversizePolicy::Skip => {
                self.on_skip.skipped(len as u64, self.max);
                src.advance(consumed);
                self.metrics.discarded_bytes += consumed as u64;
                Ok(())
            }
        }
    }

    /// Cuts the first `content` bytes of `src` out as a frame and drops the rest of the first `consumed` (its
    /// ending).
    pub(super) fn take(&mut self, src: &mut BytesMut, content: usize, consumed: usize) -> Bytes {
        self.scanned = 0;
        let (frame, copied) = self.splitter.take(src, 0, content);
        src.advance(consumed - content);
        self.metrics.frames += 1;
        self.metrics.bytes += frame.len() as u64;
        self.metrics.copied_frames += u64::from(copied);
        frame
    }

    /// Refuses to encode an item longer than the maximum.
    pub(super) fn check_encodable_len(&self, len: usize) -> Result<(), CodecError> {
        if len > self.max {
            return Err(CodecError::ItemTooLong {
                len: len as u64,
                max: self.max,
            });
        }
        Ok(())
    }
}
