//! The example servers' `--config FILE`: applied at start, re-read on SIGHUP, every outcome logged on stderr, and a
//! new limit taking effect on the running server without a restart.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

#[path = "support/example_binary.rs"]
mod example_binary;
use example_binary::examples_dir;

const WAIT: Duration = Duration::from_secs(10);

/// A config file in its own directory under the target directory, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(test: &str, text: &str) -> Self {
        let dir = examples_dir().join(format!("reload-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = ConfigFile(dir.join("limits.conf"));
        file.write(text);
        file
    }

    /// Replaces the file's contents in one rename, so the server never reads half a file.
    fn write(&self, text: &str) {
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn lines_of(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running example server with its stdout and stderr read line by line, killed when dropped.
struct Server {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(examples_dir().join(name))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        let mut server = Server {
            child,
            out,
            err,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        if let Some(line) = Self::find(&server.out, "listening on ", WAIT) {
            server.addr = line
                .rsplit("listening on ")
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap();
        }
        server
    }

    fn find(lines: &mpsc::Receiver<String>, needle: &str, wait: Duration) -> Option<String> {
        let until = Instant::now() + wait;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next stderr line that starts with `config: `, within 10 s.
    fn config_line(&self) -> String {
        Self::find(&self.err, "config: ", WAIT).expect("a config: line on stderr")
    }

    fn hangup(&self) {
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet (we hold the Child).
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) },
            0
        );
    }

    fn wait_exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends one frame and reads its echo, within `wait`; `None` if no echo came in time.
async fn echo_once(stream: &mut TcpStream, payload: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    timeout(WAIT, stream.write_all(&frame))
        .await
        .expect("write timed out")
        .expect("write");
    timeout(wait, async {
        let len = stream.read_u32().await.expect("echo header") as usize;
        let mut back = vec![0; len];
        stream.read_exact(&mut back).await.expect("echo payload");
        back
    })
    .await
    .ok()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect")
}

#[test]
fn a_bad_file_is_refused_on_sighup_with_every_reason_and_the_server_keeps_serving() {
    let file = ConfigFile::new("refused", "# nothing to change yet\n");
    let server = Server::start("echo_server", &["--config", file.path().to_str().unwrap()]);
    assert!(server
        .config_line()
        .starts_with("config: limits at start: "));
    let applied = server.config_line();
    assert!(applied.ends_with("(version 1): no change"), "{applied:?}");

    file.write("nobody.limit = 5\nthis line is bad\n\nlimiter.limit = ten\n");
    server.hangup();
    let refused = server.config_line();
    let expected = format!(
        "config: refused {}, nothing changed: line 2: expected `name.key = value`; line 4: invalid value \"ten\"",
        file.path().display()
    );
    assert!(refused.starts_with(&expected), "{refused:?}");

    file.write("nobody.limit = 5\n");
    server.hangup();
    let refused = server.config_line();
    assert!(
        refused.ends_with("nothing changed: nobody: no live part is registered under this name"),
        "{refused:?}"
    );

    std::fs::remove_file(file.path()).unwrap();
    server.hangup();
    let refused = server.config_line();
    assert!(
        refused.contains("nothing changed: cannot read it: "),
        "{refused:?}"
    );

    runtime().block_on(async {
        let mut stream = connect(server.addr).await;
        assert_eq!(
            echo_once(&mut stream, b"still here", WAIT).await.as_deref(),
            Some(&b"still here"[..])
        );
    });
}

#[test]
fn a_file_that_cannot_apply_at_start_ends_the_server() {
    let file = ConfigFile::new("start", "nobody.limit = 1\n");
    let mut server = Server::start(
        "broadcast_server",
        &["--config", file.path().to_str().unwrap()],
    );
    let status = server.wait_exit(WAIT).expect("the server did not exit");
    assert!(!status.success());
    let _start = server.config_line();
    let refused = server.config_line();
    assert!(
        refused.contains("nobody: no live part is registered"),
        "{refused:?}"
    );
}

#[test]
fn a_new_connection_limit_applies_on_sighup_to_the_running_server() {
    let file = ConfigFile::new("limit", "# as on the command line for now\n");
    let server = Server::start(
        "echo_server",
        &[
            "--max-conns",
            "10",
            "--config",
            file.path().to_str().unwrap(),
        ],
    );
    let start = server.config_line();
    assert!(
        start.contains("limiter.limit = 10; limiter.per_ip = off; queues.hard = "),
        "{start:?}"
    );
    assert!(server.config_line().ends_with("(version 1): no change"));
    let path = file.path().display().to_string();

    runtime().block_on(async {
        let mut first = connect(server.addr).await;
        assert_eq!(
            echo_once(&mut first, b"one", WAIT).await.as_deref(),
            Some(&b"one"[..])
        );

        file.write("limiter.limit = 1\nqueues.high = 70000\nqueues.low = 60000\n");
        server.hangup();
        assert_eq!(
            server.config_line(),
            format!(
                "config: applied {path} (version 2): limiter.limit: 10 -> 1; queues.high: 65536 -> 70000; \
                 queues.low: 32768 -> 60000"
            )
        );
        // The live connection goes on; a second one now waits in the backlog, unserved.
        assert_eq!(
            echo_once(&mut first, b"still", WAIT).await.as_deref(),
            Some(&b"still"[..])
        );
        let mut second = connect(server.addr).await;
        assert_eq!(
            echo_once(&mut second, b"two", Duration::from_millis(500)).await,
            None
        );

        file.write("limiter.limit = 2\n");
        server.hangup();
        assert_eq!(
            server.config_line(),
            format!("config: applied {path} (version 3): limiter.limit: 1 -> 2")
        );
        // Admitted now: its frame, sent while it waited, comes back.
        let late = timeout(WAIT, async {
            let len = second.read_u32().await.expect("echo header") as usize;
            let mut back = vec![0; len];
            second.read_exact(&mut back).await.expect("echo payload");
            back
        })
        .await
        .expect("the second connection was not served after the limit rose");
        assert_eq!(late, b"two");
        assert_eq!(
            echo_once(&mut first, b"both", WAIT).await.as_deref(),
            Some(&b"both"[..])
        );
    });
}
