//! A server-wide graceful shutdown that counts how its connections ended.

use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A graceful shutdown for every [`Connection`](super::Connection) built with it
/// ([`ConnectionBuilder::shutdown`](super::ConnectionBuilder::shutdown)).
///
/// Triggering it ([`shutdown`](Self::shutdown), or cancelling its [`token`](Self::token)) makes each connection
/// stop reading, queue what its handler buffered, and drain its write queue to the peer within its
/// [drain timeout](super::ConnectionBuilder::drain_timeout); a connection that cannot finish in time is cut (its
/// queued bytes are dropped and counted in its writer's metrics). [`shutdown`](Self::shutdown) then reports how
/// many connections drained and how many were cut.
///
/// Clones share the same state; the token can be a child of a wider one ([`from_token`](Self::from_token)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tidegate::conn::Shutdown;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let shutdown = Shutdown::new();
/// // ... build connections with `.shutdown(&shutdown)` ...
/// let report = shutdown.shutdown(Duration::from_secs(10)).await;
/// assert_eq!((report.drained, report.cut, report.open), (0, 0, 0));
/// # }
/// ```
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    token: CancellationToken,
    open: AtomicUsize,
    drained: AtomicU64,
    cut: AtomicU64,
    closed: Notify,
}

/// How the connections of a [`Shutdown`] ended once it was triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections that ended after the trigger with every queued write delivered.
    pub drained: u64,
    /// Connections that ended after the trigger with queued writes dropped: the drain timeout passed, or the
    /// writer failed (eviction, a write error).
    pub cut: u64,
    /// Connections still open when [`shutdown`](Shutdown::shutdown)'s deadline passed.
    pub open: usize,
}

impl Shutdown {
    /// A shutdown with a token of its own.
    pub fn new() -> Self {
        Self::from_token(CancellationToken::new())
    }

    /// A shutdown triggered by `token` (cancelling it is the same as [`trigger`](Self::trigger)).
    pub fn from_token(token: CancellationToken) -> Self {
        Shutdown {
            inner: Arc::new(Inner {
                token,
                open: AtomicUsize::new(0),
                drained: AtomicU64::new(0),
                cut: AtomicU64::new(0),
                closed: Notify::new(),
            }),
        }
    }

    /// The token that triggers this shutdown; select on `token().cancelled()` to stop an accept loop.
    pub fn token(&self) -> &CancellationToken {
        &self.inner.token
    }

    /// Triggers the shutdown without waiting.
    pub fn trigger(&self) {
        self.inner.token.cancel();
    }

    /// Whether the shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// Connections built with this shutdown that have not ended yet (their writer task still runs).
    pub fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Triggers the shutdown, waits until every connection has ended or `deadline` has passed, and reports how
    /// they ended. Connections drain within their own drain timeout; a `deadline` longer than that sees them all.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the shutdown stays triggered; calling again waits again and reports the totals so far.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.trigger();
        let until = Instant::now() + deadline;
        loop {
            let mut closed = pin!(self.inner.closed.notified());
            closed.as_mut().enable();
            if self.open_connections() == 0 {
                break;
            }
            if tokio::time::timeout_at(until, closed).await.is_err() {
                break;
            }
        }
        self.report()
    }

    /// The counts so far.
    pub fn report(&self) -> ShutdownReport {
        ShutdownReport {
            drained: self.inner.drained.load(Ordering::Acquire),
            cut: self.inner.cut.load(Ordering::Acquire),
            open: self.open_connections(),
        }
    }

    pub(crate) fn track(&self) -> Tracked {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        Tracked {
            inner: self.inner.clone(),
            drained: false,
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl From<CancellationToken> for Shutdown {
    fn from(token: CancellationToken) -> Self {
        Self::from_token(token)
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .field("report", &self.report())
            .finish()
    }
}

/// One open connection of a [`Shutdown`]; counted as drained or cut when dropped after the trigger (dropped
/// without [`drained`](Self::drained), also on a panic, it counts as cut).
pub(crate) struct Tracked {
    inner: Arc<Inner>,
    drained: bool,
}

impl Tracked {
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.inner.token
    }

    pub(crate) fn drained(mut self) {
        self.drained = true;
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let inner = &*self.inner;
        if inner.token.is_cancelled() {
            let count = if self.drained {
                &inner.drained
            } else {
                &inner.cut
            };
            count.fetch_add(1, Ordering::AcqRel);
        }
        inner.open.fetch_sub(1, Ordering::AcqRel);
        inner.closed.notify_waiters();
    }
}

impl fmt::Debug for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked").finish_non_exhaustive()
    }
}
