//! The connections of the two length-prefixed echo servers (`echo_server`, `metrics_endpoint`): the same
//! framing, the same idle and slowloris defences, the same marks, and the same refusal at start of a combination
//! that could not work.

use std::io;
use std::time::Duration;

use tidegate::codec::LengthFieldCodec;
use tidegate::conn::{Connection, ConnectionBuilder, IdleTimeout, Shutdown};
use tidegate::watermark::QueueSet;
use tidegate::MemoryBudget;

/// How long connections may take to deliver what they queued once a shutdown begins.
pub const DRAIN: Duration = Duration::from_secs(2);
/// A peer that sends nothing for this long is closed.
const READ_IDLE: Duration = Duration::from_secs(60);
/// The slowloris defence: a peer's first frame header (4 bytes) must arrive within this.
const FIRST_HEADER_WITHIN: Duration = Duration::from_secs(10);

/// The least hard cap that works with the longest frame (see `ConnectionBuildError::HardCapTooSmall`), or 2 MiB.
pub fn hard_cap(high: usize, max_frame: usize) -> usize {
    (high + max_frame + 8 * 1024).max(2 << 20)
}

/// What the servers' flags set.
pub struct Marks {
    pub low: usize,
    pub high: usize,
    pub max_frame: usize,
    pub evict_after: Option<Duration>,
}

/// The builder every connection comes from (each joins `queues`, which holds the live marks) and the codec of
/// both directions. Builds one connection over an in-memory pipe first, so that marks that cannot work are refused
/// now, not at the first peer.
pub fn echo_connections(
    marks: &Marks,
    queues: &QueueSet,
    budget: Option<MemoryBudget>,
    shutdown: &Shutdown,
) -> io::Result<(ConnectionBuilder, LengthFieldCodec)> {
    let codec = LengthFieldCodec::new(marks.max_frame);
    let mut idle = IdleTimeout::builder();
    idle.read_idle(Some(READ_IDLE))
        .first_bytes_deadline(4, FIRST_HEADER_WITHIN);
    let mut connections = Connection::builder();
    connections
        .idle(&idle)
        .low_mark(marks.low)
        .high_mark(marks.high)
        .hard_cap(hard_cap(marks.high, marks.max_frame))
        .queue_set(Some(queues))
        .evict_after(marks.evict_after)
        .budget(budget)
        .drain_timeout(DRAIN)
        .shutdown(shutdown);
    let (probe, _) = tokio::io::duplex(1);
    drop(
        connections
            .build(probe, codec.clone(), codec.clone())
            .map_err(io::Error::other)?,
    );
    Ok((connections, codec))
}
