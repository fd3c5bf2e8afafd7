//! Bounded outbound queues: a byte-weighted channel with low/high/hard marks, and a writer that drains it into
//! any `AsyncWrite` and evicts slow peers.
//!
//! A server pushing to many clients keeps a queue per client. With an unbounded queue a slow or stalled client
//! grows it until the process dies; with a plain bounded one, producers cannot tell "briefly busy" from "stuck".
//! A watermark queue counts bytes, not items, and has three marks:
//!
//! * above **high** it turns *unwritable*: [`Sender::send`] waits, [`Sender::is_writable`] is `false`, and
//!   [`Sender::watch_writability`] reports the flip so a producer can stop reading its own input;
//! * it turns writable again only at or below **low** (hysteresis: no flapping around one mark);
//! * an item that would take it over **hard** is refused, and the item comes back in the error.
//!
//! An optional [`MemoryBudget`](crate::budget::MemoryBudget) is charged for every queued byte, so many queues together stay
//! under one process-wide limit.
//!
//! [`WatermarkWriter`] owns the receiving side and the stream: it writes many queued frames per syscall with vectored
//! writes, flushes when the queue runs dry, disconnects a peer that keeps the queue unwritable for longer than
//! [`evict_after`](WatermarkWriterBuilder::evict_after), and reports to every sender why it stopped
//! ([`Sender::closed`]) and what it could not deliver ([`WatermarkMetrics`]). While a
//! [spawned](WatermarkWriter::spawn) writer is idle, senders write for it, so a stream that keeps up costs no
//! scheduler round trip. [`FramedSender`] puts an [`Encoder`](tokio_util::codec::Encoder) in front of the queue so
//! producers send messages.
//!
//! A [`QueueSet`] gathers many queues (every connection of a listener): they share one set of marks, changed for
//! all of them in one step, and report to a [`Registry`](crate::metrics::Registry) as one aggregate instead of a
//! series each. Every handle of a queue, and the set, can be registered there.
//!
//! # Examples
//!
//! ```
//! use bytes::Bytes;
//! use tidegate::watermark::{self, Config, Limits};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = Config::builder().limits(Limits::new(8, 16, 32)).build();
//! let (tx, mut rx) = watermark::channel(config);
//! tx.try_send(Bytes::from_static(b"twenty bytes of data")).unwrap();
//! assert!(!tx.is_writable()); // 20 > high
//! assert!(tx.try_send(Bytes::from_static(b"and thirteen!")).is_err()); // 32 < 20 + 13: over hard, item returned
//! rx.recv().await.unwrap();
//! assert!(tx.is_writable()); // 0 <= low
//! # }
//! ```

mod builder;
mod bundle;
mod channel;
mod config;
mod direct_write;
mod error;
mod framed;
mod gate;
mod header;
mod level;
mod limits;
mod limits_error;
mod live_limits;
mod metrics;
mod observe;
mod queue_set;
mod queue_set_metrics;
mod reason;
mod receiver;
mod sender;
mod set_core;
mod shared;
mod sink;
mod stats;
mod vectored;
mod watchdog;
mod weight;
mod writer;
mod writer_core;

#[allow(deprecated)]
pub use builder::{WatermarkWriterBuilder, WriterBuilder};
pub use channel::channel;
pub use config::{Config, ConfigBuilder};
pub use error::SendError;
pub use framed::FramedSender;
pub use header::{HeaderEncoder, DEFAULT_ZERO_COPY_THRESHOLD};
pub use limits::{Limits, DEFAULT_HARD, DEFAULT_HIGH, DEFAULT_LOW};
pub use limits_error::LimitsError;
pub use metrics::WatermarkMetrics;
pub use queue_set::QueueSet;
pub use queue_set_metrics::QueueSetMetrics;
pub use reason::CloseReason;
pub use receiver::Receiver;
pub(crate) use sender::Offer;
pub use sender::Sender;
pub use weight::Weight;
pub use writer::{WatermarkWriter, WriterReport};

#[cfg(all(test, tidegate_loom))]
mod loom_tests;
