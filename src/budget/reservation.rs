//! The RAII proof that bytes were granted.

use std::fmt;

use super::error::BudgetError;
use super::memory_budget::MemoryBudget;

/// Bytes granted by a [`MemoryBudget`], given back when this is dropped.
///
/// # Examples
///
/// ```
/// let budget = tidegate::MemoryBudget::new(100);
/// let mut r = budget.try_reserve(10).unwrap();
/// r.try_grow(40).unwrap();
/// assert_eq!(budget.used(), 50);
/// r.shrink_to(5);
/// assert_eq!(budget.used(), 5);
/// drop(r);
/// assert_eq!(budget.used(), 0);
/// ```
#[must_use = "dropping a Reservation gives its bytes back at once"]
pub struct Reservation {
    budget: MemoryBudget,
    bytes: usize,
}

impl Reservation {
    pub(super) fn new(budget: MemoryBudget, bytes: usize) -> Self {
        Reservation { budget, bytes }
    }

    /// Bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget the bytes were reserved from.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Gives back everything above `bytes`. Does nothing if `bytes` is not smaller than the current size.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Tries to add `additional` bytes without waiting.
    ///
    /// # Errors
    ///
    /// The same as [`MemoryBudget::try_reserve`]; on error the reservation keeps its current size.
    pub fn try_grow(&mut self, additional: usize) -> Result<(), BudgetError> {
        let grown = self.budget.try_reserve(additional)?;
        self.merge(grown);
        Ok(())
    }

    /// Moves `bytes` (at most all of them) out of this reservation into a new one from the same budget.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = tidegate::MemoryBudget::new(100);
    /// let mut whole = budget.try_reserve(30).unwrap();
    /// let part = whole.split(10);
    /// assert_eq!((whole.bytes(), part.bytes(), budget.used()), (20, 10, 30));
    /// ```
    pub fn split(&mut self, bytes: usize) -> Reservation {
        let moved = bytes.min(self.bytes);
        self.bytes -= moved;
        Reservation::new(self.budget.clone(), moved)
    }

    /// Keeps the bytes reserved but stops tracking them here: the caller takes over the duty to give them back with
    /// [`MemoryBudget::release_detached`]. Lets a pooled buffer carry its charge without carrying a `Reservation`.
    pub(crate) fn detach(mut self) -> usize {
        std::mem::take(&mut self.bytes)
    }

    /// Adds `other`'s bytes to this reservation.
    ///
    /// # Panics
    ///
    /// If `other` belongs to a different budget: its bytes would be given back to the wrong one.
    pub fn merge(&mut self, mut other: Reservation) {
        assert!(
            self.budget.ptr_eq(&other.budget),
            "Reservation::merge across different budgets"
        );
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}
