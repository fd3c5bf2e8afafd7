//! How many bytes an item counts for in a watermark queue.

use bytes::{Bytes, BytesMut};

use crate::buf::PooledBuf;

/// The number of bytes an item counts for while it waits in a [`channel`](super::channel).
///
/// The channel compares the sum of the weights of queued items against its low, high and hard marks and charges it
/// to the optional [`MemoryBudget`](crate::budget::MemoryBudget), so the weight should be the memory the item pins (for
/// byte buffers: their length). It must not change while the item is queued: the same value is added on send and
/// subtracted on receive.
///
/// # Examples
///
/// ```
/// use tidegate::watermark::Weight;
///
/// struct Message {
///     topic: String,
///     body: Vec<u8>,
/// }
///
/// impl Weight for Message {
///     fn weight(&self) -> usize {
///         self.topic.len() + self.body.len()
///     }
/// }
///
/// let m = Message { topic: "news".into(), body: vec![0; 10] };
/// assert_eq!(m.weight(), 14);
/// ```
pub trait Weight {
    /// The item's weight in bytes.
    fn weight(&self) -> usize;
}

impl Weight for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weight for BytesMut {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weight for Vec<u8> {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// A pooled buffer weighs the bytes written into it. Its storage is already charged to its pool's budget, if any.
impl Weight for PooledBuf {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl<T: Weight + ?Sized> Weight for Box<T> {
    fn weight(&self) -> usize {
        (**self).weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_containers_weigh_their_length() {
        assert_eq!(Bytes::from_static(b"abc").weight(), 3);
        assert_eq!(vec![0u8; 7].weight(), 7);
        assert_eq!(BytesMut::from(&b"ab"[..]).weight(), 2);
        assert_eq!(Box::new(vec![0u8; 5]).weight(), 5);
        let pool = crate::buf::BufPool::new();
        let mut buf = pool.try_acquire(100).unwrap();
        bytes::BufMut::put_slice(&mut buf, b"hello");
        assert_eq!(buf.weight(), 5);
    }
}
