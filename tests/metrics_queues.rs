//! Watermark queues, queue sets, groups and connections in a metrics registry: values that move as the queues
//! work, parts that leave when dropped, an aggregate whose size does not grow with its members, and live marks
//! that change in one step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidegate::codec::LengthFieldCodec;
use tidegate::conn::{Connection, Group};
use tidegate::metrics::{Observe, Registry, Settings};
use tidegate::watermark::{self, CloseReason, Config, Limits, QueueSet, Sender, WatermarkWriter};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(60);

/// The value of the one series of `family` (without the prefix) under `name`, with `extra` as its one other label.
fn value(registry: &Registry, name: &str, family: &str, extra: Option<(&str, &str)>) -> f64 {
    let found: Vec<f64> = registry
        .collect()
        .into_iter()
        .filter(|s| s.family.name() == family && s.labels.get("name") == Some(name))
        .filter(|s| extra.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| s.value)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{family}{{name={name}, {extra:?}}}: {found:?}"
    );
    found[0]
}

fn get(registry: &Registry, name: &str, family: &str) -> f64 {
    value(registry, name, family, None)
}

fn config(limits: Limits) -> Config {
    Config::builder().limits(limits).build()
}

fn marks(low: u64, high: u64, hard: u64) -> Settings {
    Settings::new()
        .with("low", Some(low))
        .with("high", Some(high))
        .with("hard", Some(hard))
}

#[tokio::test]
async fn one_queue_reports_its_level_and_counters_as_it_works() {
    let registry = Registry::new();
    let (tx, mut rx) = watermark::channel::<Vec<u8>>(config(Limits::new(4, 8, 64)));
    registry.register("q", &tx).unwrap();
    assert_eq!(get(&registry, "q", "queue_unwritable"), 0.0);
    assert_eq!(
        value(&registry, "q", "queue_limit_bytes", Some(("mark", "high"))),
        8.0
    );

    tx.try_send(vec![0; 10]).unwrap(); // 10 > high
    assert_eq!(get(&registry, "q", "queue_queued_bytes"), 10.0);
    assert_eq!(get(&registry, "q", "queue_unwritable"), 1.0);
    assert_eq!(get(&registry, "q", "queue_max_queued_bytes"), 10.0);
    assert!(tx.try_send(vec![0; 60]).is_err()); // 70 > hard
    assert_eq!(get(&registry, "q", "queue_refused_total"), 1.0);

    rx.recv().await.unwrap();
    assert_eq!(get(&registry, "q", "queue_queued_bytes"), 0.0);
    assert_eq!(get(&registry, "q", "queue_unwritable"), 0.0);
    assert_eq!(
        get(&registry, "q", "queue_max_queued_bytes"),
        10.0,
        "the peak stays"
    );
    assert_eq!(get(&registry, "q", "queue_delivered_items_total"), 1.0);
    assert_eq!(get(&registry, "q", "queue_writability_flips_total"), 2.0);

    tx.try_send(vec![0; 3]).unwrap();
    drop(rx);
    assert_eq!(get(&registry, "q", "queue_undelivered_items_total"), 1.0);
    assert_eq!(get(&registry, "q", "queue_undelivered_bytes_total"), 3.0);
}

#[tokio::test]
async fn a_writer_reports_bytes_sent_and_writes() {
    let registry = Registry::new();
    let (stream, mut peer) = tokio::io::duplex(1 << 16);
    let (tx, writer) = WatermarkWriter::new(stream);
    registry.register("w", &writer).unwrap();
    let task = writer.spawn();
    tx.send(Bytes::from_static(b"hello")).await.unwrap();
    drop(tx);
    timeout(WAIT, task).await.unwrap().unwrap();
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut got)
        .await
        .unwrap();
    assert_eq!(got, b"hello");
    // The writer finished and its queue is gone: the registry forgets it.
    assert!(registry.collect().is_empty());
}

