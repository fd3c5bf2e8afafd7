//! Behaviour of `tidegate::conn::LimitedListener` on loopback sockets: connection storms under both over-limit
//! policies, per-address limits with two source addresses, live limit changes, and backing off (not spinning)
//! while the process is out of file descriptors.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tidegate::conn::{
    ConnectionLimiter, ConnectionPermit, LimitedListener, ListenerBuilder, ListenerMetrics,
    OverLimit,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;

#[cfg(target_os = "linux")]
#[path = "support/fd_limit.rs"]
mod fd_limit;
#[cfg(target_os = "linux")]
use fd_limit::{highest_open_fd, set_soft_nofile};

/// Long enough never to fire on a loaded machine; only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn listener_types_are_send_and_sync() {
    assert_send_sync::<LimitedListener>();
    assert_send_sync::<ListenerBuilder>();
    assert_send_sync::<ListenerMetrics>();
    assert_send_sync::<OverLimit>();
}

#[tokio::test]
async fn accept_and_bind_futures_are_send() {
    let builder = LimitedListener::builder();
    let bind = builder.bind("127.0.0.1:0");
    assert_send(&bind);
    let listener = bind.await.unwrap();
    assert_send(&listener.accept());
}

async fn bind(limiter: &ConnectionLimiter, over_limit: OverLimit) -> Arc<LimitedListener> {
    let listener = LimitedListener::builder()
        .limiter(limiter.clone())
        .over_limit(over_limit)
        .bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    Arc::new(listener)
}

/// Open server-side connections, counted by the test itself: from accept until just before the permit drops.
#[derive(Default)]
struct Live {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Live {
    fn enter(&self) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

/// Accepts forever; each connection gets one byte, then is held until `gate` opens and the client has closed.
/// Reports each finished connection on `done`.
async fn serve(
    listener: Arc<LimitedListener>,
    live: Arc<Live>,
    gate: watch::Receiver<bool>,
    done: mpsc::UnboundedSender<()>,
) {
    loop {
        let (mut stream, peer, permit) = listener.accept().await.expect("accept");
        assert_eq!(permit.peer(), peer);
        live.enter();
        let (live, mut gate, done) = (live.clone(), gate.clone(), done.clone());
        tokio::spawn(async move {
            let held = async {
                stream.write_all(b"w").await?;
                gate.wait_for(|open| *open)
                    .await
                    .expect("gate sender alive");
                let mut rest = Vec::new();
                stream.read_to_end(&mut rest).await?;
                Ok::<_, io::Error>(())
            };
            let _ = timeout(PATIENCE, held).await;
            live.exit();
            drop((stream, permit));
            let _ = done.send(());
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Served,
    Reset,
    Eof,
}

/// Connects, reads the first byte (or the reset), and closes.
async fn client(addr: SocketAddr) -> Outcome {
    let connect = timeout(PATIENCE, TcpStream::connect(addr))
        .await
        .expect("connect timed out");
    let mut stream = match connect {
        Ok(stream) => stream,
        // The handshake completed in the kernel, but the reset came before the connect future saw it.
        Err(err) => return first_read(Err(err)),
    };
    let mut byte = [0u8; 1];
    let read = timeout(PATIENCE, stream.read(&mut byte))
        .await
        .expect("read timed out");
    first_read(read)
}

fn first_read(read: io::Result<usize>) -> Outcome {
    match read {
        Ok(0) => Outcome::Eof,
        Ok(_) => Outcome::Served,
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => Outcome::Reset,
        Err(err) => panic!("unexpected client error: {err}"),
    }
}

/// Polls `cond` every millisecond, failing after [`PATIENCE`]: for states only visible through metrics.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let wait = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

const STORM: usize = 300;
const LIMIT: usize = 20;

/// 300 clients at once against a limit of 20, `Pause`: the listener stops at 20 live connections (even after those
/// clients have closed their side: a half-closed connection still counts), the rest wait in the backlog, and all
/// are served once the first ones finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_storm_never_exceeds_the_limit_and_serves_everyone() {
    let limiter = ConnectionLimiter::new(LIMIT);
    let listener = bind(&limiter, OverLimit::Pause).await;
    let addr = listener.local_addr().unwrap();
    let live = Arc::new(Live::default());
    let (gate_tx, gate_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(listener.clone(), live.clone(), gate_rx, done_tx));

    let (served_tx, mut served_rx) = mpsc::unbounded_channel();
    let mut clients = JoinSet::new();
    for _ in 0..STORM {
        let served_tx = served_tx.clone();
        clients.spawn(async move {
            let outcome = client(addr).await;
            let _ = served_tx.send(outcome);
            outcome
        });
    }
    for _ in 0..LIMIT {
        let outcome = timeout(PATIENCE, served_rx.recv()).await.unwrap();
        assert_eq!(outcome, Some(Outcome::Served));
    }
    // The first 20 are held open by the server; the listener has to pause for the 21st.
    eventually("the listener to pause", || listener.metrics().pauses >= 1).await;
    assert_eq!(limiter.active(), LIMIT);
    assert_eq!(listener.metrics().accepted, LIMIT as u64);

    gate_tx.send(true).unwrap();
    let outcomes = timeout(PATIENCE, clients.join_all()).await.unwrap();
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Served),
        "{outcomes:?}"
    );
    for _ in 0..STORM {
        timeout(PATIENCE, done_rx.recv()).await.unwrap().unwrap();
    }
    server.abort();

    assert!(live.max.load(SeqCst) <= LIMIT);
    assert_eq!(
        live.max.load(SeqCst),
        LIMIT,
        "the gate makes the limit be reached"
    );
    let m = limiter.metrics();
    assert_eq!((m.active, m.peak), (0, LIMIT));
    assert_eq!((m.accepted, m.refused_global), (STORM as u64, 0));
    let lm = listener.metrics();
    assert_eq!((lm.accepted, lm.rejected), (STORM as u64, 0));
}

/// The same storm under `Reject`: while the first 20 are held, every other client is accepted and reset at once,
/// and counted; nobody waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_storm_resets_the_excess_and_counts_it() {
    let limiter = ConnectionLimiter::new(LIMIT);
    let listener = bind(&limiter, OverLimit::Reject).await;
    let addr = listener.local_addr().unwrap();
    let live = Arc::new(Live::default());
    let (gate_tx, gate_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(listener.clone(), live.clone(), gate_rx, done_tx));

