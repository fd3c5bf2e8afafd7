//! The `metrics_endpoint` example as a child process, and blocking loopback clients for its two ports: the echo
//! framing (4-byte big-endian length, then the payload) and one HTTP/1.1 GET per connection. Every socket has
//! read and write timeouts, so no wait is unbounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "example_binary.rs"]
mod example_binary;
use example_binary::examples_dir;

/// How long any one socket operation of a test may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The example's binary, built once per test binary.
pub fn binary() -> PathBuf {
    examples_dir().join("metrics_endpoint")
}

/// A running `metrics_endpoint` on two ephemeral loopback ports, killed when dropped.
pub struct Endpoint {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub echo: SocketAddr,
    pub admin: SocketAddr,
}

impl Endpoint {
    /// Starts the example with `args` after `--listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 2`, and waits
    /// (at most 10 s) for it to print both addresses.
    pub fn start(args: &[&str]) -> Endpoint {
        let mut child = Command::new(binary())
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--workers", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start metrics_endpoint");
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
        let until = Instant::now() + Duration::from_secs(10);
        let (mut echo, mut admin) = (None, None);
        while echo.is_none() || admin.is_none() {
            let left = until
                .checked_duration_since(Instant::now())
                .expect("metrics_endpoint did not print both addresses within 10 s");
            let line = lines
                .recv_timeout(left)
                .expect("metrics_endpoint did not print both addresses within 10 s");
            let addr = |tag: &str| line.split_once(tag).map(|(_, a)| a.trim().parse().unwrap());
            echo = echo.or_else(|| addr("echo listening on "));
            admin = admin.or_else(|| addr("admin listening on "));
        }
        Endpoint {
            child,
            lines,
            echo: echo.unwrap(),
            admin: admin.unwrap(),
        }
    }

    /// `GET path` on the admin port: the status code and the whole answer (head and body).
    pub fn get(&self, path: &str) -> Response {
        request(
            self.admin,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
        )
    }

    /// The body of a `GET /metrics` that answered 200.
    pub fn scrape(&self) -> String {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200, "{}", response.head);
        response.body
    }

    /// Sends SIGTERM and waits (at most 5 s) for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child, not reaped yet (we hold the Child).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "no exit within 5 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP (re-read `--config`).
    #[allow(dead_code)] // used by one of the two test binaries that share this file
    pub fn hangup(&self) {
        // SAFETY: kill(2) on our own child, not reaped yet (we hold the Child).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
    }

    /// The next stdout line containing `needle`, within `wait`.
    pub fn line_containing(&self, needle: &str, wait: Duration) -> Option<String> {
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
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer read to the end of the connection.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The status line and the headers, CRLFs included.
    pub head: String,
    pub body: String,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Connects to `addr`, with both timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Sends `raw` and reads the answer until the server closes; panics if it does not within [`IO_TIMEOUT`].
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = connect(addr);
    stream.write_all(raw).expect("send the request");
    read_response(&mut stream)
}

/// Reads an answer until the server closes the connection.
pub fn read_response(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("the admin port closes the connection after its answer");
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// One echo frame: the payload's length (4 bytes, big-endian), then the payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// Sends `count` frames of `len` bytes on one connection, checks every echo, closes its side and waits for the
/// server to close its own: the server is done with the connection (its socket is closed) when this returns.
pub fn echo(addr: SocketAddr, count: usize, len: usize) {
    let mut stream = connect(addr);
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    for _ in 0..count {
        stream.write_all(&frame(&payload)).unwrap();
    }
    for i in 0..count {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).expect("an echo header");
        let mut got = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut got).expect("an echo payload");
        assert_eq!(got, payload, "echo {i} differs from what was sent");
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("the server closes after the peer did");
    assert!(rest.is_empty(), "{} bytes beyond the echoes", rest.len());
}

/// The value of the series written exactly `series` (name and labels, as rendered) in an exposition.
pub fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

/// The names of every series (without labels) in an exposition.
pub fn series_names(exposition: &str) -> std::collections::BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            line.split(['{', ' '])
                .next()
                .expect("a series name")
                .to_owned()
        })
        .collect()
}