#[test]
fn dropped_parts_leave_the_registry() {
    let registry = Registry::new();
    let (tx, rx) = watermark::channel::<Vec<u8>>(Config::default());
    let set = QueueSet::default();
    let group = Group::new();
    registry.register("tx", &tx).unwrap();
    registry.register("rx", &rx).unwrap();
    registry.register("set", &set).unwrap();
    registry.register("group", &group).unwrap();
    let names = |registry: &Registry| {
        let mut names: Vec<String> = registry
            .collect()
            .iter()
            .map(|s| s.labels.get("name").unwrap().to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    };
    assert_eq!(names(&registry), ["group", "rx", "set", "tx"]);
    drop(set);
    drop(group);
    assert_eq!(names(&registry), ["rx", "tx"]);
    drop(tx); // the receiver still holds the queue
    assert_eq!(names(&registry), ["rx", "tx"]);
    drop(rx);
    assert!(registry.collect().is_empty());
    assert!(registry.names().is_empty());
}

#[test]
fn a_set_of_10_000_queues_renders_as_many_series_as_a_set_of_10() {
    let registry = Registry::new();
    let set = QueueSet::new(Limits::new(4, 8, 64));
    registry.register("conns", &set).unwrap();
    let mut queues: Vec<(Sender<Vec<u8>>, _)> = Vec::new();
    let join = |count: usize, queues: &mut Vec<_>| {
        for _ in 0..count {
            let (tx, rx) = watermark::channel::<Vec<u8>>(Config::default());
            assert!(set.add(&tx));
            queues.push((tx, rx));
        }
    };
    join(10, &mut queues);
    let series_10 = registry.collect().len();
    let text_10 = registry.render_prometheus();
    join(9_990, &mut queues);
    for (tx, _) in queues.iter().step_by(100) {
        tx.try_send(vec![0; 9]).unwrap(); // over high
    }
    assert_eq!(registry.collect().len(), series_10);
    assert_eq!(
        registry.render_prometheus().lines().count(),
        text_10.lines().count()
    );
    assert_eq!(get(&registry, "conns", "queue_members"), 10_000.0);
    assert_eq!(get(&registry, "conns", "queue_queued_bytes"), 900.0);
    assert_eq!(get(&registry, "conns", "queue_unwritable"), 100.0);
    assert_eq!(get(&registry, "conns", "queue_largest_queued_bytes"), 9.0);
    assert!(queues[1].0.try_send(vec![0; 65]).is_err()); // over the set's hard cap
    assert_eq!(get(&registry, "conns", "queue_refused_total"), 1.0);
    drop(queues);
    assert_eq!(get(&registry, "conns", "queue_members"), 0.0);
    assert_eq!(get(&registry, "conns", "queue_queued_bytes"), 0.0);
    assert_eq!(get(&registry, "conns", "queue_max_queued_bytes"), 9.0);
    // Their 100 undelivered items went with the receivers, and still count.
    assert_eq!(
        get(&registry, "conns", "queue_undelivered_items_total"),
        100.0
    );
    assert_eq!(get(&registry, "conns", "queue_refused_total"), 1.0);
    assert_eq!(registry.collect().len(), series_10);
}

#[test]
fn a_queue_belongs_to_one_set() {
    let (a, b) = (QueueSet::default(), QueueSet::default());
    let (tx, _rx) = watermark::channel::<Vec<u8>>(Config::default());
    assert!(a.add(&tx));
    assert!(!a.add(&tx));
    assert!(!b.add(&tx.clone()));
    assert_eq!((a.len(), b.len()), (1, 0));
}

/// A peer that never reads: the writer's first write never completes, the queue stays above its high mark.
#[tokio::test(start_paused = true)]
async fn an_eviction_still_counts_after_the_evicted_queue_is_gone() {
    let registry = Registry::new();
    let set = QueueSet::new(Limits::new(4, 8, 1024));
    registry.register("conns", &set).unwrap();
    let (stream, peer) = tokio::io::duplex(16);
    let (tx, writer) = WatermarkWriter::builder()
        .evict_after(Some(Duration::from_secs(5)))
        .build(stream);
    assert!(set.add(&tx));
    let task = writer.spawn();
    tx.send(Bytes::from(vec![0u8; 100])).await.unwrap();
    assert_eq!(get(&registry, "conns", "queue_unwritable"), 1.0);
    let reason = timeout(WAIT, tx.closed()).await.unwrap();
    assert!(matches!(reason, CloseReason::Evicted { .. }), "{reason:?}");
    timeout(WAIT, task).await.unwrap().unwrap();
    // Not read from the set before the queue is gone: the count after it must come from the queue's final counts.
    assert!(tx.metrics().evicted);
    assert_eq!(set.len(), 1);

    drop(tx);
    drop(peer);
    assert_eq!(set.len(), 0);
    assert_eq!(get(&registry, "conns", "queue_members"), 0.0);
    assert_eq!(get(&registry, "conns", "queue_evicted_total"), 1.0);
    assert_eq!(get(&registry, "conns", "queue_sent_bytes_total"), 16.0);
    assert_eq!(set.metrics().evicted, 1);
}

#[test]
fn a_settings_swap_on_a_set_applies_to_every_member_and_to_new_members() {
    let set = QueueSet::new(Limits::new(10, 100, 1000));
    let observer = set.observer();
    let members: Vec<_> = (0..3)
        .map(|_| {
            let (tx, rx) = watermark::channel::<Vec<u8>>(config(Limits::new(1, 2, 3)));
            assert!(set.add(&tx));
            tx.try_send(vec![0; 50]).unwrap();
            assert!(tx.is_writable(), "the set's marks, not the channel's");
            (tx, rx)
        })
        .collect();
    assert_eq!(observer.settings(), Some(marks(10, 100, 1000)));

    let refused = observer
        .check(&marks(30, 20, 1000).with("size", Some(1)))
        .unwrap_err();
    assert_eq!(refused.len(), 2, "{refused:?}");

    let new = marks(20, 40, 500);
    observer.check(&new).unwrap();
    assert!(observer.apply(&new));
    for (tx, _) in &members {
        assert_eq!(tx.limits(), Limits::new(20, 40, 500));
        assert!(!tx.is_writable(), "50 > the new high");
    }
    let (late, _rx) = watermark::channel::<Vec<u8>>(Config::default());
    set.add(&late);
    assert_eq!(late.limits(), Limits::new(20, 40, 500));
    assert_eq!(set.metrics().unwritable, 3);

    // A member's own change is the set's.
    members[0].0.set_limits(Limits::new(60, 80, 500));
    assert!(members.iter().all(|(tx, _)| tx.is_writable()));
    assert_eq!(late.limits().high(), 80);
}

#[test]
fn a_queue_reports_and_takes_its_marks_as_settings() {
    let (tx, _rx) = watermark::channel::<Vec<u8>>(config(Limits::new(10, 20, 30)));
    let observer = tx.observer();
    assert_eq!(observer.settings(), Some(marks(10, 20, 30)));
    let reasons = observer
        .check(&Settings::new().with("low", None).with("high", Some(5)))
        .unwrap_err();
    assert_eq!(reasons, ["low cannot be off", "hard is missing"]);
    tx.try_send(vec![0; 15]).unwrap();
    assert!(observer.apply(&marks(5, 10, 30)));
    assert_eq!(tx.limits(), Limits::new(5, 10, 30));
    assert!(!tx.is_writable());
}

/// Swaps a queue's marks between two valid triples while another thread reads them: every read is one of the two.
#[test]
fn a_reader_of_a_queues_marks_never_sees_a_mixed_triple() {
    let (a, b) = (Limits::new(1, 2, 3), Limits::new(100, 200, 300));
    for in_set in [false, true] {
        let (tx, _rx) = watermark::channel::<Vec<u8>>(config(a));
        let set = QueueSet::new(a);
        if in_set {
            set.add(&tx);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = std::thread::spawn({
            let (tx, set, stop) = (tx.clone(), set.clone(), stop.clone());
            move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let next = if swaps % 2 == 0 { b } else { a };
                    match in_set {
                        true => set.set_limits(next),
                        false => tx.set_limits(next),
                    }
                    swaps += 1;
                }
                swaps
            }
        });
        for _ in 0..500_000 {
            let limits = tx.limits();
            assert!(limits == a || limits == b, "mixed marks {limits:?}");
        }
        stop.store(true, Ordering::Relaxed);
        assert!(swapper.join().unwrap() > 0);
    }
}

