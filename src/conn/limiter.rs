//! The live-connection limit: one global count and an optional count per peer address.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::Notify;

use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::loom::{Arc, Mutex};

use super::limit_error::LimitError;
use super::limiter_metrics::LimiterMetrics;
use super::permit::ConnectionPermit;

/// `per_ip_limit` when no per-address limit is set. `Some(usize::MAX)` is stored as `usize::MAX - 1`, which no
/// map entry can reach.
const NO_PER_IP_LIMIT: usize = usize::MAX;

/// A limit on live connections, with an optional limit per peer IP address.
///
/// [`try_acquire`](Self::try_acquire) admits a connection and returns a [`ConnectionPermit`]; the slot is taken
/// until the permit is dropped. Keep the permit next to the socket, so the connection counts from `accept` until its
/// socket is closed, whatever state it is in (a half-closed or stalled peer still holds its slot).
///
/// The handle is cheap to clone; clones share one count. Limits change live with [`set_limit`](Self::set_limit)
/// and [`set_per_ip_limit`](Self::set_per_ip_limit): lowering a limit never cuts a connection, it refuses new ones
/// until the count is under the new limit.
///
/// # Cost
///
/// Without a per-address limit, admitting a connection is one compare-and-swap on the global count (plus two counter
/// increments), and a release is one subtraction and one compare-and-swap to wake a paused listener. With a
/// per-address limit, both also lock a map from address to count, whose entries are removed when their count
/// returns to zero: the map never holds more entries than there are live connections.
///
/// # Per-address counting
///
/// Connections are counted per address only while a per-address limit is set. Connections admitted while it was
/// `None` are not attributed to their address, so setting a per-address limit live applies to the connections
/// admitted from then on. Addresses are compared as given, except that IPv4-mapped IPv6 addresses (from a
/// dual-stack listener) count as their IPv4 address. An IPv6 peer usually controls a whole /64: a per-address
/// limit bounds one address, not one host.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use tidegate::conn::{ConnectionLimiter, LimitError};
///
/// let limiter = ConnectionLimiter::new(100);
/// limiter.set_per_ip_limit(Some(2));
/// let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
/// let b: SocketAddr = "192.0.2.2:5000".parse().unwrap();
///
/// let first = limiter.try_acquire(a).unwrap();
/// let _second = limiter.try_acquire(a).unwrap();
/// assert!(matches!(limiter.try_acquire(a), Err(LimitError::PerIp { active: 2, limit: 2, .. })));
/// let _other = limiter.try_acquire(b).unwrap(); // another address still gets in
///
/// drop(first); // frees a's slot
/// let _again = limiter.try_acquire(a).unwrap();
/// assert_eq!(limiter.metrics().active, 3);
/// ```
#[derive(Clone)]
pub struct ConnectionLimiter {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    active: AtomicUsize,
    limit: AtomicUsize,
    per_ip_limit: AtomicUsize,
    /// Live connections per address, for permits taken while a per-address limit was set. No zero entries.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    peak: AtomicUsize,
    accepted: AtomicU64,
    refused_global: AtomicU64,
    refused_per_ip: AtomicU64,
    /// Woken when a slot frees or a limit rises, for listeners that pause while the limiter is full.
    room: Notify,
    /// Serialises limit changes, and the readers that read both limits together (`limits`, `metrics`), so that
    /// those never pair an old limit with a new one. `try_acquire` does not take it.
    limits: Mutex<()>,
}

impl ConnectionLimiter {
    /// A limiter admitting at most `limit` live connections, with no per-address limit.
    ///
    /// A limit of zero refuses every connection until it is raised.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = tidegate::conn::ConnectionLimiter::new(1024);
    /// assert_eq!((limiter.limit(), limiter.per_ip_limit()), (1024, None));
    /// ```
    pub fn new(limit: usize) -> Self {
        ConnectionLimiter {
            shared: Arc::new(Shared {
                active: AtomicUsize::new(0),
                limit: AtomicUsize::new(limit),
                per_ip_limit: AtomicUsize::new(NO_PER_IP_LIMIT),
                per_ip: Mutex::new(HashMap::new()),
                peak: AtomicUsize::new(0),
                accepted: AtomicU64::new(0),
                refused_global: AtomicU64::new(0),
                refused_per_ip: AtomicU64::new(0),
                room: Notify::new(),
                limits: Mutex::new(()),
            }),
        }
    }

