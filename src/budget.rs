//! One byte budget that every part of a process charges.
//!
//! A [`MemoryBudget`] is a cheap-to-clone handle to a limit in bytes. Parts that hold memory on behalf of peers
//! (pooled buffers, decoders, outbound queues) take a [`Reservation`] before they hold it, and the reservation gives
//! the bytes back when it is dropped. [`MemoryBudget::child`] makes a sub-budget (one per connection, say): a
//! reservation in the child also counts against every ancestor, and every limit on the way up must hold.
//!
//! A limit check is one compare-and-swap per level of the tree; waiting is done on a [`tokio::sync::Notify`]
//! shared by the whole tree, touched only when someone is actually waiting.
//!
//! # Examples
//!
//! ```
//! use tidegate::budget::{BudgetError, MemoryBudget};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let budget = MemoryBudget::new(1024);
//! let first = budget.try_reserve(800).unwrap();
//! assert!(matches!(budget.try_reserve(800), Err(BudgetError::Exhausted { .. })));
//!
//! // `reserve` waits until the bytes fit, and errors at once when they never could.
//! let waiter = tokio::spawn({
//!     let budget = budget.clone();
//!     async move { budget.reserve(800).await.map(|r| r.bytes()) }
//! });
//! drop(first);
//! assert_eq!(waiter.await.unwrap(), Ok(800));
//! assert!(matches!(budget.reserve(4096).await, Err(BudgetError::ExceedsLimit { .. })));
//! # }
//! ```

use std::fmt;
use std::pin::pin;

use tokio::sync::Notify;

use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::loom::Arc;

/// Why a budget refused bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
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

impl From<BudgetError> for std::io::Error {
    fn from(err: BudgetError) -> Self {
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, err)
    }
}

/// A point-in-time view of a budget's counters.
///
/// `used` and `peak` include the reservations of child budgets; `granted`, `refused` and `waits` count only the
/// requests made on this budget itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// A cheap-to-clone handle to a byte budget.
///
/// Clones share the same limit and usage. See the [module docs](self) for an overview.
#[derive(Clone)]
pub struct MemoryBudget {
    node: Arc<Node>,
}

struct Node {
    limit: AtomicUsize,
    used: AtomicUsize,
    peak: AtomicUsize,
    granted: AtomicU64,
    refused: AtomicU64,
    waits: AtomicU64,
    parent: Option<Arc<Node>>,
    tree: Arc<Tree>,
}

