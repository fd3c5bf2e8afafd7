//! The composed `Connection`: auto-read, one queued batch per read burst, both halves ending together with a typed
//! reason, refusals at build time, graceful shutdown and idle buffers.
//!
//! Timer behaviour runs on `tokio::io::duplex` with the paused clock; socket behaviour on real loopback sockets.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tidegate::codec::LengthFieldCodec;
use tidegate::conn::{
    ConnClose, Connection, ConnectionBuildError, IdleError, IdleTimeout, Shutdown, ShutdownReport,
};
use tidegate::watermark::LimitsError;
use tidegate::MemoryBudget;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const MAX: usize = 16 * 1024;
const WAIT: Duration = Duration::from_secs(10);

fn codec() -> LengthFieldCodec {
    LengthFieldCodec::new(MAX)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let len = timeout(WAIT, r.read_u32()).await??;
    let mut payload = vec![0; len as usize];
    timeout(WAIT, r.read_exact(&mut payload)).await??;
    Ok(payload)
}

/// The peer's side sees the end of the stream, with nothing more before it.
async fn assert_ends<R: AsyncRead + Unpin>(client: &mut R) {
    let mut rest = Vec::new();
    let read = timeout(WAIT, client.read_to_end(&mut rest)).await;
    assert_eq!(read.unwrap().unwrap(), 0, "bytes before the end: {rest:?}");
}

/// Echoes every frame until the connection ends; returns why, and how many frames it read.
async fn echo(mut conn: Connection<LengthFieldCodec>, read: Arc<AtomicUsize>) -> ConnClose {
    loop {
        match conn.next().await {
            Ok(frame) => {
                read.fetch_add(1, Ordering::SeqCst);
                // A refusal means the connection ended: the next `next` says why.
                drop(conn.feed(frame).await);
            }
            Err(reason) => return reason,
        }
    }
}

/// Counts the writes and flushes that reach the stream, and can fail every write.
struct Counting {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
    flushes: Arc<AtomicUsize>,
    fail_writes: Arc<AtomicBool>,
}

impl Counting {
    fn new(inner: DuplexStream) -> Self {
        Counting {
            inner,
            writes: Arc::default(),
            flushes: Arc::default(),
            fail_writes: Arc::default(),
        }
    }
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if written.is_ready() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[test]
fn public_types_are_send_and_sync_where_they_should_be() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Connection<LengthFieldCodec>>();
    send_sync::<ConnClose>();
    send_sync::<ConnectionBuildError>();
    send_sync::<Shutdown>();
    send_sync::<ShutdownReport>();
    send_sync::<tidegate::conn::ConnectionBuilder>();
}

#[tokio::test(start_paused = true)]
async fn frames_fed_in_one_burst_are_queued_as_one_batch_and_written_once() {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let server = Counting::new(server);
    let (writes, flushes) = (server.writes.clone(), server.flushes.clone());
    let mut conn = Connection::builder()
        .build(server, codec(), codec())
        .unwrap();
    const N: usize = 10;
    let burst: Vec<u8> = (0..N)
        .flat_map(|i| frame(format!("request {i}").as_bytes()))
        .collect();
    client.write_all(&burst).await.unwrap();

    for i in 0..N {
        let request = timeout(WAIT, conn.next()).await.unwrap().unwrap();
        assert_eq!(request, format!("request {i}"));
        conn.feed(request).await.unwrap();
    }
    assert_eq!(
        conn.metrics().write.accepted_items,
        0,
        "fed frames wait for the burst's end"
    );
    // The burst is over: the next read would wait, so what was fed is queued, as one item.
    assert!(timeout(Duration::from_millis(50), conn.next())
        .await
        .is_err());
    for i in 0..N {
        assert_eq!(
            read_frame(&mut client).await.unwrap(),
            format!("request {i}").as_bytes()
        );
    }
    let m = conn.metrics();
    assert_eq!((m.write.accepted_items, m.write.writes), (1, 1));
    assert_eq!(writes.load(Ordering::SeqCst), 1, "one write for {N} frames");
    assert_eq!(
        flushes.load(Ordering::SeqCst),
        1,
        "one flush for {N} frames"
    );
}

