//! Connections: admission, liveness, the composed connection, and fan-out groups.
//!
//! This layer turns the parts into a server, so that none of the places where a connection leaks is written by
//! hand: the accept loop and its error backoff, the live-connection limit, idle timeouts, pausing reads while the
//! peer does not read, flushing once per read burst, closing both halves when the writer gives up on a peer, and a
//! subscriber list with pruning.

// Liveness: idle and slow-start timeouts on any stream.
mod idle;
mod idle_builder;
mod idle_error;
mod idle_wait;

pub use idle::IdleTimeout;
pub use idle_builder::IdleTimeoutBuilder;
pub use idle_error::IdleError;

// Admission: the live-connection limit and the listener that applies it.
mod accept_backoff;
mod limit_error;
mod limiter;
mod limiter_metrics;
#[cfg(not(all(test, tidegate_loom)))]
mod limiter_observe;
mod listener;
mod listener_builder;
mod listener_metrics;
#[cfg(not(all(test, tidegate_loom)))]
mod listener_observe;
mod over_limit;
mod permit;

#[cfg(all(test, tidegate_loom))]
mod limiter_loom;

pub use limit_error::LimitError;
pub use limiter::ConnectionLimiter;
pub use limiter_metrics::LimiterMetrics;
pub use listener::LimitedListener;
pub use listener_builder::ListenerBuilder;
pub use listener_metrics::ListenerMetrics;
pub use over_limit::OverLimit;
pub use permit::ConnectionPermit;

// Fan-out: one frame to many connections' write queues.
mod broadcast_report;
mod group;
mod group_members;
mod group_metrics;
mod group_observe;

pub use broadcast_report::BroadcastReport;
pub use group::Group;
pub use group_members::MemberId;
pub use group_metrics::GroupMetrics;

// The composed connection: frame stream, write side, close reasons, graceful shutdown.
mod build_error;
mod close_reason;
mod connection;
mod connection_builder;
mod connection_observe;
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
