//! Taking a frame out of the read buffer without letting it pin a large allocation.

use bytes::{Buf, Bytes, BytesMut};

/// Allocations up to this size are shared with the frames cut from them; a frame pins at most this much.
///
/// 128 KiB covers the 8 KiB buffers `FramedRead` starts with and what it grows to under ordinary traffic, where
/// sharing (one atomic increment) beats copying (an allocation and a copy: 7x slower for 4 KiB frames in the
/// `codec` bench). Larger allocations come from large frames; small frames cut from them are copied.
const SHARE_ALLOC_UP_TO: usize = 128 * 1024;

/// Above `SHARE_ALLOC_UP_TO`, a frame shares the allocation only if it is at least this fraction of it, so retained
/// frames never pin more than 8 times their own size.
const MAX_PIN_RATIO: usize = 8;

/// Cuts frames from the front of a read buffer, sharing the buffer's allocation when that is cheap and safe and
/// copying when a small frame would otherwise keep a large allocation alive.
///
/// `BytesMut` does not expose its allocation's size, but a read buffer is always the tail of its allocation, so
/// `as_ptr() + capacity()` names the allocation and the largest `capacity()` seen for it bounds its size from
/// below (buffers are usually first seen right after they were allocated or compacted).
#[derive(Debug, Default, Clone)]
pub(crate) struct Splitter {
    alloc_end: usize,
    alloc_size: usize,
}

impl Splitter {
    /// Removes the first `len` bytes of `src`, drops the first `skip` of them and returns the rest.
    /// Returns whether the frame was copied, for the metrics.
    #[inline(always)]
    pub(crate) fn take(&mut self, src: &mut BytesMut, skip: usize, len: usize) -> (Bytes, bool) {
        debug_assert!(skip <= len && len <= src.len());
        let end = src.as_ptr() as usize + src.capacity();
        if end != self.alloc_end {
            self.alloc_end = end;
            self.alloc_size = src.capacity();
        }
        let frame_len = len - skip;
        if self.alloc_size > SHARE_ALLOC_UP_TO && frame_len * MAX_PIN_RATIO < self.alloc_size {
            let frame = Bytes::copy_from_slice(&src[skip..len]);
            src.advance(len);
            (frame, true)
        } else {
            // Advancing the split-off half is a pointer bump; advancing `src` would first check its representation.
            let mut frame = src.split_to(len);
            if skip > 0 {
                frame.advance(skip);
            }
            (frame.freeze(), false)
        }
    }
}
