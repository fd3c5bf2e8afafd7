//! A pipelined load client for the length-prefixed echo servers (`echo_server`, `unguarded_echo`), used by
//! `scripts/echo_bench.sh`. Each of `--conns` connections keeps `--inflight` frames of `--size` payload bytes
//! outstanding: it sends that many, then one more for every echo it gets back. After `--warmup-s` it counts the
//! echoes and their latencies for `--duration-s`, then prints one line:
//!
//! ```text
//! frames_per_s=<n> p99_us=<n> errors=<n>
//! ```
//!
//! Each frame carries its send time in its first 8 payload bytes, so latencies stay right even when a server
//! echoes out of order (`unguarded_echo` spawns a task per frame, and tokio may run those in any order).
//!
//! ```text
//! cargo run --release --example echo_load -- --addr 127.0.0.1:7001 --conns 16 --size 64 --inflight 16
//! ```

// Only the flag parsing, `say` and the runtime are used here.
#[allow(dead_code)]
mod common;

use std::io;
use std::time::Duration;

use common::{say, Flags};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

const USAGE: &str = "\
usage: echo_load [flags]
  --addr HOST:PORT       server address (default 127.0.0.1:7001)
  --conns N              connections (default 16)
  --size BYTES           payload bytes per frame, at least 8 (default 64)
  --inflight N           frames outstanding per connection (default 16)
  --duration-s S         measured seconds, after the warm-up (default 5)
  --warmup-s S           seconds not measured at the start (default 1)
  --workers N            runtime threads (default: one per core)";

/// A server silent this long with frames outstanding counts as an error and ends that connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

struct Options {
    addr: String,
    conns: usize,
    size: usize,
    inflight: usize,
    duration: Duration,
    warmup: Duration,
    workers: usize,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let flags = Flags::parse(
            &[
                "addr",
                "conns",
                "size",
                "inflight",
                "duration-s",
                "warmup-s",
                "workers",
            ],
            &[],
        )?;
        let size: usize = flags.get("size", 64)?;
        if size < 8 {
            return Err(format!("--size {size}: the send time needs 8 bytes"));
        }
        if size > u32::MAX as usize {
            return Err(format!(
                "--size {size}: longer than the 4-byte length allows"
            ));
        }
        let inflight: usize = flags.get("inflight", 16)?;
        let conns: usize = flags.get("conns", 16)?;
        if inflight == 0 || conns == 0 {
            return Err("--inflight and --conns must be at least 1".to_owned());
        }
        let duration: f64 = flags.get("duration-s", 5.0)?;
        let warmup: f64 = flags.get("warmup-s", 1.0)?;
        let duration = Duration::try_from_secs_f64(duration)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("--duration-s {duration}: not a positive duration"))?;
        let warmup = Duration::try_from_secs_f64(warmup)
            .map_err(|_| format!("--warmup-s {warmup}: not a duration"))?;
        Ok(Options {
            addr: flags.text("addr").unwrap_or("127.0.0.1:7001").to_owned(),
            conns,
            size,
            inflight,
            duration,
            warmup,
            workers: flags.get("workers", 0)?,
        })
    }
}

/// What one connection measured: latencies in µs of the echoes received in the measured window, and whether it
/// ended on an error.
struct ConnResult {
    latencies_us: Vec<u32>,
    error: Option<io::Error>,
}

fn main() {
    let options = Options::parse().unwrap_or_else(|err| common::usage_exit(&err, USAGE));
    let result = common::runtime(options.workers).map(|rt| rt.block_on(run(&options)));
    if let Err(err) = result {
        eprintln!("echo_load: {err}");
        std::process::exit(1);
    }
}

async fn run(options: &Options) {
    let base = Instant::now();
    let measure_from = base + options.warmup;
    let end = measure_from + options.duration;
    let tasks: Vec<_> = (0..options.conns)
        .map(|_| {
            let addr = options.addr.clone();
            let (size, inflight) = (options.size, options.inflight);
            tokio::spawn(async move {
                let mut latencies_us = Vec::new();
                let error = connection(
                    &addr,
                    size,
                    inflight,
                    base,
                    measure_from,
                    end,
                    &mut latencies_us,
                )
                .await
                .err();
                ConnResult {
                    latencies_us,
                    error,
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    for task in tasks {
        match task.await {
            Ok(result) => {
                latencies.extend_from_slice(&result.latencies_us);
                if let Some(err) = result.error {
                    eprintln!("echo_load: connection: {err}");
                    errors += 1;
                }
            }
            Err(err) => {
                eprintln!("echo_load: connection task: {err}");
                errors += 1;
            }
        }
    }
    let frames_per_s = latencies.len() as f64 / options.duration.as_secs_f64();
    let p99_us = percentile(&mut latencies, 0.99);
    say(format_args!(
        "frames_per_s={frames_per_s:.0} p99_us={p99_us} errors={errors}"
    ));
}

/// The `q` quantile (nearest rank) of `values`; 0 when there are none.
fn percentile(values: &mut [u32], q: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Runs one pipelined connection until `end`, pushing the latency of every echo received from `measure_from` on.
/// Returns an error for a failed connect, read or write, a silent server, an early close or a wrong echo.
async fn connection(
    addr: &str,
    size: usize,
    inflight: usize,
    base: Instant,
    measure_from: Instant,
    end: Instant,
    latencies_us: &mut Vec<u32>,
) -> io::Result<()> {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let mut frame = vec![0u8; 4 + size];
    frame[..4].copy_from_slice(&(size as u32).to_be_bytes());
    let mut echo = vec![0u8; 4 + size];

    let send = |frame: &mut Vec<u8>| {
        let sent = base.elapsed().as_nanos() as u64;
        frame[4..12].copy_from_slice(&sent.to_be_bytes());
    };
    for _ in 0..inflight {
        send(&mut frame);
        with_deadline(end, write.write_all(&frame)).await?;
    }
    loop {
        match with_deadline(end, read.read_exact(&mut echo)).await {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Other && Instant::now() >= end => {
                return Ok(())
            }
            Err(err) => return Err(err),
        }
        let now = Instant::now();
        if echo[..4] != frame[..4] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "echo length {} not {size}",
                    u32::from_be_bytes(echo[..4].try_into().unwrap())
                ),
            ));
        }
        let sent = Duration::from_nanos(u64::from_be_bytes(echo[4..12].try_into().unwrap()));
        if now >= measure_from && now < end {
            let latency = now.saturating_duration_since(base + sent);
            latencies_us.push(latency.as_micros().min(u32::MAX as u128) as u32);
        }
        if now >= end {
            return Ok(());
        }
        send(&mut frame);
        match with_deadline(end, write.write_all(&frame)).await {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::Other && Instant::now() >= end => {
                return Ok(())
            }
            Err(err) => return Err(err),
        }
    }
}

/// Awaits `io` for at most [`IO_TIMEOUT`], and not past `end`: an `Other` error when `end` came first (the run is
/// over), `TimedOut` when the server was silent too long.
async fn with_deadline<T>(
    end: Instant,
    io: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let silent_until = Instant::now() + IO_TIMEOUT;
    match tokio::time::timeout_at(silent_until.min(end), io).await {
        Ok(result) => result,
        Err(_) if silent_until < end => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "server silent for 2 s",
        )),
        Err(_) => Err(io::Error::other("run over")),
    }
}
