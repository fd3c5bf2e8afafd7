//! The budget handle: limits, charging, waiting and live limits.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::buf::LeakTracking;
use crate::loom::atomic::Ordering;
use crate::loom::Arc;
use crate::metrics::Outstanding;

use super::error::BudgetError;
use super::metrics::BudgetMetrics;
use super::node::Node;
use super::reservation::Reservation;
use super::wait::Wait;
use super::waiters::{Offer, Waiters};

/// A cheap-to-clone handle to a byte budget.
///
/// Clones share the same limit and usage. See the [module docs](super) for an overview and for the order in which
/// waiters are served.
///
/// # Examples
///
/// ```
/// let budget = tidegate::MemoryBudget::new(100);
/// let same = budget.clone();
/// let _r = same.try_reserve(40).unwrap();
/// assert_eq!(budget.used(), 40);
/// ```
#[derive(Clone)]
pub struct MemoryBudget {
    pub(super) node: Arc<Node>,
}

impl MemoryBudget {
    /// Creates a budget that grants at most `limit_bytes` at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = tidegate::MemoryBudget::new(1 << 20);
    /// assert_eq!(budget.limit(), 1 << 20);
    /// ```
    pub fn new(limit_bytes: usize) -> Self {
        Self::with_node(Node::new(limit_bytes, None, Arc::new(Waiters::new())))
    }

    /// Creates a budget with no limit. It still counts usage, so it is useful for metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = tidegate::MemoryBudget::unlimited();
    /// assert!(budget.is_unlimited());
    /// let _r = budget.try_reserve(usize::MAX / 2).unwrap();
    /// ```
    pub fn unlimited() -> Self {
        Self::new(usize::MAX)
    }

    /// Creates a sub-budget with its own limit. A reservation in the child also counts against this budget (and
    /// its ancestors); it is granted only if every limit on the way up holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let process = tidegate::MemoryBudget::new(100);
    /// let conn = process.child(60);
    /// let _a = conn.try_reserve(60).unwrap();
    /// assert_eq!(process.used(), 60);
    /// assert!(process.try_reserve(41).is_err());
    /// ```
    pub fn child(&self, limit_bytes: usize) -> Self {
        let waiters = Arc::clone(&self.node.waiters);
        Self::with_node(Node::new(
            limit_bytes,
            Some(Arc::clone(&self.node)),
            waiters,
        ))
    }

    fn with_node(node: Node) -> Self {
        MemoryBudget {
            node: Arc::new(node),
        }
    }

    /// Reserves `bytes` if they fit now, without waiting.
    ///
    /// It does not queue behind callers of [`reserve`](Self::reserve) that are waiting: bytes that are free are
    /// granted to whoever asks first.
    ///
    /// # Errors
    ///
    /// [`BudgetError::ExceedsLimit`] if `bytes` is larger than this budget's or an ancestor's limit,
    /// [`BudgetError::Exhausted`] if it does not fit alongside the current reservations.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = tidegate::MemoryBudget::new(10);
    /// let r = budget.try_reserve(10).unwrap();
    /// assert_eq!(r.bytes(), 10);
    /// assert!(budget.try_reserve(1).is_err());
    /// ```
    #[track_caller]
    pub fn try_reserve(&self, bytes: usize) -> Result<Reservation, BudgetError> {
        self.try_take(bytes)?;
        Ok(Reservation::new(self.clone(), bytes, Location::caller()))
    }

    /// Takes `bytes` now or counts a refusal: `try_reserve` without the `Reservation`.
    pub(super) fn try_take(&self, bytes: usize) -> Result<(), BudgetError> {
        self.take(bytes).map_err(|err| {
            self.node.refused.fetch_add(1, Ordering::Relaxed);
            let err = self.node.never_fits(bytes).unwrap_or(err);
            crate::trace::warn_limited!("memory budget refused a reservation", refusal = ?err);
            err
        })
    }

