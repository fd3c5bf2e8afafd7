//! Counters of one budget.

/// A point-in-time view of a budget's counters.
///
/// `used` and `peak` include the reservations of child budgets; `granted`, `refused` and `waits` count only the
/// requests made on this budget itself.
///
/// # Examples
///
/// ```
/// let budget = tidegate::MemoryBudget::new(100);
/// drop(budget.try_reserve(70).unwrap());
/// let m = budget.metrics();
/// assert_eq!((m.used, m.peak, m.granted), (0, 70, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BudgetMetrics {
    /// The limit in bytes (`usize::MAX` when unlimited).
    pub limit: usize,
    /// Bytes reserved now.
    pub used: usize,
    /// The highest `used` seen.
    pub peak: usize,
    /// Reservations granted (each growth counts as one).
    pub granted: u64,
    /// Requests refused by `try_reserve` or `try_grow`.
    pub refused: u64,
    /// Calls to `reserve` that had to wait at least once.
    pub waits: u64,
}
