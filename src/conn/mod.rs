//! Connections: admission, liveness, the composed connection, and fan-out groups.
//!
//! This layer turns the parts into a server, so that none of the places where a connection leaks is written by
//! hand: the accept loop and its error backoff, the live-connection limit, idle timeouts, pausing reads while the
//! peer does not read, flushing once per read burst, closing both halves when the writer gives up on a peer, and a
//! subscriber list with pruning.

// Fan-out: one frame to many connections' write queues.
mod broadcast_report;
mod group;
mod group_members;
mod group_metrics;

pub use broadcast_report::BroadcastReport;
pub use group::Group;
pub use group_members::MemberId;
pub use group_metrics::GroupMetrics;
