//! A cap on the bytes any decoder may buffer without producing a frame.

use std::fmt;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::skip_hook::SkipHook;
use super::stats::Attachment;
use super::{CappedBuilder, CodecError, CodecMetrics, CodecStats, OversizePolicy};

/// A decoder's initial state and how to copy it.
pub(super) type Restart<D> = (D, fn(&D) -> D);

/// Wraps any [`Decoder`] and limits the bytes one frame may take: this is how a frame-size limit is put on a
/// protocol decoder that has none.
///
/// A frame's size is what the inner decoder took from the read buffer to produce it (its header or delimiter
/// included) since its previous frame, wherever it kept those bytes. `Capped` never hands out a frame that took more
/// than `max` bytes, however the bytes were split between reads, and after every call at most `max` bytes of an
/// unfinished frame are held (buffered, or taken by the inner decoder). A frame over the limit is found either when
/// the inner decoder returns it or as soon as more than `max` bytes of it are held:
///
/// * [`OversizePolicy::Fail`] returns [`CodecError::FrameTooLong`] (inside the inner error type, through
///   `io::Error`) and every later call fails with [`CodecError::Failed`].
/// * [`OversizePolicy::Skip`] ([`CappedBuilder::oversize_policy`]) drops the frame and goes on. A frame returned whole is just
///   dropped. A frame found oversize while it arrives is dropped as it arrives: the bytes held are thrown away, the
///   inner decoder restarts from a copy of its initial state (so no offset it kept into the old buffer survives) and
///   is handed the following bytes, and the first item it produces after that is taken as the rest of the oversize
///   frame and dropped too. That suits protocols whose frames end with a marker the inner decoder finds again (a
///   delimiter, a line ending). Every skip is counted in `too_long`, its bytes in `discarded_bytes`, and reported to
///   the [skip hook](CappedBuilder::skip_hook).
///
/// `Capped` cannot stop an inner decoder that itself reserves memory from a header (tokio-util's
/// `LengthDelimitedCodec` does; use [`LengthFieldCodec`](super::LengthFieldCodec) instead). Encoding passes through
/// to the inner codec.
///
/// Its errors travel inside the inner decoder's error type; [`CodecError::find`] gets them out.
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tidegate::codec::Capped;
/// use tokio_util::codec::{AnyDelimiterCodec, FramedRead};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let inner = AnyDelimiterCodec::new(b";".to_vec(), vec![]); // no limit of its own
/// let mut frames = FramedRead::new(&b"ok;this-one-is-far-too-long;"[..], Capped::new(inner, 8));
/// assert_eq!(frames.next().await.unwrap().unwrap(), "ok");
/// let err = frames.next().await.unwrap().unwrap_err();
/// assert!(err.to_string().contains("longer than the maximum of 8 bytes"));
/// # }
/// ```
#[derive(Clone)]
pub struct Capped<D> {
    inner: D,
    max: usize,
    policy: OversizePolicy,
    /// The inner decoder as it was built and its `clone`, to restart from after a skip; always there under `Skip`.
    /// A function pointer keeps `D: Clone` off the `Decoder` impl.
    pristine: Option<Restart<D>>,
    state: State,
    /// Bytes the inner decoder took from the buffer since its last item: they belong to the frame it is decoding.
    taken: usize,
    metrics: CodecMetrics,
    on_skip: SkipHook,
    stats: Option<Box<Attachment>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// An oversize frame was dropped while it arrived; the inner decoder's next item is the rest of it.
    Resyncing,
    Failed,
}

impl<D> Capped<D> {
    /// Caps the frames of `inner` at `max` bytes each, with [`OversizePolicy::Fail`]; the
    /// [builder](Self::builder) sets the other options.
    pub fn new(inner: D, max: usize) -> Self {
        Self::from_parts(inner, max, OversizePolicy::Fail, None, SkipHook::default())
    }

