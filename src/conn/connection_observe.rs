//! A connection's report to a metrics registry: its write queue.

use std::io;
use std::sync::Arc;

use tokio_util::codec::{Decoder, Encoder};

use super::Connection;
use crate::metrics::{Observe, Observer};

/// A connection reports its write queue (the `queue_*` series, and its live marks as settings). To watch many
/// connections without a series each, build them with a [`QueueSet`](crate::watermark::QueueSet)
/// ([`ConnectionBuilder::queue_set`](super::ConnectionBuilder::queue_set)) and register the set instead.
impl<D, E, M> Observe for Connection<D, E, M>
where
    D: Decoder,
    D::Error: Into<io::Error>,
    E: Encoder<M>,
{
    fn observer(&self) -> Arc<dyn Observer> {
        self.sender().observer()
    }
}
