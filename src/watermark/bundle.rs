//! Items queued together: frames' headers and their payloads, which no other producer may come between.

use super::Weight;

/// Items queued in one step, in order. A [`FramedSender`](super::FramedSender) queues frames whose payloads it
/// does not copy as its buffered bytes (ending with a frame's header) followed by the payload, repeated: queued
/// separately, another producer's item could land between a header and its payload.
#[derive(Debug)]
pub(crate) struct Bundle<T> {
    pub(crate) head: T,
    /// Empty for a plain send (no allocation).
    pub(crate) tail: Vec<T>,
}

impl<T> Bundle<T> {
    pub(crate) fn one(head: T) -> Self {
        Bundle {
            head,
            tail: Vec::new(),
        }
    }

    /// The single item of a bundle made by [`one`](Self::one).
    pub(crate) fn into_head(self) -> T {
        debug_assert!(self.tail.is_empty(), "a bundle of one item");
        self.head
    }

    pub(crate) fn len(&self) -> u64 {
        1 + self.tail.len() as u64
    }

    pub(crate) fn weight_with(&self, weigh: impl Fn(&T) -> usize) -> usize {
        weigh(&self.head) + self.tail.iter().map(weigh).sum::<usize>()
    }

    pub(crate) fn into_iter(self) -> impl Iterator<Item = T> {
        std::iter::once(self.head).chain(self.tail)
    }
}

impl<T: Weight> Bundle<T> {
    pub(crate) fn weight(&self) -> usize {
        self.weight_with(T::weight)
    }
}
