//! The echo server most tokio code would write, for `scripts/echo_bench.sh` to measure `echo_server` against:
//! `Framed` with `LengthDelimitedCodec` split into sink and stream, an unbounded channel feeding a writer task
//! that sends frame by frame, and one spawned task per request. Nothing bounds it: a peer that does not read its
//! echoes grows the channel without limit. Same wire format as `echo_server` (4-byte big-endian length, payload).
//!
//! ```text
//! cargo run --release --example unguarded_echo -- --addr 127.0.0.1:0 --workers 1
//! ```

// Only the flag parsing, `say` and the runtime are used here.
#[allow(dead_code)]
mod common;

use std::io;

use common::{say, Flags};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const USAGE: &str = "\
usage: unguarded_echo [flags]
  --addr HOST:PORT       listen address (default 127.0.0.1:7002; port 0 picks one)
  --workers N            runtime threads (default: one per core)";

fn main() {
    let flags = Flags::parse(&["addr", "workers"], &[])
        .unwrap_or_else(|err| common::usage_exit(&err, USAGE));
    let addr = flags.text("addr").unwrap_or("127.0.0.1:7002").to_owned();
    let workers = flags
        .get("workers", 0usize)
        .unwrap_or_else(|err| common::usage_exit(&err, USAGE));
    let result = common::runtime(workers).and_then(|rt| rt.block_on(serve(&addr)));
    if let Err(err) = result {
        eprintln!("unguarded_echo: {err}");
        std::process::exit(1);
    }
}

async fn serve(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    say(format_args!(
        "unguarded_echo listening on {}",
        listener.local_addr()?
    ));
    loop {
        let (stream, _peer) = listener.accept().await?;
        // The same as echo_server, so the comparison is not about Nagle.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let (mut sink, mut frames) = Framed::new(stream, LengthDelimitedCodec::new()).split();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let writer = tokio::spawn(async move {
                while let Some(frame) = rx.recv().await {
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(frame)) = frames.next().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    // `freeze` as the common code does: the echo is the request's bytes.
                    let _ = tx.send(frame.freeze());
                });
            }
            drop(tx);
            let _ = writer.await;
        });
    }
}
