use crate::budget::BudgetError;

/// Why a [`BufPool`](super::BufPool) refused a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The pool's memory budget cannot cover the buffer's capacity.
    #[error("buffer pool refused a {capacity}-byte buffer: {source}")]
    Budget {
        /// The capacity the buffer would have had (its size class, or the request if unpooled).
        capacity: usize,
        /// What the budget said.
        #[source]
        source: BudgetError,
    },
}

impl From<PoolError> for std::io::Error {
    fn from(err: PoolError) -> Self {
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, err)
    }
}
