//! The RAII proof that bytes were granted.

use std::fmt;
use std::panic::Location;

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
    /// The record of this reservation in its budget's leak tracking, or 0 when it is not tracked.
    leak_id: u64,
}

impl Reservation {
    /// Bytes just charged to `budget` at `location`, recorded if the budget tracks reservations.
    pub(super) fn new(
        budget: MemoryBudget,
        bytes: usize,
        location: &'static Location<'static>,
    ) -> Self {
        let leak_id = budget.node.leaks.track(bytes, location);
        Reservation {
            budget,
            bytes,
            leak_id,
        }
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
            self.set_bytes(bytes);
        }
    }

    /// Tries to add `additional` bytes without waiting.
    ///
    /// # Errors
    ///
    /// The same as [`MemoryBudget::try_reserve`]; on error the reservation keeps its current size.
    pub fn try_grow(&mut self, additional: usize) -> Result<(), BudgetError> {
        self.budget.try_take(additional)?;
        self.set_bytes(self.bytes + additional);
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
    ///
    /// When the budget tracks reservations, the new one is listed with the same acquisition site and time as this
    /// one: the bytes were acquired there and then.
    pub fn split(&mut self, bytes: usize) -> Reservation {
        let moved = bytes.min(self.bytes);
        self.bytes -= moved;
        let leak_id = match self.leak_id {
            0 => 0,
            id => self.budget.node.leaks.split(id, moved),
        };
        Reservation {
            budget: self.budget.clone(),
            bytes: moved,
            leak_id,
        }
    }

    /// Keeps the bytes reserved but stops tracking them here: the caller takes over the duty to give them back with
    /// [`MemoryBudget::release_detached`]. Lets a pooled buffer carry its charge without carrying a `Reservation`.
    /// The budget's leak tracking forgets the reservation (a pool tracks its buffers itself).
    pub(crate) fn detach(mut self) -> usize {
        self.budget
            .node
            .leaks
            .untrack(std::mem::take(&mut self.leak_id));
        std::mem::take(&mut self.bytes)
    }

    /// Changes the size, and the size the leak tracking lists.
    fn set_bytes(&mut self, bytes: usize) {
        self.bytes = bytes;
        if self.leak_id != 0 {
            self.budget.node.leaks.resize(self.leak_id, bytes);
        }
    }

    /// Adds `other`'s bytes to this reservation.
    ///
    /// When the budget tracks reservations, the merged bytes are listed under this reservation's acquisition site
    /// and time (or not at all if this one is not tracked); `other`'s record is dropped. Growing with
    /// [`try_grow`](Self::try_grow) works the same way.
    ///
    /// # Panics
    ///
    /// If `other` belongs to a different budget: its bytes would be given back to the wrong one.
    pub fn merge(&mut self, mut other: Reservation) {
        assert!(
            self.budget.ptr_eq(&other.budget),
            "Reservation::merge across different budgets"
        );
        // `other` is dropped on return with no bytes, which also drops its record.
        let bytes = self.bytes + std::mem::take(&mut other.bytes);
        self.set_bytes(bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.node.leaks.untrack(self.leak_id);
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
