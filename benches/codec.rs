//! tidegate's decoders against tokio-util's on the same pre-built input.
//!
//! `decode_length_64b` / `decode_length_4k`: many frames of 64 B / 4 KiB payload behind a 4-byte big-endian length,
//! against `LengthDelimitedCodec`. `decode_lines_80b`: 80-byte lines against `LinesCodec::new_with_max_length`.
//! Each iteration decodes a fresh copy of the whole input (the copy is made outside the timed part) and drops every
//! frame, as a server that handles frames one by one would.

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidegate::codec::{LengthFieldCodec, LineCodec};
use tokio_util::codec::{Decoder, LengthDelimitedCodec, LinesCodec};

/// About 32 KiB of input per iteration for the small frames: within what a `FramedRead` buffer holds after a few
/// large reads, and small enough that `cargo test --all-targets` runs each bench quickly.
const INPUT_BYTES: usize = 32 * 1024;

fn length_input(payload: usize) -> BytesMut {
    let frames = (INPUT_BYTES / (payload + 4)).max(16);
    let mut buf = BytesMut::with_capacity(frames * (payload + 4));
    for i in 0..frames {
        buf.put_u32(payload as u32);
        buf.put_bytes(i as u8, payload);
    }
    buf
}

fn lines_input() -> BytesMut {
    let line = [b'x'; 80];
    let mut buf = BytesMut::new();
    while buf.len() + 81 <= INPUT_BYTES {
        buf.extend_from_slice(&line);
        buf.put_u8(b'\n');
    }
    buf
}

/// Decodes every frame of `input` with `codec` and drops it; returns the count so the work cannot be skipped.
fn drain<D: Decoder>(codec: &mut D, mut buf: BytesMut) -> usize
where
    D::Error: std::fmt::Debug,
{
    let mut n = 0;
    while let Some(frame) = codec.decode(&mut buf).unwrap() {
        black_box(frame);
        n += 1;
    }
    n
}

fn bench_length(c: &mut Criterion, name: &str, payload: usize) {
    let input = length_input(payload);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("tidegate", |b| {
        let mut codec = LengthFieldCodec::new(payload + 4);
        b.iter_batched(
            || input.clone(),
            |buf| drain(&mut codec, buf),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tokio_util", |b| {
        let mut codec = LengthDelimitedCodec::builder()
            .max_frame_length(payload)
            .new_codec();
        b.iter_batched(
            || input.clone(),
            |buf| drain(&mut codec, buf),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn decode_length(c: &mut Criterion) {
    bench_length(c, "decode_length_64b", 64);
    bench_length(c, "decode_length_4k", 4096);
}

fn decode_lines(c: &mut Criterion) {
    let input = lines_input();
    let mut group = c.benchmark_group("decode_lines_80b");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("tidegate", |b| {
        let mut codec = LineCodec::new(80);
        b.iter_batched(
            || input.clone(),
            |buf| drain(&mut codec, buf),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tokio_util", |b| {
        let mut codec = LinesCodec::new_with_max_length(80);
        b.iter_batched(
            || input.clone(),
            |buf| drain(&mut codec, buf),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, decode_length, decode_lines);
criterion_main!(benches);
