//! Why a connection ended.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::IdleError;
use crate::budget::BudgetError;
use crate::codec::CodecError;
use crate::watermark::CloseReason;

/// Why a [`Connection`](super::Connection) ended: the error [`Connection::next`](super::Connection::next) returns
/// once reading stopped, to match on instead of decoding `io::ErrorKind`s.
///
/// Whatever the reason, both halves end together: reading stops, the write queue is drained (a graceful end) or
/// dropped (a failure), the socket is closed and the permit and every reservation are released.
///
/// # Examples
///
/// ```
/// use tidegate::conn::ConnClose;
///
/// fn log(reason: &ConnClose) -> &'static str {
///     match reason {
///         ConnClose::PeerClosed => "bye",
///         ConnClose::Evicted { .. } => "slow reader evicted",
///         ConnClose::ShutDown => "server shutting down",
///         _ => "other",
///     }
/// }
/// assert_eq!(log(&ConnClose::PeerClosed), "bye");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnClose {
    /// The peer closed its side (end of stream between frames); queued writes are still delivered.
    #[error("the peer closed the connection")]
    PeerClosed,
    /// The peer kept the write queue unwritable (above its high mark, not back to its low mark) for longer than
    /// [`evict_after`](super::ConnectionBuilder::evict_after): it sends but does not read.
    #[error("slow peer evicted: the write queue stayed unwritable for more than {after:?}")]
    Evicted {
        /// The eviction delay that passed.
        after: Duration,
    },
    /// One write to the peer made no progress for [`stall_timeout`](super::ConnectionBuilder::stall_timeout).
    #[error("a write to the peer made no progress for {timeout:?}")]
    Stalled {
        /// The stall timeout that passed.
        timeout: Duration,
    },
    /// An idle timeout of [`ConnectionBuilder::idle`](super::ConnectionBuilder::idle) passed: the peer sent
    /// nothing for too long, took nothing we wrote for too long, or started too slowly.
    #[error("idle timeout: {0}")]
    Idle(#[source] IdleError),
    /// The peer sent a frame longer than the decoder's maximum.
    #[error("the peer sent a frame of {len} bytes, longer than the maximum of {max} bytes")]
    FrameTooLarge {
        /// The frame's length as the peer announced it, or the bytes seen without a delimiter.
        len: u64,
        /// The decoder's maximum.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("the peer closed the connection with {buffered} bytes of an incomplete frame")]
    Truncated {
        /// The bytes of the incomplete frame.
        buffered: usize,
    },
    /// The decoder refused the peer's bytes for another reason (a malformed header, ...).
    #[error("the peer sent bytes the decoder refused")]
    Decode(#[source] Arc<io::Error>),
    /// The memory budget could not grant the read buffer (see
    /// [`FrameReader`'s budget rules](crate::codec::FrameReader#budget)).
    #[error("the memory budget refused the read buffer")]
    Budget(#[source] BudgetError),
    /// Reading from the socket failed.
    #[error("reading from the peer failed")]
    ReadError(#[source] Arc<io::Error>),
    /// Writing to the socket failed.
    #[error("writing to the peer failed")]
    WriteError(#[source] Arc<io::Error>),
    /// The server's [`Shutdown`](super::Shutdown) was triggered: reading stopped and queued writes are drained
    /// until the drain timeout.
    #[error("the server is shutting down")]
    ShutDown,
    /// This side closed the connection ([`Connection::close`](super::Connection::close) or
    /// [`Sender::close`](crate::watermark::Sender::close) on its queue).
    #[error("the connection was closed by this side")]
    Closed,
    /// The write queue was aborted ([`Sender::abort`](crate::watermark::Sender::abort)) or its writer task
    /// stopped without a report (the runtime shut down, or the drain timeout cut it).
    #[error("the connection was aborted; queued writes were dropped")]
    Aborted,
}

impl ConnClose {
    /// Whether the connection ended without losing queued writes on its side: the peer closed, this side
    /// closed, or a shutdown began (the drain itself may still be cut).
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::conn::ConnClose;
    ///
    /// assert!(ConnClose::PeerClosed.is_graceful());
    /// assert!(!ConnClose::Aborted.is_graceful());
    /// ```
    pub fn is_graceful(&self) -> bool {
        matches!(
            self,
            ConnClose::PeerClosed | ConnClose::ShutDown | ConnClose::Closed
        )
    }

    /// The reason for the read side's error: a decoder refusal, a budget refusal or an I/O error.
    pub(crate) fn from_read(err: io::Error) -> Self {
        match CodecError::from(err) {
            CodecError::FrameTooLong { len, max } => ConnClose::FrameTooLarge { len, max },
            CodecError::UnexpectedEof { buffered } => ConnClose::Truncated { buffered },
            CodecError::Budget(err) => ConnClose::Budget(err),
            CodecError::Io(err) => match IdleError::find(&err) {
                Some(idle) => ConnClose::Idle(*idle),
                None => ConnClose::ReadError(Arc::new(err)),
            },
            other => ConnClose::Decode(Arc::new(other.into())),
        }
    }

    /// The reason for the writer's end.
    pub(crate) fn from_writer(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Closed => ConnClose::Closed,
            CloseReason::Evicted { after } => ConnClose::Evicted { after },
            CloseReason::Stalled { timeout } => ConnClose::Stalled { timeout },
            CloseReason::Io(err) => match IdleError::find(&err) {
                Some(idle) => ConnClose::Idle(*idle),
                None => ConnClose::WriteError(err),
            },
            _ => ConnClose::Aborted,
        }
    }
}