    /// Reserves `bytes`, waiting until they fit.
    ///
    /// A waiting call is queued once, in arrival order, and sleeps until a release (or a raised limit) grants it
    /// the bytes: it is not woken by releases that do not make room for it. See the [module docs](super#fairness)
    /// for the order in which waiters are served.
    ///
    /// # Errors
    ///
    /// [`BudgetError::ExceedsLimit`] at once if `bytes` is larger than this budget's or an ancestor's limit (also if
    /// a limit is lowered below `bytes` while waiting); waiting could never succeed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future reserves nothing. If bytes had already been handed to it (a release chose
    /// it, but it had not run yet), they are given back and offered to the next waiter, so no wake-up is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let budget = tidegate::MemoryBudget::new(10);
    /// let r = budget.reserve(4).await.unwrap();
    /// assert_eq!(budget.used(), 4);
    /// # drop(r);
    /// # }
    /// ```
    #[track_caller]
    pub fn reserve(
        &self,
        bytes: usize,
    ) -> impl Future<Output = Result<Reservation, BudgetError>> + Send + '_ {
        // Taken here, outside the future: `#[track_caller]` does not reach into an async block.
        let location = Location::caller();
        async move {
            if let Some(err) = self.node.never_fits(bytes) {
                return Err(err);
            }
            if self.take(bytes).is_ok() {
                return Ok(Reservation::new(self.clone(), bytes, location));
            }
            self.node.waits.fetch_add(1, Ordering::Relaxed);
            Wait::new(&self.node, bytes).await?;
            Ok(Reservation::new(self.clone(), bytes, location))
        }
    }

    /// Bytes reserved now, including the reservations of child budgets.
    ///
    /// Bytes a release has handed to a waiting [`reserve`](Self::reserve) count as used from that moment, before
    /// the waiting task runs.
    ///
    /// # Examples
    ///
    /// ```
    /// let root = tidegate::MemoryBudget::new(100);
    /// let _r = root.child(50).try_reserve(30).unwrap();
    /// assert_eq!(root.used(), 30);
    /// ```
    pub fn used(&self) -> usize {
        self.node.used.load(Ordering::Relaxed)
    }

    /// This budget's own limit in bytes (`usize::MAX` when unlimited).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tidegate::MemoryBudget::new(7).limit(), 7);
    /// ```
    pub fn limit(&self) -> usize {
        self.node.limit.load(Ordering::Relaxed)
    }

    /// Whether this budget has no limit of its own (ancestors may still limit it).
    ///
    /// # Examples
    ///
    /// ```
    /// let root = tidegate::MemoryBudget::new(10);
    /// assert!(root.child(usize::MAX).is_unlimited());
    /// ```
    pub fn is_unlimited(&self) -> bool {
        self.limit() == usize::MAX
    }

    /// Changes the limit at run time.
    ///
    /// Lowering it below [`used`](Self::used) never revokes existing reservations: new ones are refused until usage
    /// falls, and waiters that can now never fit fail with [`BudgetError::ExceedsLimit`]. Raising it grants waiters
    /// that now fit, in arrival order.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = tidegate::MemoryBudget::new(100);
    /// let held = budget.try_reserve(80).unwrap();
    /// budget.set_limit(50);
    /// assert_eq!(held.bytes(), 80); // kept
    /// assert!(budget.try_reserve(1).is_err());
    /// drop(held);
    /// assert!(budget.try_reserve(50).is_ok());
    /// ```
    pub fn set_limit(&self, limit_bytes: usize) {
        self.node.limit.store(limit_bytes, Ordering::SeqCst);
        self.node.waiters.offer(Offer::LimitChanged);
    }

    /// A snapshot of this budget's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = tidegate::MemoryBudget::new(100);
    /// drop(budget.try_reserve(70).unwrap());
    /// let m = budget.metrics();
    /// assert_eq!((m.used, m.peak, m.granted), (0, 70, 1));
    /// ```
    pub fn metrics(&self) -> BudgetMetrics {
        let node = &self.node;
        BudgetMetrics {
            limit: node.limit.load(Ordering::Relaxed),
            used: node.used.load(Ordering::Relaxed),
            peak: node.peak.load(Ordering::Relaxed),
            granted: node.granted.load(Ordering::Relaxed),
            refused: node.refused.load(Ordering::Relaxed),
            waits: node.waits.load(Ordering::Relaxed),
        }
    }

    /// Starts or stops recording the reservations made on this budget from now on: where (the caller of
    /// [`try_reserve`](Self::try_reserve) or [`reserve`](Self::reserve)) and when each was granted, for
    /// [`leak_report`](Self::leak_report) and [`Registry::leak_report`](crate::metrics::Registry::leak_report).
    ///
    /// Off by default: a reservation then costs one more load and branch. [`LeakTracking::All`] records every
    /// reservation (one lock and one map insertion each); [`LeakTracking::Sampled`] one in `n`, without a
    /// backtrace. Reservations made before tracking was turned on are never listed; turning it off forgets the
    /// records. Only this budget's own reservations are recorded, not those of its child budgets (turn tracking on
    /// for them too) nor the charges of a pool's buffers, which the pool's own tracking lists. A reservation
    /// [`split`](Reservation::split) off a tracked one keeps its site and time; a
    /// [`merge`](Reservation::merge)d or grown one is listed under the site and time of the reservation that
    /// absorbed the bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidegate::buf::LeakTracking;
    ///
    /// let budget = tidegate::MemoryBudget::new(1024);
    /// budget.set_leak_tracking(LeakTracking::All);
    /// let held = budget.try_reserve(100).unwrap();
    /// let report = budget.leak_report(Duration::ZERO);
    /// assert_eq!(report.sites[0].location.file(), file!());
    /// drop(held);
    /// assert!(budget.leak_report(Duration::ZERO).sites.is_empty());
    /// ```
    pub fn set_leak_tracking(&self, tracking: LeakTracking) {
        self.node.leaks.set_mode(tracking);
    }

    /// Whether, and how many of, this budget's reservations are recorded: see
    /// [`set_leak_tracking`](Self::set_leak_tracking).
    pub fn leak_tracking(&self) -> LeakTracking {
        self.node.leaks.mode()
    }

    /// The bytes reserved now ([`used`](Self::used), including child budgets and pools charging this budget), and
    /// when tracking is on, the age of the oldest recorded reservation and the recorded reservations held for
    /// `older_than` or more, grouped by the site that made them. A budget does not count its reservations, so
    /// [`Outstanding::items`] is `None`.
    ///
    /// # Examples
    ///
    /// See [`set_leak_tracking`](Self::set_leak_tracking).
    pub fn leak_report(&self, older_than: Duration) -> Outstanding {
        self.node.leaks.outstanding(self.used(), older_than)
    }

    /// Gives back bytes of a [`Reservation::detach`]ed reservation.
    pub(crate) fn release_detached(&self, bytes: usize) {
        self.give_back(bytes);
    }

    /// Whether two handles refer to the same budget.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = tidegate::MemoryBudget::new(10);
    /// assert!(budget.ptr_eq(&budget.clone()));
    /// assert!(!budget.ptr_eq(&budget.child(10)));
    /// ```
    pub fn ptr_eq(&self, other: &MemoryBudget) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }

    /// Takes `bytes` at every level from this budget to the root, or at none.
    fn take(&self, bytes: usize) -> Result<(), BudgetError> {
        self.node.take(bytes).map_err(|refused| {
            if refused.rolled_back {
                // Someone may have seen the rolled-back bytes in use and left a waiter queued.
                self.node.waiters.offer(Offer::Released);
            }
            refused.err
        })
    }

    /// Gives `bytes` back at every level and offers them to the waiters.
    pub(super) fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.node.give_back(bytes);
        self.node.waiters.offer(Offer::Released);
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .field("is_child", &self.node.parent.is_some())
            .finish()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<MemoryBudget>();
        assert_send_sync::<Reservation>();
        assert_send_sync::<BudgetError>();
    }

    #[test]
    fn failed_parent_take_rolls_back_the_child() {
        let root = MemoryBudget::new(10);
        let child = root.child(100);
        let _hold = root.try_reserve(8).unwrap();
        let err = child.try_reserve(5).unwrap_err();
        assert_eq!(
            err,
            BudgetError::Exhausted {
                requested: 5,
                used: 8,
                limit: 10
            }
        );
        assert_eq!(child.used(), 0, "the child's share must be rolled back");
        assert_eq!(root.used(), 8);
    }

    #[test]
    fn never_fits_uses_the_smallest_limit_on_the_way_up() {
        let root = MemoryBudget::new(10);
        let child = root.child(100);
        assert_eq!(
            child.try_reserve(11).unwrap_err(),
            BudgetError::ExceedsLimit {
                requested: 11,
                limit: 10
            }
        );
    }

    #[test]
    fn zero_byte_reservations_touch_nothing() {
        let budget = MemoryBudget::new(0);
        let r = budget.try_reserve(0).unwrap();
        assert_eq!((r.bytes(), budget.used()), (0, 0));
    }
}
