//! Watermark channel and writer against tokio's bounded mpsc and tokio-util's `FramedWrite`.
//!
//! `channel_1p1c`: one producer task sends 1M 64-byte `Bytes` to one consumer task on a current-thread runtime;
//! tidegate's queue holds 64 KiB (high = hard = 64 KiB, low = 32 KiB), tokio's mpsc 1024 items (64 KiB of them).
//! `write_frames_64b` / `write_frames_16k`: length-prefix frames (tokio-util's `LengthDelimitedCodec`) and write
//! them into a writer that accepts everything and supports vectored writes, as a socket does. `tidegate` is a
//! spawned `WatermarkWriter`: for 64-byte frames fed through a `FramedSender` (8 KiB batches) with the default
//! limits, for 16 KiB frames pre-framed (header + payload `Bytes`, no copy) with a 512 KiB high mark; `framed_write`
//! feeds a `FramedWrite` and flushes at the end. `write_frames_4k_encoder`: 4 KiB payloads through an encoder on
//! both sides; `tidegate` is `FramedSender::zero_copy` with tidegate's `LengthFieldCodec` (the same 4-byte
//! big-endian header) and the default limits, which queues each payload `Bytes` after its header instead of copying
//! it; `framed_write` copies it.
//!
//! Under `cargo test` (no `--bench` argument) the sizes shrink so the test run stays quick; `TIDEGATE_BENCH_FULL`
//! keeps the full sizes there, so one full-size run of a function can be counted under callgrind.

use std::hint::black_box;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::SinkExt;
use tidegate::codec::LengthFieldCodec;
use tidegate::watermark::{self, Config, FramedSender, Limits, WatermarkWriter};
use tokio::io::AsyncWrite;
use tokio::runtime::Runtime;
use tokio_util::codec::{FramedWrite, LengthDelimitedCodec};

static PAYLOAD_64: [u8; 64] = [7; 64];
static PAYLOAD_4K: [u8; 4 * 1024] = [7; 4 * 1024];
static PAYLOAD_16K: [u8; 16 * 1024] = [7; 16 * 1024];

/// Full sizes under `--bench`, or with `TIDEGATE_BENCH_FULL` set (to count instructions of one full-size run of a
/// group under callgrind in test mode: `valgrind --tool=callgrind <bench binary> write_frames_64b/tidegate`).
fn benching() -> bool {
    std::env::args().any(|arg| arg == "--bench")
        || std::env::var_os("TIDEGATE_BENCH_FULL").is_some()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn channel_1p1c(c: &mut Criterion) {
    let items: u64 = if benching() { 1_000_000 } else { 10_000 };
    let rt = runtime();
    let mut group = c.benchmark_group("channel_1p1c");
    group.throughput(Throughput::Elements(items));
    group.sample_size(10);
    group.bench_function("tidegate", |b| {
        b.to_async(&rt).iter(|| async {
            let limits = Limits::new(32 * 1024, 64 * 1024, 64 * 1024);
            let (tx, mut rx) =
                watermark::channel::<Bytes>(Config::builder().limits(limits).build());
            let consumer = tokio::spawn(async move {
                let mut bytes = 0;
                while let Some(item) = rx.recv().await {
                    bytes += item.len();
                }
                bytes
            });
            for _ in 0..items {
                tx.send(Bytes::from_static(&PAYLOAD_64)).await.unwrap();
            }
            drop(tx);
            black_box(consumer.await.unwrap());
        })
    });
    group.bench_function("tokio_mpsc", |b| {
        b.to_async(&rt).iter(|| async {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1024);
            let consumer = tokio::spawn(async move {
                let mut bytes = 0;
                while let Some(item) = rx.recv().await {
                    bytes += item.len();
                }
                bytes
            });
            for _ in 0..items {
                tx.send(Bytes::from_static(&PAYLOAD_64)).await.unwrap();
            }
            drop(tx);
            black_box(consumer.await.unwrap());
        })
    });
    group.finish();
}

