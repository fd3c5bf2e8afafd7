//! A snapshot of one connection.

use crate::watermark::WatermarkMetrics;

/// A snapshot of a [`Connection`](super::Connection)'s buffers and write queue, from
/// [`Connection::metrics`](super::Connection::metrics).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionMetrics {
    /// Bytes read but not yet decoded (part of a frame).
    pub read_buffered_bytes: usize,
    /// The read buffer's allocation: zero between bursts unless part of a frame is buffered.
    pub read_allocated_bytes: usize,
    /// Bytes fed but not yet queued (until the end of the read burst).
    pub write_buffered_bytes: usize,
    /// The write queue and its writer.
    pub write: WatermarkMetrics,
}