    let mut clients = JoinSet::new();
    for _ in 0..STORM {
        clients.spawn(client(addr));
    }
    // The gate stays shut until every client has its answer, so exactly the first 20 can be served.
    let outcomes = timeout(PATIENCE, clients.join_all()).await.unwrap();
    let count = |want| outcomes.iter().filter(|o| **o == want).count();
    assert_eq!(count(Outcome::Served), LIMIT);
    assert_eq!(count(Outcome::Reset), STORM - LIMIT, "SO_LINGER 0 resets");
    assert_eq!(limiter.active(), LIMIT);

    gate_tx.send(true).unwrap();
    for _ in 0..LIMIT {
        timeout(PATIENCE, done_rx.recv()).await.unwrap().unwrap();
    }
    server.abort();

    assert_eq!(live.max.load(SeqCst), LIMIT);
    let m = limiter.metrics();
    assert_eq!((m.active, m.peak), (0, LIMIT));
    assert_eq!(m.accepted, LIMIT as u64);
    assert_eq!(m.refused_global, (STORM - LIMIT) as u64);
    let lm = listener.metrics();
    assert_eq!(
        (lm.accepted, lm.rejected),
        (LIMIT as u64, (STORM - LIMIT) as u64)
    );
    assert_eq!((lm.rejected_per_ip, lm.pauses), (0, 0));
}

/// Connects from the source address `src` (any address of 127.0.0.0/8 is loopback on Linux).
#[cfg(target_os = "linux")]
async fn connect_from(src: &str, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{src}:0").parse().unwrap()).unwrap();
    timeout(PATIENCE, socket.connect(addr))
        .await
        .expect("connect timed out")
}

type Accepted = (TcpStream, SocketAddr, ConnectionPermit);

/// Two connections per address: the third from 127.0.0.1 is reset (even under `Pause`, which cannot help one
/// address), 127.0.0.2 still gets in, and 127.0.0.1 gets in again once one of its connections closes.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn per_ip_limit_rejects_one_address_and_admits_another() {
    let limiter = ConnectionLimiter::new(10);
    limiter.set_per_ip_limit(Some(2));
    let listener = bind(&limiter, OverLimit::Pause).await;
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Accepted>();
    let server = tokio::spawn({
        let listener = listener.clone();
        async move {
            loop {
                tx.send(listener.accept().await.expect("accept")).unwrap();
            }
        }
    });
    async fn admitted(rx: &mut mpsc::UnboundedReceiver<Accepted>) -> Accepted {
        timeout(PATIENCE, rx.recv()).await.unwrap().unwrap()
    }

