//! The buffer handed out by a pool.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes};

use super::block::Block;
use super::inner::PoolInner;

/// A fixed-capacity buffer from a [`BufPool`](super::BufPool).
///
/// It implements [`BufMut`] but never grows beyond its capacity (its size class), derefs to the bytes written so
/// far, and [`freeze`](Self::freeze)s into a [`Bytes`] without copying. Its storage goes back to the pool, and its
/// budget charge is released, when it is dropped or when the last `Bytes` made from it is dropped.
///
/// # Examples
///
/// ```
/// use bytes::BufMut;
///
/// let pool = tidegate::BufPool::new();
/// let mut buf = pool.try_acquire(10).unwrap();
/// assert_eq!(buf.capacity(), 512); // the smallest class that fits
/// buf.put_u32(7);
/// assert_eq!(&buf[..], &[0, 0, 0, 7]);
/// ```
///
/// The struct is two words (see `block.rs`): `freeze` moves it into the box that `Bytes::from_owner` allocates.
pub struct PooledBuf {
    /// A lent block. Taken out only in `drop`; `ManuallyDrop` rather than `Option` keeps every access free of a
    /// `None` check and the drop free of a store.
    block: ManuallyDrop<Box<Block>>,
    filled: usize,
}

impl PooledBuf {
    /// Wraps a block that has been lent out (see [`Block::lend`]).
    #[inline]
    pub(super) fn new(block: Box<Block>) -> Self {
        PooledBuf {
            block: ManuallyDrop::new(block),
            filled: 0,
        }
    }

    #[inline]
    fn storage(&self) -> &[u8] {
        self.block.data()
    }

    #[inline]
    fn storage_mut(&mut self) -> &mut [u8] {
        self.block.data_mut()
    }

    /// The fixed capacity of this buffer.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.storage().len()
    }

    /// Bytes written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.filled
    }

    /// Whether nothing has been written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Forgets the bytes written; the capacity stays.
    #[inline]
    pub fn clear(&mut self) {
        self.filled = 0;
    }

    /// Keeps the first `len` bytes written. Does nothing if `len` is not smaller than [`len`](Self::len).
    pub fn truncate(&mut self, len: usize) {
        self.filled = self.filled.min(len);
    }

    /// The writable space after the filled bytes, for reading into (`AsyncRead`, `read`). Mark what was written
    /// with [`advance_filled`](Self::advance_filled).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = tidegate::BufPool::new();
    /// let mut buf = pool.try_acquire(512).unwrap();
    /// let n = std::io::Read::read(&mut &b"abc"[..], buf.unfilled_mut()).unwrap();
    /// buf.advance_filled(n);
    /// assert_eq!(&buf[..], b"abc");
    /// ```
    #[inline]
    pub fn unfilled_mut(&mut self) -> &mut [u8] {
        let filled = self.filled;
        &mut self.storage_mut()[filled..]
    }

    /// Marks `n` more bytes of [`unfilled_mut`](Self::unfilled_mut) as filled.
    ///
    /// # Panics
    ///
    /// If `n` is larger than the space left.
    #[inline]
    pub fn advance_filled(&mut self, n: usize) {
        assert!(
            n <= self.remaining_mut(),
            "advance_filled({n}) with only {} bytes left",
            self.remaining_mut()
        );
        self.filled += n;
    }

    /// Turns the buffer into a [`Bytes`] of the filled bytes without copying. The storage returns to the pool when
    /// the last clone or slice of the `Bytes` is dropped, from any thread.
    ///
    /// An empty buffer returns its storage at once and gives [`Bytes::new()`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BufMut;
    ///
    /// let pool = tidegate::BufPool::new();
    /// let mut buf = pool.try_acquire(512).unwrap();
    /// buf.put_slice(b"hello world");
    /// let bytes = buf.freeze();
    /// let hello = bytes.slice(..5);
    /// drop(bytes);
    /// assert_eq!(pool.metrics().total.outstanding_buffers, 1); // `hello` still holds the storage
    /// drop(hello);
    /// assert_eq!(pool.metrics().total.outstanding_buffers, 0);
    /// ```
    #[inline]
    pub fn freeze(self) -> Bytes {
        if self.filled == 0 {
            return Bytes::new();
        }
        Bytes::from_owner(self)
    }
}

impl Drop for PooledBuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and nothing uses `self.block` after it, so taking it out cannot be observed.
        let block = unsafe { ManuallyDrop::take(&mut self.block) };
        PoolInner::give_back(block);
    }
}

impl Deref for PooledBuf {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.storage()[..self.filled]
    }
}

impl DerefMut for PooledBuf {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let filled = self.filled;
        &mut self.storage_mut()[..filled]
    }
}

impl AsRef<[u8]> for PooledBuf {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}

// SAFETY: `remaining_mut` is exactly the length of the slice `chunk_mut` returns, and `advance_mut` refuses to move
// past it, so callers can never be told that bytes outside `storage` are writable or written. The storage is always
// initialised, so bytes marked as written are never uninitialised even if a caller lied about writing them.
unsafe impl BufMut for PooledBuf {
    #[inline]
    fn remaining_mut(&self) -> usize {
        self.storage().len() - self.filled
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        self.advance_filled(cnt);
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        UninitSlice::new(self.unfilled_mut())
    }

    // One bounds check and one copy instead of the default chunk-by-chunk loop.
    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        let end = self.filled + src.len();
        assert!(
            end <= self.storage().len(),
            "put_slice of {} bytes with only {} left in a fixed-capacity PooledBuf",
            src.len(),
            self.remaining_mut()
        );
        let filled = self.filled;
        self.storage_mut()[filled..end].copy_from_slice(src);
        self.filled = end;
    }
}

impl fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.filled)
            .field("capacity", &self.storage().len())
            .finish()
    }
}