/// Accepts everything, vectored like a socket, and counts bytes and calls.
#[derive(Default)]
struct Counting {
    bytes: u64,
    calls: u64,
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.bytes += buf.len() as u64;
        self.calls += 1;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n: usize = bufs.iter().map(|b| b.len()).sum();
        self.bytes += n as u64;
        self.calls += 1;
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

/// The tidegate side of a `write_frames_*` group.
#[derive(Clone, Copy)]
enum Framing {
    /// `FramedSender` + `LengthDelimitedCodec`: frames copied into 8 KiB batches, one queue item per batch.
    Encoder,
    /// `FramedSender::zero_copy` + tidegate's `LengthFieldCodec`: headers in the sender's batch, payloads queued as
    /// their own `Bytes` right after them (default threshold, 4 KiB), never copied.
    HeaderEncoder,
    /// Pre-framed: a 4-byte header split off a shared buffer, then the payload `Bytes` itself; the writer sends both
    /// with one vectored write and the payload is never copied.
    ZeroCopy,
}

async fn tidegate_frames(payload: &'static [u8], frames: u64, framing: Framing) -> u64 {
    let (tx, writer) = match framing {
        Framing::Encoder | Framing::HeaderEncoder => WatermarkWriter::new(Counting::default()),
        // The default 64 KiB high mark holds only four 16 KiB frames; size the marks in frames, as a server
        // sending large frames would (high = 32 frames).
        Framing::ZeroCopy => WatermarkWriter::builder()
            .limits(Limits::new(256 * 1024, 512 * 1024, 1024 * 1024))
            .build(Counting::default()),
    };
    let task = writer.spawn();
    match framing {
        Framing::Encoder => {
            let mut framed = FramedSender::new(tx, LengthDelimitedCodec::new());
            for _ in 0..frames {
                framed.feed(Bytes::from_static(payload)).await.unwrap();
            }
            framed.flush().await.unwrap();
            framed.sender().close();
        }
        Framing::HeaderEncoder => {
            let mut framed = FramedSender::zero_copy(tx, LengthFieldCodec::new(1 << 20));
            for _ in 0..frames {
                framed.feed(Bytes::from_static(payload)).await.unwrap();
            }
            framed.flush().await.unwrap();
            framed.sender().close();
        }
        Framing::ZeroCopy => {
            let mut headers = BytesMut::new();
            for _ in 0..frames {
                if headers.capacity() < 4 {
                    headers.reserve(4096);
                }
                headers.put_u32(payload.len() as u32);
                tx.send(headers.split().freeze()).await.unwrap();
                tx.send(Bytes::from_static(payload)).await.unwrap();
            }
            tx.close();
        }
    }
    task.await.unwrap().metrics.sent_bytes
}

fn write_frames(
    c: &mut Criterion,
    group_name: &str,
    payload: &'static [u8],
    frames: u64,
    framing: Framing,
) {
    let rt = runtime();
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Bytes(frames * payload.len() as u64));
    group.bench_function("tidegate", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tidegate_frames(payload, frames, framing).await) })
    });
    group.bench_function("framed_write", |b| {
        b.to_async(&rt).iter(|| async {
            let mut framed = FramedWrite::new(Counting::default(), LengthDelimitedCodec::new());
            for _ in 0..frames {
                framed.feed(Bytes::from_static(payload)).await.unwrap();
            }
            SinkExt::<Bytes>::flush(&mut framed).await.unwrap();
            black_box(framed.get_ref().bytes);
        })
    });
    group.finish();
}

fn write_frames_64b(c: &mut Criterion) {
    let frames = if benching() { 100_000 } else { 1_000 };
    write_frames(c, "write_frames_64b", &PAYLOAD_64, frames, Framing::Encoder);
}

fn write_frames_16k(c: &mut Criterion) {
    let frames = if benching() { 2_000 } else { 50 };
    write_frames(
        c,
        "write_frames_16k",
        &PAYLOAD_16K,
        frames,
        Framing::ZeroCopy,
    );
}

fn write_frames_4k_encoder(c: &mut Criterion) {
    let frames = if benching() { 10_000 } else { 200 };
    write_frames(
        c,
        "write_frames_4k_encoder",
        &PAYLOAD_4K,
        frames,
        Framing::HeaderEncoder,
    );
}

criterion_group!(
    benches,
    channel_1p1c,
    write_frames_64b,
    write_frames_16k,
    write_frames_4k_encoder
);
criterion_main!(benches);