    /// A builder around `inner`; `max_frame_length` must be set before [`build`](CappedBuilder::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tidegate::codec::{Capped, OversizePolicy};
    /// use tokio_util::codec::{Decoder, LinesCodec};
    ///
    /// let mut codec = Capped::builder(LinesCodec::new())
    ///     .max_frame_length(4)
    ///     .oversize_policy(OversizePolicy::Skip)
    ///     .build()?;
    /// let mut buf = BytesMut::from("far too long");
    /// assert!(codec.decode(&mut buf).unwrap().is_none()); // discarded, not an error
    /// buf.extend_from_slice(b"!\nok\n");
    /// assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok"); // the rest of the long line was dropped too
    /// assert_eq!(codec.metrics().discarded_bytes, 14);
    /// # Ok::<(), tidegate::codec::CodecError>(())
    /// ```
    pub fn builder(inner: D) -> CappedBuilder<D> {
        CappedBuilder::new(inner)
    }

    pub(super) fn from_parts(
        inner: D,
        max: usize,
        policy: OversizePolicy,
        pristine: Option<Restart<D>>,
        on_skip: SkipHook,
    ) -> Self {
        Capped {
            inner,
            max,
            policy,
            pristine,
            state: State::Reading,
            taken: 0,
            metrics: CodecMetrics::default(),
            on_skip,
            stats: None,
        }
    }

    /// The oversize policy.
    pub fn oversize_policy(&self) -> OversizePolicy {
        self.policy
    }

    /// The cap in bytes: the most one frame may take, and the most held of one still arriving.
    pub fn max_frame_length(&self) -> usize {
        self.max
    }

    /// Changes the cap; it applies from the next call, to the frame in flight too (no decision was made on it yet).
    ///
    /// # Errors
    ///
    /// None today: every cap works. The `Result` is the signature every codec's `set_max_frame_length` shares.
    pub fn set_max_frame_length(&mut self, max: usize) -> Result<(), CodecError> {
        self.max = max;
        Ok(())
    }

    /// Whether the cap failed the stream; every later `decode` fails.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// A snapshot of the counters. `bytes` is not tracked here (the inner item type is opaque); `frames` counts
    /// items the inner decoder produced.
    pub fn metrics(&self) -> CodecMetrics {
        self.metrics
    }

    /// Attaches shared counters (and their live maximum, from the next `decode` call), replacing any attached
    /// before, or detaches with `None`. Counts from before attaching are not added to them. Only what this
    /// wrapper counts is added (frames, too long, discarded bytes); attach the inner decoder too for its counts.
    ///
    /// # Examples
    ///
    /// See [`CodecStats`].
    pub fn set_stats(&mut self, stats: Option<&CodecStats>) {
        self.stats = stats.map(|s| s.attach(self.metrics, (0, usize::MAX)));
    }

    /// The shared counters this decoder adds to, if attached.
    pub fn stats(&self) -> Option<&CodecStats> {
        self.stats.as_deref().map(Attachment::stats)
    }

    /// The wrapped decoder.
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The wrapped decoder, mutably.
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwraps the inner decoder.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// Applies the policy to a frame of (at least) `len` bytes; under `Skip` the caller drops it.
    fn oversize(&mut self, len: usize) -> Result<(), CodecError> {
        self.metrics.too_long += 1;
        crate::trace::debug!(
            "frame refused: too long", len = len, max = self.max, policy = ?self.policy
        );
        if self.policy == OversizePolicy::Fail || self.pristine.is_none() {
            self.state = State::Failed;
            return Err(CodecError::FrameTooLong {
                len: len as u64,
                max: self.max,
            });
        }
        self.on_skip.skipped(len as u64, self.max);
        Ok(())
    }

    /// Drops the `held` bytes of an unfinished oversize frame and restarts the inner decoder on what follows.
    fn drop_unfinished(&mut self, src: &mut BytesMut, held: usize) {
        if let Some((pristine, clone)) = &self.pristine {
            self.inner = clone(pristine);
        }
        src.clear();
        self.taken = 0;
        self.metrics.discarded_bytes += held as u64;
        self.state = State::Resyncing;
    }
}

