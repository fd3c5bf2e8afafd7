//! A block: one buffer's storage and what it needs to find its way home.
//!
//! A [`PooledBuf`](super::PooledBuf) is a pointer to its block and a fill count, two words, so that `freeze` hands
//! `Bytes::from_owner` an owner that travels in registers instead of a struct copied through memory (a few
//! nanoseconds per freeze in `benches/pool.rs`). The block stays with its storage through the thread caches, the
//! shared lists and the buffers, so its header is allocated once per block, not once per acquire.

use super::inner::PoolInner;
use super::pool_ref::Unit;

pub(super) struct Block {
    /// Always fully initialised (zeroed when allocated), so writing needs no `unsafe`.
    data: Box<[u8]>,
    /// Index of the size class, or `UNPOOLED`.
    class: usize,
    /// The unit of the pool's reference count it was lent with, kept while it is out and while it waits in a thread
    /// cache. `None` on a shared list: the pool must not keep itself alive.
    home: Option<Unit<PoolInner>>,
    /// 0 when leak tracking did not record the current loan.
    leak_id: u64,
}

impl Block {
    /// A zeroed block of `size` bytes for `class`.
    pub(super) fn allocate(class: usize, size: usize) -> Box<Block> {
        Box::new(Block {
            data: vec![0; size].into_boxed_slice(),
            class,
            home: None,
            leak_id: 0,
        })
    }

    #[inline]
    pub(super) fn capacity(&self) -> usize {
        self.data.len()
    }

    #[inline]
    pub(super) fn class(&self) -> usize {
        self.class
    }

    #[inline]
    pub(super) fn data(&self) -> &[u8] {
        &self.data
    }

    #[inline]
    pub(super) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives the block the reference unit that keeps its pool alive while it is out, and while it waits in a
    /// thread cache.
    #[inline]
    pub(super) fn lend(&mut self, home: Unit<PoolInner>) {
        debug_assert!(self.home.is_none(), "a block lent out twice");
        self.home = Some(home);
    }

    /// The pool that lent this block, if it is lent.
    #[inline]
    pub(super) fn home(&self) -> Option<&PoolInner> {
        self.home.as_ref().map(Unit::get)
    }

    /// The address of the pool that lent this block (null if it is not lent), to find its thread cache.
    #[inline]
    pub(super) fn pool(&self) -> *const PoolInner {
        self.home.as_ref().map_or(std::ptr::null(), Unit::as_ptr)
    }

    /// Ends the loan: the unit it was lent with. `None` for a block that was not lent.
    #[inline]
    pub(super) fn come_home(&mut self) -> Option<Unit<PoolInner>> {
        self.home.take()
    }

    /// Records the leak-tracking id of the current use. Only called with tracking on, so an untracked pool's
    /// blocks are never written here.
    #[inline]
    pub(super) fn set_leak_id(&mut self, id: u64) {
        self.leak_id = id;
    }

    /// The leak-tracking id of the use that just ended (0 if untracked), clearing it.
    #[inline]
    pub(super) fn take_leak_id(&mut self) -> u64 {
        match self.leak_id {
            0 => 0,
            _ => std::mem::take(&mut self.leak_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header stays as small as documented on `max_retained_bytes`, and the buffer stays two words, so that
    /// `Bytes::from_owner` takes it in registers.
    #[test]
    fn the_header_and_the_buffer_stay_small() {
        assert!(size_of::<Block>() <= 5 * size_of::<usize>());
        assert_eq!(size_of::<super::super::PooledBuf>(), 2 * size_of::<usize>());
    }
}
