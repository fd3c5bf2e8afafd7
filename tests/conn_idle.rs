//! `IdleTimeout`: read idle, write idle, the slow-start defence, the typed sticky error, and a model of when the
//! read-idle error must appear. Timer behaviour runs on tokio's paused clock over `tokio::io::duplex`; one test
//! uses real loopback TCP.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::prelude::*;
use tidegate::conn::{IdleError, IdleTimeout, IdleTimeoutBuilder};
use tokio::io::{
    duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{advance, timeout, Instant};

const IDLE: Duration = Duration::from_secs(10);
const MS: Duration = Duration::from_millis(1);
/// Bounds every await; on the paused clock a stuck await reaches it at once.
const LIMIT: Duration = Duration::from_secs(3600);

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn types_are_send_sync_and_debug() {
    assert_send_sync::<IdleTimeout<TcpStream>>();
    assert_send_sync::<IdleTimeout<DuplexStream>>();
    assert_send_sync::<IdleTimeoutBuilder>();
    assert_send_sync::<IdleError>();
    let conn = IdleTimeout::builder().read_idle(Some(IDLE)).build(Opaque);
    let shown = format!("{conn:?}");
    assert!(shown.starts_with("IdleTimeout {"), "{shown}");
    assert!(shown.contains("read_idle: Some(10s)"), "{shown}");
}

/// Not `Debug`: the wrapper's `Debug` must not need it.
struct Opaque;

#[test]
fn an_idle_wrapper_stays_small() {
    let size = std::mem::size_of::<IdleTimeout<TcpStream>>();
    let inner = std::mem::size_of::<TcpStream>();
    println!("size_of::<IdleTimeout<TcpStream>>() = {size} (TcpStream alone: {inner})");
    assert!(size <= inner + 192, "{size} bytes");
}

async fn bounded<F: Future>(fut: F) -> F::Output {
    timeout(LIMIT, fut).await.expect("bounded await ran out")
}

/// Polls `fut` exactly once.
async fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let mut fut = Some(fut);
    std::future::poll_fn(|cx| Poll::Ready(fut.take().unwrap().poll(cx))).await
}

