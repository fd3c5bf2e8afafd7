//! Pooled buffers against fresh `BytesMut` allocations.
//!
//! `pool_acquire_release_4k`: acquire a 4 KiB buffer, write 8 bytes, drop it.
//! `pool_freeze_clone_4k`: the same, then freeze, clone, and drop both handles.

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion};
use tidegate::BufPool;

const CAPACITY: usize = 4096;

fn acquire_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_acquire_release_4k");
    let pool = BufPool::new();
    group.bench_function("tidegate", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire(black_box(CAPACITY)).unwrap();
            buf.put_u64(black_box(42));
            black_box(&buf);
        })
    });
    group.bench_function("bytesmut", |b| {
        b.iter(|| {
            let mut buf = BytesMut::with_capacity(black_box(CAPACITY));
            buf.put_u64(black_box(42));
            black_box(&buf);
        })
    });
    group.finish();
}

fn freeze_clone(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_freeze_clone_4k");
    let pool = BufPool::new();
    group.bench_function("tidegate", |b| {
        b.iter(|| {
            let mut buf = pool.try_acquire(black_box(CAPACITY)).unwrap();
            buf.put_u64(black_box(42));
            let frozen = buf.freeze();
            let clone = black_box(frozen.clone());
            drop(black_box(frozen));
            drop(clone);
        })
    });
    group.bench_function("bytesmut", |b| {
        b.iter(|| {
            let mut buf = BytesMut::with_capacity(black_box(CAPACITY));
            buf.put_u64(black_box(42));
            let frozen = buf.freeze();
            let clone = black_box(frozen.clone());
            drop(black_box(frozen));
            drop(clone);
        })
    });
    group.finish();
}

criterion_group!(benches, acquire_release, freeze_clone);
criterion_main!(benches);
