//! The parts' reports to `tidegate::metrics::Registry`: counters and gauges move as the parts work, dropped
//! parts leave the registry, and live settings are checked whole and applied in one step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidegate::exec::{BoundedExecutor, SpawnError};
use tidegate::metrics::{Observe, Registry, Settings};
use tokio::sync::watch;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// The value of the series `family` (without the prefix) of part `name`, with `extra` labels if given.
fn value(registry: &Registry, family: &str, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let samples = registry.collect();
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.family.name() == family && s.labels.get("name") == Some(name))
        .filter(|s| extra.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .filter(|s| s.labels.len() == 1 + extra.len())
        .map(|s| s.value)
        .collect();
    assert!(
        found.len() <= 1,
        "{family} {name} {extra:?}: several series"
    );
    found.first().copied()
}

fn get(registry: &Registry, family: &str, name: &str) -> f64 {
    value(registry, family, name, &[]).unwrap_or_else(|| panic!("no series {family} for {name}"))
}

/// Every reason `check` gives, joined, for assertions on what it names.
fn reasons(observer: &dyn tidegate::metrics::Observer, settings: &Settings) -> String {
    observer.check(settings).unwrap_err().join("\n")
}

// ---------------------------------------------------------------------------------------------------------
// BoundedExecutor

fn blocked(
    exec: &BoundedExecutor,
    n: usize,
    gate: &watch::Receiver<bool>,
) -> Vec<tidegate::TaskHandle<()>> {
    (0..n)
        .map(|_| {
            let mut gate = gate.clone();
            exec.try_spawn(async move {
                gate.wait_for(|open| *open).await.ok();
            })
            .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn exec_series_move_as_tasks_run() {
    let registry = Registry::new();
    let exec = BoundedExecutor::new(2, 3);
    registry.register("handlers", &exec).unwrap();
    let (open, gate) = watch::channel(false);
    let handles = blocked(&exec, 5, &gate);
    // Give the two running tasks their slots.
    timeout(WAIT, async {
        while exec.metrics().running < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert!(exec.try_spawn(async {}).is_err());
    assert_eq!(get(&registry, "exec_in_flight", "handlers"), 5.0);
    assert_eq!(get(&registry, "exec_running", "handlers"), 2.0);
    assert_eq!(get(&registry, "exec_pending", "handlers"), 3.0);
    assert_eq!(get(&registry, "exec_admitted_total", "handlers"), 5.0);
    assert_eq!(get(&registry, "exec_refused_total", "handlers"), 1.0);
    assert_eq!(get(&registry, "exec_max_concurrency", "handlers"), 2.0);
    assert_eq!(get(&registry, "exec_max_pending", "handlers"), 3.0);
    assert_eq!(
        value(&registry, "exec_shed_after_seconds", "handlers", &[]),
        None
    );

    open.send(true).unwrap();
    for h in handles {
        timeout(WAIT, h).await.unwrap().unwrap();
    }
    let panicking = exec.try_spawn(async { panic!("boom") }).unwrap();
    assert!(timeout(WAIT, panicking).await.unwrap().is_err());
    let (_never, gate) = watch::channel(false);
    let aborted = blocked(&exec, 1, &gate).pop().unwrap();
    timeout(WAIT, async {
        while exec.metrics().running < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    aborted.abort();
    assert!(timeout(WAIT, aborted).await.unwrap().is_err());
    assert_eq!(get(&registry, "exec_in_flight", "handlers"), 0.0);
    assert_eq!(get(&registry, "exec_completed_total", "handlers"), 5.0);
    assert_eq!(get(&registry, "exec_panicked_total", "handlers"), 1.0);
    assert_eq!(get(&registry, "exec_aborted_total", "handlers"), 1.0);
    assert_eq!(get(&registry, "exec_admitted_total", "handlers"), 7.0);
    assert!(registry
        .render_prometheus()
        .contains("tidegate_exec_completed_total{name=\"handlers\"} 5\n"));

    drop(exec);
    assert_eq!(
        registry.collect().len(),
        0,
        "a dropped executor leaves the registry"
    );
    assert!(registry.names().is_empty());
}

fn exec_settings(concurrency: Option<u64>, pending: Option<u64>, shed: Option<u64>) -> Settings {
    Settings::new()
        .with("max_concurrency", concurrency)
        .with("max_pending", pending)
        .with("shed_after_ms", shed)
}

#[tokio::test]
async fn exec_settings_are_checked_whole_and_applied() {
    let exec = BoundedExecutor::new(4, 4);
    let observer = exec.observer();
    assert_eq!(
        observer.settings(),
        Some(exec_settings(Some(4), Some(4), None))
    );

    let bad = Settings::new()
        .with("max_concurrency", Some(0))
        .with("max_pending", Some(0))
        .with("queue", Some(1));
    let why = reasons(&*observer, &bad);
    assert!(why.contains("both 0"), "{why}");
    assert!(why.contains("shed_after_ms is missing"), "{why}");
    assert!(why.contains("unknown key queue"), "{why}");
    assert_eq!(observer.check(&bad).unwrap_err().len(), 3);
    let off = exec_settings(None, Some(1), None);
    assert!(reasons(&*observer, &off).contains("max_concurrency cannot be off"));
    assert_eq!(exec.max_concurrency(), 4, "check applies nothing");

    let (open, gate) = watch::channel(false);
    let handles = blocked(&exec, 2, &gate);
    let lowered = exec_settings(Some(1), Some(1), Some(250));
    assert_eq!(observer.check(&lowered), Ok(()));
    assert!(observer.apply(&lowered));
    assert_eq!(observer.settings(), Some(lowered));
    assert_eq!(exec.shed_after(), Some(Duration::from_millis(250)));
    // Two in flight already fill the lowered limit of 1 + 1: the next spawn is refused.
    assert!(matches!(
        exec.try_spawn(async {}),
        Err(SpawnError::Full { limit: 2, .. })
    ));
    open.send(true).unwrap();
    for h in handles {
        timeout(WAIT, h).await.unwrap().unwrap();
    }
    drop(exec);
    assert_eq!(observer.settings(), None);
    assert!(!observer.apply(&exec_settings(Some(1), Some(1), None)));
}

/// A reader of both limits never pairs an old one with a new one while `apply` swaps them.
#[test]
fn exec_apply_is_one_step_for_readers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let exec = rt.block_on(async { BoundedExecutor::new(1, 1000) });
    let observer = exec.observer();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (exec, stop) = (exec.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let m = exec.metrics();
                let l = exec.limits();
                for pair in [
                    (m.max_concurrency, m.max_pending),
                    (l.max_concurrency, l.max_pending),
                ] {
                    assert!(
                        pair == (1, 1000) || pair == (1000, 1),
                        "mixed limits {pair:?}"
                    );
                }
                reads += 1;
            }
            reads
        })
    };
    for i in 0..100_000 {
        let (c, p) = if i % 2 == 0 { (1000, 1) } else { (1, 1000) };
        assert!(observer.apply(&exec_settings(Some(c), Some(p), None)));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}

// ---------------------------------------------------------------------------------------------------------
// Codecs: one CodecStats for many decoders

mod codec {
    use super::*;
    use bytes::BytesMut;
    use tidegate::codec::{
        Capped, CodecError, CodecStats, DelimiterCodec, LengthFieldCodec, LineCodec, OversizePolicy,
    };
    use tokio_util::codec::{Decoder, LinesCodec};

    fn feed<D: Decoder>(codec: &mut D, bytes: &[u8]) -> Vec<Result<bool, ()>> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => out.push(Ok(true)),
                Ok(None) => return out,
                Err(_) => {
                    out.push(Err(()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn many_decoders_report_as_one_set_of_series() {
        let registry = Registry::new();
        let stats = CodecStats::new();
        registry.register("echo", &stats).unwrap();
        let mut decoders: Vec<LengthFieldCodec> = (0..100)
            .map(|_| {
                LengthFieldCodec::builder()
                    .max_frame_length(16)
                    .stats(&stats)
                    .build()
                    .unwrap()
            })
            .collect();
        for d in &mut decoders {
            assert_eq!(
                feed(d, b"\x00\x00\x00\x02hi\x00\x00\x00\x03abc"),
                [Ok(true), Ok(true)]
            );
        }
        let mut line = LineCodec::builder()
            .max_frame_length(4)
            .oversize_policy(OversizePolicy::Skip)
            .stats(&stats)
            .build()
            .unwrap();
        assert_eq!(feed(&mut line, b"toolong\nok\n"), [Ok(true)]);
        let mut delim = DelimiterCodec::builder()
            .delimiters([b";"])
            .max_frame_length(8)
            .stats(&stats)
            .build()
            .unwrap();
        assert_eq!(feed(&mut delim, b"a;b;"), [Ok(true), Ok(true)]);
        let mut capped = Capped::builder(LinesCodec::new())
            .max_frame_length(8)
            .stats(&stats)
            .build()
            .unwrap();
        assert_eq!(feed(&mut capped, b"x\n"), [Ok(true)]);
        let mut bad = LengthFieldCodec::builder()
            .max_frame_length(16)
            .length_adjustment(-8)
            .stats(&stats)
            .build()
            .unwrap();
        assert_eq!(feed(&mut bad, b"\x00\x00\x00\x00"), [Err(())]);

        assert_eq!(
            get(&registry, "codec_frames_total", "echo"),
            200.0 + 1.0 + 2.0 + 1.0
        );
        assert_eq!(
            get(&registry, "codec_bytes_total", "echo"),
            500.0 + 2.0 + 2.0
        );
        assert_eq!(get(&registry, "codec_too_long_total", "echo"), 1.0);
        assert_eq!(get(&registry, "codec_discarded_bytes_total", "echo"), 8.0);
        assert_eq!(get(&registry, "codec_malformed_total", "echo"), 1.0);
        assert_eq!(get(&registry, "codec_attached", "echo"), 104.0);
        // Each decoder still has its own counts.
        assert_eq!(decoders[0].metrics().frames, 2);
        let series = registry.collect().len();
        let first = decoders[0].clone();
        decoders.extend((0..999).map(|_| first.clone()));
        decoders.push(first);
        assert_eq!(
            registry.collect().len(),
            series,
            "more decoders, no more series"
        );
        assert_eq!(get(&registry, "codec_attached", "echo"), 1104.0);

        drop((decoders, line, delim, capped, bad));
        assert_eq!(get(&registry, "codec_attached", "echo"), 0.0);
        drop(stats);
        assert!(
            registry.collect().is_empty(),
            "dropped stats leave the registry"
        );
    }

    #[test]
    fn unattached_and_detached_decoders_add_nothing() {
        let stats = CodecStats::new();
        let mut codec = LineCodec::new(8);
        assert_eq!(feed(&mut codec, b"a\n"), [Ok(true)]);
        codec.set_stats(Some(&stats));
        assert_eq!(feed(&mut codec, b"b\n"), [Ok(true)]);
        assert_eq!((stats.metrics().frames, codec.metrics().frames), (1, 2));
        codec.set_stats(None);
        assert_eq!(feed(&mut codec, b"c\n"), [Ok(true)]);
        assert_eq!((stats.metrics().frames, stats.attached()), (1, 0));
    }

    #[test]
    fn the_live_maximum_is_checked_whole_and_followed_from_the_next_header() {
        let stats = CodecStats::new();
        let observer = stats.observer();
        assert_eq!(
            observer.settings(),
            Some(Settings::new().with("max_frame_length", None))
        );
        let mut codec = LengthFieldCodec::builder()
            .max_frame_length(64)
            .stats(&stats)
            .build()
            .unwrap();
        // A 2-byte field reaches frames of at most 2 + 65535 bytes; a 4-byte header needs at least 4.
        let _narrow = LengthFieldCodec::builder()
            .max_frame_length(64)
            .length_field_width(2)
            .stats(&stats)
            .build()
            .unwrap();
        assert_eq!(stats.max_frame_length_range(), (4, 65537));

        let bad = Settings::new()
            .with("max_frame_length", Some(3))
            .with("limit", Some(1));
        let why = reasons(&*observer, &bad);
        assert!(why.contains("outside 4..=65537"), "{why}");
        assert!(why.contains("unknown key limit"), "{why}");
        assert!(reasons(&*observer, &Settings::new()).contains("max_frame_length is missing"));
        assert!(reasons(
            &*observer,
            &Settings::new().with("max_frame_length", Some(70_000))
        )
        .contains("outside"));
        assert!(matches!(
            stats.set_max_frame_length(Some(3)),
            Err(CodecError::MaxOutOfRange {
                max: 3,
                min: 4,
                limit: 65537
            })
        ));
        assert_eq!(stats.max_frame_length(), None, "refused whole");

        // Half a frame (header read, 20 of 24 bytes) is in flight when the maximum drops to 8: that frame keeps
        // the decision made on its header, the next header is judged against 8.
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x14sixteen-bytes-ok"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let lowered = Settings::new().with("max_frame_length", Some(8));
        assert_eq!(observer.check(&lowered), Ok(()));
        assert!(observer.apply(&lowered));
        assert_eq!(observer.settings(), Some(lowered));
        buf.extend_from_slice(b"!!!!\x00\x00\x00\x10");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), 20);
        assert_eq!(codec.max_frame_length(), 8);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooLong { len: 20, max: 8 })
        ));
        assert_eq!(stats.metrics().too_long, 1);

        // Off: decoders keep what they have.
        assert!(observer.apply(&Settings::new().with("max_frame_length", None)));
        let mut other = LineCodec::builder()
            .max_frame_length(3)
            .stats(&stats)
            .build()
            .unwrap();
        assert_eq!(feed(&mut other, b"abc\n"), [Ok(true)]);
        assert_eq!(other.max_frame_length(), 3);
        drop((codec, _narrow, other, stats));
        assert_eq!(observer.settings(), None);
        assert!(!observer.apply(&Settings::new().with("max_frame_length", None)));
    }
}

// ---------------------------------------------------------------------------------------------------------
// ConnectionLimiter and LimitedListener

mod conn {
    use super::*;
    use std::net::SocketAddr;
    use tidegate::conn::{ConnectionLimiter, LimitError, LimitedListener, OverLimit};
    use tokio::net::TcpStream;

    fn peer(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    #[test]
    fn limiter_series_move_as_connections_come_and_go() {
        let registry = Registry::new();
        let limiter = ConnectionLimiter::new(3);
        limiter.set_per_ip_limit(Some(2));
        registry.register("edge", &limiter).unwrap();
        let a1 = limiter.try_acquire(peer(1, 1)).unwrap();
        let a2 = limiter.try_acquire(peer(1, 2)).unwrap();
        assert!(matches!(
            limiter.try_acquire(peer(1, 3)),
            Err(LimitError::PerIp { .. })
        ));
        let b1 = limiter.try_acquire(peer(2, 1)).unwrap();
        assert!(matches!(
            limiter.try_acquire(peer(3, 1)),
            Err(LimitError::Global { .. })
        ));
        assert!(matches!(
            limiter.try_acquire(peer(3, 1)),
            Err(LimitError::Global { .. })
        ));
        assert_eq!(get(&registry, "limiter_active", "edge"), 3.0);
        assert_eq!(get(&registry, "limiter_peak", "edge"), 3.0);
        assert_eq!(get(&registry, "limiter_limit", "edge"), 3.0);
        assert_eq!(get(&registry, "limiter_per_ip_limit", "edge"), 2.0);
        assert_eq!(get(&registry, "limiter_tracked_ips", "edge"), 2.0);
        assert_eq!(get(&registry, "limiter_accepted_total", "edge"), 3.0);
        let refused = |scope| {
            value(
                &registry,
                "limiter_refused_total",
                "edge",
                &[("scope", scope)],
            )
        };
        assert_eq!(
            (refused("global"), refused("per_ip")),
            (Some(2.0), Some(1.0))
        );
        drop((a1, a2));
        assert_eq!(get(&registry, "limiter_active", "edge"), 1.0);
        assert_eq!(get(&registry, "limiter_tracked_ips", "edge"), 1.0);
        drop(b1);
        drop(limiter);
        assert!(
            registry.collect().is_empty(),
            "a dropped limiter leaves the registry"
        );
    }

    #[test]
    fn limiter_settings_are_checked_whole_and_applied() {
        let limiter = ConnectionLimiter::new(10);
        let observer = limiter.observer();
        let settings = |limit, per_ip| Settings::new().with("limit", limit).with("per_ip", per_ip);
        assert_eq!(observer.settings(), Some(settings(Some(10), None)));

        let bad = settings(Some(2), Some(3)).with("burst", Some(1));
        let why = reasons(&*observer, &bad);
        assert!(why.contains("per_ip 3 is above limit 2"), "{why}");
        assert!(why.contains("unknown key burst"), "{why}");
        let why = reasons(&*observer, &Settings::new().with("limit", None));
        assert!(
            why.contains("limit cannot be off") && why.contains("per_ip is missing"),
            "{why}"
        );
        assert_eq!(limiter.limits(), (10, None), "check applies nothing");

        let held = limiter.try_acquire(peer(1, 1)).unwrap();
        let new = settings(Some(3), Some(1));
        assert_eq!(observer.check(&new), Ok(()));
        assert!(observer.apply(&new));
        assert_eq!(limiter.limits(), (3, Some(1)));
        assert_eq!(observer.settings(), Some(new));
        // The new per-address limit counts from now on: two more from one address, the second refused.
        let _first = limiter.try_acquire(peer(2, 1)).unwrap();
        assert!(matches!(
            limiter.try_acquire(peer(2, 2)),
            Err(LimitError::PerIp { limit: 1, .. })
        ));
        // And the global limit of 3 is full after one more.
        let _third = limiter.try_acquire(peer(3, 1)).unwrap();
        assert!(matches!(
            limiter.try_acquire(peer(4, 1)),
            Err(LimitError::Global { limit: 3, .. })
        ));
        assert!(observer.apply(&settings(Some(2), None)));
        assert_eq!(limiter.per_ip_limit(), None);
        drop((held, _first, _third, limiter));
        assert_eq!(observer.settings(), None);
    }

    /// A reader of both limits never pairs an old one with a new one while `apply` swaps them.
    #[test]
    fn limiter_apply_is_one_step_for_readers() {
        let limiter = ConnectionLimiter::new(1);
        limiter.set_per_ip_limit(Some(1));
        let observer = limiter.observer();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (limiter, stop) = (limiter.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let m = limiter.metrics();
                    for pair in [(m.limit, m.per_ip_limit), limiter.limits()] {
                        assert!(
                            pair == (1, Some(1)) || pair == (100, None),
                            "mixed limits {pair:?}"
                        );
                    }
                }
            })
        };
        for i in 0..200_000 {
            let (limit, per_ip) = if i % 2 == 0 {
                (100, None)
            } else {
                (1, Some(1))
            };
            let s = Settings::new()
                .with("limit", Some(limit))
                .with("per_ip", per_ip);
            assert!(observer.apply(&s));
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
    }

    #[tokio::test]
    async fn listener_series_move_and_a_dropped_listener_leaves() {
        let registry = Registry::new();
        let limiter = ConnectionLimiter::new(1);
        let listener = LimitedListener::builder()
            .limiter(limiter.clone())
            .over_limit(OverLimit::Reject)
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        registry.register("front", &listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let (_s1, _, _permit) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        let _c2 = TcpStream::connect(addr).await.unwrap();
        // Over the limit: the next accept resets the second client and keeps waiting.
        {
            let accept = listener.accept();
            tokio::pin!(accept);
            timeout(WAIT, async {
                loop {
                    tokio::select! {
                        _ = &mut accept => panic!("nothing should be accepted"),
                        _ = tokio::time::sleep(Duration::from_millis(1)) => {
                            if listener.metrics().rejected == 1 {
                                break;
                            }
                        }
                    }
                }
            })
            .await
            .unwrap();
        }
        assert_eq!(get(&registry, "listener_accepted_total", "front"), 1.0);
        let rejected = |scope| {
            value(
                &registry,
                "listener_rejected_total",
                "front",
                &[("scope", scope)],
            )
        };
        assert_eq!(
            (rejected("global"), rejected("per_ip")),
            (Some(1.0), Some(0.0))
        );
        assert_eq!(get(&registry, "listener_backoffs_total", "front"), 0.0);
        assert_eq!(
            get(&registry, "listener_skipped_errors_total", "front"),
            0.0
        );
        assert_eq!(get(&registry, "listener_pauses_total", "front"), 0.0);

        drop(listener);
        assert!(
            registry.collect().is_empty(),
            "the observer does not keep the listener alive"
        );
        // The socket is closed too: nobody accepts on the port any more.
        assert!(TcpStream::connect(addr).await.is_err());
    }
}

// ---------------------------------------------------------------------------------------------------------
// BufPool

mod pool {
    use super::*;
    use tidegate::{BufPool, MemoryBudget};

    fn pool(budget: &MemoryBudget) -> BufPool {
        BufPool::builder()
            .size_classes([512, 4096])
            .max_retained_bytes(64 * 1024)
            .thread_cache_bytes(0)
            .budget(Some(budget.clone()))
            .build()
            .unwrap()
    }

    #[test]
    fn pool_series_move_as_buffers_come_and_go() {
        let registry = Registry::new();
        let budget = MemoryBudget::new(16 * 1024);
        let pool = pool(&budget);
        registry.register("frames", &pool).unwrap();
        let small = pool.try_acquire(100).unwrap();
        let big = pool.try_acquire(4000).unwrap();
        let huge = pool.try_acquire(10_000).unwrap();
        assert!(
            pool.try_acquire(4096).is_err(),
            "512 + 4096 + 10000 + 4096 > 16 KiB"
        );
        assert_eq!(
            get(&registry, "pool_outstanding_bytes", "frames"),
            (512 + 4096 + 10_000) as f64
        );
        assert_eq!(get(&registry, "pool_outstanding_buffers", "frames"), 3.0);
        assert_eq!(get(&registry, "pool_acquired_total", "frames"), 3.0);
        assert_eq!(get(&registry, "pool_misses_total", "frames"), 2.0);
        assert_eq!(get(&registry, "pool_unpooled_total", "frames"), 1.0);
        assert_eq!(get(&registry, "pool_refused_total", "frames"), 1.0);
        assert_eq!(get(&registry, "pool_retained_bytes", "frames"), 0.0);
        assert_eq!(get(&registry, "pool_max_retained_bytes", "frames"), 65536.0);
        let class = |family, class| value(&registry, family, "frames", &[("class", class)]);
        assert_eq!(class("pool_class_outstanding_bytes", "4096"), Some(4096.0));
        assert_eq!(class("pool_class_acquired_total", "512"), Some(1.0));

        drop((small, big, huge));
        let again = pool.try_acquire(200).unwrap();
        assert_eq!(get(&registry, "pool_outstanding_bytes", "frames"), 512.0);
        assert_eq!(
            get(&registry, "pool_peak_outstanding_bytes", "frames"),
            (512 + 4096 + 10_000) as f64
        );
        assert_eq!(get(&registry, "pool_retained_bytes", "frames"), 4096.0);
        assert_eq!(get(&registry, "pool_hits_total", "frames"), 1.0);
        assert_eq!(get(&registry, "pool_returned_total", "frames"), 3.0);
        assert_eq!(class("pool_class_retained_bytes", "4096"), Some(4096.0));
        assert_eq!(class("pool_class_misses_total", "512"), Some(1.0));

        let clone = pool.clone();
        drop(pool);
        assert!(!registry.collect().is_empty(), "a clone still lives");
        drop(clone);
        // A buffer still out does not keep the pool in the registry; its budget charge is still there.
        assert!(
            registry.collect().is_empty(),
            "the last handle gone, the pool leaves"
        );
        assert_eq!(budget.used(), 512);
        drop(again);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn pool_settings_are_checked_whole_and_applied() {
        let budget = MemoryBudget::new(1 << 20);
        let pool = pool(&budget);
        let observer = pool.observer();
        assert_eq!(
            observer.settings(),
            Some(Settings::new().with("max_retained_bytes", Some(65536)))
        );
        let bad = Settings::new()
            .with("max_retained_bytes", None)
            .with("classes", Some(3));
        let why = reasons(&*observer, &bad);
        assert!(
            why.contains("cannot be off") && why.contains("unknown key classes"),
            "{why}"
        );
        assert!(reasons(&*observer, &Settings::new()).contains("max_retained_bytes is missing"));

        let held: Vec<_> = (0..4).map(|_| pool.try_acquire(4096).unwrap()).collect();
        drop(held);
        assert_eq!(pool.metrics().total.retained_bytes, 4 * 4096);
        let lowered = Settings::new().with("max_retained_bytes", Some(4096));
        assert_eq!(observer.check(&lowered), Ok(()));
        assert!(observer.apply(&lowered));
        assert_eq!(pool.max_retained_bytes(), 4096);
        assert_eq!(
            pool.metrics().total.retained_bytes,
            4096,
            "idle storage above the new cap is freed"
        );
        assert_eq!(observer.settings(), Some(lowered));
        drop(pool);
        assert_eq!(observer.settings(), None);
        assert!(!observer.apply(&Settings::new().with("max_retained_bytes", Some(1))));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Shared codec counters against the decoders' own, over random peer input

mod codec_props {
    use bytes::{BufMut, BytesMut};
    use proptest::prelude::*;
    use tidegate::codec::{CodecMetrics, CodecStats, LengthFieldCodec, LineCodec, OversizePolicy};
    use tokio_util::codec::Decoder;

    /// Feeds `wire` in pieces cut at `cuts`, decoding after each, until the decoder fails or the input ends.
    fn run<D: Decoder>(codec: &mut D, wire: &[u8], cuts: &[usize]) {
        let mut buf = BytesMut::new();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
            let cut = cut.clamp(at, wire.len());
            buf.extend_from_slice(&wire[at..cut]);
            at = cut;
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }

    fn sum(a: CodecMetrics, b: CodecMetrics) -> [u64; 6] {
        [
            a.frames + b.frames,
            a.bytes + b.bytes,
            a.too_long + b.too_long,
            a.discarded_bytes + b.discarded_bytes,
            a.malformed + b.malformed,
            a.copied_frames + b.copied_frames,
        ]
    }

    fn all(m: CodecMetrics) -> [u64; 6] {
        [
            m.frames,
            m.bytes,
            m.too_long,
            m.discarded_bytes,
            m.malformed,
            m.copied_frames,
        ]
    }

    proptest! {
        /// Whatever the peers send and however it is split, the shared counters are exactly the sum of what the
        /// attached decoders counted themselves.
        #[test]
        fn shared_counts_are_the_sum_of_the_decoders(
            frames in proptest::collection::vec((0usize..48, any::<bool>()), 0..24),
            lines in proptest::collection::vec(0usize..24, 0..24),
            cuts in proptest::collection::vec(0usize..1200, 0..12),
        ) {
            let mut wire = BytesMut::new();
            for (len, lie) in &frames {
                // The field counts 8 more than the payload (adjustment -8); a lying header (field 0) gives a frame
                // shorter than its header: malformed, fatal. Payloads over 32 bytes are skipped as too long.
                let lie = *lie && *len < 4;
                wire.put_u32(if lie { 0 } else { *len as u32 + 8 });
                wire.put_bytes(b'x', *len);
            }
            let mut text = Vec::new();
            for len in &lines {
                text.extend(std::iter::repeat_n(b'y', *len));
                text.push(b'\n');
            }
            let mut cuts = cuts;
            cuts.sort_unstable();
            let stats = CodecStats::new();
            let mut length = LengthFieldCodec::builder()
                .max_frame_length(36)
                .length_adjustment(-8)
                .oversize_policy(OversizePolicy::Skip)
                .stats(&stats)
                .build()
                .unwrap();
            let mut line = LineCodec::builder()
                .max_frame_length(16)
                .oversize_policy(OversizePolicy::Skip)
                .stats(&stats)
                .build()
                .unwrap();
            run(&mut length, &wire, &cuts);
            run(&mut line, &text, &cuts);
            prop_assert_eq!(all(stats.metrics()), sum(length.metrics(), line.metrics()));
            let expected_lines = lines.iter().filter(|len| **len <= 16).count() as u64;
            prop_assert_eq!(line.metrics().frames, expected_lines);
            // The length decoder against a reference model of the same wire.
            let (mut ok, mut bytes, mut too_long, mut discarded, mut malformed) = (0, 0, 0, 0, 0);
            for (len, lie) in &frames {
                if *lie && *len < 4 {
                    malformed = 1;
                    break;
                } else if len + 4 > 36 {
                    too_long += 1;
                    discarded += len + 4;
                } else {
                    ok += 1;
                    bytes += len;
                }
            }
            let m = length.metrics();
            prop_assert_eq!(
                (m.frames, m.bytes, m.too_long, m.discarded_bytes, m.malformed),
                (ok, bytes as u64, too_long, discarded as u64, malformed)
            );
        }
    }
}