#[tokio::test]
async fn a_group_reports_members_skips_and_prunes_by_reason() {
    let registry = Registry::new();
    let group = Group::new();
    registry.register("fans", &group).unwrap();
    let (fast, mut fast_rx) = watermark::channel::<Bytes>(config(Limits::new(4, 8, 64)));
    let (slow, _slow_rx) = watermark::channel::<Bytes>(config(Limits::new(4, 8, 64)));
    group.add(fast.clone());
    group.add(slow.clone());
    slow.try_send(Bytes::from(vec![0; 9])).unwrap(); // unwritable
    group.broadcast(Bytes::from_static(b"tick"));
    assert_eq!(get(&registry, "fans", "group_members"), 2.0);
    assert_eq!(get(&registry, "fans", "group_sent_total"), 1.0);
    assert_eq!(get(&registry, "fans", "group_skipped_total"), 1.0);
    assert_eq!(get(&registry, "fans", "group_queued_bytes"), 13.0);
    assert_eq!(get(&registry, "fans", "group_max_queued_bytes"), 9.0);
    assert_eq!(get(&registry, "fans", "group_unwritable_members"), 1.0);

    fast_rx.recv().await.unwrap();
    slow.abort();
    group.broadcast(Bytes::from_static(b"tock"));
    assert_eq!(get(&registry, "fans", "group_members"), 1.0);
    assert_eq!(get(&registry, "fans", "group_broadcasts_total"), 2.0);
    let pruned = |reason| {
        value(
            &registry,
            "fans",
            "group_pruned_total",
            Some(("reason", reason)),
        )
    };
    assert_eq!(
        (pruned("closed"), pruned("evicted"), pruned("failed")),
        (1.0, 0.0, 0.0)
    );
    drop(group);
    assert!(registry.collect().is_empty());
}

