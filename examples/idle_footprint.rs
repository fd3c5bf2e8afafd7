//! Memory per idle connection: a `Connection`-based echo server, and a client that opens many idle connections.
//! Driven by `scripts/idle_footprint.sh`, which reads the server's RSS before and after.
//!
//! ```text
//! cargo run --release --example idle_footprint -- server <connections>   # prints "port N", later "ready N"
//! cargo run --release --example idle_footprint -- clients <port> <connections>   # prints "connected N"
//! ```
//!
//! Each client connection sends one frame, reads its echo and then stays idle, so the server's figure is that of a
//! connection after a burst (buffers allocated, then given back), not of one that never received a byte.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidegate::codec::LengthFieldCodec;
use tidegate::conn::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counts live heap bytes, so the report can tell the heap from the allocator's overhead in RSS.
struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        HEAP.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`, as our caller promises.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The longest a client holds its connections: the script kills it sooner; this only bounds a forgotten one.
const HOLD: Duration = Duration::from_secs(300);

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("server") => server(number(1)),
        Some("clients") => clients(number(1) as u16, number(2)),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: idle_footprint server <connections> | clients <port> <connections>");
    std::process::exit(2)
}

#[tokio::main]
async fn server(expected: usize) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("port {}", listener.local_addr()?.port());
    println!("heap {}", HEAP.load(Ordering::Relaxed));
    let echoed = Arc::new(AtomicUsize::new(0));
    tokio::spawn(report_when_ready(echoed.clone(), expected));
    let codec = LengthFieldCodec::new(64 * 1024);
    let mut builder = Connection::builder();
    loop {
        let (stream, _) = listener.accept().await?;
        let mut conn = builder
            .build(stream, codec.clone(), codec.clone())
            .map_err(io::Error::other)?;
        let echoed = echoed.clone();
        tokio::spawn(async move {
            while let Ok(frame) = conn.next().await {
                drop(conn.feed(frame).await);
                echoed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// Prints "ready N" once every connection had its frame echoed and the writers have gone idle.
async fn report_when_ready(echoed: Arc<AtomicUsize>, expected: usize) {
    while echoed.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("heap {}", HEAP.load(Ordering::Relaxed));
    println!("ready {expected}");
}

#[tokio::main(flavor = "current_thread")]
async fn clients(port: u16, count: usize) -> io::Result<()> {
    raise_fd_limit(count + 64);
    let mut held = Vec::with_capacity(count);
    let ping = [0, 0, 0, 4, b'p', b'i', b'n', b'g'];
    for _ in 0..count {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(&ping).await?;
        let mut echo = [0; 8];
        stream.read_exact(&mut echo).await?;
        assert_eq!(echo, ping);
        held.push(stream);
    }
    println!("connected {}", held.len());
    tokio::time::sleep(HOLD).await;
    Ok(())
}

/// Raises the soft limit on open files towards `want` (within the hard limit).
fn raise_fd_limit(want: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let want = (want as libc::rlim_t).min(limit.rlim_max);
    if limit.rlim_cur < want {
        limit.rlim_cur = want;
        // SAFETY: `limit` is a valid `rlimit`; failure only leaves the old limit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}