    /// Admits a connection from `peer` if both limits allow it. The returned permit holds the slot until dropped.
    ///
    /// # Errors
    ///
    /// [`LimitError::Global`] when `limit` connections are live, [`LimitError::PerIp`] when a per-address limit is
    /// set and `peer`'s address has that many live connections. Nothing is taken on error, and the refusal is
    /// counted in [`metrics`](Self::metrics).
    pub fn try_acquire(&self, peer: SocketAddr) -> Result<ConnectionPermit, LimitError> {
        let shared = &self.shared;
        let per_ip_limit = shared.per_ip_limit.load(Ordering::Acquire);
        if per_ip_limit == NO_PER_IP_LIMIT {
            shared.take_slot()?;
            return Ok(ConnectionPermit::new(Arc::clone(shared), peer, false));
        }
        // A full server refuses without taking the lock, and reports the global limit rather than the address's.
        let (active, limit) = shared.counts();
        if active >= limit {
            return Err(shared.refuse_global(active, limit));
        }
        let ip = peer.ip().to_canonical();
        let mut per_ip = shared.per_ip.lock();
        // Per-address counts change only under this lock, so checking before taking the global slot needs no undo.
        let from_ip = per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= per_ip_limit {
            shared.refused_per_ip.fetch_add(1, Ordering::Relaxed);
            return Err(LimitError::PerIp {
                ip,
                active: from_ip,
                limit: per_ip_limit,
            });
        }
        shared.take_slot()?;
        per_ip.insert(ip, from_ip + 1);
        drop(per_ip);
        Ok(ConnectionPermit::new(Arc::clone(shared), peer, true))
    }

    /// Sets the global limit. Lowering it cuts no connection: new ones are refused until fewer than `limit` are live.
    /// Raising it wakes listeners paused on this limiter.
    pub fn set_limit(&self, limit: usize) {
        let _serial = self.shared.limits.lock();
        self.shared.store_limit(limit);
    }

    /// Sets (`Some`) or removes (`None`) the limit on live connections per peer IP address.
    ///
    /// Lowering it cuts no connection. See the [type docs](Self#per-address-counting) for which connections a
    /// newly set limit counts.
    pub fn set_per_ip_limit(&self, limit: Option<usize>) {
        let _serial = self.shared.limits.lock();
        self.shared.store_per_ip_limit(limit);
    }

    /// Sets both limits in one step: [`limits`](Self::limits) and [`metrics`](Self::metrics) see the old pair or
    /// the new one, never a mix. An admission racing with the change reads each limit once, and may be judged by
    /// one old and one new limit; every admission after this returns is judged by the new pair.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = tidegate::conn::ConnectionLimiter::new(100);
    /// limiter.set_limits(10, Some(2));
    /// assert_eq!(limiter.limits(), (10, Some(2)));
    /// ```
    pub fn set_limits(&self, limit: usize, per_ip_limit: Option<usize>) {
        let _serial = self.shared.limits.lock();
        self.shared.store_per_ip_limit(per_ip_limit);
        self.shared.store_limit(limit);
    }

    /// The global and the per-address limit, read together (see [`set_limits`](Self::set_limits)).
    pub fn limits(&self) -> (usize, Option<usize>) {
        let _serial = self.shared.limits.lock();
        (self.limit(), self.per_ip_limit())
    }