#[tokio::test(start_paused = true)]
async fn reading_pauses_while_the_queue_is_unwritable_and_resumes_at_the_low_mark() {
    let (server, mut client) = tokio::io::duplex(1024);
    let mut conn = Connection::builder()
        .low_mark(1024)
        .high_mark(4096)
        .hard_cap(4096 + MAX + 8 * 1024)
        .evict_after(None)
        .stall_timeout(None)
        .build(server, codec(), codec())
        .unwrap();
    // A push from elsewhere (a broadcast) that the peer does not read yet: the queue is above its high mark.
    let sender = conn.sender().clone();
    sender.try_send(Bytes::from(frame(&[9; 8000]))).unwrap();
    assert!(!sender.is_writable());
    client.write_all(&frame(b"request")).await.unwrap();
    assert!(
        timeout(Duration::from_secs(5), conn.next()).await.is_err(),
        "a frame was read while the queue was unwritable"
    );
    assert_eq!(
        conn.metrics().read_buffered_bytes,
        0,
        "the socket was not read at all"
    );

    // The peer reads the push: the queue drains below the low mark and reading resumes.
    let reading = tokio::spawn(async move {
        let pushed = read_frame(&mut client).await.unwrap();
        (pushed, client)
    });
    assert_eq!(
        timeout(WAIT, conn.next()).await.unwrap().unwrap(),
        "request"
    );
    let (pushed, _client) = timeout(WAIT, reading).await.unwrap().unwrap();
    assert_eq!(pushed, [9; 8000]);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_holds_no_read_or_write_buffer() {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let mut conn = Connection::builder()
        .build(server, codec(), codec())
        .unwrap();
    client.write_all(&frame(&[7; 3000])).await.unwrap();
    let request = timeout(WAIT, conn.next()).await.unwrap().unwrap();
    conn.feed(request).await.unwrap();
    assert!(timeout(Duration::from_millis(50), conn.next())
        .await
        .is_err());
    assert_eq!(read_frame(&mut client).await.unwrap(), [7; 3000]);

    let m = conn.metrics();
    assert_eq!(m.read_allocated_bytes, 0, "no read buffer between bursts");
    assert_eq!(m.read_buffered_bytes, 0);
    assert_eq!(m.write_buffered_bytes, 0);
    assert_eq!(m.write.queued_bytes, 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_releases_its_budget() {
    let budget = MemoryBudget::new(1 << 20);
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let mut conn = Connection::builder()
        .budget(Some(budget.clone()))
        .build(server, codec(), codec())
        .unwrap();
    client.write_all(&frame(b"ping")).await.unwrap();
    let request = timeout(WAIT, conn.next()).await.unwrap().unwrap();
    assert!(
        budget.used() > 0,
        "the read buffer is charged while bytes arrive"
    );
    conn.feed(request).await.unwrap();
    assert!(timeout(Duration::from_millis(50), conn.next())
        .await
        .is_err());
    assert_eq!(read_frame(&mut client).await.unwrap(), b"ping");
    assert!(timeout(Duration::from_millis(50), conn.next())
        .await
        .is_err());
    assert_eq!(
        budget.used(),
        0,
        "idle: nothing read, nothing queued, nothing reserved"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_closes_ends_the_stream_with_peer_closed_after_its_answers() {
    let (server, client) = tokio::io::duplex(64 * 1024);
    let permit = Arc::new(());
    let mut builder = Connection::builder();
    let conn = builder
        .permit(permit.clone())
        .build(server, codec(), codec())
        .unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let handler = tokio::spawn(echo(conn, read.clone()));

    let (mut rx, mut tx) = tokio::io::split(client);
    for i in 0..3u8 {
        tx.write_all(&frame(&[i; 100])).await.unwrap();
    }
    tx.shutdown().await.unwrap(); // half-close: the answers must still arrive
    let reason = timeout(WAIT, handler).await.unwrap().unwrap();
    assert!(matches!(reason, ConnClose::PeerClosed), "{reason:?}");
    for i in 0..3u8 {
        assert_eq!(read_frame(&mut rx).await.unwrap(), [i; 100]);
    }
    let mut rest = Vec::new();
    assert_eq!(
        timeout(WAIT, rx.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap(),
        0,
        "then EOF"
    );
    assert_eq!(
        Arc::strong_count(&permit),
        1,
        "the permit went with the socket"
    );
    assert_eq!(read.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn an_oversize_frame_ends_the_stream_with_its_numbers() {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let mut conn = Connection::builder()
        .build(server, codec(), codec())
        .unwrap();
    client.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    let reason = timeout(WAIT, conn.next()).await.unwrap().unwrap_err();
    assert!(
        matches!(reason, ConnClose::FrameTooLarge { len, max } if len == (1 << 20) + 4 && max == MAX),
        "{reason:?}"
    );
    // Ended for good, with the same reason; the write side is gone too.
    assert!(matches!(
        conn.next().await,
        Err(ConnClose::FrameTooLarge { .. })
    ));
    assert!(conn.feed(Bytes::from_static(b"late")).await.is_err());
    assert_ends(&mut client).await;
}

#[tokio::test(start_paused = true)]
async fn close_ends_the_stream_with_closed_and_delivers_what_was_fed() {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let mut conn = Connection::builder()
        .build(server, codec(), codec())
        .unwrap();
    conn.feed(Bytes::from_static(b"bye")).await.unwrap();
    conn.close();
    assert!(matches!(conn.next().await, Err(ConnClose::Closed)));
    assert_eq!(read_frame(&mut client).await.unwrap(), b"bye");
    assert_ends(&mut client).await;
}

#[tokio::test(start_paused = true)]
async fn closing_the_queue_from_elsewhere_ends_reading_too() {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let mut conn = Connection::builder()
        .build(server, codec(), codec())
        .unwrap();
    let sender = conn.sender().clone();
    sender.try_send(Bytes::from(frame(b"pushed"))).unwrap();
    sender.close();
    client.write_all(&frame(b"not read")).await.unwrap();
    let reason = timeout(WAIT, conn.next()).await.unwrap().unwrap_err();
    assert!(matches!(reason, ConnClose::Closed), "{reason:?}");
    assert_eq!(read_frame(&mut client).await.unwrap(), b"pushed");
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_ends_the_read_side_with_write_error() {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let server = Counting::new(server);
    server.fail_writes.store(true, Ordering::SeqCst);
    let conn = Connection::builder()
        .build(server, codec(), codec())
        .unwrap();
    let handler = tokio::spawn(echo(conn, Arc::default()));
    client.write_all(&frame(b"answer me")).await.unwrap();
    let reason = timeout(WAIT, handler).await.unwrap().unwrap();
    assert!(
        matches!(&reason, ConnClose::WriteError(err) if err.kind() == io::ErrorKind::ConnectionReset),
        "{reason:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_read_is_evicted_and_both_halves_end() {
    // A 256-byte pipe: the writer is stuck as soon as the peer stops reading.
    let (server, mut client) = tokio::io::duplex(256);
    let permit = Arc::new(());
    let conn = Connection::builder()
        .low_mark(1024)
        .high_mark(4096)
        .hard_cap(4096 + MAX + 8 * 1024)
        .evict_after(Some(Duration::from_secs(3)))
        .stall_timeout(None)
        .permit(permit.clone())
        .build(server, codec(), codec())
        .unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let handler = tokio::spawn(echo(conn, read.clone()));
    let sending = tokio::spawn(async move {
        for _ in 0..1000 {
            if client.write_all(&frame(&[1; 1000])).await.is_err() {
                break;
            }
        }
        client
    });
    let reason = timeout(WAIT, handler).await.unwrap().unwrap();
    assert!(
        matches!(reason, ConnClose::Evicted { after } if after == Duration::from_secs(3)),
        "{reason:?}"
    );
    let mut client = timeout(WAIT, sending).await.unwrap().unwrap();
    assert!(read.load(Ordering::SeqCst) < 1000, "reading stopped");
    assert_eq!(
        Arc::strong_count(&permit),
        1,
        "the socket and its permit are gone"
    );
    // What the pipe held, then the end: no half-open peer.
    let mut rest = Vec::new();
    drop(timeout(WAIT, client.read_to_end(&mut rest)).await.unwrap());
    assert!(client.write_all(&frame(b"anyone?")).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_stream_with_shut_down() {
    let shutdown = Shutdown::new();
    let (server, _client) = tokio::io::duplex(64 * 1024);
    let mut conn = Connection::builder()
        .shutdown(&shutdown)
        .build(server, codec(), codec())
        .unwrap();
    assert!(timeout(Duration::from_millis(10), conn.next())
        .await
        .is_err());
    shutdown.trigger();
    let reason = timeout(WAIT, conn.next()).await.unwrap().unwrap_err();
    assert!(matches!(reason, ConnClose::ShutDown), "{reason:?}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_the_connections_that_drained_and_the_ones_cut() {
    let shutdown = Shutdown::new();
    let mut builder = Connection::builder();
    builder
        .shutdown(&shutdown)
        .drain_timeout(Duration::from_secs(2))
        .evict_after(None)
        .stall_timeout(None);
    // A reading peer, and a peer that does not read an answer larger than its pipe.
    let (fast, mut fast_peer) = tokio::io::duplex(64 * 1024);
    let (slow, mut slow_peer) = tokio::io::duplex(1024);
    let fast = tokio::spawn(echo(
        builder.build(fast, codec(), codec()).unwrap(),
        Arc::default(),
    ));
    let slow = builder.build(slow, codec(), codec()).unwrap();
    let slow_sender = slow.sender().clone();
    let slow = tokio::spawn(echo(slow, Arc::default()));
    assert_eq!(shutdown.open_connections(), 2);

    fast_peer.write_all(&frame(&[1; 8000])).await.unwrap();
    slow_peer.write_all(&frame(&[2; 8000])).await.unwrap_or(());
    assert_eq!(read_frame(&mut fast_peer).await.unwrap(), [1; 8000]);
    let reader = tokio::spawn(async move {
        let mut rest = Vec::new();
        drop(fast_peer.read_to_end(&mut rest).await);
    });

    // The slow peer's answer is queued, and stuck behind its full pipe.
    timeout(WAIT, async {
        while slow_sender.pending_bytes() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
    let report = timeout(WAIT, shutdown.shutdown(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        (report.drained, report.cut, report.open),
        (1, 1, 0),
        "{report:?}"
    );
    for handler in [fast, slow] {
        let reason = timeout(WAIT, handler).await.unwrap().unwrap();
        assert!(matches!(reason, ConnClose::ShutDown), "{reason:?}");
    }
    timeout(WAIT, reader).await.unwrap().unwrap();
    drop(slow_peer);
}

#[tokio::test]
async fn configurations_that_cannot_work_are_refused_with_the_numbers() {
    let stream = || tokio::io::duplex(64).0;
    let err = Connection::builder()
        .low_mark(10_000)
        .high_mark(5_000)
        .build(stream(), codec(), codec())
        .unwrap_err();
    assert_eq!(
        err,
        ConnectionBuildError::Marks(LimitsError::Unordered {
            low: 10_000,
            high: 5_000,
            hard: 256 * 1024
        })
    );

    let err = Connection::builder()
        .high_mark(64 * 1024)
        .hard_cap(80 * 1024)
        .build(stream(), codec(), codec())
        .unwrap_err();
    let needed = 64 * 1024 + MAX + 8 * 1024;
    assert_eq!(
        err,
        ConnectionBuildError::HardCapTooSmall {
            hard: 80 * 1024,
            high: 64 * 1024,
            max_frame: MAX,
            needed
        }
    );
    assert!(err.to_string().contains(&needed.to_string()), "{err}");
    // Exactly enough works.
    Connection::builder()
        .high_mark(64 * 1024)
        .hard_cap(needed)
        .build(stream(), codec(), codec())
        .unwrap();

    let err = Connection::builder()
        .budget(Some(MemoryBudget::new(MAX)))
        .read_size(4096)
        .build(stream(), codec(), codec())
        .unwrap_err();
    let needed = MAX + MAX / 2 + 4096;
    assert_eq!(
        err,
        ConnectionBuildError::BudgetTooSmall {
            limit: MAX,
            max_frame: MAX,
            needed
        }
    );
    assert!(err.to_string().contains(&needed.to_string()), "{err}");
}

#[tokio::test]
async fn a_refused_build_drops_the_permit() {
    let permit = Arc::new(());
    let result = Connection::builder()
        .low_mark(2)
        .high_mark(1)
        .permit(permit.clone())
        .build(tokio::io::duplex(64).0, codec(), codec());
    assert!(result.is_err());
    assert_eq!(Arc::strong_count(&permit), 1);
}

/// A real loopback pair with small kernel buffers for the answers, so a client that does not read shows quickly
/// in the server's queue. (Requests keep the default buffers: a receive buffer far below loopback's 64 KiB MSS
/// makes TCP wait on its persist timer, which would stall the test, not the server.)
async fn loopback() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    socket2::SockRef::from(&server)
        .set_send_buffer_size(32 * 1024)
        .unwrap();
    socket2::SockRef::from(&client)
        .set_recv_buffer_size(32 * 1024)
        .unwrap();
    (server, client)
}

#[tokio::test]
async fn a_slow_reader_pauses_reading_and_the_queue_stays_under_the_hard_cap() {
    const REQUESTS: usize = 4 * 1024;
    let (server, client) = loopback().await;
    let hard = 32 * 1024 + MAX + 8 * 1024;
    let conn = Connection::builder()
        .low_mark(16 * 1024)
        .high_mark(32 * 1024)
        .hard_cap(hard)
        .evict_after(None)
        .stall_timeout(None)
        .build(server, codec(), codec())
        .unwrap();
    let sender = conn.sender().clone();
    let read = Arc::new(AtomicUsize::new(0));
    let handler = tokio::spawn(echo(conn, read.clone()));
    // The client sends 4 MiB of requests and reads nothing.
    let (mut client_rx, mut client_tx) = client.into_split();
    let sending = tokio::spawn(async move {
        let request = frame(&[3; 1020]);
        for _ in 0..REQUESTS {
            if client_tx.write_all(&request).await.is_err() {
                break;
            }
        }
    });
    // Sample until reading has stalled: the read count stays put while the queue is unwritable.
    let mut peak = 0;
    let mut stalled_at = None;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        peak = peak.max(sender.pending_bytes());
        let now = read.load(Ordering::SeqCst);
        match stalled_at {
            Some(then) if then == now && !sender.is_writable() => break,
            _ => stalled_at = Some(now),
        }
    }
    let stalled = read.load(Ordering::SeqCst);
    assert!(!sender.is_writable(), "the queue filled up");
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        peak = peak.max(sender.pending_bytes());
    }
    assert_eq!(
        read.load(Ordering::SeqCst),
        stalled,
        "no reads while unwritable"
    );
    assert!(stalled < REQUESTS, "read {stalled} of the requests");
    assert!(peak <= hard, "queued {peak} > hard cap {hard}");
    assert!(sender.metrics().peak_bytes <= hard);

    // The client starts reading: the queue drains and reading resumes.
    let draining = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(Ok(n)) = timeout(WAIT, client_rx.read(&mut buf)).await {
            if n == 0 {
                break;
            }
        }
    });
    timeout(WAIT, async {
        while read.load(Ordering::SeqCst) < REQUESTS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "reading resumed, but stopped at {:?} {:?}",
            read.load(Ordering::SeqCst),
            sender.metrics()
        )
    });
    timeout(WAIT, sending).await.unwrap().unwrap();
    handler.abort();
    draining.abort();
}

#[tokio::test]
async fn eviction_over_loopback_closes_the_socket_and_releases_the_permit() {
    let (server, client) = loopback().await;
    let dropped = Arc::new(AtomicBool::new(false));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let conn = Connection::builder()
        .low_mark(4 * 1024)
        .high_mark(8 * 1024)
        .hard_cap(8 * 1024 + MAX + 8 * 1024)
        .evict_after(Some(Duration::from_millis(200)))
        .permit(Flag(dropped.clone()))
        .build(server, codec(), codec())
        .unwrap();
    let handler = tokio::spawn(echo(conn, Arc::default()));
    let (mut client_rx, mut client_tx) = client.into_split();
    let sending = tokio::spawn(async move {
        let request = frame(&[4; 1020]);
        for _ in 0..16 * 1024 {
            if client_tx.write_all(&request).await.is_err() {
                return true;
            }
        }
        false
    });
    let reason = timeout(WAIT, handler).await.unwrap().unwrap();
    assert!(matches!(reason, ConnClose::Evicted { .. }), "{reason:?}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the permit went with the socket"
    );
    // The client sees the end: EOF or a reset after what its buffer held, and its sends fail.
    let mut buf = vec![0; 64 * 1024];
    loop {
        match timeout(WAIT, client_rx.read(&mut buf))
            .await
            .expect("the socket was closed")
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(
        timeout(WAIT, sending).await.unwrap().unwrap(),
        "the client's sends failed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_quiet_peer_ends_the_stream_with_read_idle_and_the_socket_closes() {
    let (server, mut client) = tokio::io::duplex(1024);
    let permit = Arc::new(());
    let mut conn = Connection::builder()
        .idle(IdleTimeout::builder().read_idle(Some(Duration::from_secs(30))))
        .permit(permit.clone())
        .build(server, codec(), codec())
        .unwrap();
    client.write_all(&frame(b"hello")).await.unwrap();
    assert_eq!(
        timeout(WAIT * 10, conn.next()).await.unwrap().unwrap(),
        "hello"
    );
    let start = tokio::time::Instant::now();
    let reason = timeout(WAIT * 10, conn.next()).await.unwrap().unwrap_err();
    assert!(
        matches!(reason, ConnClose::Idle(IdleError::ReadIdle { after }) if after == Duration::from_secs(30)),
        "{reason:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_ends(&mut client).await;
    assert_eq!(Arc::strong_count(&permit), 1);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_takes_nothing_ends_the_stream_with_write_idle() {
    let (server, mut client) = tokio::io::duplex(256);
    let conn = Connection::builder()
        .idle(IdleTimeout::builder().write_idle(Some(Duration::from_secs(5))))
        .evict_after(None)
        .stall_timeout(None)
        .build(server, codec(), codec())
        .unwrap();
    let handler = tokio::spawn(echo(conn, Arc::default()));
    client.write_all(&frame(&[5; 2000])).await.unwrap();
    let reason = timeout(WAIT * 10, handler).await.unwrap().unwrap();
    assert!(
        matches!(reason, ConnClose::Idle(IdleError::WriteIdle { after }) if after == Duration::from_secs(5)),
        "{reason:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_writability_watch_made_late_starts_from_the_current_state() {
    // The queue makes its watch channel on the first `watch_writability`, not up front.
    let (server, mut client) = tokio::io::duplex(1024);
    let conn = Connection::builder()
        .low_mark(1024)
        .high_mark(4096)
        .hard_cap(4096 + MAX + 8 * 1024)
        .build(server, codec(), codec())
        .unwrap();
    let sender = conn.sender().clone();
    sender.try_send(Bytes::from(frame(&[1; 6000]))).unwrap();
    let mut watch = sender.watch_writability();
    assert!(
        !*watch.borrow_and_update(),
        "unwritable before anyone watched"
    );
    assert_eq!(read_frame(&mut client).await.unwrap(), [1; 6000]);
    timeout(WAIT, watch.changed()).await.unwrap().unwrap();
    assert!(*watch.borrow());
}
