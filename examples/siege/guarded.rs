//! The server written with tidegate: a connection limit, bounded frames and queues, eviction, idle deadlines, a
//! memory budget and a bounded executor.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidegate::codec::LengthFieldCodec;
use tidegate::conn::{
    ConnClose, Connection, ConnectionLimiter, IdleTimeout, LimitedListener, OverLimit,
};
use tidegate::exec::BoundedExecutor;
use tidegate::MemoryBudget;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::server::{Guarded, Server, ServerCounters, SLOW_HANDLING};
use crate::wire::encode;

pub(crate) const MAX_FRAME: usize = 64 * 1024;
pub(crate) const LOW_MARK: usize = 32 * 1024;
pub(crate) const HIGH_MARK: usize = 64 * 1024;
pub(crate) const HARD_CAP: usize = 256 * 1024;
pub(crate) const EVICT_AFTER: Duration = Duration::from_secs(2);
pub(crate) const READ_IDLE: Duration = Duration::from_secs(10);
pub(crate) const FIRST_BYTES: (usize, Duration) = (4, Duration::from_secs(2));
pub(crate) const CONN_LIMIT: usize = 1024;
pub(crate) const BUDGET: usize = 64 << 20;
pub(crate) const EXEC_RUNNING: usize = 32;
pub(crate) const EXEC_PENDING: usize = 16;

pub(crate) async fn start_guarded() -> io::Result<Server> {
    let listener = Arc::new(
        LimitedListener::builder()
            .limiter(ConnectionLimiter::new(CONN_LIMIT))
            .over_limit(OverLimit::Reject)
            .bind("127.0.0.1:0")
            .await?,
    );
    let addr = listener.local_addr()?;
    let budget = MemoryBudget::new(BUDGET);
    let exec = BoundedExecutor::new(EXEC_RUNNING, EXEC_PENDING);
    let counters = Arc::new(ServerCounters::default());
    let stop = CancellationToken::new();
    let codec = LengthFieldCodec::new(MAX_FRAME);
    let mut builder = Connection::builder();
    builder
        .low_mark(LOW_MARK)
        .high_mark(HIGH_MARK)
        .hard_cap(HARD_CAP)
        .evict_after(Some(EVICT_AFTER))
        .budget(Some(budget.clone()))
        .idle(
            IdleTimeout::builder()
                .read_idle(Some(READ_IDLE))
                .first_bytes_deadline(FIRST_BYTES.0, FIRST_BYTES.1),
        );
    let task = {
        let (listener, exec, counters, stop) = (
            listener.clone(),
            exec.clone(),
            counters.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                while conns.try_join_next().is_some() {}
                let Ok((stream, _peer, permit)) = accepted else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let Ok(mut conn) =
                    builder
                        .permit(permit)
                        .build(stream, codec.clone(), codec.clone())
                else {
                    continue;
                };
                let (exec, counters) = (exec.clone(), counters.clone());
                conns.spawn(async move {
                    let reason = loop {
                        let frame = match conn.next().await {
                            Ok(frame) => frame,
                            Err(reason) => break reason,
                        };
                        if frame.first() != Some(&b'S') {
                            drop(conn.feed(frame).await);
                            continue;
                        }
                        let tx = conn.sender().clone();
                        let job = async move {
                            tokio::time::sleep(SLOW_HANDLING).await;
                            // A full queue refuses the answer; the flood client then misses one.
                            let _ = tx.try_send(encode(&frame));
                        };
                        if exec.try_spawn(job).is_err() {
                            drop(conn.feed(Bytes::new()).await); // refused: an empty answer
                        }
                    };
                    match reason {
                        ConnClose::Evicted { .. } => &counters.evicted,
                        ConnClose::FrameTooLarge { .. } => &counters.too_long,
                        ConnClose::Idle(_) => &counters.idle,
                        _ => return,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                });
            }
            conns.shutdown().await;
        })
    };
    Ok(Server {
        addr,
        counters,
        guarded: Some(Guarded {
            listener,
            budget,
            exec,
        }),
        stop,
        task,
    })
}