    let _a1 = connect_from("127.0.0.1", addr).await.unwrap();
    let s1 = admitted(&mut rx).await;
    let _a2 = connect_from("127.0.0.1", addr).await.unwrap();
    let _s2 = admitted(&mut rx).await;
    assert_eq!(s1.2.peer().ip().to_string(), "127.0.0.1");

    let third = match connect_from("127.0.0.1", addr).await {
        Ok(mut a3) => {
            let mut byte = [0u8; 1];
            first_read(timeout(PATIENCE, a3.read(&mut byte)).await.unwrap())
        }
        Err(err) => first_read(Err(err)),
    };
    assert_eq!(third, Outcome::Reset, "third connection from 127.0.0.1");
    assert!(
        rx.try_recv().is_err(),
        "the refused connection is not handed out"
    );

    let _b1 = connect_from("127.0.0.2", addr).await.unwrap();
    let sb = admitted(&mut rx).await;
    assert_eq!(sb.2.peer().ip().to_string(), "127.0.0.2");

    let m = limiter.metrics();
    assert_eq!((m.active, m.refused_per_ip, m.tracked_ips), (3, 1, 2));
    let lm = listener.metrics();
    assert_eq!((lm.accepted, lm.rejected, lm.rejected_per_ip), (3, 1, 1));

    drop(s1); // socket and permit together
    let _a4 = connect_from("127.0.0.1", addr).await.unwrap();
    let s4 = admitted(&mut rx).await;
    assert_eq!(s4.2.peer().ip().to_string(), "127.0.0.1");

    server.abort();
    let _ = server.await;
    drop((_s2, sb, s4));
    let m = limiter.metrics();
    assert_eq!(
        (m.active, m.tracked_ips),
        (0, 0),
        "the per-address map empties"
    );
}

