//! What a decoder does with a frame longer than its maximum.

/// What a decoder does with a frame longer than its maximum.
///
/// The default is [`Fail`](Self::Fail): an oversize frame usually means a broken or hostile peer.
///
/// # Examples
///
/// ```
/// use tidegate::codec::{LineCodec, OversizePolicy};
///
/// let codec = LineCodec::builder().max_frame_length(1024).oversize_policy(OversizePolicy::Skip).build()?;
/// assert_eq!(codec.oversize_policy(), OversizePolicy::Skip);
/// # Ok::<(), tidegate::codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OversizePolicy {
    /// Return [`CodecError::FrameTooLong`](super::CodecError::FrameTooLong) and stay failed: every later call
    /// returns [`CodecError::Failed`](super::CodecError::Failed). The caller should close the connection.
    #[default]
    Fail,
    /// Discard the oversize frame as its bytes arrive, without buffering them, then go on with the next frame.
    /// Each discarded frame is counted in `too_long` and its bytes in `discarded_bytes`, and reported as it happens
    /// to the decoder's skip hook if it has one (`skip_hook` on each builder, e.g.
    /// [`LengthFieldCodecBuilder::skip_hook`](super::LengthFieldCodecBuilder::skip_hook)): the stream of frames itself
    /// carries no event, since `FramedRead` ends at the first error.
    ///
    /// A header claiming a frame no machine could hold, or one shorter than the header, is fatal under this policy
    /// too: nothing could be skipped past it.
    Skip,
}
