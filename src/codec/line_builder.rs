//! Builder for [`LineCodec`].

use super::skip_hook::SkipHook;
use super::{CodecError, LineCodec, OversizePolicy};

/// Configures a [`LineCodec`]; obtained from [`LineCodec::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`max_frame_length`](Self::max_frame_length) | none: [`build`](Self::build) fails without it |
/// | [`oversize_policy`](Self::oversize_policy) | [`OversizePolicy::Fail`] |
/// | [`skip_hook`](Self::skip_hook) | none |
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use futures_util::StreamExt;
/// use tidegate::codec::{FrameReader, LineCodec, OversizePolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tidegate::codec::CodecError> {
/// let skipped = Arc::new(AtomicU64::new(0));
/// let seen = Arc::clone(&skipped);
/// let codec = LineCodec::builder()
///     .max_frame_length(4)
///     .oversize_policy(OversizePolicy::Skip)
///     .skip_hook(move |_| {
///         seen.fetch_add(1, Ordering::Relaxed);
///     })
///     .build()?;
/// let mut lines = FrameReader::new(&b"far too long\nok\n"[..], codec);
/// assert_eq!(lines.next().await.unwrap()?, "ok");
/// assert_eq!(skipped.load(Ordering::Relaxed), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct LineCodecBuilder {
    max: Option<usize>,
    policy: OversizePolicy,
    on_skip: SkipHook,
    stats: Option<super::CodecStats>,
}

impl LineCodecBuilder {
    /// The longest line accepted, line ending not counted. Required.
    pub fn max_frame_length(&mut self, max: usize) -> &mut Self {
        self.max = Some(max);
        self
    }

    /// What to do with a line longer than the maximum.
    pub fn oversize_policy(&mut self, policy: OversizePolicy) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Calls `hook` each time [`OversizePolicy::Skip`] starts discarding a line, with the
    /// [`CodecError::FrameTooLong`] that [`OversizePolicy::Fail`] would have returned (`len` is what is known of the
    /// line so far). See [`LengthFieldCodecBuilder::skip_hook`](super::LengthFieldCodecBuilder::skip_hook).
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
    /// [`CodecError::MissingMaxFrameLength`] if no maximum was set.
    pub fn build(&self) -> Result<LineCodec, CodecError> {
        let max = self.max.ok_or(CodecError::MissingMaxFrameLength)?;
        let mut codec = LineCodec::from_parts(max, self.policy, self.on_skip.clone());
        codec.set_stats(self.stats.as_ref());
        Ok(codec)
    }
}
