//! The largest frame a decoder accepts, for checking a connection's limits before it starts.

use crate::codec::{Capped, DelimiterCodec, LengthFieldCodec, LineCodec};

/// A decoder with a maximum frame length, which [`ConnectionBuilder::build`](super::ConnectionBuilder::build)
/// checks the write queue's hard cap and the memory budget against.
///
/// Implemented for every tidegate codec; wrap any other decoder in [`Capped`] to give it one.
///
/// # Examples
///
/// ```
/// use tidegate::codec::LineCodec;
/// use tidegate::conn::MaxFrameLength;
///
/// assert_eq!(MaxFrameLength::max_frame_length(&LineCodec::new(512)), 512);
/// ```
pub trait MaxFrameLength {
    /// The largest frame, in bytes, this decoder accepts (and that the connection plans memory for).
    fn max_frame_length(&self) -> usize;
}

impl MaxFrameLength for LengthFieldCodec {
    fn max_frame_length(&self) -> usize {
        LengthFieldCodec::max_frame_length(self)
    }
}

impl MaxFrameLength for LineCodec {
    fn max_frame_length(&self) -> usize {
        LineCodec::max_frame_length(self)
    }
}

impl MaxFrameLength for DelimiterCodec {
    fn max_frame_length(&self) -> usize {
        DelimiterCodec::max_frame_length(self)
    }
}

impl<D> MaxFrameLength for Capped<D> {
    fn max_frame_length(&self) -> usize {
        Capped::max_frame_length(self)
    }
}
