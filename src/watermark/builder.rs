//! The builder of a [`WatermarkWriter`].

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;

use super::{ConfigBuilder, Limits, Sender, WatermarkWriter};
use crate::MemoryBudget;

/// Builds a [`WatermarkWriter`].
///
/// Defaults: [`Limits::default()`], no budget, no eviction, no stall timeout.
#[derive(Debug, Clone, Default)]
pub struct WriterBuilder {
    config: ConfigBuilder,
    evict_after: Option<Duration>,
    stall_timeout: Option<Duration>,
}

impl WriterBuilder {
    /// The queue's marks. Default: [`Limits::default()`].
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.config.limits(limits);
        self
    }

    /// Charges `budget` for queued bytes. Default: none.
    pub fn budget(&mut self, budget: MemoryBudget) -> &mut Self {
        self.config.budget(budget);
        self
    }

    /// Disconnects the peer with [`CloseReason::Evicted`](super::CloseReason::Evicted) once the queue has stayed unwritable (over the high mark
    /// and not yet drained to the low mark) for longer than `after`. Default: never.
    pub fn evict_after(&mut self, after: Duration) -> &mut Self {
        self.evict_after = Some(after);
        self
    }

    /// Fails with [`CloseReason::Stalled`](super::CloseReason::Stalled) when one write (or flush or shutdown) makes no progress for `timeout`.
    /// Default: none.
    pub fn stall_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.stall_timeout = Some(timeout);
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
