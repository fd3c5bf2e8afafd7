//! The whole `conn` stack together, as the README's server uses it: a `LimitedListener` whose permits go into
//! `Connection`s, over loopback. A peer that does not read is evicted, the socket closes, and its permit goes back
//! to the limiter, while well-behaved peers are served; the live count returns to zero when everyone leaves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidegate::codec::LengthFieldCodec;
use tidegate::conn::{ConnClose, Connection, ConnectionLimiter, LimitedListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

const MAX: usize = 4 * 1024;
const WAIT: Duration = Duration::from_secs(10);
const LIMIT: usize = 4;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// Polls `check` every few milliseconds until it holds; fails the test after `WAIT`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_peer_gives_its_permit_back_and_readers_are_served() {
    let limiter = ConnectionLimiter::new(LIMIT);
    let listener = LimitedListener::builder()
        .limiter(limiter.clone())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (reasons_tx, mut reasons) = mpsc::unbounded_channel();
    let served = Arc::new(AtomicUsize::new(0));
    let server = {
        let served = served.clone();
        tokio::spawn(async move {
            let mut builder = Connection::builder();
            builder
                .low_mark(4 * 1024)
                .high_mark(8 * 1024)
                .hard_cap(8 * 1024 + MAX + 8 * 1024)
                .evict_after(Some(Duration::from_millis(300)));
            loop {
                let (stream, _peer, permit) = listener.accept().await.unwrap();
                let codec = LengthFieldCodec::new(MAX);
                let mut conn = builder
                    .permit(permit)
                    .build(stream, codec.clone(), codec)
                    .unwrap();
                let (reasons_tx, served) = (reasons_tx.clone(), served.clone());
                tokio::spawn(async move {
                    let reason = loop {
                        match conn.next().await {
                            Ok(frame) => {
                                served.fetch_add(1, Ordering::SeqCst);
                                drop(conn.feed(frame).await);
                            }
                            Err(reason) => break reason,
                        }
                    };
                    reasons_tx.send(reason).unwrap();
                });
            }
        })
    };

    // A peer that sends requests and never reads the answers.
    let mut hog = TcpStream::connect(addr).await.unwrap();
    let request = frame(&[1; 1020]);
    let hogging = tokio::spawn(async move {
        for _ in 0..64 * 1024 {
            if hog.write_all(&request).await.is_err() {
                break;
            }
        }
        // Evicted: the server closed the socket, so reading ends (EOF after the answers it sent, or a reset).
        let mut buf = vec![0; 64 * 1024];
        loop {
            match timeout(WAIT, hog.read(&mut buf)).await.expect("closed") {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    let reason = timeout(WAIT, reasons.recv()).await.unwrap().unwrap();
    assert!(matches!(reason, ConnClose::Evicted { .. }), "{reason:?}");
    timeout(WAIT, hogging).await.unwrap().unwrap();
    eventually("the evicted peer's permit is back", || {
        limiter.active() == 0
    })
    .await;

    // The limit's every slot is usable again: LIMIT readers are served at once.
    let mut readers = Vec::new();
    for i in 0..LIMIT {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&frame(&[i as u8; 100])).await.unwrap();
        let mut answer = vec![0; 104];
        timeout(WAIT, client.read_exact(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, frame(&[i as u8; 100]));
        readers.push(client);
    }
    assert_eq!(limiter.active(), LIMIT);
    assert!(limiter.metrics().peak <= LIMIT);
    drop(readers);
    for _ in 0..LIMIT {
        let reason = timeout(WAIT, reasons.recv()).await.unwrap().unwrap();
        assert!(matches!(reason, ConnClose::PeerClosed), "{reason:?}");
    }
    eventually("every permit is back", || limiter.active() == 0).await;
    server.abort();
}
