//! Connections: admission, liveness, the composed connection, and fan-out groups.
//!
//! This layer turns the parts into a server, so that none of the places where a connection leaks is written by
//! hand: the accept loop and its error backoff, the live-connection limit, idle timeouts, pausing reads while the
//! peer does not read, flushing once per read burst, closing both halves when the writer gives up on a peer, and a
//! subscriber list with pruning.

mod idle;
mod idle_builder;
mod idle_error;
mod idle_wait;

pub use idle::IdleTimeout;
pub use idle_builder::IdleTimeoutBuilder;
pub use idle_error::IdleError;

mod build_error;
mod close_reason;
mod connection;
mod connection_builder;
mod frame_limit;
mod held;
mod metrics;
mod shutdown;
mod writer_task;

pub use build_error::ConnectionBuildError;
pub use close_reason::ConnClose;
pub use connection::Connection;
pub use connection_builder::{
    ConnectionBuilder, DEFAULT_DRAIN_TIMEOUT, DEFAULT_EVICT_AFTER, DEFAULT_STALL_TIMEOUT,
};
pub use frame_limit::MaxFrameLength;
pub use metrics::ConnectionMetrics;
pub use shutdown::{Shutdown, ShutdownReport};
