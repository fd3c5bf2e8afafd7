//! A push server built on `tidegate::conn`: every `--tick-us` microseconds one frame goes to every subscriber
//! through a `Group`.
//!
//! A frame is a 4-byte big-endian length N, then N payload bytes (Netty's `LengthFieldBasedFrameDecoder(max, 0, 4,
//! 0, 4)` with `LengthFieldPrepender(4)`); its payload is `--size` bytes, the first 8 of them the tick number, big
//! endian. The frame is encoded once per tick and shared by every subscriber. A subscriber that does not keep up
//! (its write queue above the high mark) misses frames instead of growing a queue (`skipped`), and with
//! `--evict-after-ms` one that stays unwritable that long is closed; the group prunes it. What subscribers send is
//! read and dropped (frames up to 64 KiB; longer closes the connection). SIGINT or SIGTERM drains every
//! subscriber (at most 2 s) and prints a final report.
//!
//! ```text
//! cargo run --release --example broadcast_server -- --addr 127.0.0.1:7002 --size 1024 --tick-us 1000 --stats
//! ```

mod common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::reload::Reloader;
use common::{say, Flags, Signals};
use tidegate::codec::LengthFieldCodec;
use tidegate::conn::{Connection, Group, Shutdown};
use tidegate::metrics::Registry;
use tidegate::watermark::{Limits, QueueSet};
use tokio::sync::Notify;
use tokio_util::codec::Encoder;
use tokio_util::task::TaskTracker;

const USAGE: &str = "\
usage: broadcast_server [flags]
  --addr HOST:PORT       listen address (default 127.0.0.1:7002; port 0 picks one)
  --tick-us US           one frame to every subscriber this often (default 1000)
  --size BYTES           payload bytes per frame, at least 8: the tick number comes first (default 1024)
  --evict-after-ms MS    close a subscriber unwritable this long (default: never)
  --max-conns N          live connections at most (default 10000)
  --workers N            runtime threads (default: one per core)
  --low BYTES            write queue writable again at or below this (default 32768)
  --high BYTES           write queue unwritable (frames skipped) above this (default 65536)
  --config FILE          live limits, `name.key = value` lines (see tidegate::metrics::Configuration),
                         applied at start and again on SIGHUP; changes or refusals logged on stderr
  --stats                one stats line a second on stdout";

/// How long subscribers may take to deliver what they queued once a shutdown begins.
const DRAIN: Duration = Duration::from_secs(2);

/// The longest frame a subscriber may send us; what they send is dropped.
const MAX_INBOUND: usize = 64 * 1024;

struct Options {
    addr: String,
    tick: Duration,
    size: usize,
    evict_after: Option<Duration>,
    max_conns: usize,
    workers: usize,
    low: usize,
    high: usize,
    stats: bool,
    config: Option<String>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let flags = Flags::parse(
            &[
                "addr",
                "tick-us",
                "size",
                "evict-after-ms",
                "max-conns",
                "workers",
                "low",
                "high",
                "config",
            ],
            &["stats"],
        )?;
        let tick_us: u64 = flags.get("tick-us", 1000)?;
        if tick_us == 0 {
            return Err("--tick-us must be at least 1".into());
        }
        let size = flags.get("size", 1024usize)?;
        if !(8..=u32::MAX as usize - 4).contains(&size) {
            return Err(format!(
                "--size {size}: the payload holds an 8-byte tick number and fits a u32 length"
            ));
        }
        let evict_after = match flags.text("evict-after-ms") {
            None => None,
            Some(_) => Some(Duration::from_millis(flags.get("evict-after-ms", 0u64)?)),
        };
        Ok(Options {
            addr: flags.text("addr").unwrap_or("127.0.0.1:7002").to_owned(),
            tick: Duration::from_micros(tick_us),
            size,
            evict_after,
            max_conns: flags.get("max-conns", 10_000)?,
            workers: flags.get("workers", 0)?,
            low: flags.get("low", 32 * 1024)?,
            high: flags.get("high", 64 * 1024)?,
            stats: flags.switch("stats"),
            config: flags.text("config").map(str::to_owned),
        })
    }
}

fn main() {
    let options = Options::parse().unwrap_or_else(|err| common::usage_exit(&err, USAGE));
    let workers = options.workers;
    common::run_server("broadcast_server", workers, serve(options));
}