#[tokio::test]
async fn connections_built_with_a_set_join_it_and_follow_its_marks() {
    let registry = Registry::new();
    let set = QueueSet::new(Limits::new(16 << 10, 32 << 10, 128 << 10));
    registry.register("conns", &set).unwrap();
    let codec = LengthFieldCodec::new(16 * 1024);
    let mut builder = Connection::builder();
    builder.queue_set(Some(&set));
    let mut conns = Vec::new();
    for _ in 0..3 {
        let (stream, peer) = tokio::io::duplex(1024);
        let conn = builder.build(stream, codec.clone(), codec.clone()).unwrap();
        registry
            .register(&format!("conn{}", conns.len()), &conn)
            .unwrap();
        conns.push((conn, peer));
    }
    assert_eq!(get(&registry, "conns", "queue_members"), 3.0);
    assert_eq!(
        set.observer().settings(),
        Some(marks(16 << 10, 32 << 10, 128 << 10))
    );

    // hard - high must leave a connection room for its largest frame and a batch.
    let tight = marks(8 << 10, 120 << 10, 128 << 10);
    let reasons = set.observer().check(&tight).unwrap_err();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let roomy = marks(8 << 10, 16 << 10, 128 << 10);
    set.observer().check(&roomy).unwrap();
    assert!(set.observer().apply(&roomy));
    for (i, (conn, _)) in conns.iter().enumerate() {
        assert_eq!(conn.sender().limits().high(), 16 << 10);
        assert_eq!(
            value(
                &registry,
                &format!("conn{i}"),
                "queue_limit_bytes",
                Some(("mark", "high"))
            ),
            (16 << 10) as f64
        );
    }
}
