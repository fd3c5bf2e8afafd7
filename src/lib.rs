//! Leak-resistant networking primitives for tokio.
//!
//! Servers rarely leak memory by forgetting a `free`. They leak through queues nobody bounded: the write queue
//! behind a slow reader, a decoder that trusts a length header, a task queue behind slow handlers, buffers held
//! longer than anyone meant. tidegate gives tokio services small, composable layers that close each of those
//! holes. Every part keeps the same promises:
//!
//! * **Bounded**: every buffer, queue and counter has a limit, set by you or a documented default.
//! * **Refusal is explicit and lossless**: when a limit is hit you get a typed error and your item back, or you
//!   wait; nothing accepted is dropped silently.
//! * **RAII release**: permits, reservations and pooled storage are released by `Drop`, including on panic and
//!   cancellation, so every counter returns to zero after a workload.
//! * **Observable**: every part has a `metrics()` snapshot.
//!
//! # Tour
//!
//! ## One memory budget: [`budget`]
//!
//! A [`MemoryBudget`] is a cheap-to-clone handle to a byte limit shared by every part that holds memory. A
//! [`Reservation`] is the RAII proof that bytes were granted; dropping it gives them back.
//!
//! ```
//! use tidegate::MemoryBudget;
//!
//! let budget = MemoryBudget::new(64 * 1024);
//! let per_connection = budget.child(16 * 1024);
//! let held = per_connection.try_reserve(10 * 1024).expect("fits both limits");
//! assert_eq!(budget.used(), 10 * 1024); // a child's reservation counts against its parent
//! assert!(per_connection.try_reserve(8 * 1024).is_err()); // over the child's own limit
//! drop(held);
//! assert_eq!(budget.used(), 0);
//! ```
//!
//! ## Pooled buffers: [`buf`]
//!
//! A [`BufPool`] hands out [`PooledBuf`]s from size classes. A buffer freezes into a [`bytes::Bytes`] without a
//! copy, and its storage goes back to the pool when the last clone of that `Bytes` is dropped, on any thread.
//!
//! ```
//! use bytes::BufMut;
//! use tidegate::BufPool;
//!
//! let pool = BufPool::builder().max_retained_bytes(1 << 20).build()?;
//! let mut buf = pool.try_acquire(4096).expect("no budget configured, so never refused");
//! buf.put_slice(b"hello");
//! let frame = buf.freeze();
//! let shared = frame.clone();
//! assert_eq!(pool.metrics().total.outstanding_buffers, 1);
//! drop(frame);
//! drop(shared); // last reference: the storage returns to the pool
//! assert_eq!(pool.metrics().total.outstanding_buffers, 0);
//! assert_eq!(pool.metrics().total.retained_bytes, 4096);
//! # Ok::<(), tidegate::PoolError>(())
//! ```
//!
//! ## Bounded outbound queues: [`watermark`]
//!
//! A [`watermark::channel`] counts queued bytes against a low, a high and a hard mark: above *high* senders see
//! "unwritable" and `send().await` waits, writability returns only at *low* (hysteresis), and nothing is ever queued
//! past *hard*: the item comes back in the error. A [`watermark::WatermarkWriter`] drains such a queue into any
//! `AsyncWrite` with vectored writes and evicts a peer that keeps it unwritable too long.
//!
//! ```
//! use bytes::Bytes;
//! use tidegate::watermark::{Limits, WatermarkWriter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (tx, writer) = WatermarkWriter::builder()
//!     .limits(Limits::new(16 * 1024, 64 * 1024, 256 * 1024))
//!     .evict_after(Some(std::time::Duration::from_secs(30)))
//!     .build(tokio::io::sink());
//! let task = writer.spawn();
//! tx.send(Bytes::from_static(b"hello")).await.unwrap();
//! tx.close(); // drain, flush, shut down
//! assert_eq!(task.await.unwrap().metrics.sent_bytes, 5);
//! # }
//! ```
//!
//! ## Bounded task execution: [`exec`]
//!
//! A [`BoundedExecutor`] runs handlers off the read loop with a limit on running tasks and on the backlog.
//! `try_spawn` refuses at once and hands the future back; `spawn` waits for room; tasks with the same key
//! run in submission order.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tidegate::{BoundedExecutor, SpawnError};
//!
//! let exec = BoundedExecutor::new(1, 0); // one running, no backlog
//! let busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
//! let refused = exec.try_spawn(async { "reply" }).unwrap_err();
//! assert!(matches!(refused, SpawnError::Full { limit: 1, .. }));
//! assert_eq!(refused.into_inner().await, "reply"); // nothing was lost
//! busy.abort();
//! # }
//! ```
//!
//! ## Connections: [`conn`]
//!
//! The layer that turns the parts into a server: a [`conn::LimitedListener`] that bounds live connections (and
//! binds with the system's full backlog), [`conn::IdleTimeout`] for quiet and slowloris peers, the composed
//! [`conn::Connection`] (auto-read, one write per read burst, both halves ending together with a typed
//! [`conn::ConnClose`], graceful shutdown) and [`conn::Group`] for fan-out. The README shows a complete echo server
//! in 38 lines.
//!
//! ## Capped decoders: [`codec`]
//!
//! Every decoder has a required maximum and buffers only bytes that arrived, whatever a header claims. An oversize
//! frame fails the stream or, with [`OversizePolicy::Skip`](codec::OversizePolicy::Skip), is discarded as it arrives
//! while the next frames keep coming.
//!
//! ```
//! use bytes::BytesMut;
//! use tidegate::codec::LengthFieldCodec;
//! use tokio_util::codec::Decoder;
//!
//! let mut codec = LengthFieldCodec::new(1024);
//! let mut buf = BytesMut::from(&b"\x40\x00\x00\x00"[..]); // claims 1 GiB
//! assert!(codec.decode(&mut buf).is_err()); // refused at once; nothing was reserved
//! ```
//!
//! # Features
//!
//! Both are off by default, add one dependency each, and change nothing about what the parts do or count.
//!
//! ## `metrics`: forward the registry to the `metrics` facade
//!
//! `metrics::FacadeForwarder` publishes a [`metrics::Registry`] to whatever recorder the
//! [`metrics`](https://docs.rs/metrics/0.24) facade crate has installed (a Prometheus, StatsD or OpenTelemetry
//! exporter), as `tokio-metrics` does for a runtime: it collects the registry on an interval and sets one facade
//! series per sample, gauges with `set`, counters with `absolute` (the registry's totals), named with the
//! `tidegate_` prefix and labelled as in [`metrics::Registry::render_prometheus`]. It stops when the registry's
//! last handle is dropped or its cancellation token is cancelled; `forward_once` forwards once, on demand.
//!
//! ```
//! # #[cfg(feature = "metrics")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use tidegate::metrics::{FacadeForwarder, Registry};
//! use tokio_util::sync::CancellationToken;
//!
//! // Install an exporter first, e.g. `metrics_exporter_prometheus::PrometheusBuilder::new().install()`.
//! let registry = Registry::new();
//! let budget = tidegate::MemoryBudget::new(64 << 20);
//! registry.register("connections", &budget).unwrap();
//! let stop = CancellationToken::new();
//! let forwarder = FacadeForwarder::new(&registry)
//!     .interval(Duration::from_secs(15))
//!     .spawn(stop.clone());
//! // ... serve; on shutdown:
//! stop.cancel();
//! forwarder.await.unwrap();
//! # }
//! # #[cfg(not(feature = "metrics"))]
//! # fn main() {}
//! ```
//!
//! ## `tracing`: events where a limit acts
//!
//! The parts emit [`tracing`](https://docs.rs/tracing/0.1) events, with the calling module as target
//! (`tidegate::exec::shared`, ...) and the numbers as fields:
//!
//! | where | level | fields |
//! |---|---|---|
//! | a watermark writer stops for a failure (eviction, a stall, an I/O error, an abort) | `DEBUG` | `reason`, `held_frames` |
//! | a connection's writer is cut at the drain timeout | `DEBUG` | `drain` |
//! | a decoder refuses a frame: too long, or a malformed length header | `DEBUG` | `len`, `max`, `policy` / `error` |
//! | a listener rejects a connection over the per-address limit, or skips a failed accept | `DEBUG` | `refusal` / `error` |
//! | an executor refuses a task (full, overloaded, timed out; not when shut down) | `WARN` | `refusal` |
//! | a memory budget refuses a reservation | `WARN` | `refusal` (requested, used, limit) |
//! | a listener backs off on resource exhaustion (`EMFILE`, `ENOBUFS`, ...) | `WARN` | `error`, `delay` |
//! | a listener rejects or pauses at the global connection limit | `WARN` | `refusal` / `limit` |
//!
//! `DEBUG` is for what happens to one connection; `WARN` only for what an operator can act on (raise a limit, add
//! descriptors or memory). Warnings are rate-limited so that an attack cannot flood the logs: each call site lets
//! at most one through per second, and that one carries `suppressed`, how many it held back since the previous
//! one. The limiter is two atomics in a `static` per call site and runs only while a subscriber wants the event.
//! Without the feature the calls compile to nothing.
//!
//! ```
//! # #[cfg(feature = "tracing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tidegate::BoundedExecutor;
//!
//! // Install a subscriber first, e.g. tracing-subscriber's `fmt().with_env_filter("tidegate=warn").init()`.
//! let exec = BoundedExecutor::new(1, 0);
//! let _busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
//! for _ in 0..1000 {
//!     // Every refusal is counted in the executor's metrics; the subscriber sees one warning now and,
//!     // after a second, the next one with `suppressed = 999`.
//!     assert!(exec.try_spawn(async {}).is_err());
//! }
//! # }
//! # #[cfg(not(feature = "tracing"))]
//! # fn main() {}
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(
    no_crate_inject,
    attr(deny(warnings, rust_2018_idioms), allow(dead_code, unused_variables))
))]

mod loom;
mod trace;

/// The README's code blocks, compiled as doc tests so that the servers it shows keep building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
mod waker_slab;

pub mod budget;
pub mod buf;
pub mod codec;
pub mod conn;
pub mod exec;
pub mod metrics;
pub mod watermark;

pub use budget::{BudgetError, MemoryBudget, Reservation};
pub use buf::{BufPool, PoolError, PooledBuf};
pub use exec::{BoundedExecutor, SpawnError, TaskError, TaskHandle};
