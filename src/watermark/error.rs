//! The error of a refused send.

use std::fmt;
use std::io;

use crate::budget::BudgetError;

use super::CloseReason;

/// A refused send. Every variant hands the item back: refusal is lossless.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use tidegate::watermark::{self, Config, Limits, SendError};
///
/// let (tx, _rx) = watermark::channel(Config::builder().limits(Limits::new(4, 8, 10)).build());
/// tx.try_send(Bytes::from_static(b"12345678")).unwrap();
/// match tx.try_send(Bytes::from_static(b"abc")) {
///     Err(SendError::Full { item, weight: 3, queued: 8, hard: 10 }) => assert_eq!(&item[..], b"abc"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T> {
    /// The item would take the queue over its hard cap now; it may fit once the queue drains.
    #[error("watermark queue full: an item of {weight} bytes does not fit with {queued} bytes queued under a hard cap of {hard}")]
    Full {
        /// The refused item.
        item: T,
        /// Its weight in bytes.
        weight: usize,
        /// Bytes queued when it was refused.
        queued: usize,
        /// The hard cap.
        hard: usize,
    },
    /// The item is heavier than the hard cap itself, so it can never be queued.
    #[error(
        "an item of {weight} bytes can never fit under the watermark hard cap of {hard} bytes"
    )]
    TooLarge {
        /// The refused item.
        item: T,
        /// Its weight in bytes.
        weight: usize,
        /// The hard cap.
        hard: usize,
    },
    /// The queue's [`MemoryBudget`](crate::budget::MemoryBudget) refused the item's bytes.
    #[error("the memory budget refused a queued item")]
    OverBudget {
        /// The refused item.
        item: T,
        /// The budget's refusal, also the error's [`source`](std::error::Error::source).
        #[source]
        error: BudgetError,
    },
    /// The queue no longer accepts items.
    #[error("the watermark queue is closed")]
    Closed {
        /// The refused item.
        item: T,
        /// Why the queue closed, also the error's [`source`](std::error::Error::source).
        #[source]
        reason: CloseReason,
    },
}

impl<T> SendError<T> {
    /// The refused item.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full { item, .. }
            | SendError::TooLarge { item, .. }
            | SendError::OverBudget { item, .. }
            | SendError::Closed { item, .. } => item,
        }
    }

    /// Whether the queue is closed for good (as opposed to full for now).
    pub fn is_closed(&self) -> bool {
        matches!(self, SendError::Closed { .. })
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full {
                weight,
                queued,
                hard,
                ..
            } => f
                .debug_struct("Full")
                .field("weight", weight)
                .field("queued", queued)
                .field("hard", hard)
                .finish_non_exhaustive(),
            SendError::TooLarge { weight, hard, .. } => f
                .debug_struct("TooLarge")
                .field("weight", weight)
                .field("hard", hard)
                .finish_non_exhaustive(),
            SendError::OverBudget { error, .. } => f
                .debug_struct("OverBudget")
                .field("error", error)
                .finish_non_exhaustive(),
            SendError::Closed { reason, .. } => f
                .debug_struct("Closed")
                .field("reason", reason)
                .finish_non_exhaustive(),
        }
    }
}

/// The item is dropped; the error keeps the numbers. `Full` maps to `Other`, never `WouldBlock`: async code reads
/// `WouldBlock` as "poll again later", which would turn a refusal into a silent retry loop or a lost item. `Closed`
/// maps to the reason's kind.
impl<T> From<SendError<T>> for io::Error {
    fn from(err: SendError<T>) -> Self {
        match err {
            SendError::Closed { reason, .. } => io::Error::from(reason),
            err => io::Error::new(err.io_kind(), err.to_string()),
        }
    }
}

impl<T> SendError<T> {
    /// The `io::ErrorKind` a refusal is reported as.
    pub(crate) fn io_kind(&self) -> io::ErrorKind {
        match self {
            SendError::Full { .. } => io::ErrorKind::Other,
            SendError::TooLarge { .. } => io::ErrorKind::InvalidInput,
            SendError::OverBudget { .. } => io::ErrorKind::OutOfMemory,
            SendError::Closed { reason, .. } => reason.io_kind(),
        }
    }

    /// The same refusal with the item mapped.
    pub(crate) fn map_item<U>(self, f: impl FnOnce(T) -> U) -> SendError<U> {
        match self {
            SendError::Full {
                item,
                weight,
                queued,
                hard,
            } => SendError::Full {
                item: f(item),
                weight,
                queued,
                hard,
            },
            SendError::TooLarge { item, weight, hard } => SendError::TooLarge {
                item: f(item),
                weight,
                hard,
            },
            SendError::OverBudget { item, error } => SendError::OverBudget {
                item: f(item),
                error,
            },
            SendError::Closed { item, reason } => SendError::Closed {
                item: f(item),
                reason,
            },
        }
    }

    /// Whether it is a refusal counted in [`WatermarkMetrics::refused`](super::WatermarkMetrics::refused): the
    /// hard cap or the budget, not a closed queue.
    pub(crate) fn is_refusal(&self) -> bool {
        !self.is_closed()
    }
}
