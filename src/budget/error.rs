//! Why a budget refused bytes.

/// Why a budget refused bytes.
///
/// # Examples
///
/// ```
/// use tidegate::budget::{BudgetError, MemoryBudget};
///
/// let budget = MemoryBudget::new(10);
/// let _held = budget.try_reserve(8).unwrap();
/// assert_eq!(
///     budget.try_reserve(5).unwrap_err(),
///     BudgetError::Exhausted { requested: 5, used: 8, limit: 10 }
/// );
/// assert_eq!(
///     budget.try_reserve(11).unwrap_err(),
///     BudgetError::ExceedsLimit { requested: 11, limit: 10 }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The bytes do not fit right now; they may fit once other reservations are dropped.
    #[error("memory budget exhausted: {requested} bytes requested while {used} of {limit} bytes are in use")]
    Exhausted {
        /// Bytes asked for.
        requested: usize,
        /// Bytes in use at the budget that refused (this one or an ancestor).
        used: usize,
        /// The limit of the budget that refused.
        limit: usize,
    },
    /// The request is larger than the limit itself, so waiting would never help.
    #[error("{requested} bytes requested but the memory budget's limit is {limit} bytes; it can never fit")]
    ExceedsLimit {
        /// Bytes asked for.
        requested: usize,
        /// The smallest limit on the way from this budget to the root.
        limit: usize,
    },
}

/// Always [`OutOfMemory`](std::io::ErrorKind::OutOfMemory), never `WouldBlock`: an I/O loop that retries on
/// `WouldBlock` would spin instead of waiting for the bytes.
impl From<BudgetError> for std::io::Error {
    fn from(err: BudgetError) -> Self {
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, err)
    }
}
