//! A tidegate server and a hostile crowd in one process, over loopback, for about 20 seconds (issue #13).
//!
//! ```text
//! cargo run --release --example siege                       # the guarded server; exits 1 if the verdict fails
//! cargo run --release --example siege -- --unguarded        # the same crowd against a server written the common way
//! cargo run --release --example siege -- --duration-s 8 --json
//! ```
//!
//! Flags: `--duration-s N` (20), `--normal N` (16), `--slow N` (50), `--liars N` (20), `--slowloris N` (50),
//! `--flood N` (8), `--storm N` (2000), `--ceiling-mb N` (2048: the run stops when the process passes it),
//! `--json` (the final table as one JSON object), `--unguarded`.
//!
//! The crowd, on length-prefixed frames (a 4-byte big-endian length, then the payload):
//!
//! * normal clients: echo one 256-byte frame at a time; their throughput and p99 latency are measured;
//! * slow readers: send 16 KiB frames as fast as they can and never read an answer;
//! * liars: claim a 4 MiB or a 1 GiB frame, then trickle 1 KiB every 50 ms;
//! * slowloris clients: one byte every 3 s;
//! * a flood: frames whose first byte is `S`, which the server answers after a 5 ms sleep on a bounded executor;
//!   20 every 10 ms per client, more than the executor takes (refusals are answered with an empty frame);
//! * a storm: more connections than the limit, each held 2 to 5 s, then reset.
//!
//! The normal clients connect first, the crowd one second later (the first second is the calm one).
//!
//! Every second one line: `live` connections (the limiter's count of held permits, or a counter in the unguarded
//! server), `queued_KiB` (guarded: the memory budget in use, which every read buffer and queued write is charged
//! to; unguarded: the bytes waiting in the unbounded queues), connections closed for a `too_long` frame, peers
//! `evicted` for not reading, connections closed `idle` (slowloris: the first 4 bytes did not come within 2 s),
//! handler tasks `refused` by the executor, connections `rejected` over the limit, the process RSS, and the
//! normal clients' frames per second and p99 latency. `connects_failed` in the final table counts client connects
//! that failed, almost all of them reset by the listener over the limit before the connect completed.
//!
//! The verdict (guarded server): the process RSS stayed under 256 MiB; the normal clients had no error and
//! completed frames in every second; after the crowd left, live connections, queued bytes and the memory budget
//! all returned to zero within 5 s. It exits 1 when any of these fails. With `--unguarded` the same verdict is
//! printed, and fails (the RSS ceiling stops the run, slowloris connections stay open), but the exit status is 0:
//! that run is a demonstration, not a check.

mod args;
mod crowd;
mod guarded;
mod process;
mod report;
mod server;
mod unguarded;
mod wire;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::args::Options;
use crate::crowd::{flood, liar, normal_client, slow_reader, slowloris, storm, ClientCounters};
use crate::guarded::start_guarded;
use crate::process::{raise_fd_limit, rss_bytes};
use crate::report::{p99, Outcome, Second};
use crate::unguarded::start_unguarded;

/// How long the counters get to return to zero after the crowd left.
const GRACE: Duration = Duration::from_secs(5);
/// The calm first second, before the crowd arrives.
const WARM_UP: Duration = Duration::from_secs(1);

