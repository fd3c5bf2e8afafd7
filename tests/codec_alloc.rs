//! A header claiming 1 GiB allocates nothing near 1 GiB: checked by a tracking global allocator. This binary holds
//! only this test, so nothing else allocates concurrently.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use futures_util::StreamExt;
use tidegate::codec::{FrameReader, LengthFieldCodec, OversizePolicy};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, FramedRead};

struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`, as our caller promises.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

const GIB: usize = 1 << 30;
/// Far above any read buffer, far below the claim.
const CEILING: usize = 1 << 20;

fn largest_since_reset() -> usize {
    LARGEST.swap(0, Ordering::Relaxed)
}

#[tokio::test(flavor = "current_thread")]
async fn a_one_gib_claim_allocates_only_what_arrives() {
    let claim = (GIB as u32).to_be_bytes();

    // The bare decoder: header plus 100 KiB of body arrive; the buffer grows only with them.
    largest_since_reset();
    let mut codec = LengthFieldCodec::new(2 * GIB);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&claim);
    for _ in 0..100 {
        buf.extend_from_slice(&[0u8; 1024]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }
    drop(buf);
    let largest = largest_since_reset();
    assert!(
        largest < CEILING,
        "decoder allocated {largest} bytes for a 1 GiB claim"
    );

    // In a FramedRead fed by a peer that sends the header and then stalls.
    let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    tx.write_all(&claim).await.unwrap();
    tx.write_all(&[1u8; 4096]).await.unwrap();
    drop(tx);
    let mut frames = FramedRead::new(rx, LengthFieldCodec::new(2 * GIB));
    assert!(frames.next().await.unwrap().is_err()); // the stream ended mid-frame
    let largest = largest_since_reset();
    assert!(
        largest < CEILING,
        "FramedRead allocated {largest} bytes for a 1 GiB claim"
    );

    // In a FrameReader, skipping the claimed frame (over a 1 MiB max) and reading the next one.
    let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    let writer = tokio::spawn(async move {
        tx.write_all(&claim).await.unwrap();
        for _ in 0..(4 * 1024) {
            tx.write_all(&[2u8; 1024]).await.unwrap(); // 4 MiB of the oversize frame
        }
    });
    let codec = LengthFieldCodec::builder()
        .max_frame_length(CEILING)
        .oversize_policy(OversizePolicy::Skip)
        .build()
        .unwrap();
    let mut frames = FrameReader::new(rx, codec);
    assert!(frames.next().await.is_none()); // the peer left mid-skip: not an error, nothing buffered
    writer.await.unwrap();
    assert_eq!(
        frames.decoder().metrics().discarded_bytes,
        4 + 4 * 1024 * 1024
    );
    let largest = largest_since_reset();
    assert!(
        largest < CEILING / 4,
        "FrameReader allocated {largest} bytes while skipping"
    );
}
