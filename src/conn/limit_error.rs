//! Why a connection was not admitted.

use std::net::IpAddr;

/// Why a [`ConnectionLimiter`](super::ConnectionLimiter) refused a connection: which limit, and the numbers.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use tidegate::conn::{ConnectionLimiter, LimitError};
///
/// let limiter = ConnectionLimiter::new(1);
/// let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
/// let _held = limiter.try_acquire(peer).unwrap();
/// assert_eq!(
///     limiter.try_acquire(peer).unwrap_err(),
///     LimitError::Global { active: 1, limit: 1 },
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The limiter already counts `limit` (or more, after a lowered limit) live connections.
    #[error("connection limit reached: {active} live connections, limit {limit}")]
    Global {
        /// Live connections when the new one was refused.
        active: usize,
        /// The limit at that moment.
        limit: usize,
    },
    /// The peer's address already has `limit` (or more) live connections.
    #[error(
        "per-address connection limit reached for {ip}: {active} live connections, limit {limit}"
    )]
    PerIp {
        /// The peer's address (IPv4-mapped IPv6 addresses are shown as IPv4).
        ip: IpAddr,
        /// Live connections from that address when the new one was refused.
        active: usize,
        /// The per-address limit at that moment.
        limit: usize,
    },
}

impl LimitError {
    /// Whether the per-address limit (rather than the global one) refused the connection.
    pub fn is_per_ip(&self) -> bool {
        matches!(self, LimitError::PerIp { .. })
    }
}

impl From<LimitError> for std::io::Error {
    /// A refusal is never `WouldBlock`: nothing signals readiness when a slot frees, so it maps to `Other`.
    fn from(err: LimitError) -> Self {
        std::io::Error::other(err)
    }
}
