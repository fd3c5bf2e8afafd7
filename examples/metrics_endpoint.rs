//! A length-prefixed echo server whose every part reports to one `tidegate::metrics::Registry`, served on a
//! second loopback port as `/metrics` (Prometheus), `/leaks` (what is outstanding, and for how long) and `/diff`
//! (what grew since the previous `/diff`).
//!
//! The echo side is `echo_server`'s framing (a 4-byte big-endian length, then the payload) with the design's data
//! flow: a `LimitedListener`, a `Connection` per peer charged to one `MemoryBudget`, each frame handled on a
//! `BoundedExecutor` (keyed by connection, so echoes stay in order) that builds the answer in a `BufPool` buffer
//! and queues it without a copy. A peer that stops reading therefore shows up three times: in its queue's bytes,
//! in the budget's used bytes and, once its answers are older than `--leak-age-ms`, in `/leaks` with the line
//! that acquired them.
//!
//! The parts, by the `name` label of their series: `echo` (the listener), `echo-limit` (its connection limiter),
//! `echo-frames` (the counters every connection's decoder shares), `echo-queues` (every connection's write queue
//! as one aggregate: a constant number of series however many peers), `connections` (the memory budget),
//! `answers` (the pool), `handlers` (the executor) and `process` (resident memory, open descriptors, runtime
//! tasks).
//!
//! The admin side is HTTP/1.1 by hand, one request per connection: the request head must fit in 8 KiB and arrive
//! within `--admin-timeout-ms`, answers carry `Connection: close`. Both ports must be loopback addresses: the
//! admin port has no authentication, so it is for a local scraper or an SSH tunnel.
//!
//! With `--config FILE` the limits of every registered part (`handlers.max_concurrency`, `connections.limit`,
//! `echo-queues.high`, ...) are read from the file at start and again on SIGHUP, as `echo_server` does; what
//! changed, or every reason the file was refused, is logged on stderr.
//!
//! ```text
//! cargo run --release --example metrics_endpoint -- --listen 127.0.0.1:7001 --admin 127.0.0.1:9101
//! curl -s 127.0.0.1:9101/metrics | grep tidegate_budget
//! curl -s 127.0.0.1:9101/diff
//! ```

// Flags, `say`, the runtime and the limited bind are used; not the stats helpers.
#[allow(dead_code)]
mod common;
#[path = "common/echo_connections.rs"]
mod echo_connections;
use echo_connections::{echo_connections, Marks, DRAIN};

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::reload::Reloader;
use common::{say, Flags, Signals};
use parking_lot::Mutex;
use tidegate::buf::{BufPool, LeakTracking};
use tidegate::codec::{CodecStats, LengthFieldCodec};
use tidegate::conn::{Connection, LimitedListener, Shutdown};
use tidegate::exec::BoundedExecutor;
use tidegate::metrics::{Observe, ProcessMetrics, Registry, Snapshot};
use tidegate::watermark::{Limits, QueueSet, SendError, Sender};
use tidegate::MemoryBudget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

const USAGE: &str = "\
usage: metrics_endpoint [flags]
  --listen HOST:PORT      echo address, loopback only (default 127.0.0.1:7001; port 0 picks one)
  --admin HOST:PORT       /metrics, /leaks and /diff, loopback only (default 127.0.0.1:9101)
  --max-frame BYTES       longest frame, 4-byte header included (default 1048576)
  --max-conns N           live echo connections at most (default 10000)
  --budget BYTES          memory budget of every connection's buffers and queue (default 67108864)
  --pool-bytes BYTES      pooled answer buffers outstanding at most (default 16777216)
  --handlers N            frames handled at once (default 64)
  --backlog N             frames admitted beyond those, waiting (default 1024)
  --low BYTES             write queue writable again at or below this (default 32768)
  --high BYTES            write queue unwritable (reading pauses) above this (default 65536)
  --evict-after-ms MS     close a peer unwritable this long (default 10000; 0: never)
  --leak-age-ms MS        /leaks lists buffers outstanding longer than this (default 10000)
  --admin-timeout-ms MS   an admin request's head must arrive within this (default 5000)
  --config FILE           live limits, `name.key = value` lines (see tidegate::metrics::Configuration),
                          applied at start and re-read on SIGHUP
  --workers N             runtime threads (default: one per core)";

