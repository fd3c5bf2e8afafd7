//! Why a set of marks was refused.

/// Marks that cannot describe a queue, refused by [`Limits::try_new`](super::Limits::try_new) with the numbers.
///
/// # Examples
///
/// ```
/// use tidegate::watermark::{Limits, LimitsError};
///
/// let err = Limits::try_new(64, 32, 128).unwrap_err();
/// assert!(matches!(err, LimitsError::Unordered { low: 64, high: 32, hard: 128 }));
/// assert_eq!(err.to_string(), "watermark marks must satisfy low <= high <= hard, got low 64, high 32, hard 128");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// The marks are not ordered `low <= high <= hard`.
    #[error(
        "watermark marks must satisfy low <= high <= hard, got low {low}, high {high}, hard {hard}"
    )]
    Unordered {
        /// The low mark asked for.
        low: usize,
        /// The high mark asked for.
        high: usize,
        /// The hard cap asked for.
        hard: usize,
    },
    /// The hard cap does not fit the queue's state word (its top bit holds the writability).
    #[error("watermark hard cap {hard} is over the largest supported, {max}")]
    HardTooLarge {
        /// The hard cap asked for.
        hard: usize,
        /// The largest hard cap supported.
        max: usize,
    },
}

impl From<LimitsError> for std::io::Error {
    /// A configuration mistake is the caller's: [`InvalidInput`](std::io::ErrorKind::InvalidInput).
    fn from(err: LimitsError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, err)
    }
}
