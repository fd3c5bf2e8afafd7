//! Builder for [`Capped`].

use super::capped::Restart;
use super::skip_hook::SkipHook;
use super::{Capped, CodecError, OversizePolicy};

/// Configures a [`Capped`] around an inner decoder; obtained from [`Capped::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`max_frame_length`](Self::max_frame_length) | none: [`build`](Self::build) fails without it |
/// | [`oversize_policy`](Self::oversize_policy) | [`OversizePolicy::Fail`] |
/// | [`skip_hook`](Self::skip_hook) | none |
///
/// [`build`](Self::build) needs `D: Clone`: the built codec keeps a copy of the inner decoder as given here, to
/// restart it from after a skip. [`Capped::new`] makes a `Fail` cap around a decoder that is not `Clone`.
#[derive(Clone)]
pub struct CappedBuilder<D> {
    inner: D,
    max: Option<usize>,
    policy: OversizePolicy,
    on_skip: SkipHook,
    stats: Option<super::CodecStats>,
}

impl<D> CappedBuilder<D> {
    pub(super) fn new(inner: D) -> Self {
        CappedBuilder {
            inner,
            max: None,
            policy: OversizePolicy::Fail,
            on_skip: SkipHook::default(),
            stats: None,
        }
    }

    /// The most bytes one frame may take, header or delimiter included. Required.
    pub fn max_frame_length(&mut self, max: usize) -> &mut Self {
        self.max = Some(max);
        self
    }

    /// What to do with a frame longer than the cap.
    pub fn oversize_policy(&mut self, policy: OversizePolicy) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Calls `hook` each time [`OversizePolicy::Skip`] drops a frame, with the [`CodecError::FrameTooLong`] that
    /// [`OversizePolicy::Fail`] would have returned (`len` is what is known of the frame so far). See
    /// [`LengthFieldCodecBuilder::skip_hook`](super::LengthFieldCodecBuilder::skip_hook).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use bytes::BytesMut;
    /// use tidegate::codec::{Capped, OversizePolicy};
    /// use tokio_util::codec::{Decoder, LinesCodec};
    ///
    /// let skipped = Arc::new(AtomicU64::new(0));
    /// let seen = Arc::clone(&skipped);
    /// let mut codec = Capped::builder(LinesCodec::new())
    ///     .max_frame_length(8)
    ///     .oversize_policy(OversizePolicy::Skip)
    ///     .skip_hook(move |_| {
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .build()?;
    /// let mut buf = BytesMut::from("far too long\nok\n");
    /// assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
    /// assert_eq!(skipped.load(Ordering::Relaxed), 1);
    /// # Ok::<(), tidegate::codec::CodecError>(())
    /// ```
    pub fn skip_hook(&mut self, hook: impl Fn(&CodecError) + Send + Sync + 'static) -> &mut Self {
        self.on_skip = SkipHook::new(hook);
        self
    }
}

impl<D: Clone> CappedBuilder<D> {
    /// Attaches shared counters, and their live maximum, to every codec this builder builds: see
    /// [`CodecStats`](super::CodecStats). Default: none.
    pub fn stats(&mut self, stats: &super::CodecStats) -> &mut Self {
        self.stats = Some(stats.clone());
        self
    }

    /// Builds the cap around a copy of the inner decoder.
    ///
    /// # Errors
    ///
    /// [`CodecError::MissingMaxFrameLength`] if no maximum was set.
    pub fn build(&self) -> Result<Capped<D>, CodecError> {
        let max = self.max.ok_or(CodecError::MissingMaxFrameLength)?;
        let pristine: Restart<D> = (self.inner.clone(), D::clone);
        let mut codec = Capped::from_parts(
            self.inner.clone(),
            max,
            self.policy,
            Some(pristine),
            self.on_skip.clone(),
        );
        codec.set_stats(self.stats.as_ref());
        Ok(codec)
    }
}

impl<D> std::fmt::Debug for CappedBuilder<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CappedBuilder")
            .field("inner", &std::any::type_name::<D>())
            .field("max", &self.max)
            .field("policy", &self.policy)
            .field("on_skip", &self.on_skip)
            .field("stats", &self.stats)
            .finish()
    }
}