/// The longest admin request head (request line and headers). Scrapers send a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Admin connections served at once; more wait in the kernel's backlog.
const ADMIN_CONNECTIONS: usize = 16;
/// After answering, what the admin side still reads (and drops) so that closing does not reset the connection
/// before the client has read the answer: at most this much, for at most this long.
const LINGER_BYTES: usize = 64 * 1024;
const LINGER: Duration = Duration::from_secs(1);
/// `/diff` lists at most this many series that grew (and as many that shrank), largest first.
const DIFF_ROWS: usize = 50;

struct Options {
    listen: SocketAddr,
    admin: SocketAddr,
    max_frame: usize,
    max_conns: usize,
    budget: usize,
    pool_bytes: usize,
    handlers: usize,
    backlog: usize,
    low: usize,
    high: usize,
    evict_after: Option<Duration>,
    leak_age: Duration,
    admin_timeout: Duration,
    config: Option<String>,
    workers: usize,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let flags = Flags::parse(
            &[
                "listen",
                "admin",
                "max-frame",
                "max-conns",
                "budget",
                "pool-bytes",
                "handlers",
                "backlog",
                "low",
                "high",
                "evict-after-ms",
                "leak-age-ms",
                "admin-timeout-ms",
                "config",
                "workers",
            ],
            &[],
        )?;
        let max_frame = flags.get("max-frame", 1usize << 20)?;
        if max_frame < 4 {
            return Err(format!(
                "--max-frame {max_frame}: the 4-byte header alone is longer"
            ));
        }
        let handlers = flags.get("handlers", 64)?;
        if handlers == 0 {
            return Err("--handlers 0: no frame could ever be answered".to_owned());
        }
        let evict_ms: u64 = flags.get("evict-after-ms", 10_000)?;
        Ok(Options {
            listen: loopback(&flags, "listen", "127.0.0.1:7001")?,
            admin: loopback(&flags, "admin", "127.0.0.1:9101")?,
            max_frame,
            max_conns: flags.get("max-conns", 10_000)?,
            budget: flags.get("budget", 64usize << 20)?,
            pool_bytes: flags.get("pool-bytes", 16usize << 20)?,
            handlers,
            backlog: flags.get("backlog", 1024)?,
            low: flags.get("low", 32 * 1024)?,
            high: flags.get("high", 64 * 1024)?,
            evict_after: (evict_ms > 0).then(|| Duration::from_millis(evict_ms)),
            leak_age: Duration::from_millis(flags.get("leak-age-ms", 10_000)?),
            admin_timeout: Duration::from_millis(flags.get("admin-timeout-ms", 5_000)?),
            config: flags.text("config").map(str::to_owned),
            workers: flags.get("workers", 0)?,
        })
    }
}

/// The socket address of `--name`, refused unless it is a loopback address.
fn loopback(flags: &Flags, name: &str, default: &str) -> Result<SocketAddr, String> {
    let text = flags.text(name).unwrap_or(default);
    let addr: SocketAddr = text
        .parse()
        .map_err(|err| format!("--{name} {text:?}: {err}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--{name} {addr}: only loopback addresses (127.0.0.0/8, ::1) are served"
        ));
    }
    Ok(addr)
}

fn main() {
    let options = Options::parse().unwrap_or_else(|err| common::usage_exit(&err, USAGE));
    let workers = options.workers;
    common::run_server("metrics_endpoint", workers, serve(options));
}

/// The parts of the echo side that connections share.
#[derive(Clone)]
struct Echo {
    exec: BoundedExecutor,
    pool: BufPool,
    frames: CodecStats,
}

