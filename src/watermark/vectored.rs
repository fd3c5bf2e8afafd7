//! One write of a batch of frames: vectored when the stream supports it, coalesced otherwise.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::AsyncWrite;

/// Slices per vectored write. Linux's `IOV_MAX` is 1024; 256 already carries 17 KiB of 64-byte frames per syscall
/// while keeping the slice array (built on the stack on every poll) at 4 KiB.
pub(crate) const MAX_IOVECS: usize = 256;
/// For streams without vectored writes, small frames are copied into one buffer of up to this size per write.
const COALESCE_BYTES: usize = 16 * 1024;

/// One write of as much of the batch as the stream takes: vectored if the stream supports it, else coalesced.
pub(crate) async fn write_batch<W: AsyncWrite + Unpin>(
    io: &mut W,
    batch: &VecDeque<Bytes>,
    front_written: usize,
    staging: &mut Vec<u8>,
) -> io::Result<usize> {
    let chunks = batch.iter().enumerate().map(|(i, frame)| {
        if i == 0 {
            &frame[front_written..]
        } else {
            &frame[..]
        }
    });
    let n = if io.is_write_vectored() {
        // The slices are gathered on the stack of each poll, not kept in the future: 4 KiB of `IoSlice`s held
        // across the await would sit in every writer task's allocation, busy or idle.
        poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, chunk) in slices
                .iter_mut()
                .zip(chunks.clone().filter(|c| !c.is_empty()))
            {
                *slot = IoSlice::new(chunk);
                count += 1;
            }
            Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count])
        })
        .await?
    } else {
        staging.clear();
        for chunk in chunks {
            if !staging.is_empty() && staging.len() + chunk.len() > COALESCE_BYTES {
                break;
            }
            if staging.is_empty() && chunk.len() >= COALESCE_BYTES {
                // A large frame is written from its own storage, not copied.
                return write_nonzero(io, chunk).await;
            }
            staging.extend_from_slice(chunk);
        }
        write_nonzero(io, staging).await?
    };
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}

async fn write_nonzero<W: AsyncWrite + Unpin>(io: &mut W, buf: &[u8]) -> io::Result<usize> {
    poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, buf)).await
}
