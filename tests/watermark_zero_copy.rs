//! `FramedSender::zero_copy`: large payloads reach the stream from their own storage, right after their header,
//! with nothing lost or reordered; what the queue refuses comes back whole.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tidegate::codec::LengthFieldCodec;
use tidegate::watermark::{
    self, Config, FramedSender, Limits, SendError, WatermarkWriter, DEFAULT_ZERO_COPY_THRESHOLD,
};
use tokio::io::AsyncWrite;
use tokio::time::timeout;

/// Records the bytes written and where each written slice lived.
#[derive(Default)]
struct Log {
    written: Vec<u8>,
    /// (address, length) of every non-empty slice passed to a write.
    slices: Vec<(usize, usize)>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Log>>);

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut log = self.0.lock().unwrap();
        let mut n = 0;
        for buf in bufs.iter().filter(|b| !b.is_empty()) {
            log.slices.push((buf.as_ptr() as usize, buf.len()));
            log.written.extend_from_slice(buf);
            n += buf.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The reference framing: a 4-byte big-endian length, then the payload.
fn framed(payloads: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_large_payload_is_written_from_its_own_storage() {
    let recorder = Recorder::default();
    let (tx, writer) = WatermarkWriter::new(recorder.clone());
    let task = writer.spawn();
    let mut sender = FramedSender::zero_copy(tx, LengthFieldCodec::new(1 << 20));
    let small = Bytes::from_static(b"small");
    let large = Bytes::from(vec![9u8; DEFAULT_ZERO_COPY_THRESHOLD]);
    sender.feed(small.clone()).await.unwrap();
    sender.send(large.clone()).await.unwrap();
    sender.sender().close();
    let report = timeout(WAIT, task).await.unwrap().unwrap();
    assert!(report.reason.is_graceful());

    let log = recorder.0.lock().unwrap();
    assert_eq!(log.written, framed(&[small.clone(), large.clone()]));
    let large_at = (large.as_ptr() as usize, large.len());
    assert!(
        log.slices.contains(&large_at),
        "the payload must be a slice of the write, not a copy: {:?}",
        log.slices
    );
    let small_at = small.as_ptr() as usize;
    assert!(
        log.slices.iter().all(|&(at, _)| at != small_at),
        "payloads under the threshold are copied into the batch"
    );
    // The small frame and the large frame's header went as one item, the payload as the next.
    assert_eq!(report.metrics.delivered_items, 2);
}

#[tokio::test]
async fn a_refused_zero_copy_frame_comes_back_joined_to_its_header() {
    let (tx, _rx) = watermark::channel::<Bytes>(Config::default());
    tx.close();
    let mut sender = FramedSender::zero_copy(tx, LengthFieldCodec::new(1 << 20));
    let payload = Bytes::from(vec![3u8; 5000]);
    let err = sender.send(payload.clone()).await.unwrap_err();
    let io = io::Error::from(err);
    assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
    let refused = io
        .into_inner()
        .unwrap()
        .downcast::<SendError<Bytes>>()
        .unwrap();
    assert_eq!(&refused.into_inner()[..], &framed(&[payload])[..]);
    assert_eq!(sender.buffered_bytes(), 0);
}

#[tokio::test]
async fn a_dropped_sender_counts_its_unqueued_zero_copy_frame_as_undelivered() {
    // The hard cap leaves room for nothing: the bundle cannot be queued when the sender is dropped.
    let (tx, _rx) =
        watermark::channel::<Bytes>(Config::builder().limits(Limits::new(0, 0, 1)).build());
    let watcher = tx.clone();
    let mut sender = FramedSender::zero_copy(tx, LengthFieldCodec::new(1 << 20));
    sender.set_zero_copy_threshold(16);
    futures_util::SinkExt::<Bytes>::start_send_unpin(&mut sender, Bytes::from(vec![1u8; 100]))
        .unwrap();
    drop(sender);
    let m = watcher.metrics();
    assert_eq!(
        (m.accepted_items, m.undelivered_items),
        (2, 2),
        "the header and the payload"
    );
    assert_eq!(m.undelivered_bytes, 104);
    assert_eq!(m.queued_items, 0);
}

#[test]
fn clones_interleave_whole_frames_only() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let recorder = Recorder::default();
        let (tx, writer) = WatermarkWriter::builder()
            .limits(Limits::new(8 << 10, 32 << 10, 256 << 10))
            .build(recorder.clone());
        let task = writer.spawn();
        let first = FramedSender::zero_copy(tx, LengthFieldCodec::new(1 << 20));
        let producers: Vec<_> = (0..4u8)
            .map(|tag| {
                let mut sender = first.clone();
                sender.set_zero_copy_threshold(256);
                tokio::spawn(async move {
                    for i in 0..200usize {
                        // Sizes on both sides of the threshold; the first byte numbers the frame.
                        let mut payload = vec![tag; 100 + (i * 37) % 700];
                        payload[0] = i as u8;
                        sender.feed(Bytes::from(payload)).await.unwrap();
                    }
                    sender.flush().await.unwrap();
                })
            })
            .collect();
        for p in producers {
            timeout(WAIT, p).await.unwrap().unwrap();
        }
        first.sender().close();
        drop(first);
        timeout(WAIT, task).await.unwrap().unwrap();

        let log = recorder.0.lock().unwrap();
        let mut rest = &log.written[..];
        let mut next = [0usize; 4];
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let payload = &rest[4..4 + len];
            let tag = payload[len - 1];
            assert!(
                payload[1..].iter().all(|&b| b == tag),
                "a frame mixes producers"
            );
            assert_eq!(
                payload[0], next[tag as usize] as u8,
                "producer {tag} out of order"
            );
            next[tag as usize] += 1;
            rest = &rest[4 + len..];
        }
        assert_eq!(next, [200; 4]);
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the sizes, the threshold and the queue's marks, the stream carries exactly the reference framing.
    #[test]
    fn the_stream_matches_the_reference_framing(
        sizes in proptest::collection::vec(0usize..6000, 0..40),
        threshold in 0usize..5000,
        high in 1usize..20_000,
        flush_every in 1usize..8,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let payloads: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut b = BytesMut::with_capacity(n);
                b.put_bytes(i as u8, n);
                b.freeze()
            })
            .collect();
        let recorder = Recorder::default();
        let written = rt.block_on(async {
            // The hard cap fits any bundle: the copied batch (16 KiB plus a frame) and the zero-copy frames
            // gathered up to the high mark.
            let (tx, writer) = WatermarkWriter::builder()
                .limits(Limits::new(high / 2, high, 1 << 20))
                .build(recorder.clone());
            let task = writer.spawn();
            let mut sender = FramedSender::zero_copy(tx, LengthFieldCodec::new(1 << 20));
            sender.set_zero_copy_threshold(threshold);
            for (i, p) in payloads.iter().enumerate() {
                sender.feed(p.clone()).await.unwrap();
                if i % flush_every == 0 {
                    sender.flush().await.unwrap();
                }
            }
            sender.flush().await.unwrap();
            sender.sender().close();
            let report = timeout(WAIT, task).await.unwrap().unwrap();
            assert!(report.reason.is_graceful());
            assert_eq!(report.metrics.undelivered_items, 0);
            assert_eq!(report.metrics.accepted_items, report.metrics.delivered_items);
            recorder.0.lock().unwrap().written.clone()
        });
        prop_assert_eq!(written, framed(&payloads));
    }
}
