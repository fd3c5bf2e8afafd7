//! The builder of a [`WatermarkWriter`].

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;

use super::{ConfigBuilder, Limits, Sender, WatermarkWriter};
use crate::budget::MemoryBudget;

/// Builds a [`WatermarkWriter`]; obtained with [`WatermarkWriter::builder`].
///
/// Defaults: [`Limits::default()`], no budget, no eviction, no stall timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tidegate::watermark::{Limits, WatermarkWriter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, writer) = WatermarkWriter::builder()
///     .limits(Limits::new(16 << 10, 64 << 10, 256 << 10))
///     .evict_after(Some(Duration::from_secs(10)))
///     .stall_timeout(None)
///     .build(tokio::io::sink());
/// drop((tx, writer));
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct WatermarkWriterBuilder {
    config: ConfigBuilder,
    evict_after: Option<Duration>,
    stall_timeout: Option<Duration>,
}

/// The builder's old name.
#[deprecated(since = "0.1.0", note = "renamed to `WatermarkWriterBuilder`")]
pub type WriterBuilder = WatermarkWriterBuilder;

impl WatermarkWriterBuilder {
    /// The queue's marks. Default: [`Limits::default()`].
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.config.limits(limits);
        self
    }

    /// Charges `budget` for queued bytes. Default: none (`None`).
    pub fn budget(&mut self, budget: Option<MemoryBudget>) -> &mut Self {
        self.config.budget(budget);
        self
    }

    /// With `Some(after)`, disconnects the peer with [`CloseReason::Evicted`](super::CloseReason::Evicted) once
    /// the queue has stayed unwritable (over the high mark and not yet drained to the low mark) for longer than
    /// `after`. `None` never evicts. Default: `None`.
    pub fn evict_after(&mut self, after: Option<Duration>) -> &mut Self {
        self.evict_after = after;
        self
    }

    /// With `Some(timeout)`, fails with [`CloseReason::Stalled`](super::CloseReason::Stalled) when one write (or
    /// flush or shutdown) makes no progress for `timeout`. `None` waits as long as the stream does. Default: `None`.
    pub fn stall_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.stall_timeout = timeout;
        self
    }

    /// Wraps `io`: returns the handle producers send frames through and the writer to run (or
    /// [`spawn`](WatermarkWriter::spawn)).
    pub fn build<W: AsyncWrite + Unpin + Send>(
        &self,
        io: W,
    ) -> (Sender<Bytes>, WatermarkWriter<W>) {
        WatermarkWriter::with_config(
            io,
            self.config.build(),
            self.evict_after,
            self.stall_timeout,
        )
    }
}
