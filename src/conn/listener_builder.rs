//! Binding a limited listener with a long backlog.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, ToSocketAddrs};

use super::limiter::ConnectionLimiter;
use super::listener::LimitedListener;
use super::over_limit::OverLimit;

/// The backlog used when the system's maximum cannot be read.
const FALLBACK_BACKLOG: u32 = 4096;

/// Binds a [`LimitedListener`], from [`LimitedListener::builder`].
///
/// Defaults: the longest backlog the system allows, a [`ConnectionLimiter`] of
/// [`DEFAULT_MAX_CONNECTIONS`](Self::DEFAULT_MAX_CONNECTIONS), [`OverLimit::Pause`], `SO_REUSEADDR` on.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tidegate::conn::{ConnectionLimiter, LimitedListener, OverLimit};
///
/// let limiter = ConnectionLimiter::new(5_000);
/// limiter.set_per_ip_limit(Some(50));
/// let listener = LimitedListener::builder()
///     .limiter(limiter)
///     .over_limit(OverLimit::Reject)
///     .bind("127.0.0.1:0")
///     .await?;
/// assert_eq!(listener.limiter().per_ip_limit(), Some(50));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ListenerBuilder {
    backlog: Option<u32>,
    limiter: Option<ConnectionLimiter>,
    over_limit: OverLimit,
    reuse_address: bool,
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListenerBuilder {
    /// The global limit of the limiter made when none is given: the usual default soft limit on open files, so
    /// that a listener without an explicit limit stops before the process runs out of descriptors.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

    /// A builder with the defaults.
    pub fn new() -> Self {
        ListenerBuilder {
            backlog: None,
            limiter: None,
            over_limit: OverLimit::default(),
            reuse_address: true,
        }
    }

    /// The backlog passed to `listen`: how many connections the kernel completes and queues before the listener
    /// accepts them. `None` (the default) asks for the system's maximum, read from `/proc/sys/net/core/somaxconn`
    /// (4096 where it cannot be read). The kernel caps any value at that maximum.
    ///
    /// A long backlog is what lets [`OverLimit::Pause`] absorb a burst: `TcpListener::bind` uses 128, and a
    /// burst of 4,000 connects against it overflowed it about 3,000 times (each overflow costs the client a
    /// handshake retransmission, a second or more).
    pub fn backlog(&mut self, backlog: Option<u32>) -> &mut Self {
        self.backlog = backlog;
        self
    }

    /// The limiter that admits connections. Default: a new [`ConnectionLimiter`] of
    /// [`DEFAULT_MAX_CONNECTIONS`](Self::DEFAULT_MAX_CONNECTIONS) with no per-address limit. A clone of a limiter
    /// shared with other listeners makes them share one count.
    pub fn limiter(&mut self, limiter: ConnectionLimiter) -> &mut Self {
        self.limiter = Some(limiter);
        self
    }

    /// What the listener does while the global limit is reached. Default: [`OverLimit::Pause`].
    pub fn over_limit(&mut self, over_limit: OverLimit) -> &mut Self {
        self.over_limit = over_limit;
        self
    }

    /// Whether to set `SO_REUSEADDR`, which lets a restarted server bind its port while connections of the previous
    /// one are in `TIME_WAIT`. Default: `true`. Unix only: on other systems the option means something else
    /// (another socket may take the port) and is never set.
    pub fn reuse_address(&mut self, reuse: bool) -> &mut Self {
        self.reuse_address = reuse;
        self
    }

    /// Resolves `addr` and binds to the first address that works, as [`TcpListener::bind`] does.
    ///
    /// # Errors
    ///
    /// Resolution, socket, bind and listen errors; for several addresses, the last one's.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped call closes any socket it opened.
    pub async fn bind(&self, addr: impl ToSocketAddrs) -> io::Result<LimitedListener> {
        let mut last_err = None;
        for addr in tokio::net::lookup_host(addr).await? {
            match self.bind_addr(addr) {
                Ok(listener) => return Ok(listener),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any address",
            )
        }))
    }

    fn bind_addr(&self, addr: SocketAddr) -> io::Result<LimitedListener> {
        let backlog = self.backlog.unwrap_or_else(system_max_backlog);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        #[cfg(unix)]
        if self.reuse_address {
            socket.set_reuse_address(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        let listener = TcpListener::from_std(socket.into())?;
        let limiter = self
            .limiter
            .clone()
            .unwrap_or_else(|| ConnectionLimiter::new(Self::DEFAULT_MAX_CONNECTIONS));
        Ok(LimitedListener::new(
            listener,
            limiter,
            self.over_limit,
            Some(backlog),
        ))
    }
}

/// The kernel's cap on `listen` backlogs.
fn system_max_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(FALLBACK_BACKLOG)
}