/// Wake-up state shared by a root budget and all its descendants: bytes released anywhere in the tree may let a
/// waiter anywhere in the tree proceed.
struct Tree {
    released: Notify,
    waiters: AtomicUsize,
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
        let tree = Arc::new(Tree {
            released: Notify::new(),
            waiters: AtomicUsize::new(0),
        });
        Self::with_node(limit_bytes, None, tree)
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
        Self::with_node(limit_bytes, Some(self.node.clone()), self.node.tree.clone())
    }

    fn with_node(limit: usize, parent: Option<Arc<Node>>, tree: Arc<Tree>) -> Self {
        MemoryBudget {
            node: Arc::new(Node {
                limit: AtomicUsize::new(limit),
                used: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                granted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                parent,
                tree,
            }),
        }
    }

    /// Reserves `bytes` if they fit now, without waiting.
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
    pub fn try_reserve(&self, bytes: usize) -> Result<Reservation, BudgetError> {
        match self.take(bytes) {
            Ok(()) => Ok(Reservation::new(self.clone(), bytes)),
            Err(err) => {
                self.node.refused.fetch_add(1, Ordering::Relaxed);
                Err(self.never_fits(bytes).unwrap_or(err))
            }
        }
    }

    /// Reserves `bytes`, waiting until they fit.
    ///
    /// # Errors
    ///
    /// [`BudgetError::ExceedsLimit`] at once if `bytes` is larger than this budget's or an ancestor's limit (also if
    /// a limit is lowered below `bytes` while waiting); waiting could never succeed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the bytes are taken in one atomic step when they fit, so a dropped future reserves nothing.
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
    pub async fn reserve(&self, bytes: usize) -> Result<Reservation, BudgetError> {
        if let Some(err) = self.never_fits(bytes) {
            return Err(err);
        }
        if self.take(bytes).is_ok() {
            return Ok(Reservation::new(self.clone(), bytes));
        }
        self.node.waits.fetch_add(1, Ordering::Relaxed);
        let tree = &self.node.tree;
        let _waiting = WaiterCount::enter(&tree.waiters);
        loop {
            // Register interest before retrying, so a release between the retry and the await still wakes us.
            let mut released = pin!(tree.released.notified());
            released.as_mut().enable();
            if self.take(bytes).is_ok() {
                return Ok(Reservation::new(self.clone(), bytes));
            }
            if let Some(err) = self.never_fits(bytes) {
                return Err(err);
            }
            released.await;
        }
    }

    /// Bytes reserved now, including the reservations of child budgets.
    pub fn used(&self) -> usize {
        self.node.used.load(Ordering::Relaxed)
    }

    /// This budget's own limit in bytes (`usize::MAX` when unlimited).
    pub fn limit(&self) -> usize {
        self.node.limit.load(Ordering::Relaxed)
    }

    /// Whether this budget has no limit of its own (ancestors may still limit it).
    pub fn is_unlimited(&self) -> bool {
        self.limit() == usize::MAX
    }

    /// Changes the limit at run time.
    ///
    /// Lowering it below [`used`](Self::used) never revokes existing reservations: new ones are refused until usage
    /// falls. Raising it wakes waiters that now fit.
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
        // Waiters re-check both "fits now" and "can never fit" against the new limit.
        self.node.tree.released.notify_waiters();
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

    /// Gives back bytes of a [`Reservation::detach`]ed reservation.
    pub(crate) fn release_detached(&self, bytes: usize) {
        self.give_back(bytes);
    }

    /// Whether two handles refer to the same budget.
    pub fn ptr_eq(&self, other: &MemoryBudget) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }

    /// Takes `bytes` at every level from this budget to the root, or at none.
    fn take(&self, bytes: usize) -> Result<(), BudgetError> {
        if bytes == 0 {
            return Ok(());
        }
        if self.node.parent.is_some() {
            // Look before taking: a level that is plainly full fails here without touching anything. Taking and
            // rolling back would wake every waiter of the tree (the rollback frees bytes), including a caller of
            // `reserve` that is itself waiting, which would then spin for as long as that level stays full.
            self.fits_everywhere(bytes)?;
        }
        let mut taken: Option<&Node> = None;
        let mut level = Some(&*self.node);
        while let Some(node) = level {
            if let Err(err) = node.take(bytes) {
                if let Some(last) = taken {
                    self.give_back_up_to(bytes, last);
                }
                return Err(err);
            }
            taken = Some(node);
            level = node.parent.as_deref();
        }
        self.node.granted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `Exhausted` from the first level (this budget first) where `bytes` would not fit now.
    fn fits_everywhere(&self, bytes: usize) -> Result<(), BudgetError> {
        let mut level = Some(&*self.node);
        while let Some(node) = level {
            let used = node.used.load(Ordering::SeqCst);
            let limit = node.limit.load(Ordering::SeqCst);
            if used.checked_add(bytes).is_none_or(|after| after > limit) {
                return Err(BudgetError::Exhausted {
                    requested: bytes,
                    used,
                    limit,
                });
            }
            level = node.parent.as_deref();
        }
        Ok(())
    }

    /// Returns `bytes` at every level from this budget up to and including `last`.
    fn give_back_up_to(&self, bytes: usize, last: &Node) {
        let mut level = Some(&*self.node);
        while let Some(node) = level {
            node.used.fetch_sub(bytes, Ordering::SeqCst);
            if std::ptr::eq(node, last) {
                break;
            }
            level = node.parent.as_deref();
        }
        self.node.tree.wake_waiters();
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut level = Some(&*self.node);
        while let Some(node) = level {
            node.used.fetch_sub(bytes, Ordering::SeqCst);
            level = node.parent.as_deref();
        }
        self.node.tree.wake_waiters();
    }

    /// `Some(ExceedsLimit)` if `bytes` is over the smallest limit from here to the root.
    fn never_fits(&self, bytes: usize) -> Option<BudgetError> {
        let mut smallest = usize::MAX;
        let mut level = Some(&*self.node);
        while let Some(node) = level {
            smallest = smallest.min(node.limit.load(Ordering::SeqCst));
            level = node.parent.as_deref();
        }
        (bytes > smallest).then_some(BudgetError::ExceedsLimit {
            requested: bytes,
            limit: smallest,
        })
    }
}

impl Node {
    fn take(&self, bytes: usize) -> Result<(), BudgetError> {
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            let limit = self.limit.load(Ordering::SeqCst);
            let wanted = match used.checked_add(bytes) {
                Some(wanted) if wanted <= limit => wanted,
                _ => {
                    return Err(BudgetError::Exhausted {
                        requested: bytes,
                        used,
                        limit,
                    })
                }
            };
            match self
                .used
                .compare_exchange_weak(used, wanted, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    if wanted > self.peak.load(Ordering::Relaxed) {
                        self.peak.fetch_max(wanted, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(now) => used = now,
            }
        }
    }
}

impl Tree {
    fn wake_waiters(&self) {
        // Pairs with `WaiterCount::enter` (SeqCst on both sides): either we see the waiter, or the waiter's retry
        // sees the bytes we just released. Skipping `notify_waiters` keeps its lock off the uncontended path.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.released.notify_waiters();
        }
    }
}

struct WaiterCount<'a>(&'a AtomicUsize);

impl<'a> WaiterCount<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        WaiterCount(count)
    }
}

impl Drop for WaiterCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
    fn new(budget: MemoryBudget, bytes: usize) -> Self {
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

/// Loom explores every interleaving of concurrent reservers and releasers: the limit is never exceeded at any
/// level, and every byte comes back.
#[cfg(all(test, tidegate_loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_limits_hold_and_bytes_come_back() {
        loom::model(|| {
            let root = MemoryBudget::new(3);
            let child = root.child(2);
            let threads: Vec<_> = [root.clone(), child.clone()]
                .into_iter()
                .map(|budget| {
                    loom::thread::spawn(move || {
                        let r = budget.try_reserve(2);
                        let used = budget.used();
                        assert!(used <= budget.limit());
                        drop(r);
                    })
                })
                .collect();
            let mine = child.try_reserve(1);
            assert!(root.used() <= 3 && child.used() <= 2);
            drop(mine);
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!((root.used(), child.used()), (0, 0));
        });
    }
}
