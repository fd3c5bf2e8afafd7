//! A global allocator that forwards to the system allocator and counts, per thread, the bytes live in allocations
//! of at least `FROM` bytes. A test binary that uses it holds only tests that poll by hand on their own thread, so
//! the thread's count is the code under test's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Tracking<const FROM: usize>;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Bytes live in this thread's tracked allocations (allocated minus freed, so it can go below an earlier value).
pub fn live() -> isize {
    LIVE.with(Cell::get)
}

fn track<const FROM: usize>(size: usize, sign: isize) {
    if size >= FROM {
        // `try_with`: the slot may be gone while the thread shuts down.
        let _ = LIVE.try_with(|live| live.set(live.get() + sign * size as isize));
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl<const FROM: usize> GlobalAlloc for Tracking<FROM> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track::<FROM>(layout.size(), 1);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track::<FROM>(layout.size(), -1);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track::<FROM>(layout.size(), -1);
        track::<FROM>(new_size, 1);
        // SAFETY: `ptr` came from `System` with `layout`, as our caller promises.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