impl<D: Clone> Capped<D> {
    /// Changes the oversize policy from the next call on. A `Capped` made by [`new`](Capped::new) has no copy of
    /// its inner decoder's initial state yet: switching it to [`OversizePolicy::Skip`] takes a copy of the inner
    /// decoder as it is now, to restart from after a skip, so switch between frames.
    pub fn set_oversize_policy(&mut self, policy: OversizePolicy) {
        if policy == OversizePolicy::Skip && self.pristine.is_none() {
            self.pristine = Some((self.inner.clone(), D::clone));
        }
        self.policy = policy;
    }
}

/// Every decoder error converts from `io::Error`, so the cap's own errors travel inside the inner error type.
fn lift<E: From<std::io::Error>>(err: CodecError) -> E {
    E::from(err.into())
}

impl<D: Decoder> Capped<D> {
    /// `next_frame` for a decoder with shared counters: take a new live maximum first, add the counts after.
    #[cold]
    #[inline(never)]
    fn next_frame_attached(
        &mut self,
        src: &mut BytesMut,
        eof: bool,
    ) -> Result<Option<D::Item>, D::Error> {
        if let Some(max) = self.stats.as_mut().and_then(|a| a.new_max()) {
            self.max = max;
        }
        let result = self.next_frame(src, eof);
        if let Some(attached) = &mut self.stats {
            attached.sync(&self.metrics);
        }
        result
    }

    /// The next frame of at most `max` bytes, `decode_eof` at the end of the stream.
    fn next_frame(&mut self, src: &mut BytesMut, eof: bool) -> Result<Option<D::Item>, D::Error> {
        loop {
            if self.state == State::Failed {
                return Err(lift(CodecError::Failed));
            }
            let before = src.len();
            let item = if eof {
                self.inner.decode_eof(src)?
            } else {
                self.inner.decode(src)?
            };
            let taken = self.taken.saturating_add(before.saturating_sub(src.len()));
            let Some(item) = item else {
                let held = taken.saturating_add(src.len());
                if held > self.max {
                    if self.state == State::Reading {
                        self.oversize(held).map_err(lift)?;
                    }
                    self.drop_unfinished(src, held);
                } else {
                    self.taken = taken;
                }
                if eof {
                    // Nothing more will come: a frame being dropped ends here.
                    if self.state == State::Resyncing {
                        self.metrics.discarded_bytes += self.taken as u64;
                        self.state = State::Reading;
                    }
                    self.taken = 0;
                }
                return Ok(None);
            };
            self.taken = 0;
            if self.state == State::Resyncing {
                self.state = State::Reading;
                self.metrics.discarded_bytes += taken as u64;
                continue;
            }
            if taken > self.max {
                self.oversize(taken).map_err(lift)?;
                self.metrics.discarded_bytes += taken as u64;
                continue;
            }
            self.metrics.frames += 1;
            return Ok(Some(item));
        }
    }
}

impl<D: Decoder> Decoder for Capped<D> {
    type Item = D::Item;
    type Error = D::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<D::Item>, D::Error> {
        if self.stats.is_none() {
            return self.next_frame(src, false);
        }
        self.next_frame_attached(src, false)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<D::Item>, D::Error> {
        if self.stats.is_none() {
            return self.next_frame(src, true);
        }
        self.next_frame_attached(src, true)
    }
}

impl<D: Encoder<I>, I> Encoder<I> for Capped<D> {
    type Error = D::Error;

    fn encode(&mut self, item: I, dst: &mut BytesMut) -> Result<(), D::Error> {
        self.inner.encode(item, dst)
    }
}

impl<D> fmt::Debug for Capped<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capped")
            .field("inner", &std::any::type_name::<D>())
            .field("max", &self.max)
            .field("policy", &self.policy)
            .field("state", &self.state)
            .field("taken", &self.taken)
            .field("metrics", &self.metrics)
            .finish()
    }
}