async fn serve(options: Options) -> io::Result<()> {
    let mut signals = Signals::new()?;
    let registry = Registry::new();
    let mut reloader = options
        .config
        .as_deref()
        .map(|path| Reloader::new(path, &registry))
        .transpose()?;
    let (limiter, listener) =
        common::bind_limited(&options.listen.to_string(), options.max_conns).await?;
    let budget = MemoryBudget::new(options.budget);
    let pool = BufPool::builder()
        .max_outstanding_bytes(options.pool_bytes)
        // Every buffer's acquisition site and time, for /leaks (no backtraces: those cost microseconds each).
        .leak_tracking(LeakTracking::All)
        .build()
        .map_err(io::Error::other)?;
    let exec = BoundedExecutor::builder()
        .max_concurrency(options.handlers)
        .max_pending(options.backlog)
        .name("handlers")
        .build()
        .map_err(io::Error::other)?;
    let hard = echo_connections::hard_cap(options.high, options.max_frame);
    let limits = Limits::try_new(options.low, options.high, hard).map_err(io::Error::other)?;
    // Every connection's decoder adds to these counters and every write queue joins this set: 10,000
    // connections render as one codec and one queue aggregate, not 10,000 series.
    let frames = CodecStats::new();
    let queues = QueueSet::new(limits);
    let process = ProcessMetrics::new();
    register(&registry, "echo", &listener)?;
    register(&registry, "echo-limit", &limiter)?;
    register(&registry, "echo-frames", &frames)?;
    register(&registry, "echo-queues", &queues)?;
    register(&registry, "connections", &budget)?;
    register(&registry, "answers", &pool)?;
    register(&registry, "handlers", &exec)?;
    register(&registry, "process", &process)?;
    let shutdown = Shutdown::new();
    let marks = Marks {
        low: options.low,
        high: options.high,
        max_frame: options.max_frame,
        evict_after: options.evict_after,
    };
    let (mut connections, codec) =
        echo_connections(&marks, &queues, Some(budget.clone()), &shutdown)?;

    if let Some(reloader) = &reloader {
        // A file that cannot apply at start ends the server: it would otherwise run with limits nobody chose.
        reloader.start().map_err(io::Error::other)?;
    }
    let admin = Admin {
        registry: registry.clone(),
        leak_age: options.leak_age,
        timeout: options.admin_timeout,
        baseline: Mutex::new(registry.snapshot()),
    };
    let (_, admin_listener) =
        common::bind_limited(&options.admin.to_string(), ADMIN_CONNECTIONS).await?;
    say(format_args!(
        "metrics_endpoint echo listening on {}",
        listener.local_addr()?
    ));
    say(format_args!(
        "metrics_endpoint admin listening on {}",
        admin_listener.local_addr()?
    ));
    let admin_task = tokio::spawn(serve_admin(admin_listener, Arc::new(admin)));

    let echo = Echo {
        exec: exec.clone(),
        pool,
        frames,
    };
    let handlers = TaskTracker::new();
    let ids = AtomicU64::new(0);
    let signal = loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            signal = signals.recv() => break signal,
            _ = Reloader::hangup(&mut reloader) => {
                // Refusals are logged and change nothing: the server goes on with the limits it has.
                let _ = reloader.as_ref().expect("only with --config").reload();
                continue;
            }
        };
        let (stream, _peer, permit) = accepted?;
        let _ = stream.set_nodelay(true);
        let mut decoder = codec.clone();
        decoder.set_stats(Some(&echo.frames));
        let conn = connections
            .permit(permit)
            .build(stream, decoder, codec.clone())
            .map_err(io::Error::other)?;
        let id = ids.fetch_add(1, Ordering::Relaxed);
        handlers.spawn(echo_connection(conn, id, echo.clone()));
    };

    drop(listener);
    admin_task.abort();
    let report = shutdown.shutdown(DRAIN + Duration::from_millis(500)).await;
    handlers.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), handlers.wait()).await;
    let tasks = exec
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(1))
        .await;
    say(format_args!(
        "final: signal={signal} connections={} drained={} cut={} open={} handler_tasks_aborted={}",
        ids.load(Ordering::Relaxed),
        report.drained,
        report.cut,
        report.open,
        tasks.aborted + tasks.never_started,
    ));
    Ok(())
}

fn register(registry: &Registry, name: &str, part: &impl Observe) -> io::Result<()> {
    registry.register(name, part).map_err(io::Error::other)
}

/// Reads one connection's frames and hands each to the executor, keyed by the connection so that its answers are
/// queued in the order the frames came.
async fn echo_connection(mut conn: Connection<LengthFieldCodec>, id: u64, echo: Echo) {
    loop {
        let frame = match conn.next().await {
            Ok(frame) => frame,
            Err(_) => return,
        };
        let job = answer(frame, conn.sender().clone(), echo.pool.clone());
        // Waits while the executor is full: this connection stops reading meanwhile. Refused only once the
        // executor is shut down (or sheds load): the peer is then closed rather than left without its echo.
        if echo.exec.spawn_keyed(id, job).await.is_err() {
            conn.close();
        }
    }
}

/// Builds the answer (header and payload) in a pooled buffer and queues it as is: the pooled storage stays out
/// until the writer has sent it, which is what `/leaks` shows for a peer that does not read.
async fn answer(frame: Bytes, tx: Sender<Bytes>, pool: BufPool) {
    let len = 4 + frame.len();
    let answer = match pool.try_acquire(len) {
        Ok(mut buf) => {
            buf.put_u32(frame.len() as u32);
            buf.put_slice(&frame);
            buf.freeze()
        }
        // Over the pool's cap (counted as refused there): the queue and the budget still bound this copy.
        Err(_) => {
            let mut buf = BytesMut::with_capacity(len);
            buf.put_u32(frame.len() as u32);
            buf.put_slice(&frame);
            buf.freeze()
        }
    };
    drop(frame);
    match tx.send(answer).await {
        // Closed: the connection ended, and its handler learns why from `next`.
        Ok(()) | Err(SendError::Closed { .. }) => {}
        // Refused (counted by the queue): close rather than leave a gap in the echo stream.
        Err(_) => tx.close(),
    }
}

