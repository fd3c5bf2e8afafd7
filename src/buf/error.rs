//! Why a pool refused a buffer, or a builder a configuration.

use crate::budget::BudgetError;

/// Why a [`BufPool`](super::BufPool) refused a buffer, or [`BufPoolBuilder::build`](super::BufPoolBuilder::build)
/// a configuration.
///
/// The budget's own error is the [`source`](std::error::Error::source) of a refusal and is not repeated in this
/// error's message, so a report that walks the chain prints each cause once.
///
/// # Examples
///
/// ```
/// use std::error::Error;
/// use tidegate::buf::{BufPool, PoolError};
///
/// let pool = BufPool::builder().max_outstanding_bytes(1024).build()?;
/// let err = pool.try_acquire(4096).unwrap_err();
/// assert!(matches!(err, PoolError::Budget { capacity: 4096, .. }));
/// assert_eq!(err.to_string(), "buffer pool refused a 4096-byte buffer");
/// assert!(err.source().is_some()); // the budget's reason
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The pool's memory budget cannot cover the buffer's capacity.
    #[error("buffer pool refused a {capacity}-byte buffer")]
    Budget {
        /// The capacity the buffer would have had (its size class, or the request if unpooled).
        capacity: usize,
        /// What the budget said.
        #[source]
        source: BudgetError,
    },
    /// The builder was given no size class.
    #[error("a buffer pool needs at least one size class")]
    NoSizeClasses,
    /// The builder was given a size class of 0 bytes.
    #[error("a buffer pool's size classes must be larger than 0 bytes")]
    ZeroSizeClass,
    /// The per-thread cache set on the builder is larger than the retained cap it is claimed from, so no thread
    /// could ever have one.
    #[error(
        "thread_cache_bytes ({thread_cache_bytes}) is larger than max_retained_bytes ({max_retained_bytes}): \
         no thread could ever cache"
    )]
    ThreadCacheExceedsRetained {
        /// The configured per-thread cache.
        thread_cache_bytes: usize,
        /// The configured retained cap.
        max_retained_bytes: usize,
    },
}

/// A refusal is [`OutOfMemory`](std::io::ErrorKind::OutOfMemory), never `WouldBlock`: an I/O loop that retries on
/// `WouldBlock` would spin instead of waiting for the budget. A configuration error is `InvalidInput`.
impl From<PoolError> for std::io::Error {
    fn from(err: PoolError) -> Self {
        let kind = match err {
            PoolError::Budget { .. } => std::io::ErrorKind::OutOfMemory,
            _ => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, err)
    }
}
