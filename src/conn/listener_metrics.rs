//! A snapshot of a limited listener's counters.

/// Counters of a [`LimitedListener`](super::LimitedListener), from
/// [`metrics`](super::LimitedListener::metrics).
///
/// The limiter's own counters ([`LimiterMetrics`](super::LimiterMetrics)) also include connections admitted by
/// other users of the same limiter.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tidegate::conn::{ConnectionLimiter, LimitedListener};
///
/// let listener = LimitedListener::builder().limiter(ConnectionLimiter::new(8)).bind("127.0.0.1:0").await?;
/// let _client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
/// let (_stream, _peer, _permit) = listener.accept().await?;
/// let m = listener.metrics();
/// assert_eq!((m.accepted, m.rejected, m.backoffs), (1, 0, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ListenerMetrics {
    /// Connections returned by `accept`, each with its permit.
    pub accepted: u64,
    /// Connections accepted and closed at once with a reset because a limit refused them.
    pub rejected: u64,
    /// Of `rejected`, those refused by the per-address limit.
    pub rejected_per_ip: u64,
    /// `accept` errors that belonged to one connection (aborted, reset, protocol or network errors) and were
    /// skipped.
    pub skipped_errors: u64,
    /// Waits before retrying `accept`: one per resource error (out of descriptors or memory), and one per 64
    /// skipped errors in a row.
    pub backoffs: u64,
    /// Times `accept` found the limiter full and began to wait for a free slot (under
    /// [`OverLimit::Pause`](super::OverLimit::Pause)).
    pub pauses: u64,
}
