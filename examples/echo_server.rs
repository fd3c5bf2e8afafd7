//! A length-prefixed echo server built on `tidegate::conn`: every frame a peer sends comes back to it.
//!
//! Frames are a 4-byte big-endian length N, then N payload bytes: Netty's `LengthFieldBasedFrameDecoder(max, 0, 4,
//! 0, 4)` with `LengthFieldPrepender(4)`, so any client of that framing works. A frame longer than `--max-frame`
//! (header included) closes its connection without its bytes being buffered; a peer that sends but does not read
//! its echoes is paused (no reading above the high mark) and closed after `--evict-after-ms` unwritable; at most
//! `--max-conns` connections are live, the rest wait in the kernel's backlog; a peer that sends nothing for 60 s,
//! or whose first frame header takes over 10 s to arrive (slowloris), is closed. SIGINT or SIGTERM drains every
//! connection (at most 2 s) and prints a final report.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7001 --stats
//! ```

mod common;
#[path = "common/echo_connections.rs"]
mod echo_connections;
use echo_connections::{echo_connections, Marks, DRAIN};

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::reload::Reloader;
use common::{say, Flags, Signals};
use tidegate::conn::{ConnClose, Group, Shutdown};
use tidegate::metrics::Registry;
use tidegate::watermark::{Limits, QueueSet};
use tokio_util::task::TaskTracker;

const USAGE: &str = "\
usage: echo_server [flags]
  --addr HOST:PORT       listen address (default 127.0.0.1:7001; port 0 picks one)
  --max-frame BYTES      longest frame, 4-byte header included (default 1048576)
  --max-conns N          live connections at most (default 10000)
  --workers N            runtime threads (default: one per core)
  --low BYTES            write queue writable again at or below this (default 32768)
  --high BYTES           write queue unwritable (reading pauses) above this (default 65536)
  --evict-after-ms MS    close a peer unwritable this long (default 10000; 0: never)
  --config FILE          live limits, `name.key = value` lines (see tidegate::metrics::Configuration),
                         applied at start and again on SIGHUP; changes or refusals logged on stderr
  --stats                one stats line a second on stdout";

struct Options {
    addr: String,
    max_frame: usize,
    max_conns: usize,
    workers: usize,
    low: usize,
    high: usize,
    evict_after: Option<Duration>,
    stats: bool,
    config: Option<String>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let flags = Flags::parse(
            &[
                "addr",
                "max-frame",
                "max-conns",
                "workers",
                "low",
                "high",
                "evict-after-ms",
                "config",
            ],
            &["stats"],
        )?;
        let max_frame = flags.get("max-frame", 1usize << 20)?;
        if max_frame < 4 {
            return Err(format!(
                "--max-frame {max_frame}: the 4-byte header alone is longer"
            ));
        }
        let evict_ms: u64 = flags.get("evict-after-ms", 10_000)?;
        Ok(Options {
            addr: flags.text("addr").unwrap_or("127.0.0.1:7001").to_owned(),
            max_frame,
            max_conns: flags.get("max-conns", 10_000)?,
            workers: flags.get("workers", 0)?,
            low: flags.get("low", 32 * 1024)?,
            high: flags.get("high", 64 * 1024)?,
            evict_after: (evict_ms > 0).then(|| Duration::from_millis(evict_ms)),
            stats: flags.switch("stats"),
            config: flags.text("config").map(str::to_owned),
        })
    }
}

/// Totals over every connection, added to as connections end (frames as they arrive).
#[derive(Default)]
struct Totals {
    connections: AtomicU64,
    frames: AtomicU64,
    too_long: AtomicU64,
    evicted: AtomicU64,
}

impl Totals {
    fn ended(&self, reason: &ConnClose) {
        match reason {
            ConnClose::FrameTooLarge { .. } => self.too_long.fetch_add(1, Ordering::Relaxed),
            ConnClose::Evicted { .. } => self.evicted.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    fn line(&self) -> String {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        format!(
            "connections={} frames={} too_long={} evicted={}",
            get(&self.connections),
            get(&self.frames),
            get(&self.too_long),
            get(&self.evicted),
        )
    }
}

fn main() {
    let options = Options::parse().unwrap_or_else(|err| common::usage_exit(&err, USAGE));
    let workers = options.workers;
    common::run_server("echo_server", workers, serve(options));
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
    let hard = echo_connections::hard_cap(options.high, options.max_frame);
    // Every connection's queue takes its marks from this set, so that a reload changes them for all at once.
    let queue_set =
        QueueSet::new(Limits::try_new(options.low, options.high, hard).map_err(io::Error::other)?);
    // The parts whose limits a `--config` file sets: `limiter.limit`, `limiter.per_ip`, `queues.low` and so on.
    registry
        .register("limiter", &limiter)
        .and_then(|()| registry.register("queues", &queue_set))
        .map_err(io::Error::other)?;
    let shutdown = Shutdown::new();
    let marks = Marks {
        low: options.low,
        high: options.high,
        max_frame: options.max_frame,
        evict_after: options.evict_after,
    };
    let (mut connections, codec) = echo_connections(&marks, &queue_set, None, &shutdown)?;

    let totals = Arc::new(Totals::default());
    // Only read for the stats line's queued bytes: the group never broadcasts here.
    let queues = options.stats.then(Group::new);
    let handlers = TaskTracker::new();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if let Some(reloader) = &reloader {
        // A file that cannot apply at start ends the server: it would otherwise run with limits nobody chose.
        reloader.start().map_err(io::Error::other)?;
    }
    say(format_args!(
        "echo_server listening on {}",
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
                let queues = queues.as_ref().expect("stats on");
                queues.prune();
                say(format_args!(
                    "stats: live={} {} queued_bytes={} rss_kib={}",
                    limiter.active(),
                    totals.line(),
                    queues.metrics().queued_bytes,
                    common::rss_kib(),
                ));
                continue;
            }
        };
        let (stream, _peer, permit) = accepted?;
        // Echoes are written once per read burst already; no need to wait for Nagle too.
        let _ = stream.set_nodelay(true);
        let mut conn = match connections
            .permit(permit)
            .build(stream, codec.clone(), codec.clone())
        {
            Ok(conn) => conn,
            Err(err) => return Err(io::Error::other(err)),
        };
        totals.connections.fetch_add(1, Ordering::Relaxed);
        if let Some(queues) = &queues {
            queues.add(conn.sender().clone());
        }
        let totals = totals.clone();
        handlers.spawn(async move {
            let reason = loop {
                match conn.next().await {
                    Ok(frame) => {
                        totals.frames.fetch_add(1, Ordering::Relaxed);
                        // A failed feed means the connection ended: the next `next` says why.
                        drop(conn.feed(frame).await);
                    }
                    Err(reason) => break reason,
                }
            };
            totals.ended(&reason);
        });
    };

    // Stop accepting first: connections still in the backlog are reset when the listener closes.
    drop(listener);
    let report = shutdown.shutdown(DRAIN + Duration::from_millis(500)).await;
    handlers.close();
    // The handlers end with their connections; this only bounds a handler that would not.
    let _ = tokio::time::timeout(Duration::from_secs(1), handlers.wait()).await;
    say(format_args!(
        "final: signal={signal} {} drained={} cut={} open={}",
        totals.line(),
        report.drained,
        report.cut,
        report.open,
    ));
    Ok(())
}
