//! The RAII proof that a connection was admitted.

use super::limiter::Shared;
use crate::loom::Arc;
use std::fmt;
use std::net::SocketAddr;

/// One admitted connection's slot in a [`ConnectionLimiter`](super::ConnectionLimiter), freed when this is dropped.
///
/// Keep it next to the socket (in the same struct or task) so the slot is held exactly as long as the socket is
/// open, including on panic, cancellation and early return.
///
/// # Examples
///
/// ```
/// let limiter = tidegate::conn::ConnectionLimiter::new(8);
/// let permit = limiter.try_acquire("127.0.0.1:5000".parse().unwrap()).unwrap();
/// assert_eq!(permit.peer().port(), 5000);
/// assert_eq!(limiter.active(), 1);
/// drop(permit);
/// assert_eq!(limiter.active(), 0);
/// ```
#[must_use = "dropping a ConnectionPermit frees its slot at once"]
pub struct ConnectionPermit {
    shared: Arc<Shared>,
    peer: SocketAddr,
    counted_per_ip: bool,
}

impl ConnectionPermit {
    pub(super) fn new(shared: Arc<Shared>, peer: SocketAddr, counted_per_ip: bool) -> Self {
        ConnectionPermit {
            shared,
            peer,
            counted_per_ip,
        }
    }

    /// The peer this permit was granted for.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether this connection counts against its address's per-address limit (it does when a per-address limit
    /// was set when it was admitted).
    pub fn counted_per_ip(&self) -> bool {
        self.counted_per_ip
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.shared
            .release(self.peer.ip().to_canonical(), self.counted_per_ip);
    }
}

impl fmt::Debug for ConnectionPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPermit")
            .field("peer", &self.peer)
            .field("counted_per_ip", &self.counted_per_ip)
            .finish()
    }
}