fn main() -> std::process::ExitCode {
    let opts = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("siege: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let passed = rt.block_on(run(opts.clone()));
    rt.shutdown_timeout(Duration::from_secs(2));
    match passed {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) if opts.unguarded => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("siege: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(o: Options) -> io::Result<bool> {
    let server = if o.unguarded {
        start_unguarded().await?
    } else {
        start_guarded().await?
    };
    let addr = server.addr;
    let cc = Arc::new(ClientCounters::default());
    let ceiling = o.ceiling_mb << 20;
    let name = if o.unguarded { "unguarded" } else { "guarded" };
    if !o.json {
        report::print_header(&o, name, addr);
    }

    let clients_stop = CancellationToken::new();
    let mut clients = JoinSet::new();
    let spawn =
        |set: &mut JoinSet<()>,
         f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            let stop = clients_stop.clone();
            set.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = f => {}
                }
            });
        };
    for i in 0..o.normal {
        spawn(
            &mut clients,
            Box::pin(normal_client(addr, cc.clone(), i as u64)),
        );
    }

    // The RSS watchdog: protects the machine from the unguarded server.
    let peak_rss = Arc::new(AtomicU64::new(0));
    let ceiling_hit = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (peak, hit, stop) = (peak_rss.clone(), ceiling_hit.clone(), clients_stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                let rss = rss_bytes();
                peak.fetch_max(rss, Ordering::Relaxed);
                if rss > ceiling {
                    hit.store(true, Ordering::Relaxed);
                    stop.cancel();
                    return;
                }
            }
        })
    };

    let start = Instant::now();
    let deadline = start + o.duration;
    let mut seconds = Vec::new();
    let mut all_latencies: Vec<u32> = Vec::new();
    let mut last_frames = 0;
    let mut crowd_started = false;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut peak_live = 0i64;
    let mut peak_queued = 0i64;
    loop {
        if !crowd_started && start.elapsed() >= WARM_UP {
            crowd_started = true;
            let mut id = 0u64;
            for _ in 0..o.slow {
                spawn(&mut clients, Box::pin(slow_reader(addr, cc.clone())));
            }
            for _ in 0..o.liars {
                id += 1;
                spawn(&mut clients, Box::pin(liar(addr, cc.clone(), id)));
            }
            for _ in 0..o.slowloris {
                spawn(&mut clients, Box::pin(slowloris(addr, cc.clone())));
            }
            for _ in 0..o.flood {
                spawn(&mut clients, Box::pin(flood(addr, cc.clone())));
            }
            for _ in 0..o.storm {
                id += 1;
                spawn(&mut clients, Box::pin(storm(addr, cc.clone(), id)));
            }
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = clients_stop.cancelled() => break,
        }
        let t = start.elapsed().as_secs();
        let s = server.sample();
        peak_live = peak_live.max(s.live);
        peak_queued = peak_queued.max(s.queued);
        let frames = cc.normal_frames.load(Ordering::Relaxed);
        let mut lat = std::mem::take(&mut *cc.latencies_us.lock().unwrap());
        let p = p99(&mut lat);
        all_latencies.extend_from_slice(&lat);
        let sec = Second {
            crowd: t > 1,
            fps: frames - last_frames,
            p99_ms: p,
        };
        last_frames = frames;
        seconds.push(sec);
        if !o.json {
            report::print_second(t, &s, &sec);
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let hit = ceiling_hit.load(Ordering::Relaxed);
    if hit {
        // The crowd leaves at once (below): its sockets close, the writers fail, and the queues are freed.
        if !o.json {
            println!(
                "siege: process RSS passed the {} MiB ceiling: run stopped at {:.1}s",
                o.ceiling_mb,
                start.elapsed().as_secs_f64()
            );
        }
    }
    clients_stop.cancel();
    let joined = tokio::time::timeout(Duration::from_secs(3), async {
        while clients.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !joined {
        clients.abort_all();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while clients.join_next().await.is_some() {}
        })
        .await;
    }
    let crowd_left = start.elapsed();

    // The crowd has left: every counter must come back to zero within the grace period.
    let mut settled = None;
    let mut last = server.sample();
    let grace_start = Instant::now();
    while grace_start.elapsed() < GRACE {
        last = server.sample();
        if last.live == 0
            && last.queued == 0
            && last.budget_used == 0
            && server.in_flight_tasks() == 0
        {
            settled = Some(grace_start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_end = rss_bytes();
    let s = server.sample();
    watchdog.abort();
    server.stop.cancel();
    let server_joined = tokio::time::timeout(Duration::from_secs(3), server.task)
        .await
        .is_ok();

    // The verdict.
    let peak = peak_rss.load(Ordering::Relaxed).max(rss_end);
    let outcome = Outcome {
        name,
        peak,
        hit,
        seconds,
        all_latencies,
        crowd_left,
        peak_live,
        peak_queued,
        s,
        last,
        settled,
        joined,
        server_joined,
    };
    Ok(report::verdict(&o, &cc, outcome))
}
