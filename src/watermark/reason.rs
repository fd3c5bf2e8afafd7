//! Why a watermark queue stopped accepting items.

use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Why a watermark queue stopped accepting items, as reported by [`Sender::closed`](super::Sender::closed) and in
/// [`SendError::Closed`](super::SendError::Closed).
///
/// # Examples
///
/// ```
/// use tidegate::watermark::{self, CloseReason};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = watermark::channel::<bytes::Bytes>(Default::default());
/// drop(rx);
/// assert!(matches!(tx.closed().await, CloseReason::ReceiverDropped));
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// A sender called `close()`: nothing new is accepted; what was queued is still delivered.
    #[error("the watermark queue was closed; queued items are still delivered")]
    Closed,
    /// A sender called `abort()`: queued items were dropped and counted as undelivered.
    #[error("the watermark queue was aborted; queued items were dropped")]
    Aborted,
    /// The receiver (or the writer task owning it) was dropped.
    #[error("the receiving side of the watermark queue was dropped")]
    ReceiverDropped,
    /// The peer was disconnected because the queue stayed unwritable (above its low mark after passing the high
    /// mark) for longer than the writer's `evict_after`.
    #[error("slow peer evicted: the queue stayed unwritable for more than {after:?}")]
    Evicted {
        /// The configured eviction delay.
        after: Duration,
    },
    /// A single write made no progress for longer than the writer's `stall_timeout`.
    #[error("a write made no progress for {timeout:?}")]
    Stalled {
        /// The configured stall timeout.
        timeout: Duration,
    },
    /// Writing to or flushing the stream failed.
    #[error("writing to the stream failed")]
    Io(#[source] Arc<io::Error>),
}

impl CloseReason {
    /// Whether the queue was closed gracefully by `close()`, as opposed to an error, eviction or abort.
    pub fn is_graceful(&self) -> bool {
        matches!(self, CloseReason::Closed)
    }

    /// An abort or a writer failure: it replaces a graceful `Closed` met while the queue was still draining.
    pub(crate) fn is_failure(&self) -> bool {
        matches!(
            self,
            CloseReason::Aborted
                | CloseReason::Evicted { .. }
                | CloseReason::Stalled { .. }
                | CloseReason::Io(_)
        )
    }
}

impl CloseReason {
    pub(crate) fn io_kind(&self) -> io::ErrorKind {
        match self {
            // A refusal must never read as "poll again later", even if the stream reported it so.
            CloseReason::Io(err) if err.kind() == io::ErrorKind::WouldBlock => io::ErrorKind::Other,
            CloseReason::Io(err) => err.kind(),
            CloseReason::Evicted { .. } | CloseReason::Stalled { .. } => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::BrokenPipe,
        }
    }
}

impl From<CloseReason> for io::Error {
    fn from(reason: CloseReason) -> Self {
        io::Error::new(reason.io_kind(), reason)
    }
}
