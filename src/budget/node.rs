//! One level of a budget tree: its limit, its usage and the all-or-nothing charge from a level up to the root.
//!
//! Nothing here wakes anyone: callers decide when freed bytes must be offered to the waiters (see
//! [`Waiters::offer`](super::waiters::Waiters::offer)), because some of them already hold the waiters' lock.

use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::loom::Arc;

use super::error::BudgetError;
use super::leak::ReservationLeaks;
use super::waiters::Waiters;

pub(super) struct Node {
    pub(super) limit: AtomicUsize,
    pub(super) used: AtomicUsize,
    pub(super) peak: AtomicUsize,
    pub(super) granted: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) waits: AtomicU64,
    pub(super) parent: Option<Arc<Node>>,
    /// Shared by the root and all its descendants: bytes released anywhere in the tree may let a waiter anywhere in
    /// the tree proceed.
    pub(super) waiters: Arc<Waiters>,
    /// The reservations made on this budget itself, when tracking is on.
    pub(super) leaks: ReservationLeaks,
}

/// A failed [`Node::take`].
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) err: BudgetError,
    /// Whether some levels were charged, then given back. Another task may have seen those bytes in use meanwhile
    /// and left a waiter queued, so a caller outside the waiters' lock must offer the bytes to the waiters again.
    pub(super) rolled_back: bool,
}

impl Node {
    pub(super) fn new(limit: usize, parent: Option<Arc<Node>>, waiters: Arc<Waiters>) -> Self {
        Node {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            parent,
            waiters,
            leaks: ReservationLeaks::new(),
        }
    }

    /// This level, then each ancestor up to the root.
    fn levels(&self) -> impl Iterator<Item = &Node> {
        std::iter::successors(Some(self), |node| node.parent.as_deref())
    }

    pub(super) fn root(&self) -> &Node {
        self.levels().last().unwrap_or(self)
    }

    /// Whether no request of one byte or more can fit anywhere in the tree right now.
    pub(super) fn is_full(&self) -> bool {
        self.used.load(Ordering::SeqCst) >= self.limit.load(Ordering::SeqCst)
    }

    /// Takes `bytes` at every level from this one to the root, or at none.
    pub(super) fn take(&self, bytes: usize) -> Result<(), Refused> {
        if bytes == 0 {
            return Ok(());
        }
        if self.parent.is_some() {
            // Look before taking: a level that is plainly full fails here without touching anything. Taking and
            // rolling back would make the caller offer the rolled-back bytes to the waiters (a lock and a walk).
            self.fits_everywhere(bytes).map_err(|err| Refused {
                err,
                rolled_back: false,
            })?;
        }
        let mut taken: Option<&Node> = None;
        for node in self.levels() {
            if let Err(err) = node.take_here(bytes) {
                if let Some(last) = taken {
                    self.give_back_up_to(bytes, last);
                }
                return Err(Refused {
                    err,
                    rolled_back: taken.is_some(),
                });
            }
            taken = Some(node);
        }
        self.granted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Returns `bytes` at every level from this one to the root.
    pub(super) fn give_back(&self, bytes: usize) {
        for node in self.levels() {
            node.used.fetch_sub(bytes, Ordering::SeqCst);
        }
    }

    /// `Some(ExceedsLimit)` if `bytes` is over the smallest limit from here to the root.
    pub(super) fn never_fits(&self, bytes: usize) -> Option<BudgetError> {
        let smallest = self
            .levels()
            .map(|node| node.limit.load(Ordering::SeqCst))
            .min()
            .unwrap_or(usize::MAX);
        (bytes > smallest).then_some(BudgetError::ExceedsLimit {
            requested: bytes,
            limit: smallest,
        })
    }

    /// `Exhausted` from the first level (this one first) where `bytes` would not fit now.
    fn fits_everywhere(&self, bytes: usize) -> Result<(), BudgetError> {
        for node in self.levels() {
            let used = node.used.load(Ordering::SeqCst);
            let limit = node.limit.load(Ordering::SeqCst);
            if used.checked_add(bytes).is_none_or(|after| after > limit) {
                return Err(BudgetError::Exhausted {
                    requested: bytes,
                    used,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// Returns `bytes` at every level from this one up to and including `last`.
    fn give_back_up_to(&self, bytes: usize, last: &Node) {
        for node in self.levels() {
            node.used.fetch_sub(bytes, Ordering::SeqCst);
            if std::ptr::eq(node, last) {
                break;
            }
        }
    }

    /// Takes `bytes` at this level only.
    fn take_here(&self, bytes: usize) -> Result<(), BudgetError> {
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
