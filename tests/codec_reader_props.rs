//! Property: a FrameReader on a budget yields the same frames under any chunking and any read size, its charge is
//! exactly its allocation whenever it returns, that allocation stays within the documented bound, and everything is
//! given back at the end.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use proptest::prelude::*;
use tidegate::codec::{FrameReader, LengthFieldCodec};
use tidegate::MemoryBudget;
use tokio::io::{AsyncRead, ReadBuf};

/// Hands out the chunks in order, with "nothing yet" between them.
struct Chunks {
    chunks: VecDeque<Vec<u8>>,
    pending_next: bool,
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if std::mem::take(&mut self.pending_next) {
            return Poll::Pending;
        }
        let Some(mut chunk) = self.chunks.pop_front() else {
            return Poll::Ready(Ok(()));
        };
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk[..n]);
        if n < chunk.len() {
            self.chunks.push_front(chunk.split_off(n));
        } else {
            self.pending_next = true;
        }
        Poll::Ready(Ok(()))
    }
}

fn wire_of(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for f in frames {
        wire.extend_from_slice(&(f.len() as u32).to_be_bytes());
        wire.extend_from_slice(f);
    }
    wire
}

proptest! {
    #[test]
    fn frames_and_charges_do_not_depend_on_chunking(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        read_size in 1usize..300,
    ) {
        let wire = wire_of(&frames);
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = VecDeque::new();
        let mut from = 0;
        for to in at.into_iter().chain([wire.len()]) {
            // An empty read means the end of the stream: only non-empty chunks.
            if to > from {
                chunks.push_back(wire[from..to].to_vec());
            }
            from = to;
        }
        let budget = MemoryBudget::unlimited();
        let mut reader = FrameReader::new(Chunks { chunks, pending_next: false }, LengthFieldCodec::new(1024))
            .with_budget(budget.clone())
            .with_read_size(read_size);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        loop {
            let polled = Pin::new(&mut reader).poll_next(&mut cx);
            prop_assert_eq!(budget.used(), reader.allocated_bytes());
            prop_assert_eq!(budget.used(), reader.reserved_bytes());
            // Growth happens only while a frame is incomplete: at most 1.5 times the longest frame plus a read.
            let largest = frames.iter().map(|f| 4 + f.len()).max().unwrap_or(0);
            prop_assert!(
                reader.allocated_bytes() <= largest + largest / 2 + read_size,
                "{} allocated, longest frame {}", reader.allocated_bytes(), largest
            );
            // Between frames, at most one read's worth.
            if reader.buffered_bytes() == 0 {
                prop_assert!(reader.allocated_bytes() <= read_size);
            }
            match polled {
                Poll::Pending => {}
                Poll::Ready(Some(frame)) => got.push(frame.unwrap().to_vec()),
                Poll::Ready(None) => break,
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert_eq!(budget.used(), 0);
    }
}
