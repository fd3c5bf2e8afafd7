//! An idle connection's write side holds no batch allocation: checked against a tracking global allocator. This
//! binary holds only this test, and it polls by hand on its own thread (no runtime), so the thread's live bytes
//! are the sender's and the queue's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_sink::Sink;
use tidegate::codec::LengthFieldCodec;
use tidegate::watermark::{self, FramedSender};

#[path = "support/tracking_alloc.rs"]
mod tracking_alloc;

#[global_allocator]
static ALLOC: tracking_alloc::Tracking<1> = tracking_alloc::Tracking;

#[test]
fn a_flushed_framed_sender_keeps_no_batch_allocation() {
    let (tx, mut rx) = watermark::channel::<Bytes>(Default::default());
    let mut framed = FramedSender::new(tx.clone(), LengthFieldCodec::new(1024));
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // Warm the queue up, so the allocations it keeps for its items are there before the baseline.
    for _ in 0..2 {
        tx.try_send(Bytes::from_static(b"warm")).unwrap();
        drop(rx.try_recv().unwrap());
    }
    let payload = Bytes::from_static(b"one small frame");
    let base = tracking_alloc::live();

    for _ in 0..3 {
        Pin::new(&mut framed).start_send(payload.clone()).unwrap();
        Pin::new(&mut framed).start_send(payload.clone()).unwrap();
        assert!(matches!(
            Pin::new(&mut framed).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        let batch = rx
            .try_recv()
            .unwrap()
            .expect("the two frames, as one batch");
        assert_eq!(batch.len(), 2 * (4 + payload.len()));
        drop(batch);
        // Sent and dropped: nothing is left of the batch, not even the spare room of its block.
        assert_eq!(
            tracking_alloc::live() - base,
            0,
            "bytes still allocated after a flush"
        );
    }
}