/// With the limit at zero a `Pause` listener takes nothing; a cancelled `accept` loses nothing; raising the limit
/// wakes it.
#[tokio::test]
async fn raising_the_limit_wakes_a_paused_listener_and_cancelled_accepts_lose_nothing() {
    let limiter = ConnectionLimiter::new(0);
    let listener = bind(&limiter, OverLimit::Pause).await;
    let _client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    // A real-time wait: proving that nothing is accepted takes some time on real sockets.
    let waited = timeout(Duration::from_millis(100), listener.accept()).await;
    assert!(waited.is_err(), "accepted over a limit of zero");
    assert_eq!(listener.metrics().pauses, 1);

    let accepting = tokio::spawn({
        let listener = listener.clone();
        async move { listener.accept().await.map(|(_, _, permit)| permit) }
    });
    eventually("the listener to pause again", || {
        listener.metrics().pauses == 2
    })
    .await;
    limiter.set_limit(1);
    let permit = timeout(PATIENCE, accepting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(limiter.active(), 1);
    assert_eq!(
        listener.metrics().rejected,
        0,
        "the connection waited, it was not rejected"
    );
    drop(permit);
}

/// A paused `accept` wakes when a permit is dropped, even though the socket it came with is still open: the
/// permit is what counts.
#[tokio::test]
async fn dropping_a_permit_wakes_a_paused_listener() {
    let limiter = ConnectionLimiter::new(1);
    let listener = Arc::new(LimitedListener::from_listener(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        limiter.clone(),
    ));
    assert_eq!(
        (listener.backlog(), listener.over_limit()),
        (None, OverLimit::Pause)
    );
    let addr = listener.local_addr().unwrap();
    let _c1 = TcpStream::connect(addr).await.unwrap();
    let (_s1, _, p1) = timeout(PATIENCE, listener.accept()).await.unwrap().unwrap();
    let _c2 = TcpStream::connect(addr).await.unwrap();
    let second = tokio::spawn({
        let listener = listener.clone();
        async move { listener.accept().await.map(|(_, peer, _)| peer) }
    });
    eventually("the listener to pause", || listener.metrics().pauses == 1).await;
    assert!(!second.is_finished());
    drop(p1);
    timeout(PATIENCE, second).await.unwrap().unwrap().unwrap();
    assert_eq!(listener.metrics().accepted, 2);
}

/// Two paused listeners share a limiter. The freed slot wakes the first, whose `accept` is then cancelled before
/// any client arrives for it: the wake-up passes on to the second, which has a client waiting.
#[tokio::test]
async fn a_cancelled_accept_passes_the_free_slot_to_another_paused_listener() {
    let limiter = ConnectionLimiter::new(1);
    let first = bind(&limiter, OverLimit::Pause).await;
    let second = bind(&limiter, OverLimit::Pause).await;
    let held = limiter.try_acquire("192.0.2.1:1".parse().unwrap()).unwrap();

    let first_accept = tokio::spawn({
        let first = first.clone();
        async move { first.accept().await.map(|_| ()) }
    });
    eventually("the first listener to pause", || {
        first.metrics().pauses == 1
    })
    .await;
    let second_accept = tokio::spawn({
        let second = second.clone();
        async move { second.accept().await.map(|(_, peer, _)| peer) }
    });
    eventually("the second listener to pause", || {
        second.metrics().pauses == 1
    })
    .await;
    let client = TcpStream::connect(second.local_addr().unwrap())
        .await
        .unwrap();

    drop(held); // wakes the first listener, the oldest waiter
    for _ in 0..10 {
        tokio::task::yield_now().await; // it runs, sees room, and waits in accept for a client that never comes
    }
    first_accept.abort();
    assert!(first_accept.await.unwrap_err().is_cancelled());
    let peer = timeout(PATIENCE, second_accept)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
}

/// Lowering the limit live leaves the connections that are open working, and rejects new ones until enough
/// of those are gone.
#[tokio::test]
async fn lowering_the_limit_live_keeps_open_connections_and_rejects_new_ones() {
    let limiter = ConnectionLimiter::new(3);
    let listener = bind(&limiter, OverLimit::Reject).await;
    let addr = listener.local_addr().unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        let client = TcpStream::connect(addr).await.unwrap();
        let accepted = timeout(PATIENCE, listener.accept()).await.unwrap().unwrap();
        open.push((client, accepted));
    }
    limiter.set_limit(2);

    let accept_next = tokio::spawn({
        let listener = Arc::new(listener);
        let l = listener.clone();
        async move { (l.accept().await.map(|(s, _, p)| (s, p)), listener) }
    });
    // Over the new limit: the next client is reset, and the open connections still carry bytes.
    assert_eq!(client(addr).await, Outcome::Reset);
    let mut byte = [0u8; 1];
    for (client, (server, _, _)) in &mut open {
        server.write_all(b"x").await.unwrap();
        assert_eq!(
            timeout(PATIENCE, client.read(&mut byte))
                .await
                .unwrap()
                .unwrap(),
            1
        );
    }
    open.truncate(1); // 1 live: under the limit of 2 again
    let _admitted_client = TcpStream::connect(addr).await.unwrap();
    let (accepted, listener) = timeout(PATIENCE, accept_next).await.unwrap().unwrap();
    let (_stream, _permit) = accepted.unwrap();
    assert_eq!(listener.metrics().rejected, 1);
    assert_eq!(limiter.active(), 2);
}

#[tokio::test]
async fn the_default_backlog_is_the_system_maximum() {
    let listener = LimitedListener::builder()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let expected = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(4096);
    assert_eq!(listener.backlog(), Some(expected));
    assert_eq!(
        listener.limiter().limit(),
        ListenerBuilder::DEFAULT_MAX_CONNECTIONS
    );
    let explicit = LimitedListener::builder()
        .backlog(Some(16))
        .reuse_address(false)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    assert_eq!(explicit.backlog(), Some(16));
    assert!(format!("{explicit:?}").contains("backlog: Some(16)"));
}

