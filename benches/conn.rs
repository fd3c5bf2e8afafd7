//! Fan-out: one frame to 1,000 watermark queues, through `conn::Group` and through a hand-written loop.
//!
//! `group_broadcast_1k`: `tidegate` is [`Group::broadcast`]; `hand_loop` walks a `Vec<Sender<Bytes>>` of the same
//! 1,000 channels with `is_writable` then `try_send` of a clone of the frame, counting sent and skipped members as
//! the group does. Both do the same work per member: the receivers are drained before every broadcast, outside
//! the measurement, so every member is writable and every frame is queued (64 bytes, one shared `Bytes`). What the
//! group adds is its read lock, its closed-member bookkeeping and its counters, once per broadcast.
//!
//! On a shared machine, compare instruction counts rather than times: build with `cargo bench --no-run`, then run
//! the bench binary in test mode (no `--bench` argument: each function runs once) under callgrind, counting only
//! the measured function:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*broadcast_with_group*' <bench binary> group_broadcast_1k/tidegate
//! valgrind --tool=callgrind --toggle-collect='*broadcast_by_hand*' <bench binary> group_broadcast_1k/hand_loop
//! ```

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidegate::conn::Group;
use tidegate::watermark::{self, Config, Limits, Receiver, Sender};

const MEMBERS: usize = 1_000;

struct Fans {
    group: Group,
    senders: Vec<Sender<Bytes>>,
    receivers: Vec<Receiver<Bytes>>,
}

impl Fans {
    fn new() -> Self {
        let (group, mut senders, mut receivers) = (Group::new(), Vec::new(), Vec::new());
        for _ in 0..MEMBERS {
            let config = Config::builder()
                .limits(Limits::new(1024, 4096, 16384))
                .build();
            let (tx, rx) = watermark::channel::<Bytes>(config);
            group.add(tx.clone());
            senders.push(tx);
            receivers.push(rx);
        }
        let mut fans = Fans {
            group,
            senders,
            receivers,
        };
        // Every queue and receiver gets its storage before anything is measured: a receiver swaps its (empty)
        // buffer with the queue's, so both are grown after two rounds.
        for _ in 0..2 {
            fans.group.broadcast(frame());
            drain(&mut fans.receivers);
        }
        fans
    }
}

fn drain(receivers: &mut [Receiver<Bytes>]) {
    for rx in receivers {
        while let Ok(Some(item)) = rx.try_recv() {
            black_box(item);
        }
    }
}

fn frame() -> Bytes {
    Bytes::from(vec![7u8; 64])
}

#[inline(never)]
fn broadcast_with_group(group: &Group, frame: Bytes) -> usize {
    group.broadcast(frame).sent
}

#[inline(never)]
fn broadcast_by_hand(senders: &[Sender<Bytes>], frame: Bytes) -> usize {
    let (mut sent, mut skipped) = (0usize, 0usize);
    for tx in senders {
        if tx.is_writable() && tx.try_send(frame.clone()).is_ok() {
            sent += 1;
        } else {
            skipped += 1;
        }
    }
    black_box(skipped);
    sent
}

fn group_broadcast_1k(c: &mut Criterion) {
    let mut fans = Fans::new();
    let mut group = c.benchmark_group("group_broadcast_1k");
    group.throughput(Throughput::Elements(MEMBERS as u64));
    group.bench_function("tidegate", |b| {
        b.iter_batched(
            || {
                drain(&mut fans.receivers);
                frame()
            },
            |frame| assert_eq!(broadcast_with_group(&fans.group, frame), MEMBERS),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("hand_loop", |b| {
        b.iter_batched(
            || {
                drain(&mut fans.receivers);
                frame()
            },
            |frame| assert_eq!(broadcast_by_hand(&fans.senders, frame), MEMBERS),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, group_broadcast_1k);
criterion_main!(benches);
