//! The `tracing` feature: which events the parts emit, at which level, with which numbers, and how warnings are
//! rate-limited. Checked with a subscriber that keeps every event it is given.
//!
//! Each warning call site keeps its own limiter in a `static`, shared by every test of this binary, so each call
//! site is driven by one test only.
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tidegate::codec::{CodecError, LengthFieldCodec, LineCodec};
use tidegate::conn::{Connection, ConnectionLimiter, LimitedListener, OverLimit, Shutdown};
use tidegate::watermark::{CloseReason, Limits, WatermarkWriter};
use tidegate::{BoundedExecutor, MemoryBudget};
use tokio::time::timeout;
use tokio_util::codec::Decoder;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[cfg(target_os = "linux")]
#[path = "support/fd_limit.rs"]
mod fd_limit;
#[cfg(target_os = "linux")]
use fd_limit::{highest_open_fd, set_soft_nofile};

/// One event as the subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    target: String,
    fields: BTreeMap<String, String>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// A subscriber that keeps every event; spans are not used by the crate.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

impl Capture {
    /// Installs a fresh capture as this thread's subscriber until the guard is dropped.
    fn install() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let guard = tracing::subscriber::set_default(capture.clone());
        (capture, guard)
    }

    /// The events at `level` whose target starts with `target`.
    fn events(&self, level: Level, target: &str) -> Vec<Seen> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.level == level && e.target.starts_with(target))
            .cloned()
            .collect()
    }

    /// Every event from this crate, at any level.
    fn tidegate(&self) -> Vec<Seen> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.target.starts_with("tidegate"))
            .cloned()
            .collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn a_thousand_refused_tasks_give_one_warning_and_the_next_counts_the_rest() {
    let (capture, _guard) = Capture::install();
    let exec = BoundedExecutor::new(1, 0);
    let busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
    for _ in 0..1000 {
        assert!(exec.try_spawn(async {}).is_err());
    }
    let warns = capture.events(Level::WARN, "tidegate::exec");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(warns[0].field("suppressed"), Some("0"));
    let refusal = warns[0].field("refusal").unwrap();
    assert!(
        refusal.contains("Full") && refusal.contains("limit: 1"),
        "{refusal}"
    );

    // Within the second: still held back. After it: one more, carrying the count held back.
    tokio::time::advance(Duration::from_millis(900)).await;
    assert!(exec.try_spawn(async {}).is_err());
    assert_eq!(capture.events(Level::WARN, "tidegate::exec").len(), 1);
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(exec.try_spawn(async {}).is_err());
    let warns = capture.events(Level::WARN, "tidegate::exec");
    assert_eq!(warns.len(), 2, "{warns:?}");
    assert_eq!(warns[1].field("suppressed"), Some("1000"));

    // A shut-down executor refusing is not something to warn about.
    busy.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    timeout(Duration::from_secs(5), exec.shutdown(deadline))
        .await
        .unwrap();
    assert!(exec.try_spawn(async {}).is_err());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(exec.try_spawn(async {}).is_err());
    assert_eq!(capture.events(Level::WARN, "tidegate::exec").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_warns_with_its_numbers() {
    let (capture, _guard) = Capture::install();
    let budget = MemoryBudget::new(100);
    let _held = budget.try_reserve(80).unwrap();
    for _ in 0..50 {
        assert!(budget.try_reserve(30).is_err());
    }
    let warns = capture.events(Level::WARN, "tidegate::budget");
    assert_eq!(warns.len(), 1, "{warns:?}");
    let refusal = warns[0].field("refusal").unwrap();
    assert!(
        refusal.contains("Exhausted")
            && refusal.contains("requested: 30")
            && refusal.contains("used: 80")
            && refusal.contains("limit: 100"),
        "{refusal}"
    );
    // Granted reservations are not events.
    assert_eq!(capture.tidegate().len(), 1);

    // The event names the error the caller gets: a request that can never fit is not "exhausted".
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(budget.try_reserve(200).is_err());
    let warns = capture.events(Level::WARN, "tidegate::budget");
    assert_eq!(warns.len(), 2, "{warns:?}");
    assert!(warns[1].field("refusal").unwrap().contains("ExceedsLimit"));
    assert_eq!(warns[1].field("suppressed"), Some("49"));
}

#[test]
fn refused_frames_are_debug_events_with_the_lengths() {
    let (capture, _guard) = Capture::install();
    let mut codec = LengthFieldCodec::new(1024);
    let mut buf = BytesMut::from(&b"\x40\x00\x00\x00"[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::FrameTooLong {
                len: 0x4000_0004,
                max: 1024
            }
        ),
        "{err:?}"
    );

    let mut lines = LineCodec::new(8);
    let mut buf = BytesMut::from(&b"much longer than eight\n"[..]);
    assert!(lines.decode(&mut buf).is_err());

    let mut malformed = LengthFieldCodec::builder()
        .max_frame_length(1024)
        .length_adjustment(-10)
        .build()
        .unwrap();
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x00"[..]);
    let err = malformed.decode(&mut buf).unwrap_err();
    assert!(
        matches!(err, CodecError::FrameShorterThanHeader { .. }),
        "{err:?}"
    );

    let debug = capture.events(Level::DEBUG, "tidegate::codec");
    assert_eq!(debug.len(), 3, "{debug:?}");
    assert_eq!(
        debug[0].field("len"),
        Some("1073741828"),
        "the header's claim plus the header"
    );
    assert_eq!(debug[0].field("max"), Some("1024"));
    assert_eq!(debug[1].field("max"), Some("8"));
    assert!(debug[1].field("len").unwrap().parse::<u64>().unwrap() > 8);
    assert!(debug[2].field("message").unwrap().contains("malformed"));
    assert!(debug[2].field("error").unwrap().contains("adjustment -10"));
    // A peer's bad bytes are its own connection's business: nothing above DEBUG.
    assert!(capture.tidegate().iter().all(|e| e.level == Level::DEBUG));
}

/// Accepts writes of nothing, forever: the queue behind it stays unwritable.
struct Stuck;

impl tokio::io::AsyncWrite for Stuck {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Pending
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn an_evicted_peer_is_a_debug_event() {
    let (capture, _guard) = Capture::install();
    let (tx, writer) = WatermarkWriter::builder()
        .limits(Limits::new(4, 8, 1024))
        .evict_after(Some(Duration::from_secs(30)))
        .build(Stuck);
    let task = writer.spawn();
    assert!(tx.try_send(Bytes::from_static(b"0123456789")).is_ok());
    let report = timeout(Duration::from_secs(60), task)
        .await
        .expect("evicted after 30 s")
        .unwrap();
    assert!(matches!(report.reason, CloseReason::Evicted { .. }));

    let debug = capture.events(Level::DEBUG, "tidegate::watermark");
    assert_eq!(debug.len(), 1, "{debug:?}");
    assert!(debug[0].field("reason").unwrap().contains("evicted"));
    assert_eq!(debug[0].field("held_frames"), Some("1"));
    assert!(capture.events(Level::WARN, "tidegate").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_connection_writer_cut_at_the_drain_timeout_is_a_debug_event() {
    let (capture, _guard) = Capture::install();
    let shutdown = Shutdown::new();
    let mut builder = Connection::builder();
    builder
        .shutdown(&shutdown)
        .drain_timeout(Duration::from_secs(2))
        .evict_after(None)
        .stall_timeout(None);
    // The peer never reads: an answer larger than the pipe cannot drain.
    let (io, _peer) = tokio::io::duplex(1024);
    let conn = builder
        .build(
            io,
            LengthFieldCodec::new(1 << 16),
            LengthFieldCodec::new(1 << 16),
        )
        .unwrap();
    conn.sender()
        .try_send(Bytes::from(vec![7; 8000]))
        .expect("under the hard mark");
    let report = timeout(
        Duration::from_secs(10),
        shutdown.shutdown(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!((report.drained, report.cut), (0, 1), "{report:?}");

    let cut: Vec<_> = capture
        .events(Level::DEBUG, "tidegate::conn")
        .into_iter()
        .filter(|e| e.field("drain").is_some())
        .collect();
    assert_eq!(cut.len(), 1, "{:?}", capture.tidegate());
    assert_eq!(cut[0].field("drain"), Some("2s"));
    drop(conn);
}

async fn listener(limiter: ConnectionLimiter) -> (LimitedListener, SocketAddr) {
    let listener = LimitedListener::builder()
        .limiter(limiter)
        .over_limit(OverLimit::Reject)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[tokio::test]
async fn rejected_connections_debug_per_address_and_warn_at_the_global_limit() {
    let (capture, _guard) = Capture::install();
    let per_ip = ConnectionLimiter::new(10);
    per_ip.set_per_ip_limit(Some(1));
    let (listener, addr) = listener(per_ip).await;
    let _first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _third = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The first is admitted; the per-address limit rejects the two others while the next accept waits.
    let (_conn, _, _permit) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    until_rejected(&listener, 2).await;
    let debug = capture.events(Level::DEBUG, "tidegate::conn");
    assert_eq!(debug.len(), 2, "{debug:?}");
    assert!(debug[0].field("refusal").unwrap().contains("127.0.0.1"));
    assert!(capture.events(Level::WARN, "tidegate::conn").is_empty());

    let (full, addr) = listener_at_zero().await;
    let _refused = tokio::net::TcpStream::connect(addr).await.unwrap();
    until_rejected(&full, 1).await;
    let warns = capture.events(Level::WARN, "tidegate::conn");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].field("refusal").unwrap().contains("limit 0"));
}

async fn listener_at_zero() -> (LimitedListener, SocketAddr) {
    listener(ConnectionLimiter::new(0)).await
}

/// Accepts (nothing gets admitted) until the listener has rejected `n` connections.
async fn until_rejected(listener: &LimitedListener, n: u64) {
    let waiting = async {
        while listener.metrics().rejected < n {
            let accepted = timeout(Duration::from_millis(20), listener.accept()).await;
            assert!(accepted.is_err(), "the limit admits no more");
        }
    };
    timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the connections were rejected");
}

#[tokio::test(start_paused = true)]
async fn a_listener_paused_at_the_global_limit_warns_with_the_limit() {
    let (capture, _guard) = Capture::install();
    let listener = LimitedListener::builder()
        .limiter(ConnectionLimiter::new(0))
        .over_limit(OverLimit::Pause)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        let paused = timeout(Duration::from_millis(50), listener.accept()).await;
        assert!(paused.is_err(), "nothing is admitted at a limit of 0");
    }
    assert!(listener.metrics().pauses >= 3);
    let warns = capture.events(Level::WARN, "tidegate::conn");
    assert_eq!(warns.len(), 1, "one per second: {warns:?}");
    assert_eq!(warns[0].field("limit"), Some("0"));
}

#[cfg(target_os = "linux")]
const EMFILE_CHILD: &str = "TIDEGATE_TRACE_EMFILE_CHILD";
#[cfg(target_os = "linux")]
const EMFILE_TEST: &str = "accept_backoff_out_of_descriptors_warns_at_most_once_a_second";
#[cfg(target_os = "linux")]
const EMFILE_OK: &str = "emfile trace scenario passed";

/// Out of descriptors, `accept` backs off again and again; the warnings follow the clock, not the attempts. The
/// scenario lowers `RLIMIT_NOFILE`, so it runs in a child process: this test binary again, filtered to this test.
#[cfg(target_os = "linux")]
#[test]
fn accept_backoff_out_of_descriptors_warns_at_most_once_a_second() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        return emfile_scenario();
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([EMFILE_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(EMFILE_CHILD, "1")
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(EMFILE_OK),
        "child failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}

#[cfg(target_os = "linux")]
fn emfile_scenario() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (capture, _guard) = Capture::install();
        let listener = LimitedListener::builder()
            .limiter(ConnectionLimiter::new(64))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // No descriptor free: the soft limit a little above the highest open one, every number below it taken.
        let limit = highest_open_fd() + 4;
        set_soft_nofile(limit);
        let mut fillers = Vec::new();
        let out = loop {
            match std::fs::File::open("/dev/null") {
                Ok(file) => fillers.push(file),
                Err(err) => break err,
            }
            assert!(
                fillers.len() as u64 <= limit,
                "the limit did not take effect"
            );
        };
        assert_eq!(out.raw_os_error(), Some(libc::EMFILE));

        // On the paused clock the backoff's sleeps pass at once: 3.5 s is about a dozen attempts.
        let stuck = timeout(Duration::from_millis(3500), listener.accept()).await;
        assert!(stuck.is_err(), "accepted with no descriptor free");
        let backoffs = listener.metrics().backoffs;
        let warns = capture.events(Level::WARN, "tidegate::conn");
        assert!(
            (2..=4).contains(&warns.len()),
            "{backoffs} backoffs: {warns:?}"
        );
        assert!(backoffs as usize > warns.len() + 4, "{backoffs} backoffs");
        assert!(warns[0].field("error").unwrap().contains("os error 24"));
        assert!(warns.iter().all(|w| w.field("delay").is_some()));
        let reported: u64 = warns
            .iter()
            .map(|w| w.field("suppressed").unwrap().parse::<u64>().unwrap())
            .sum();
        assert!(
            reported > 0,
            "the held-back backoffs are reported: {warns:?}"
        );
        assert!(reported + warns.len() as u64 <= backoffs);
        drop(fillers);
        println!("{EMFILE_OK}: {backoffs} backoffs, {} warnings", warns.len());
    });
}
