//! Connection configurations that cannot work.

use crate::watermark::LimitsError;

/// A [`ConnectionBuilder`](super::ConnectionBuilder) configuration that cannot work, refused by
/// [`build`](super::ConnectionBuilder::build) with the numbers that do not fit.
///
/// # Examples
///
/// ```
/// use tidegate::codec::LengthFieldCodec;
/// use tidegate::conn::{Connection, ConnectionBuildError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (stream, _peer) = tokio::io::duplex(64);
/// let codec = LengthFieldCodec::new(64 * 1024);
/// let err = Connection::builder()
///     .high_mark(32 * 1024)
///     .hard_cap(64 * 1024) // 32 KiB queued + one 64 KiB frame does not fit
///     .build(stream, codec.clone(), codec)
///     .unwrap_err();
/// assert!(matches!(err, ConnectionBuildError::HardCapTooSmall { hard: 65536, needed: 106496, .. }));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionBuildError {
    /// The low, high and hard marks are out of order (or the hard cap is too large).
    #[error("invalid write-queue marks: {0}")]
    Marks(#[from] LimitsError),
    /// The write queue cannot hold a batch with one maximum-size frame on top of the high mark: a handler
    /// writing at the high mark would be refused instead of waiting.
    #[error("hard cap of {hard} bytes cannot hold the high mark ({high}) plus one batch with a {max_frame}-byte frame: needs {needed}")]
    HardCapTooSmall {
        /// The hard cap asked for.
        hard: usize,
        /// The high mark asked for.
        high: usize,
        /// The decoder's maximum frame length.
        max_frame: usize,
        /// The smallest hard cap that works: `high + max_frame + 8 KiB` (a write batch).
        needed: usize,
    },
    /// The memory budget cannot hold what one maximum-size frame needs, so the connection could never finish one.
    #[error(
        "memory budget of {limit} bytes cannot hold one {max_frame}-byte frame: needs {needed}"
    )]
    BudgetTooSmall {
        /// The budget's limit.
        limit: usize,
        /// The decoder's maximum frame length.
        max_frame: usize,
        /// The smallest limit that works: what the read buffer needs for one frame (`1.5 × max_frame + read
        /// size`), or a write batch (`max_frame + 8 KiB`) if larger.
        needed: usize,
    },
}