    /// The global limit.
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Acquire)
    }

    /// The per-address limit, if one is set.
    pub fn per_ip_limit(&self) -> Option<usize> {
        match self.shared.per_ip_limit.load(Ordering::Acquire) {
            NO_PER_IP_LIMIT => None,
            n => Some(n),
        }
    }

    /// Live connections (permits not yet dropped).
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// A snapshot of the counters. Counts are read one after another, so under load they can disagree by a
    /// connection or two; after a workload they settle. The two limits are read together (see
    /// [`set_limits`](Self::set_limits)).
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = tidegate::conn::ConnectionLimiter::new(1);
    /// let peer = "127.0.0.1:9".parse().unwrap();
    /// let permit = limiter.try_acquire(peer).unwrap();
    /// assert!(limiter.try_acquire(peer).is_err());
    /// drop(permit);
    /// let m = limiter.metrics();
    /// assert_eq!((m.active, m.peak, m.accepted, m.refused_global), (0, 1, 1, 1));
    /// ```
    pub fn metrics(&self) -> LimiterMetrics {
        let s = &self.shared;
        let (limit, per_ip_limit) = self.limits();
        LimiterMetrics {
            active: s.active.load(Ordering::Acquire),
            peak: s.peak.load(Ordering::Acquire),
            accepted: s.accepted.load(Ordering::Relaxed),
            refused_global: s.refused_global.load(Ordering::Relaxed),
            refused_per_ip: s.refused_per_ip.load(Ordering::Relaxed),
            limit,
            per_ip_limit,
            tracked_ips: s.per_ip.lock().len(),
        }
    }

    /// Waits until the global count is under the limit, calling `on_pause` once if it has to wait. Takes nothing:
    /// another user of the limiter may take the room first.
    ///
    /// Cancel safe: a wake-up consumed by a dropped call is passed on by [`Notify`].
    pub(super) async fn wait_for_room(&self, on_pause: impl FnOnce()) {
        let mut on_pause = Some(on_pause);
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a release between the check and the await still wakes us.
            notified.as_mut().enable();
            let (active, limit) = self.shared.counts();
            if active < limit {
                return;
            }
            if let Some(on_pause) = on_pause.take() {
                on_pause();
            }
            notified.await;
        }
    }

    /// Wakes one paused listener: a caller that saw room but will not use it passes the news on.
    pub(super) fn pass_on_room(&self) {
        self.shared.room.notify_one();
    }
}

impl Shared {
    fn store_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Release);
        self.room.notify_waiters();
    }

    fn store_per_ip_limit(&self, limit: Option<usize>) {
        let stored = match limit {
            None => NO_PER_IP_LIMIT,
            Some(n) => n.min(NO_PER_IP_LIMIT - 1),
        };
        self.per_ip_limit.store(stored, Ordering::Release);
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.active.load(Ordering::Acquire),
            self.limit.load(Ordering::Acquire),
        )
    }

    fn take_slot(&self) -> Result<(), LimitError> {
        let mut active = self.active.load(Ordering::Acquire);
        loop {
            let limit = self.limit.load(Ordering::Acquire);
            if active >= limit {
                return Err(self.refuse_global(active, limit));
            }
            match self.active.compare_exchange_weak(
                active,
                active + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => active = now,
            }
        }
        self.peak.fetch_max(active + 1, Ordering::AcqRel);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn refuse_global(&self, active: usize, limit: usize) -> LimitError {
        self.refused_global.fetch_add(1, Ordering::Relaxed);
        LimitError::Global { active, limit }
    }

    /// Frees one slot (and the address's count, if the permit was counted there), then wakes a paused listener.
    pub(super) fn release(&self, ip: IpAddr, counted_per_ip: bool) {
        if counted_per_ip {
            let mut per_ip = self.per_ip.lock();
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.room.notify_one();
    }
}

impl fmt::Debug for ConnectionLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionLimiter")
            .field("active", &self.active())
            .field("limit", &self.limit())
            .field("per_ip_limit", &self.per_ip_limit())
            .finish_non_exhaustive()
    }
}
