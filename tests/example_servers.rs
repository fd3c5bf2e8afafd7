//! The example servers (`examples/echo_server.rs`, `examples/broadcast_server.rs`) run as programs and are talked to
//! over loopback with a client of their framing: a 4-byte big-endian length, then the payload.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

#[path = "support/example_binary.rs"]
mod example_binary;
use example_binary::examples_dir;

/// The tests load the machine (thousands of connections, RSS figures): one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Raises this process's soft descriptor limit to the hard one (the servers, its children, inherit it).
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid and writable for both calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A running example server, killed when dropped.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(examples_dir().join(name))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let line = server
            .line_containing("listening on ", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{name} did not say it listens"));
        let addr = line.rsplit("listening on ").next().unwrap().trim();
        server.addr = addr.parse().unwrap();
        server
    }

    /// The next stdout line that contains `needle`, within `wait`.
    fn line_containing(&self, needle: &str, wait: Duration) -> Option<String> {
        let until = Instant::now() + wait;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet (we hold the Child).
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// Waits for the process to exit, at most `wait`.
    fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal`, checks the server ends within 5 s with status 0, and returns its final report line.
    fn stop_with(&mut self, signal: libc::c_int) -> String {
        self.signal(signal);
        let status = self
            .wait_exit(Duration::from_secs(5))
            .expect("the server did not exit within 5 s of the signal");
        assert!(status.success(), "exit status {status:?}");
        self.line_containing("final:", Duration::from_secs(2))
            .expect("a final report line")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `name=` in a report line.
fn field(line: &str, name: &str) -> u64 {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&key))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u32().await? as usize;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Reads until the peer closes (EOF) or resets; fails if it is still open after `wait`.
async fn expect_closed(stream: &mut TcpStream, wait: Duration) {
    let mut sink = vec![0; 64 * 1024];
    let closed = timeout(wait, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open after {wait:?}"
    );
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn echo_returns_pipelined_frames_byte_for_byte_in_order() {
    let _serial = serial();
    let mut server = Server::start("echo_server", &["--workers", "2"]);
    let sizes = [0usize, 1, 7, 1000, 65_536, 300_000, (1 << 20) - 4];
    client_runtime().block_on(async {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let (mut rd, mut wr) = stream.split();
        let sent: Vec<Vec<u8>> = (0..3)
            .flat_map(|round| {
                sizes
                    .iter()
                    .map(move |&n| payload(n, round as u8 + n as u8))
            })
            .collect();
        let write = async {
            // All frames written before any answer is read: the server must keep them apart and in order.
            for p in &sent {
                wr.write_all(&frame(p)).await.unwrap();
            }
        };
        let read = async {
            let mut got = Vec::new();
            for _ in 0..sent.len() {
                let len = rd.read_u32().await.unwrap() as usize;
                let mut p = vec![0; len];
                rd.read_exact(&mut p).await.unwrap();
                got.push(p);
            }
            got
        };
        let ((), got) = timeout(Duration::from_secs(20), async { tokio::join!(write, read) })
            .await
            .expect("echoes within 20 s");
        assert_eq!(got.len(), sent.len());
        for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
            assert!(
                g == s,
                "echo {i} ({} bytes) differs from what was sent",
                s.len()
            );
        }
    });
    let report = server.stop_with(libc::SIGTERM);
    assert_eq!(field(&report, "frames"), 3 * sizes.len() as u64, "{report}");
}

#[test]
fn echo_closes_on_oversize_claims_without_allocating_them() {
    let _serial = serial();
    let mut server = Server::start("echo_server", &["--workers", "2"]);
    let rt = client_runtime();
    // Warm up the server's allocator with an ordinary echo so the baseline is that of a working server.
    rt.block_on(async {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(&frame(&payload(1000, 1))).await.unwrap();
        let echo = timeout(Duration::from_secs(5), read_frame(&mut stream))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, payload(1000, 1));
    });
    let before = server.rss_kib();
    // One byte over the 1 MiB maximum, which counts the 4-byte header as Netty does (the pipelined test echoes a
    // payload of 1 MiB - 4), then 4 MiB and 1 GiB.
    for claim in [(1u32 << 20) - 3, 4 << 20, 1 << 30] {
        rt.block_on(async {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            let mut bytes = claim.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[7; 60_000]); // the start of the claimed payload
                                                   // The server may close before taking every byte: a failed write is fine, the close is the point.
            let _ = stream.write_all(&bytes).await;
            expect_closed(&mut stream, Duration::from_secs(5)).await;
        });
    }
    let after = server.rss_kib();
    assert!(
        after <= before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB on oversize claims"
    );
    let report = server.stop_with(libc::SIGINT);
    assert_eq!(field(&report, "too_long"), 3, "{report}");
}

#[test]
fn echo_answers_every_connection_of_a_burst_of_3000() {
    let _serial = serial();
    raise_fd_limit();
    let mut server = Server::start("echo_server", &["--workers", "2"]);
    const CONNS: usize = 3000;
    let addr = server.addr;
    let (answered, slowest) = client_runtime().block_on(async move {
        let mut tasks = Vec::with_capacity(CONNS);
        // Ten waves of 300 connects, 100 ms apart: the whole burst opens within about one second.
        for wave in 0..10 {
            for i in 0..CONNS / 10 {
                let id = (wave * (CONNS / 10) + i) as u32;
                tasks.push(tokio::spawn(async move {
                    let start = Instant::now();
                    let attempt = async {
                        let mut stream = TcpStream::connect(addr).await?;
                        stream.write_all(&frame(&id.to_be_bytes())).await?;
                        read_frame(&mut stream).await
                    };
                    // The bar: echoed within 1 s of the connect (with tokio's default backlog of 128,
                    // dropped handshakes wait for the 1 s SYN retry and miss it).
                    let echoed = matches!(
                        timeout(Duration::from_secs(10), attempt).await,
                        Ok(Ok(echo)) if echo == id.to_be_bytes()
                    );
                    (echoed, start.elapsed())
                }));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (mut answered, mut slowest) = (0, Duration::ZERO);
        for task in tasks {
            let (echoed, took) = task.await.unwrap();
            answered += usize::from(echoed);
            slowest = slowest.max(took);
        }
        (answered, slowest)
    });
    println!("slowest echo of the burst: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "slowest echo took {slowest:?}"
    );
    assert_eq!(answered, CONNS, "connections answered out of {CONNS}");
    let report = server.stop_with(libc::SIGTERM);
    assert_eq!(field(&report, "connections"), CONNS as u64, "{report}");
}

#[test]
fn broadcast_evicts_a_stalled_subscriber_while_a_reader_keeps_getting_ticks() {
    let _serial = serial();
    let mut server = Server::start(
        "broadcast_server",
        &[
            "--workers",
            "2",
            "--size",
            "16384",
            "--tick-us",
            "1000",
            "--evict-after-ms",
            "200",
        ],
    );
    let addr = server.addr;
    let rt = client_runtime();
    let _reader = rt.block_on(async move {
        // The stalled subscriber: a small receive buffer, and no reading at all for 2 s.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stalled = timeout(Duration::from_secs(5), socket.connect(addr))
            .await
            .unwrap()
            .unwrap();
        let mut reader = TcpStream::connect(addr).await.unwrap();
        let reading = tokio::spawn(async move {
            let mut last: Option<u64> = None;
            let mut frames = 0u32;
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                let frame = timeout(Duration::from_secs(2), read_frame(&mut reader))
                    .await
                    .expect("the reader gets a frame within 2 s")
                    .expect("the reader stays connected");
                assert_eq!(frame.len(), 16384);
                let tick = u64::from_be_bytes(frame[..8].try_into().unwrap());
                if let Some(last) = last {
                    assert!(tick > last, "tick {tick} after {last}");
                }
                last = Some(tick);
                frames += 1;
            }
            (frames, reader) // kept open: the server still counts it as a subscriber at the end
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Evicted long ago if the server works: what the kernel still holds arrives, then EOF (or a reset).
        expect_closed(&mut stalled, Duration::from_secs(5)).await;
        let (frames, reader) = timeout(Duration::from_secs(10), reading)
            .await
            .unwrap()
            .unwrap();
        assert!(frames >= 100, "the reader got only {frames} frames in 3 s");
        reader
    });
    let report = server.stop_with(libc::SIGTERM);
    assert_eq!(field(&report, "evicted"), 1, "{report}");
    assert_eq!(field(&report, "subscribers"), 1, "{report}");
}

#[test]
fn broadcast_reaches_each_of_3000_subscribers_within_3_s() {
    let _serial = serial();
    raise_fd_limit();
    let mut server = Server::start(
        "broadcast_server",
        &["--workers", "2", "--size", "64", "--tick-us", "50000"],
    );
    const SUBS: usize = 3000;
    let addr = server.addr;
    let reached = client_runtime().block_on(async move {
        let mut tasks = Vec::with_capacity(SUBS);
        for _wave in 0..10 {
            for _ in 0..SUBS / 10 {
                tasks.push(tokio::spawn(async move {
                    let attempt = async {
                        let mut stream = TcpStream::connect(addr).await?;
                        let frame = read_frame(&mut stream).await?;
                        Ok::<_, std::io::Error>((stream, frame))
                    };
                    match timeout(Duration::from_secs(3), attempt).await {
                        // Held until every subscriber is counted, so the server sees 3,000 at once.
                        Ok(Ok((stream, frame))) if frame.len() == 64 => Some(stream),
                        _ => None,
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut streams = Vec::new();
        for task in tasks {
            streams.extend(task.await.unwrap());
        }
        streams
    });
    assert_eq!(
        reached.len(),
        SUBS,
        "subscribers that got a frame within 3 s"
    );
    let report = server.stop_with(libc::SIGINT);
    assert_eq!(field(&report, "subscribers"), SUBS as u64, "{report}");
    drop(reached);
}

#[test]
fn both_servers_end_cleanly_on_sigterm_and_sigint() {
    let _serial = serial();
    for name in ["echo_server", "broadcast_server"] {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // Slow ticks: the idle client does not read, and its frames must not fill the socket buffers.
            let args: &[&str] = match name {
                "echo_server" => &["--workers", "1", "--stats"],
                _ => &["--workers", "1", "--stats", "--tick-us", "100000"],
            };
            let mut server = Server::start(name, args);
            // One live connection that the shutdown has to end, known to the server: it got a frame from it.
            let mut client = std::net::TcpStream::connect(server.addr).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            if name == "echo_server" {
                std::io::Write::write_all(&mut client, &frame(b"ping")).unwrap();
            }
            let mut head = [0u8; 4];
            std::io::Read::read_exact(&mut client, &mut head).unwrap();
            let mut body = vec![0; u32::from_be_bytes(head) as usize];
            std::io::Read::read_exact(&mut client, &mut body).unwrap();
            if name == "echo_server" {
                assert_eq!(body, b"ping");
            }
            // The stats line proves the server runs before the signal (and that --stats works).
            assert!(server
                .line_containing("stats:", Duration::from_secs(5))
                .is_some());
            let started = Instant::now();
            let report = server.stop_with(signal);
            assert!(started.elapsed() < Duration::from_secs(5));
            let expected = if signal == libc::SIGTERM {
                "signal=SIGTERM"
            } else {
                "signal=SIGINT"
            };
            assert!(report.contains(expected), "{name}: {report}");
            assert_eq!(field(&report, "open"), 0, "{name}: {report}");
            assert_eq!(field(&report, "cut"), 0, "{name}: {report}");
            // The one connection delivered what it had queued and ended after the signal.
            assert_eq!(field(&report, "drained"), 1, "{name}: {report}");
            // The client sees its connection end (EOF after whatever was in flight), not a read timeout.
            let mut rest = Vec::new();
            if let Err(err) = std::io::Read::read_to_end(&mut &client, &mut rest) {
                let kind = err.kind();
                assert!(
                    !matches!(
                        kind,
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{name}: the connection is still open after the server exited"
                );
            }
        }
    }
}