/// What the admin side serves from.
struct Admin {
    registry: Registry,
    leak_age: Duration,
    timeout: Duration,
    /// What `/diff` compares with: the snapshot of the previous `/diff`, or of the start.
    baseline: Mutex<Snapshot>,
}

async fn serve_admin(listener: LimitedListener, admin: Arc<Admin>) {
    loop {
        // Accept errors were backed off and retried by the listener; those that reach here (none expected on
        // loopback) end the admin side rather than spin.
        let Ok((stream, _peer, permit)) = listener.accept().await else {
            return;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            admin.handle(stream).await;
            drop(permit);
        });
    }
}

/// Why a request head could not be read.
enum HeadError {
    /// Longer than [`MAX_REQUEST_HEAD`] without its blank line.
    TooLarge,
    /// The peer closed first, or the socket failed: there is no one to answer.
    Gone,
}

/// An answer: the status line's code and reason, the content type and the body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    /// Header lines beyond the ones every answer has, each ending in CRLF.
    extra_headers: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra_headers: "",
            body: body.into(),
        }
    }
}

impl Admin {
    async fn handle(&self, mut stream: TcpStream) {
        let response = match tokio::time::timeout(self.timeout, read_head(&mut stream)).await {
            Err(_) => Response::text("408 Request Timeout", "request head not received in time\n"),
            Ok(Err(HeadError::TooLarge)) => Response::text(
                "431 Request Header Fields Too Large",
                format!("request head over {MAX_REQUEST_HEAD} bytes\n"),
            ),
            Ok(Err(HeadError::Gone)) => return,
            Ok(Ok(head)) => self.route(&head),
        };
        let _ = tokio::time::timeout(self.timeout, write_response(&mut stream, &response)).await;
        linger(&mut stream).await;
    }

    fn route(&self, head: &[u8]) -> Response {
        let Some((method, target)) = request_line(head) else {
            return Response::text("400 Bad Request", "malformed request line\n");
        };
        if method != "GET" {
            return Response {
                extra_headers: "Allow: GET\r\n",
                ..Response::text("405 Method Not Allowed", "only GET is served\n")
            };
        }
        let path = target.split('?').next().unwrap_or(target);
        match path {
            "/metrics" => Response {
                status: "200 OK",
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                extra_headers: "",
                body: self.registry.render_prometheus(),
            },
            "/leaks" => Response::text("200 OK", self.leaks()),
            "/diff" => Response::text("200 OK", self.diff()),
            _ => Response::text(
                "404 Not Found",
                "not found: try /metrics, /leaks or /diff\n",
            ),
        }
    }

    fn leaks(&self) -> String {
        self.registry.leak_report(self.leak_age).to_string()
    }

    fn diff(&self) -> String {
        let now = self.registry.snapshot();
        let earlier = std::mem::replace(&mut *self.baseline.lock(), now.clone());
        now.diff(&earlier).top(DIFF_ROWS).to_string()
    }
}

/// Reads up to the blank line that ends a request head, at most [`MAX_REQUEST_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut head = vec![0u8; MAX_REQUEST_HEAD];
    let mut filled = 0;
    loop {
        if filled == head.len() {
            return Err(HeadError::TooLarge);
        }
        let n = match stream.read(&mut head[filled..]).await {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => n,
        };
        // Search from just before the new bytes: the terminator may straddle two reads.
        let from = filled.saturating_sub(3);
        filled += n;
        if let Some(end) = find_head_end(&head[from..filled]) {
            head.truncate(from + end);
            return Ok(head);
        }
    }
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The method and target of the request line, if it is `METHOD TARGET HTTP/1.x`.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && version.starts_with("HTTP/1.") && target.starts_with('/'))
        .then_some((method, target))
}

async fn write_response(stream: &mut TcpStream, response: &Response) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len(),
        response.extra_headers,
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(response.body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads and drops what the client still sends, so the close that follows is a FIN the client reads after the
/// answer rather than a reset that may destroy it. Bounded in bytes and time.
async fn linger(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
