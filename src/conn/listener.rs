//! A TCP listener that admits connections through a connection limiter.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::accept_backoff::{classify, AcceptBackoff, AcceptErrorKind};
use super::limit_error::LimitError;
use super::limiter::ConnectionLimiter;
use super::listener_builder::ListenerBuilder;
use super::listener_metrics::ListenerMetrics;
use super::over_limit::OverLimit;
use super::permit::ConnectionPermit;

/// A [`TcpListener`] whose `accept` admits each connection through a [`ConnectionLimiter`] and survives the errors
/// that make hand-written accept loops spin or die.
///
/// * Every connection comes with its [`ConnectionPermit`]: keep it with the socket and the connection is counted
///   until both are dropped.
/// * While the global limit is reached, the listener pauses or rejects, as its [`OverLimit`] says. Connections
///   refused by the per-address limit are always rejected (closed with a reset).
/// * An error that belongs to one connection (`ECONNABORTED`, `ECONNRESET`, `EPROTO`, `EPERM`, the network errors
///   `accept(2)` says to retry) is skipped; every 64th in a row without a success costs a 1 ms pause, so even an
///   error that never stops cannot make the loop spin. Out of descriptors or memory (`EMFILE`, `ENFILE`,
///   `ENOBUFS`, `ENOMEM`), `accept` waits 1 ms, then twice as long after each further failure up to 1 s, and
///   retries; the first success resets the wait. The pending connections wait in the backlog meanwhile.
/// * Both are counted in [`metrics`](Self::metrics); other errors are returned.
///
/// Bind one with [`builder`](Self::builder) (a backlog as long as the system allows, where `TcpListener::bind`
/// uses 128) or wrap a listener you have with [`from_listener`](Self::from_listener).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tidegate::conn::{ConnectionLimiter, LimitedListener};
/// use tokio::io::AsyncWriteExt;
///
/// let limiter = ConnectionLimiter::new(1000);
/// let listener = LimitedListener::builder().limiter(limiter.clone()).bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
///
/// let server = tokio::spawn(async move {
///     let (mut stream, peer, permit) = listener.accept().await?;
///     assert_eq!(permit.peer(), peer);
///     stream.write_all(b"hi").await?;
///     Ok::<_, std::io::Error>(()) // the stream and the permit drop together
/// });
/// let _client = tokio::net::TcpStream::connect(addr).await?;
/// server.await.unwrap()?;
/// assert_eq!(limiter.active(), 0);
/// # Ok(())
/// # }
/// ```
pub struct LimitedListener {
    listener: TcpListener,
    limiter: ConnectionLimiter,
    over_limit: OverLimit,
    backlog: Option<u32>,
    backoff: AcceptBackoff,
    /// Shared only with registry observers, which hold it weakly.
    pub(super) counters: Arc<Counters>,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    rejected_per_ip: AtomicU64,
    skipped_errors: AtomicU64,
    backoffs: AtomicU64,
    pauses: AtomicU64,
}

impl LimitedListener {
    /// A builder that binds a listener with a chosen backlog, limiter and [`OverLimit`] policy.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tidegate::conn::{ConnectionLimiter, LimitedListener, OverLimit};
    ///
    /// let listener = LimitedListener::builder()
    ///     .limiter(ConnectionLimiter::new(10_000))
    ///     .over_limit(OverLimit::Reject)
    ///     .backlog(Some(1024))
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// assert_eq!(listener.backlog(), Some(1024));
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> ListenerBuilder {
        ListenerBuilder::new()
    }

