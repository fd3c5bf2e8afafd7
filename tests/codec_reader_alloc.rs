//! FrameReader charges its budget exactly what it keeps allocated, step by step: checked against a tracking global
//! allocator. This binary holds only this test, and the test polls by hand on its own thread (no runtime), so the
//! thread's live bytes are the reader's.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tidegate::codec::{FrameReader, LengthFieldCodec};
use tidegate::MemoryBudget;
use tokio::io::{AsyncRead, ReadBuf};

#[path = "support/tracking_alloc.rs"]
mod tracking_alloc;

/// Smaller allocations are bookkeeping (a `BytesMut` shared with frames allocates a small header), not buffers.
const TRACKED_FROM: usize = 128;

#[global_allocator]
static ALLOC: tracking_alloc::Tracking<TRACKED_FROM> = tracking_alloc::Tracking;

/// What the reader is handed: bytes (as much as fits in one read) or "nothing yet".
enum Step {
    Data(&'static [u8]),
    Pending,
}

/// Plays a script without allocating, so every tracked byte is the reader's.
struct Script(VecDeque<Step>);

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.0.pop_front() {
            None => Poll::Ready(Ok(())),
            Some(Step::Pending) => Poll::Pending,
            Some(Step::Data(bytes)) => {
                let n = bytes.len().min(buf.remaining());
                buf.put_slice(&bytes[..n]);
                if n < bytes.len() {
                    self.0.push_front(Step::Data(&bytes[n..]));
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

fn frame(len: usize, fill: u8) -> Vec<u8> {
    let mut f = (len as u32).to_be_bytes().to_vec();
    f.resize(4 + len, fill);
    f
}

const READ: usize = 256;

#[test]
fn frame_reader_charges_exactly_the_allocation_it_holds() {
    // Two frames: a small one, then one of several reads; the wire also splits the first frame.
    let wire: &'static [u8] = [frame(20, b'a'), frame(1000, b'b')].concat().leak();
    let script = Script(VecDeque::from([
        Step::Pending,
        Step::Data(&wire[..14]),
        Step::Pending,
        Step::Data(&wire[14..128]),
        Step::Pending,
        Step::Data(&wire[128..724]),
        Step::Pending,
        Step::Data(&wire[724..]),
        Step::Pending,
    ]));
    let budget = MemoryBudget::unlimited();
    let mut frames = FrameReader::new(script, LengthFieldCodec::new(4096))
        .with_budget(budget.clone())
        .with_read_size(READ);
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let base = tracking_alloc::live();
    let live = || (tracking_alloc::live() - base) as usize;
    let mut poll =
        |frames: &mut FrameReader<Script, LengthFieldCodec>| Pin::new(frames).poll_next(&mut cx);

    // Waiting for the first bytes: nothing buffered, so nothing held while idle.
    assert!(poll(&mut frames).is_pending());
    assert_eq!((budget.used(), live()), (0, 0));

    // Part of the first frame: still the same buffer.
    assert!(poll(&mut frames).is_pending());
    assert_eq!(frames.buffered_bytes(), 14);
    assert_eq!((budget.used(), live()), (READ, READ));

    // The first frame, cut from the buffer it still shares: charged once, as the reader's buffer.
    let Poll::Ready(Some(Ok(first))) = poll(&mut frames) else {
        panic!("first frame")
    };
    assert_eq!(&first[..], &[b'a'; 20][..]);
    assert_eq!(frames.buffered_bytes(), 104);
    assert_eq!((budget.used(), live()), (READ, READ));
    drop(first);

    // The second frame grows the buffer past one read: every step is charged before it is allocated, and the
    // charge always equals what is live (old buffers are freed, not kept beside the new one).
    let mut peak = 0;
    loop {
        match poll(&mut frames) {
            Poll::Pending => {
                assert_eq!(
                    budget.used(),
                    live(),
                    "pending with {} buffered",
                    frames.buffered_bytes()
                );
                assert_eq!(budget.used(), frames.reserved_bytes());
                peak = peak.max(budget.used());
            }
            Poll::Ready(Some(Ok(second))) => {
                assert_eq!(second.len(), 1000);
                // The emptied buffer was larger than one read: given back. The frame keeps it alive; it is the
                // caller's now.
                assert_eq!(budget.used(), 0);
                assert!(live() >= 1000, "the frame's storage");
                drop(second);
                assert_eq!(live(), 0);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(peak > READ, "the big frame needed a larger buffer");
    assert!(
        peak <= 1004 * 3 / 2 + READ,
        "grew to {peak} for a 1004-byte frame"
    );

    // Idle between frames: no buffer, no reservation.
    assert!(poll(&mut frames).is_pending());
    assert_eq!((budget.used(), live()), (0, 0));
    assert_eq!((frames.allocated_bytes(), frames.reserved_bytes()), (0, 0));

    // The end: everything given back.
    assert!(matches!(poll(&mut frames), Poll::Ready(None)));
    assert_eq!((budget.used(), live()), (0, 0));
}