fn idle_error(result: Poll<io::Result<usize>>) -> IdleError {
    match result {
        Poll::Ready(Err(err)) => {
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            *IdleError::find(&err).expect("an IdleError inside")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

fn reading(idle: Duration) -> (IdleTimeout<DuplexStream>, DuplexStream) {
    let (ours, peer) = duplex(64 * 1024);
    (
        IdleTimeout::builder().read_idle(Some(idle)).build(ours),
        peer,
    )
}

#[tokio::test(start_paused = true)]
async fn read_idle_fires_after_the_duration_and_not_before() {
    let (mut conn, _peer) = reading(IDLE);
    let mut buf = [0; 16];
    let mut read = pin!(conn.read(&mut buf));
    assert!(poll_once(read.as_mut()).await.is_pending());
    advance(IDLE - MS).await;
    assert!(poll_once(read.as_mut()).await.is_pending(), "1 ms early");
    advance(MS).await;
    let err = idle_error(poll_once(read.as_mut()).await);
    assert_eq!(err, IdleError::ReadIdle { after: IDLE }, "exactly on time");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_reader_is_woken_when_read_idle_passes() {
    let (mut conn, _peer) = reading(IDLE);
    let start = Instant::now();
    let err = bounded(conn.read(&mut [0; 16])).await.unwrap_err();
    assert_eq!(start.elapsed(), IDLE, "woken by the timer, exactly on time");
    assert!(matches!(
        IdleError::find(&err),
        Some(IdleError::ReadIdle { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn data_arriving_resets_read_idle() {
    let (mut conn, mut peer) = reading(IDLE);
    let mut buf = [0; 16];
    for _ in 0..3 {
        let mut read = pin!(conn.read(&mut buf));
        assert!(poll_once(read.as_mut()).await.is_pending());
        advance(IDLE - MS).await;
        peer.write_all(b"tick").await.unwrap();
        assert!(matches!(poll_once(read.as_mut()).await, Poll::Ready(Ok(4))));
    }
    // Three almost-idle periods passed in all; the next wait still gets a whole one.
    let start = Instant::now();
    let err = bounded(conn.read(&mut buf)).await.unwrap_err();
    assert_eq!(start.elapsed(), IDLE);
    assert!(IdleError::find(&err).is_some());
}

#[tokio::test(start_paused = true)]
async fn time_spent_not_reading_is_not_counted_against_the_peer() {
    let (mut conn, mut peer) = reading(IDLE);
    let mut buf = [0; 16];
    peer.write_all(b"request").await.unwrap();
    assert_eq!(bounded(conn.read(&mut buf)).await.unwrap(), 7);
    // The application handles the request for three idle periods before it reads again.
    advance(3 * IDLE).await;
    let mut read = pin!(conn.read(&mut buf));
    assert!(
        poll_once(read.as_mut()).await.is_pending(),
        "the wait starts now"
    );
    advance(IDLE - MS).await;
    assert!(poll_once(read.as_mut()).await.is_pending());
    advance(MS).await;
    assert_eq!(
        idle_error(poll_once(read.as_mut()).await),
        IdleError::ReadIdle { after: IDLE }
    );
}

#[tokio::test(start_paused = true)]
async fn bytes_that_are_ready_win_over_a_passed_deadline() {
    let (mut conn, mut peer) = reading(IDLE);
    let mut buf = [0; 16];
    let mut read = pin!(conn.read(&mut buf));
    assert!(poll_once(read.as_mut()).await.is_pending());
    advance(2 * IDLE).await;
    peer.write_all(b"late").await.unwrap();
    assert!(matches!(poll_once(read.as_mut()).await, Poll::Ready(Ok(4))));
}

#[tokio::test(start_paused = true)]
async fn zero_and_huge_timeouts_are_well_defined() {
    let (mut conn, _peer) = reading(Duration::ZERO);
    let mut buf = [0; 4];
    let mut read = pin!(conn.read(&mut buf));
    assert_eq!(
        idle_error(poll_once(read.as_mut()).await),
        IdleError::ReadIdle {
            after: Duration::ZERO
        }
    );

    // A century: a real timer, armed far out.
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    let (mut conn, _peer) = reading(century);
    let mut buf = [0; 4];
    let mut read = pin!(conn.read(&mut buf));
    assert!(poll_once(read.as_mut()).await.is_pending());
    advance(century - MS).await;
    assert!(poll_once(read.as_mut()).await.is_pending());
    advance(MS).await;
    assert_eq!(
        idle_error(poll_once(read.as_mut()).await),
        IdleError::ReadIdle { after: century }
    );

    // Too long to add to the clock: never fires, never panics.
    let (mut conn, mut peer) = reading(Duration::MAX);
    let mut buf = [0; 4];
    let mut read = pin!(conn.read(&mut buf));
    assert!(poll_once(read.as_mut()).await.is_pending());
    advance(Duration::from_secs(1 << 30)).await;
    assert!(poll_once(read.as_mut()).await.is_pending());
    peer.write_all(b"ok").await.unwrap();
    assert!(matches!(poll_once(read.as_mut()).await, Poll::Ready(Ok(2))));
}

fn writing(idle: Duration) -> (IdleTimeout<DuplexStream>, DuplexStream) {
    let (ours, peer) = duplex(16);
    (
        IdleTimeout::builder().write_idle(Some(idle)).build(ours),
        peer,
    )
}

#[tokio::test(start_paused = true)]
async fn write_idle_fires_when_the_peer_stops_reading() {
    let (mut conn, _peer) = writing(IDLE);
    bounded(conn.write_all(&[1; 16])).await.unwrap();
    let mut write = pin!(conn.write(&[2; 16]));
    assert!(
        poll_once(write.as_mut()).await.is_pending(),
        "the duplex is full"
    );
    advance(IDLE - MS).await;
    assert!(poll_once(write.as_mut()).await.is_pending(), "1 ms early");
    advance(2 * MS).await;
    assert_eq!(
        idle_error(poll_once(write.as_mut()).await),
        IdleError::WriteIdle { after: IDLE }
    );
}

#[tokio::test(start_paused = true)]
async fn writes_that_progress_do_not_time_out() {
    let (mut conn, mut peer) = writing(IDLE);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0; 16];
        while got.len() < 1024 {
            tokio::time::sleep(IDLE / 2).await;
            let n = peer.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let start = Instant::now();
    let data: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
    bounded(conn.write_all(&data)).await.unwrap();
    bounded(conn.flush()).await.unwrap();
    assert!(
        start.elapsed() > 10 * IDLE,
        "the write took many idle periods in all"
    );
    assert_eq!(bounded(reader).await.unwrap(), data);
}

#[tokio::test(start_paused = true)]
async fn the_write_timer_runs_only_while_a_write_is_pending() {
    let (mut conn, mut peer) = writing(IDLE);
    // Nothing to write for a long time: no timeout.
    advance(10 * IDLE).await;
    bounded(conn.write_all(&[1; 16])).await.unwrap();
    // A write waits for most of a period, completes, then nothing is written for a long time.
    let mut write = pin!(conn.write(&[2; 4]));
    assert!(poll_once(write.as_mut()).await.is_pending());
    advance(IDLE - MS).await;
    bounded(peer.read_exact(&mut [0; 16])).await.unwrap();
    assert!(matches!(
        poll_once(write.as_mut()).await,
        Poll::Ready(Ok(4))
    ));
    advance(10 * IDLE).await;
    // The next pending write gets a whole period of its own.
    bounded(conn.write_all(&[3; 12])).await.unwrap();
    let start = Instant::now();
    let err = bounded(conn.write_all(&[4; 1])).await.unwrap_err();
    assert_eq!(start.elapsed(), IDLE);
    assert_eq!(
        IdleError::find(&err),
        Some(&IdleError::WriteIdle { after: IDLE })
    );
}

/// A stream on which every operation stays pending, to time out flush and shutdown.
struct Stuck;

impl AsyncRead for Stuck {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

impl AsyncWrite for Stuck {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Pending
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_pending_flush_or_shutdown_times_out_too() {
    let builder = *IdleTimeout::builder().write_idle(Some(IDLE));
    let start = Instant::now();
    let err = bounded(builder.build(Stuck).flush()).await.unwrap_err();
    assert_eq!(start.elapsed(), IDLE);
    assert_eq!(
        IdleError::find(&err),
        Some(&IdleError::WriteIdle { after: IDLE })
    );

    let start = Instant::now();
    let err = bounded(builder.build(Stuck).shutdown()).await.unwrap_err();
    assert_eq!(start.elapsed(), IDLE);
    assert_eq!(
        IdleError::find(&err),
        Some(&IdleError::WriteIdle { after: IDLE })
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_fires_without_a_configured_timeout() {
    let (ours, mut peer) = duplex(16);
    let mut conn = IdleTimeout::builder().build(ours);
    bounded(conn.write_all(&[1; 16])).await.unwrap();
    let mut buf = [0; 16];
    {
        let mut read = pin!(conn.read(&mut buf));
        assert!(poll_once(read.as_mut()).await.is_pending());
        advance(Duration::from_secs(365 * 24 * 3600)).await;
        assert!(poll_once(read.as_mut()).await.is_pending());
    }
    {
        let mut write = pin!(conn.write(&[2; 4]));
        assert!(poll_once(write.as_mut()).await.is_pending());
        advance(Duration::from_secs(365 * 24 * 3600)).await;
        assert!(poll_once(write.as_mut()).await.is_pending());
    }
    // A waiting reader is never woken by a timer: the bound is what ends this wait.
    let start = Instant::now();
    assert!(timeout(100 * IDLE, conn.read(&mut buf)).await.is_err());
    assert_eq!(start.elapsed(), 100 * IDLE);
    peer.write_all(b"hi").await.unwrap();
    assert_eq!(bounded(conn.read(&mut buf)).await.unwrap(), 2);
    assert!(conn.failure().is_none());
}

#[tokio::test(start_paused = true)]
async fn slow_start_trips_a_trickling_client() {
    let (ours, mut peer) = duplex(1024);
    let within = Duration::from_secs(10);
    let mut conn = IdleTimeout::builder()
        .read_idle(Some(Duration::from_secs(5)))
        .first_bytes_deadline(100, within)
        .build(ours);
    // Ten bytes every two seconds, at 1 s, 3 s, ...: always in time for the read-idle timeout.
    let trickle = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        loop {
            if peer.write_all(&[b'x'; 10]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let start = Instant::now();
    let mut got = 0;
    let mut buf = [0; 64];
    let err = loop {
        match bounded(conn.read(&mut buf)).await {
            Ok(n) => got += n,
            Err(err) => break err,
        }
    };
    assert_eq!(start.elapsed(), within);
    assert_eq!(got, 50);
    assert_eq!(
        IdleError::find(&err),
        Some(&IdleError::SlowStart {
            got: 50,
            wanted: 100,
            within
        })
    );
    drop(conn);
    bounded(trickle).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn slow_start_spares_a_fast_client() {
    let (ours, mut peer) = duplex(1024);
    let mut conn = IdleTimeout::builder()
        .first_bytes_deadline(100, Duration::from_secs(10))
        .build(ours);
    let mut buf = [0; 64];
    advance(Duration::from_secs(9)).await;
    peer.write_all(&[b'x'; 100]).await.unwrap();
    assert_eq!(bounded(conn.read(&mut buf)).await.unwrap(), 64);
    assert_eq!(bounded(conn.read(&mut buf)).await.unwrap(), 36);
    // The requirement is met: a quiet peer afterwards is not its business (no read-idle is set).
    let mut read = pin!(conn.read(&mut buf));
    assert!(poll_once(read.as_mut()).await.is_pending());
    advance(Duration::from_secs(100)).await;
    assert!(poll_once(read.as_mut()).await.is_pending());
    peer.write_all(b"more").await.unwrap();
    assert!(matches!(poll_once(read.as_mut()).await, Poll::Ready(Ok(4))));
}

#[tokio::test(start_paused = true)]
async fn slow_start_is_named_when_it_ends_the_wait_with_read_idle() {
    let (ours, mut peer) = duplex(1024);
    let mut conn = IdleTimeout::builder()
        .read_idle(Some(IDLE))
        .first_bytes_deadline(10, IDLE)
        .build(ours);
    peer.write_all(b"abc").await.unwrap();
    assert_eq!(bounded(conn.read(&mut [0; 8])).await.unwrap(), 3);
    // Both deadlines fall at `IDLE`: the more specific complaint wins.
    let err = bounded(conn.read(&mut [0; 8])).await.unwrap_err();
    assert_eq!(
        IdleError::find(&err),
        Some(&IdleError::SlowStart {
            got: 3,
            wanted: 10,
            within: IDLE
        })
    );
}

#[tokio::test(start_paused = true)]
async fn the_error_is_typed_and_findable() {
    let (mut conn, _peer) = reading(IDLE);
    let err = bounded(conn.read(&mut [0; 4])).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<IdleError>())
        .expect("downcast as documented");
    assert_eq!(*inner, IdleError::ReadIdle { after: IDLE });
    assert_eq!(IdleError::find(&err), Some(inner));
    assert_eq!(conn.failure(), Some(IdleError::ReadIdle { after: IDLE }));
    assert_eq!(
        err.to_string(),
        "no byte arrived for 10s while the reader waited"
    );
    assert_eq!(IdleError::find(&io::Error::other("unrelated")), None);
}

#[tokio::test(start_paused = true)]
async fn after_a_timeout_the_wrapper_stays_failed() {
    let (ours, mut peer) = duplex(1024);
    let mut conn = IdleTimeout::builder()
        .read_idle(Some(IDLE))
        .write_idle(Some(IDLE))
        .build(ours);
    let first = bounded(conn.read(&mut [0; 4])).await.unwrap_err();
    let expected = *IdleError::find(&first).unwrap();
    peer.write_all(b"too late").await.unwrap();
    let same = |err: io::Error| {
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(IdleError::find(&err), Some(&expected));
    };
    same(bounded(conn.read(&mut [0; 4])).await.unwrap_err());
    same(bounded(conn.write(b"x")).await.unwrap_err());
    same(
        bounded(conn.write_vectored(&[IoSlice::new(b"x")]))
            .await
            .unwrap_err(),
    );
    same(bounded(conn.flush()).await.unwrap_err());
    same(bounded(conn.shutdown()).await.unwrap_err());
    // The bytes were not consumed by the failed wrapper: the inner stream still has them.
    let mut buf = [0; 8];
    bounded(conn.get_mut().read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"too late");
}

#[tokio::test]
async fn works_over_loopback_tcp_and_forwards_vectored_writes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let mut client = client.unwrap();
    let mut conn = IdleTimeout::builder()
        .read_idle(Some(Duration::from_secs(30)))
        .write_idle(Some(Duration::from_secs(30)))
        .first_bytes_deadline(4, Duration::from_secs(30))
        .build(accepted.unwrap().0);
    let bound = Duration::from_secs(10);

    assert!(conn.is_write_vectored());
    // A forwarded vectored write takes both slices at once; the default would write only the first.
    let slices = [IoSlice::new(b"ab"), IoSlice::new(b"cd")];
    let n = timeout(bound, conn.write_vectored(&slices))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 4);
    let mut got = [0; 4];
    timeout(bound, client.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"abcd");

    timeout(bound, client.write_all(b"ping"))
        .await
        .unwrap()
        .unwrap();
    let mut got = [0; 4];
    timeout(bound, conn.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"ping");
    timeout(bound, conn.shutdown()).await.unwrap().unwrap();
    assert_eq!(
        timeout(bound, client.read(&mut got))
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert!(conn.failure().is_none());
}

/// One step of a read-side script.
#[derive(Debug, Clone)]
enum Op {
    /// The clock moves on by this many milliseconds.
    Advance(u64),
    /// The peer sends this many bytes.
    Send(usize),
    /// The application polls one read once.
    TryRead,
    /// The application awaits one read.
    AwaitRead,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3_000u64).prop_map(Op::Advance),
        // Whole tenths of a second, like the timeouts below, so that deadlines are often hit exactly.
        (0..30u64).prop_map(|tenths| Op::Advance(tenths * 100)),
        (1..40usize).prop_map(Op::Send),
        Just(Op::TryRead),
        Just(Op::AwaitRead),
    ]
}

/// When the read-idle and slow-start errors must appear, in milliseconds since the wrapper's creation.
#[derive(Debug)]
struct Model {
    now: u64,
    idle: u64,
    /// `(wanted, within)` until that many bytes were read.
    slow_start: Option<(usize, u64)>,
    got: usize,
    buffered: usize,
    waiting_since: Option<u64>,
    failed: Option<IdleError>,
}

const READ_SIZE: usize = 8;

impl Model {
    /// What one read returns if it finds no bytes: `Some((when, error))` for the deadline that ends the wait.
    fn deadline(&mut self) -> (u64, IdleError) {
        let since = *self.waiting_since.get_or_insert(self.now);
        let idle = (
            since + self.idle,
            IdleError::ReadIdle {
                after: Duration::from_millis(self.idle),
            },
        );
        match self.slow_start {
            Some((wanted, within)) if within <= idle.0 => (
                within,
                IdleError::SlowStart {
                    got: self.got,
                    wanted,
                    within: Duration::from_millis(within),
                },
            ),
            _ => idle,
        }
    }

    /// `Ready(Ok(n))`, `Ready(Err(e))` or `Pending` (only when `wait` is false).
    fn read(&mut self, wait: bool) -> Poll<Result<usize, IdleError>> {
        if let Some(err) = self.failed {
            return Poll::Ready(Err(err));
        }
        if self.buffered > 0 {
            let n = self.buffered.min(READ_SIZE);
            self.buffered -= n;
            self.got += n;
            if self
                .slow_start
                .is_some_and(|(wanted, _)| self.got >= wanted)
            {
                self.slow_start = None;
            }
            self.waiting_since = None;
            return Poll::Ready(Ok(n));
        }
        let (due, err) = self.deadline();
        if self.now >= due || wait {
            self.now = self.now.max(due);
            self.failed = Some(err);
            return Poll::Ready(Err(err));
        }
        Poll::Pending
    }
}

fn outcome(polled: Poll<io::Result<usize>>) -> Poll<Result<usize, IdleError>> {
    polled.map(|r| r.map_err(|e| *IdleError::find(&e).expect("only timeouts here")))
}

async fn run_script(
    idle: u64,
    slow_start: Option<(usize, u64)>,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let (ours, mut peer) = duplex(64 * 1024);
    let mut builder = IdleTimeout::builder();
    builder.read_idle(Some(Duration::from_millis(idle)));
    if let Some((wanted, within)) = slow_start {
        builder.first_bytes_deadline(wanted, Duration::from_millis(within));
    }
    let start = Instant::now();
    let mut conn = builder.build(ours);
    let mut model = Model {
        now: 0,
        idle,
        slow_start,
        got: 0,
        buffered: 0,
        waiting_since: None,
        failed: None,
    };
    let mut buf = [0; READ_SIZE];
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Advance(ms) => {
                advance(Duration::from_millis(ms)).await;
                model.now += ms;
            }
            Op::Send(n) => {
                bounded(peer.write_all(&vec![7; n])).await.unwrap();
                model.buffered += n;
            }
            Op::TryRead => {
                let got = outcome(poll_once(pin!(conn.read(&mut buf))).await);
                prop_assert_eq!(got, model.read(false), "step {}", step);
            }
            Op::AwaitRead => {
                let got = outcome(Poll::Ready(bounded(conn.read(&mut buf)).await));
                prop_assert_eq!(got, model.read(true), "step {}", step);
            }
        }
        prop_assert_eq!(
            start.elapsed(),
            Duration::from_millis(model.now),
            "clock after step {}",
            step
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn read_timeouts_appear_exactly_when_the_model_says(
        idle in prop_oneof![1..5_000u64, (1..50u64).prop_map(|tenths| tenths * 100)],
        slow_start in proptest::option::of((1..120usize, prop_oneof![0..8_000u64, (0..80u64).prop_map(|t| t * 100)])),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run_script(idle, slow_start, ops))?;
    }
}