async fn serve(options: Options) -> io::Result<()> {
    let mut signals = Signals::new()?;
    let registry = Registry::new();
    let mut reloader = options
        .config
        .as_deref()
        .map(|path| Reloader::new(path, &registry))
        .transpose()?;
    let (limiter, listener) = common::bind_limited(&options.addr, options.max_conns).await?;
    let hard = (options.high + options.size + 4 + MAX_INBOUND + 8 * 1024).max(256 * 1024);
    // Every connection's queue takes its marks from this set, so that a reload changes them for all at once.
    let queue_set =
        QueueSet::new(Limits::try_new(options.low, options.high, hard).map_err(io::Error::other)?);
    // The parts whose limits a `--config` file sets: `limiter.limit`, `limiter.per_ip`, `queues.low` and so on.
    registry
        .register("limiter", &limiter)
        .and_then(|()| registry.register("queues", &queue_set))
        .map_err(io::Error::other)?;
    // One codec for both directions: its maximum bounds what subscribers may send, and must admit our frames.
    let codec = LengthFieldCodec::new(MAX_INBOUND.max(options.size + 4));
    let shutdown = Shutdown::new();
    let mut connections = Connection::builder();
    connections
        .low_mark(options.low)
        .high_mark(options.high)
        .hard_cap(hard)
        .queue_set(Some(&queue_set))
        .evict_after(options.evict_after)
        .drain_timeout(DRAIN)
        .shutdown(&shutdown);
    let (probe, _) = tokio::io::duplex(1);
    drop(
        connections
            .build(probe, codec.clone(), codec.clone())
            .map_err(io::Error::other)?,
    );

    let fans = Group::new();
    let stop_ticking = Arc::new(Notify::new());
    let ticker = tokio::spawn(tick(
        fans.clone(),
        codec.clone(),
        options.tick,
        options.size,
        stop_ticking.clone(),
    ));
    let readers = TaskTracker::new();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if let Some(reloader) = &reloader {
        // A file that cannot apply at start ends the server: it would otherwise run with limits nobody chose.
        reloader.start().map_err(io::Error::other)?;
    }
    say(format_args!(
        "broadcast_server listening on {}",
        listener.local_addr()?
    ));

    let signal = loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            signal = signals.recv() => break signal,
            _ = Reloader::hangup(&mut reloader) => {
                // Refusals are logged and change nothing: the server goes on with the limits it has.
                let _ = reloader.as_ref().expect("only with --config").reload();
                continue;
            }
            _ = second.tick(), if options.stats => {
                let m = fans.metrics();
                say(format_args!(
                    "stats: subscribers={} ticks={} sent={} skipped={} evicted={} unwritable={} queued_bytes={} rss_kib={}",
                    m.members, m.broadcasts, m.sent, m.skipped, m.pruned_evicted, m.unwritable_members,
                    m.queued_bytes, common::rss_kib(),
                ));
                continue;
            }
        };
        let (socket, _peer, permit) = accepted?;
        let _ = socket.set_nodelay(true);
        let mut fan = connections
            .permit(permit)
            .build(socket, codec.clone(), codec.clone())
            .map_err(io::Error::other)?;
        // Pruned by the group once the connection ends (its queue closes).
        fans.add(fan.sender().clone());
        // Reading is what notices the subscriber leaving; its frames are dropped.
        readers.spawn(async move { while fan.next().await.is_ok() {} });
    };

    drop(listener);
    stop_ticking.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(1), ticker).await;
    let subscribers = fans.len();
    let report = shutdown.shutdown(DRAIN + Duration::from_millis(500)).await;
    readers.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), readers.wait()).await;
    fans.prune();
    let m = fans.metrics();
    say(format_args!(
        "final: signal={signal} ticks={} sent={} skipped={} evicted={} subscribers={subscribers} drained={} cut={} open={}",
        m.broadcasts, m.sent, m.skipped, m.pruned_evicted, report.drained, report.cut, report.open,
    ));
    Ok(())
}

/// One frame every `every` to every member of `fans`, until `stop`.
async fn tick(
    fans: Group,
    mut codec: LengthFieldCodec,
    every: Duration,
    size: usize,
    stop: Arc<Notify>,
) {
    let mut clock = tokio::time::interval(every);
    // A late tick is not made up in a burst: subscribers would get frames back to back for nothing.
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut payload = BytesMut::new();
    for n in 0u64.. {
        tokio::select! {
            _ = clock.tick() => {}
            _ = stop.notified() => return,
        }
        payload.reserve(size);
        payload.put_u64(n);
        payload.put_bytes(0, size - 8);
        let mut frame = BytesMut::with_capacity(size + 4);
        // Encoded once, shared by every subscriber: the group queues these bytes as they are.
        if let Err(err) = codec.encode(payload.split().freeze(), &mut frame) {
            eprintln!("broadcast_server: encoding tick {n}: {err}");
            return;
        }
        fans.broadcast(frame.freeze());
    }
}