/// A burst of connections larger than `TcpListener::bind`'s backlog of 128, made before the server accepts
/// anything, completes at once: the builder's backlog holds them all.
#[tokio::test]
async fn a_long_backlog_holds_a_burst_without_dropped_handshakes() {
    const BURST: usize = 500;
    let limiter = ConnectionLimiter::new(BURST);
    let listener = bind(&limiter, OverLimit::Pause).await;
    let addr = listener.local_addr().unwrap();
    let mut clients = JoinSet::new();
    for _ in 0..BURST {
        clients.spawn(TcpStream::connect(addr));
    }
    // A dropped SYN is retransmitted after a second: well within this bound only if no handshake was dropped.
    let connected = timeout(Duration::from_millis(900), clients.join_all())
        .await
        .expect("a handshake was dropped and retried");
    assert!(connected.iter().all(|c| c.is_ok()));
    let mut accepted = Vec::new();
    for _ in 0..BURST {
        accepted.push(timeout(PATIENCE, listener.accept()).await.unwrap().unwrap());
    }
    assert_eq!(limiter.active(), BURST);
}

/// Set in the child process that runs the out-of-descriptors scenario.
#[cfg(target_os = "linux")]
const EMFILE_CHILD: &str = "TIDEGATE_TEST_EMFILE_CHILD";
#[cfg(target_os = "linux")]
const EMFILE_TEST: &str = "accept_backs_off_while_out_of_descriptors_then_resumes";
#[cfg(target_os = "linux")]
const EMFILE_OK: &str = "emfile scenario passed";

/// Out of file descriptors, `accept` fails with `EMFILE` and the connection stays queued, so a naive loop retries
/// at once, forever. The scenario lowers `RLIMIT_NOFILE`, which would hurt the other tests, so it runs in a child
/// process: this test binary again, filtered to this test, with [`EMFILE_CHILD`] set.
#[cfg(target_os = "linux")]
#[test]
fn accept_backs_off_while_out_of_descriptors_then_resumes() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        return emfile_scenario();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let output = rt.block_on(async {
        let child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([EMFILE_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(EMFILE_CHILD, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("re-run the test binary");
        timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("child timed out")
            .expect("child output")
    });
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
    const CLIENTS: usize = 4;
    const WINDOW: Duration = Duration::from_millis(500);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = LimitedListener::builder()
            .limiter(ConnectionLimiter::new(64))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        // Handshakes complete in the kernel: these wait in the backlog, each needing a descriptor to be accepted.
        let _clients: Vec<_> = (0..CLIENTS)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();

        // Leave no descriptor free: lower the soft limit to a few above the highest open one, then fill every
        // free number below it. Dropping the fillers later frees at least CLIENTS descriptors.
        let limit = highest_open_fd() + 1 + CLIENTS as u64 + 2;
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
        assert!(fillers.len() >= CLIENTS);

        let cpu_before = process_cpu_time();
        let accepting = listener.accept();
        tokio::pin!(accepting);
        let early = timeout(WINDOW, &mut accepting).await;
        let cpu = process_cpu_time() - cpu_before;
        assert!(
            early.is_err(),
            "accepted with no descriptor free: {early:?}"
        );
        let stuck = listener.metrics();
        // Doubling from 1 ms, 500 ms hold about 9 waits; a spinning loop would make many thousands of attempts
        // and burn the whole window on the CPU. A loaded machine only makes the count smaller.
        assert!(
            (2..=20).contains(&stuck.backoffs),
            "backoffs in {WINDOW:?}: {}",
            stuck.backoffs
        );
        assert!(
            cpu < Duration::from_millis(100),
            "{cpu:?} of CPU in {WINDOW:?} while out of descriptors"
        );
        assert_eq!((stuck.accepted, stuck.skipped_errors), (0, 0));

        drop(fillers);
        // The pending accept retries after its current wait (at most a second) and gets every queued client.
        let mut accepted = vec![timeout(PATIENCE, &mut accepting).await.unwrap().unwrap()];
        for _ in 1..CLIENTS {
            accepted.push(timeout(PATIENCE, listener.accept()).await.unwrap().unwrap());
        }
        let resumed = listener.metrics();
        assert_eq!(resumed.accepted, CLIENTS as u64);
        assert!(resumed.backoffs <= stuck.backoffs + 1, "{resumed:?}");
        assert_eq!(listener.limiter().active(), CLIENTS);
        println!(
            "{EMFILE_OK}: {} backoffs, {cpu:?} CPU in {WINDOW:?}",
            stuck.backoffs
        );
    });
}

/// CPU time used by this process (all threads): the independent check that waiting is not spinning.
#[cfg(target_os = "linux")]
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
