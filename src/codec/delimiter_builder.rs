//! Builder for [`DelimiterCodec`].

use memchr::memmem::Finder;

use super::skip_hook::SkipHook;
use super::{CodecError, DelimiterCodec, OversizePolicy};

/// Configures a [`DelimiterCodec`]; obtained from [`DelimiterCodec::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`delimiters`](Self::delimiters) | none: [`build`](Self::build) fails without one |
/// | [`max_frame_length`](Self::max_frame_length) | none: [`build`](Self::build) fails without it |
/// | [`oversize_policy`](Self::oversize_policy) | [`OversizePolicy::Fail`] |
/// | [`skip_hook`](Self::skip_hook) | none |
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use bytes::BytesMut;
/// use tidegate::codec::{DelimiterCodec, OversizePolicy};
/// use tokio_util::codec::Decoder;
///
/// let skipped = Arc::new(AtomicU64::new(0));
/// let seen = Arc::clone(&skipped);
/// let mut codec = DelimiterCodec::builder()
///     .delimiters([";"])
///     .max_frame_length(4)
///     .oversize_policy(OversizePolicy::Skip)
///     .skip_hook(move |_| {
///         seen.fetch_add(1, Ordering::Relaxed);
///     })
///     .build()?;
/// let mut buf = BytesMut::from(&b"far-too-long;ok;"[..]);
/// assert_eq!(codec.decode(&mut buf)?.unwrap(), "ok");
/// assert_eq!(skipped.load(Ordering::Relaxed), 1);
/// # Ok::<(), tidegate::codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct DelimiterCodecBuilder {
    delimiters: Vec<Vec<u8>>,
    max: Option<usize>,
    policy: OversizePolicy,
    on_skip: SkipHook,
    stats: Option<super::CodecStats>,
}

impl DelimiterCodecBuilder {
    /// The delimiters that end a frame, replacing any set before; see [`DelimiterCodec`] for which one wins.
    /// Required.
    pub fn delimiters<I, D>(&mut self, delimiters: I) -> &mut Self
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[u8]>,
    {
        self.delimiters = delimiters
            .into_iter()
            .map(|d| d.as_ref().to_vec())
            .collect();
        self
    }

    /// The longest frame accepted, delimiter not counted. Required.
    pub fn max_frame_length(&mut self, max: usize) -> &mut Self {
        self.max = Some(max);
        self
    }

    /// What to do with a frame longer than the maximum.
    pub fn oversize_policy(&mut self, policy: OversizePolicy) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Calls `hook` each time [`OversizePolicy::Skip`] starts discarding a frame, with the
    /// [`CodecError::FrameTooLong`] that [`OversizePolicy::Fail`] would have returned (`len` is what is known of the
    /// frame so far). See [`LengthFieldCodecBuilder::skip_hook`](super::LengthFieldCodecBuilder::skip_hook).
    pub fn skip_hook(&mut self, hook: impl Fn(&CodecError) + Send + Sync + 'static) -> &mut Self {
        self.on_skip = SkipHook::new(hook);
        self
    }

    /// Attaches shared counters, and their live maximum, to every codec this builder builds: see
    /// [`CodecStats`](super::CodecStats). Default: none.
    pub fn stats(&mut self, stats: &super::CodecStats) -> &mut Self {
        self.stats = Some(stats.clone());
        self
    }

    /// Builds the codec.
    ///
    /// # Errors
    ///
    /// * [`CodecError::MissingMaxFrameLength`] if no maximum was set;
    /// * [`CodecError::EmptyDelimiter`] if there is no delimiter or one of them is empty.
    pub fn build(&self) -> Result<DelimiterCodec, CodecError> {
        let max = self.max.ok_or(CodecError::MissingMaxFrameLength)?;
        let finders = self
            .delimiters
            .iter()
            .map(|d| Finder::new(d).into_owned())
            .collect();
        let mut codec =
            DelimiterCodec::from_parts(finders, max, self.policy, self.on_skip.clone())?;
        codec.set_stats(self.stats.as_ref());
        Ok(codec)
    }
}
