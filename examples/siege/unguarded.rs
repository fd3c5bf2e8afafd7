//! The server written the common way, for `--unguarded`.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, LengthDelimitedCodec, LengthDelimitedCodecError};
use tokio_util::sync::CancellationToken;

use crate::server::{Server, ServerCounters, SLOW_HANDLING};

/// The server written the common way: no limit, tokio-util's codec with its 8 MiB default, an unbounded queue per
/// client, a spawned task per request, no timeouts.
pub(crate) async fn start_unguarded() -> io::Result<Server> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counters = Arc::new(ServerCounters::default());
    let stop = CancellationToken::new();
    let task = {
        let (counters, stop) = (counters.clone(), stop.clone());
        tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                while conns.try_join_next().is_some() {}
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                conns.spawn(serve_unguarded(stream, counters.clone()));
            }
            conns.shutdown().await;
        })
    };
    Ok(Server {
        addr,
        counters,
        guarded: None,
        stop,
        task,
    })
}

/// Counts a live connection until dropped, even when its task is aborted.
struct Live(Arc<ServerCounters>);

impl Live {
    fn new(c: &Arc<ServerCounters>) -> Live {
        c.live.fetch_add(1, Ordering::Relaxed);
        Live(c.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_unguarded(stream: TcpStream, c: Arc<ServerCounters>) {
    let _live = Live::new(&c);
    let (mut sink, mut frames) = Framed::new(stream, LengthDelimitedCodec::new()).split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let q = c.clone();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let n = frame.len() as i64 + 4;
            let sent = sink.send(frame).await;
            q.queued.fetch_sub(n, Ordering::Relaxed);
            if sent.is_err() {
                break;
            }
        }
        rx.close();
        while let Ok(frame) = rx.try_recv() {
            q.queued
                .fetch_sub(frame.len() as i64 + 4, Ordering::Relaxed);
        }
    });
    while let Some(item) = frames.next().await {
        match item {
            Ok(frame) => {
                let (tx, q) = (tx.clone(), c.clone());
                tokio::spawn(async move {
                    let frame = frame.freeze();
                    if frame.first() == Some(&b'S') {
                        tokio::time::sleep(SLOW_HANDLING).await;
                    }
                    let n = frame.len() as i64 + 4;
                    q.queued.fetch_add(n, Ordering::Relaxed);
                    if tx.send(frame).is_err() {
                        q.queued.fetch_sub(n, Ordering::Relaxed);
                    }
                });
            }
            Err(err) => {
                if err
                    .get_ref()
                    .is_some_and(|e| e.is::<LengthDelimitedCodecError>())
                {
                    c.too_long.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