    /// Wraps a bound listener, with the [`OverLimit::Pause`] policy. Its backlog is whatever it was bound with
    /// (128 for `TcpListener::bind`), unknown here: [`backlog`](Self::backlog) returns `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tidegate::conn::{ConnectionLimiter, LimitedListener};
    ///
    /// let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let listener = LimitedListener::from_listener(tcp, ConnectionLimiter::new(64));
    /// assert_eq!(listener.backlog(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_listener(listener: TcpListener, limiter: ConnectionLimiter) -> Self {
        Self::new(listener, limiter, OverLimit::default(), None)
    }

    pub(super) fn new(
        listener: TcpListener,
        limiter: ConnectionLimiter,
        over_limit: OverLimit,
        backlog: Option<u32>,
    ) -> Self {
        LimitedListener {
            listener,
            limiter,
            over_limit,
            backlog,
            backoff: AcceptBackoff::new(),
            counters: Arc::default(),
        }
    }

    /// Accepts the next connection the limiter admits, with its peer address and permit.
    ///
    /// Connections the limiter refuses are closed with a reset and counted, and `accept` goes on to the next one;
    /// under [`OverLimit::Pause`] it first waits for a free slot (should another user of the same limiter take that
    /// slot before the connection is admitted, the connection is rejected too). Per-connection errors are skipped
    /// and resource errors waited out, as the [type docs](Self) say.
    ///
    /// # Errors
    ///
    /// Errors of the listening socket itself (`EBADF`, `EINVAL` and the like): the listener is unusable.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. A connection is taken from the kernel's queue only in the same poll that returns it (as with
    /// [`TcpListener::accept`]); dropping the future while it pauses or backs off takes nothing, and a wake-up
    /// meant for it is passed on to another paused listener on the same limiter.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr, ConnectionPermit)> {
        loop {
            let room = PassOnRoom(match self.over_limit {
                OverLimit::Pause => {
                    let pauses = &self.counters.pauses;
                    self.limiter
                        .wait_for_room(|| {
                            pauses.fetch_add(1, Ordering::Relaxed);
                            crate::trace::warn_limited!(
                                "accept paused: connection limit reached",
                                limit = self.limiter.limit()
                            );
                        })
                        .await;
                    Some(&self.limiter)
                }
                OverLimit::Reject => None,
            });
            let accepted = self.listener.accept().await;
            // Whatever happens now, this call acts on what it saw: it admits, rejects or fails and checks again.
            room.used();
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    self.on_error(err).await?;
                    continue;
                }
            };
            self.backoff.reset();
            match self.limiter.try_acquire(peer) {
                Ok(permit) => {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    return Ok((stream, peer, permit));
                }
                Err(refusal) => self.reject(stream, &refusal),
            }
        }
    }

    /// Skips, waits out or returns an accept error.
    async fn on_error(&self, err: io::Error) -> io::Result<()> {
        let wait = match classify(&err) {
            AcceptErrorKind::Fatal => return Err(err),
            AcceptErrorKind::Skip => {
                self.counters.skipped_errors.fetch_add(1, Ordering::Relaxed);
                crate::trace::debug!("accept failed for one connection; skipped", error = %err);
                self.backoff.after_skip()
            }
            AcceptErrorKind::Resource => {
                let delay = self.backoff.next_delay();
                crate::trace::warn_limited!(
                    "accept backing off: out of a resource", error = %err, delay = ?delay
                );
                Some(delay)
            }
        };
        if let Some(wait) = wait {
            self.counters.backoffs.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    fn reject(&self, stream: TcpStream, refusal: &LimitError) {
        // A reset rather than a FIN: the client learns at once, and the server keeps no TIME_WAIT for a connection
        // it never served. If the option cannot be set, the drop still closes the socket, with a FIN.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        // Counted before the close, so a client that sees the reset also sees the count.
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        if refusal.is_per_ip() {
            self.counters
                .rejected_per_ip
                .fetch_add(1, Ordering::Relaxed);
            crate::trace::debug!("connection rejected: per-address limit", refusal = %refusal);
        } else {
            crate::trace::warn_limited!(
                "connection rejected: connection limit reached", refusal = %refusal
            );
        }
        drop(stream);
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The limiter that admits this listener's connections.
    pub fn limiter(&self) -> &ConnectionLimiter {
        &self.limiter
    }

    /// What the listener does while the global limit is reached.
    pub fn over_limit(&self) -> OverLimit {
        self.over_limit
    }

    /// The backlog passed to `listen`, when the listener was bound by a [`ListenerBuilder`]. The kernel caps it at
    /// its own maximum (`/proc/sys/net/core/somaxconn` on Linux).
    pub fn backlog(&self) -> Option<u32> {
        self.backlog
    }

    /// The listener inside.
    pub fn get_ref(&self) -> &TcpListener {
        &self.listener
    }

    /// Takes the listener back.
    pub fn into_inner(self) -> TcpListener {
        self.listener
    }

    /// A snapshot of the listener's counters.
    pub fn metrics(&self) -> ListenerMetrics {
        self.counters.snapshot()
    }
}

impl Counters {
    pub(super) fn snapshot(&self) -> ListenerMetrics {
        ListenerMetrics {
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            rejected_per_ip: self.rejected_per_ip.load(Ordering::Relaxed),
            skipped_errors: self.skipped_errors.load(Ordering::Relaxed),
            backoffs: self.backoffs.load(Ordering::Relaxed),
            pauses: self.pauses.load(Ordering::Relaxed),
        }
    }
}

/// Held while a paused `accept` that saw room is still accepting. If the call is cancelled there, the room it
/// saw is announced to another paused listener, which would otherwise sleep until the next release.
struct PassOnRoom<'a>(Option<&'a ConnectionLimiter>);

impl PassOnRoom<'_> {
    fn used(mut self) {
        self.0 = None;
    }
}

impl Drop for PassOnRoom<'_> {
    fn drop(&mut self) {
        if let Some(limiter) = self.0 {
            limiter.pass_on_room();
        }
    }
}

impl fmt::Debug for LimitedListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedListener")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("limiter", &self.limiter)
            .field("over_limit", &self.over_limit)
            .field("backlog", &self.backlog)
            .finish_non_exhaustive()
    }
}
