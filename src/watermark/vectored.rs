//! One write of a batch of frames: vectored when the stream supports it, coalesced otherwise.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;

/// Slices per vectored write. Linux's `IOV_MAX` is 1024; 256 already carries 17 KiB of 64-byte frames per syscall
/// while keeping the slice array (built on the stack on every poll) at 4 KiB.
pub(crate) const MAX_IOVECS: usize = 256;
/// Slices of the small array, for batches of up to this many frames.
const FEW_IOVECS: usize = 16;
/// For streams without vectored writes, small frames are copied into one buffer of up to this size per write.
const COALESCE_BYTES: usize = 16 * 1024;

/// Polls one write of as much of the batch as the stream takes: vectored if the stream supports it, else coalesced.
/// A write of zero bytes is [`io::ErrorKind::WriteZero`]. The batch must hold a byte to write.
///
/// The slices are gathered on the stack of each poll, not kept anywhere: 4 KiB of `IoSlice`s kept across polls
/// would sit in every writer's allocation, busy or idle. A coalesced write copies again on every poll, so only a
/// stream without vectored writes that returns `Pending` pays for a copy twice.
pub(crate) fn poll_write_batch<W: AsyncWrite + Unpin>(
    io: &mut W,
    cx: &mut Context<'_>,
    batch: &VecDeque<Bytes>,
    front_written: usize,
    staging: &mut Vec<u8>,
) -> Poll<io::Result<usize>> {
    let chunks = batch.iter().enumerate().map(|(i, frame)| {
        if i == 0 {
            &frame[front_written..]
        } else {
            &frame[..]
        }
    });
    let written = if io.is_write_vectored() {
        // A batch of a few frames (one sender's write of its batch) fills a small array: filling the whole 4 KiB
        // one for a single slice cost more than the write into a socket buffer that has room.
        let chunks = chunks.filter(|c| !c.is_empty());
        if batch.len() <= FEW_IOVECS {
            poll_write_slices::<_, FEW_IOVECS>(io, cx, chunks)
        } else {
            poll_write_slices::<_, MAX_IOVECS>(io, cx, chunks)
        }
    } else {
        staging.clear();
        let mut large = None;
        for chunk in chunks {
            if !staging.is_empty() && staging.len() + chunk.len() > COALESCE_BYTES {
                break;
            }
            if staging.is_empty() && chunk.len() >= COALESCE_BYTES {
                // A large frame is written from its own storage, not copied.
                large = Some(chunk);
                break;
            }
            staging.extend_from_slice(chunk);
        }
        Pin::new(&mut *io).poll_write(cx, large.unwrap_or(staging))
    };
    match std::task::ready!(written) {
        Ok(0) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
        other => Poll::Ready(other),
    }
}

/// One vectored write of up to `N` chunks, gathered on the stack.
fn poll_write_slices<'a, W: AsyncWrite + Unpin, const N: usize>(
    io: &mut W,
    cx: &mut Context<'_>,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> Poll<io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); N];
    let mut count = 0;
    for (slot, chunk) in slices.iter_mut().zip(chunks) {
        *slot = IoSlice::new(chunk);
        count += 1;
    }
    Pin::new(io).poll_write_vectored(cx, &slices[..count])
}
