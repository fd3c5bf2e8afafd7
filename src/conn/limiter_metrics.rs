//! A snapshot of a connection limiter's counters.

/// Counters of a [`ConnectionLimiter`](super::ConnectionLimiter), from
/// [`metrics`](super::ConnectionLimiter::metrics).
///
/// # Examples
///
/// ```
/// let limiter = tidegate::conn::ConnectionLimiter::new(4);
/// limiter.set_per_ip_limit(Some(1));
/// let peer = "127.0.0.1:9".parse().unwrap();
/// let held = limiter.try_acquire(peer).unwrap();
/// assert!(limiter.try_acquire(peer).is_err());
/// let m = limiter.metrics();
/// assert_eq!((m.active, m.accepted, m.refused_per_ip, m.tracked_ips), (1, 1, 1, 1));
/// drop(held);
/// assert_eq!(limiter.metrics().tracked_ips, 0); // the address's entry is gone with its last connection
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LimiterMetrics {
    /// Live connections: permits granted and not yet dropped.
    pub active: usize,
    /// The highest `active` ever reached.
    pub peak: usize,
    /// Permits granted since the limiter was made.
    pub accepted: u64,
    /// Connections refused by the global limit.
    pub refused_global: u64,
    /// Connections refused by the per-address limit.
    pub refused_per_ip: u64,
    /// The global limit.
    pub limit: usize,
    /// The per-address limit, if set.
    pub per_ip_limit: Option<usize>,
    /// Addresses with at least one live connection counted per address (the size of the per-address map).
    pub tracked_ips: usize,
}
