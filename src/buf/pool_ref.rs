//! Counted references to a pool's shared state, handed out in batches.
//!
//! Every outstanding buffer must keep its pool alive, because its storage goes back there. With an `Arc` that is an
//! atomic increment and decrement per buffer, about 12 ns on the machines we measure on, which alone is half the
//! budget of an acquire/release cycle (see `benches/pool.rs`). A [`PoolRef`] instead carries a number of *units* of
//! the pool's reference count. A thread cache holds a batch of units and moves one into each block it lends out
//! (plain arithmetic); the block keeps it while it is out and while it waits, idle, in any thread's cache, and
//! gives it back (one atomic decrement) only when it goes to a shared list or is freed. Only those and the refills
//! of whole batches touch the shared counter.

use std::fmt;
use std::ptr::NonNull;

use crate::loom::atomic::{fence, AtomicUsize, Ordering};

/// The shared counter lives inside the pointee, like `Arc`'s.
pub(super) trait Counted {
    fn ref_units(&self) -> &AtomicUsize;
}

/// Owns `units` units of the pointee's reference count; the pointee is freed when the last unit is released.
pub(super) struct PoolRef<T: Counted> {
    ptr: NonNull<T>,
    units: usize,
}

// SAFETY: a `PoolRef<T>` is a shared, counted reference to a `T`, exactly like `Arc<T>`, which is `Send` and `Sync`
// when `T` is. The count is only changed with atomic operations, and the pointee is freed by whichever thread
// releases the last unit, after an acquire fence.
unsafe impl<T: Counted + Send + Sync> Send for PoolRef<T> {}
// SAFETY: as above.
unsafe impl<T: Counted + Send + Sync> Sync for PoolRef<T> {}

impl<T: Counted> PoolRef<T> {
    /// Moves `value` to the heap with one unit, owned by the returned reference.
    pub(super) fn new(value: T) -> Self {
        value.ref_units().store(1, Ordering::Relaxed);
        PoolRef {
            ptr: NonNull::from(Box::leak(Box::new(value))),
            units: 1,
        }
    }

    #[inline]
    pub(super) fn get(&self) -> &T {
        debug_assert!(self.units > 0, "a PoolRef with no units must not be used");
        // SAFETY: this reference owns at least one unit, so the count is non-zero and the pointee is alive.
        unsafe { self.ptr.as_ref() }
    }

    /// A new reference with one more unit of the shared count (one atomic increment, like `Arc::clone`).
    pub(super) fn clone_one(&self) -> Self {
        self.get().ref_units().fetch_add(1, Ordering::Relaxed);
        PoolRef {
            ptr: self.ptr,
            units: 1,
        }
    }

    /// One more unit of the shared count, as a [`Unit`] (one atomic increment).
    pub(super) fn clone_unit(&self) -> Unit<T> {
        self.get().ref_units().fetch_add(1, Ordering::Relaxed);
        Unit { ptr: self.ptr }
    }

    /// Moves one of this reference's units out, refilling `batch` units from the shared count first when this
    /// would leave none behind.
    #[inline]
    pub(super) fn split_unit(&mut self, batch: usize) -> Unit<T> {
        if self.units <= 1 {
            // Relaxed is enough, as for `Arc::clone`: we already hold a unit, so the pointee cannot be freed.
            self.get().ref_units().fetch_add(batch, Ordering::Relaxed);
            self.units += batch;
        }
        self.units -= 1;
        Unit { ptr: self.ptr }
    }

    #[inline]
    pub(super) fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    #[inline]
    pub(super) fn points_to(&self, target: *const T) -> bool {
        std::ptr::eq(self.ptr.as_ptr(), target)
    }
}

impl<T: Counted> Drop for PoolRef<T> {
    fn drop(&mut self) {
        if self.units > 0 {
            // SAFETY: we own `self.units` units and give them all up; `self` is not used again.
            unsafe { release(self.ptr, self.units) }
        }
    }
}

/// Exactly one unit of the pointee's reference count: what an outstanding buffer carries. A single pointer, so
/// the buffer stays small enough for `Bytes::from_owner` to box cheaply.
pub(super) struct Unit<T: Counted> {
    ptr: NonNull<T>,
}

// SAFETY: as for `PoolRef`: a counted shared reference, like `Arc<T>`.
unsafe impl<T: Counted + Send + Sync> Send for Unit<T> {}
// SAFETY: as above.
unsafe impl<T: Counted + Send + Sync> Sync for Unit<T> {}

impl<T: Counted> Unit<T> {
    #[inline]
    pub(super) fn get(&self) -> &T {
        // SAFETY: this unit keeps the count non-zero, so the pointee is alive.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    pub(super) fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }
}

impl<T: Counted> Drop for Unit<T> {
    fn drop(&mut self) {
        // SAFETY: we own exactly one unit and give it up; `self` is not used again.
        unsafe { release(self.ptr, 1) }
    }
}

impl<T: Counted> fmt::Debug for Unit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unit")
    }
}

/// Gives `units` units back to the shared count and frees the pointee if they were the last.
///
/// # Safety
///
/// The caller must own `units` units of `ptr`'s count and must not use them (or `ptr` through them) afterwards.
unsafe fn release<T: Counted>(ptr: NonNull<T>, units: usize) {
    // SAFETY: the caller's units keep the pointee alive until the decrement below.
    let count = unsafe { ptr.as_ref() }.ref_units();
    // Release, then an acquire fence before freeing: the same protocol as `Arc`'s drop, so every use of the
    // pointee by other owners happens before it is freed.
    if count.fetch_sub(units, Ordering::Release) != units {
        return;
    }
    fence(Ordering::Acquire);
    // SAFETY: the count just reached zero, so no `PoolRef` or `Unit` is left and nothing else can reach the pointee;
    // it was created by `Box::leak` in `PoolRef::new`, so rebuilding the box frees it exactly once.
    drop(unsafe { Box::from_raw(ptr.as_ptr()) });
}

impl<T: Counted> fmt::Debug for PoolRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolRef")
            .field("units", &self.units)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loom::Arc;

    struct Probe {
        units: AtomicUsize,
        drops: Arc<AtomicUsize>,
    }

    impl Counted for Probe {
        fn ref_units(&self) -> &AtomicUsize {
            &self.units
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn probe(drops: &Arc<AtomicUsize>) -> PoolRef<Probe> {
        PoolRef::new(Probe {
            units: AtomicUsize::new(0),
            drops: drops.clone(),
        })
    }

    #[cfg(not(tidegate_loom))]
    #[test]
    fn freed_once_when_the_last_unit_goes_whatever_the_path() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut lease = probe(&drops);
        let handle = lease.clone_one();
        let blocks: Vec<_> = (0..100).map(|_| lease.split_unit(16)).collect();
        let other_cache = handle.clone_one();
        let last_block = other_cache.clone_unit();
        drop(lease);
        drop(handle);
        drop(blocks);
        drop(other_cache);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            0,
            "a block still holds a unit"
        );
        drop(last_block);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }

    /// Loom explores every interleaving of two threads letting go of blocks' units (one along with its cache)
    /// while the pool handle goes away: the pointee must be freed exactly once, after everyone is done.
    #[cfg(tidegate_loom)]
    #[test]
    fn loom_last_unit_frees_exactly_once() {
        loom::model(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let mut lease = probe(&drops);
            let handle = lease.clone_one();
            let a = lease.split_unit(2);
            let b = lease.split_unit(2);
            let t1 = loom::thread::spawn(move || {
                drop(a);
                drop(lease);
            });
            let t2 = loom::thread::spawn(move || drop(b));
            drop(handle);
            t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), 1);
        });
    }
}
