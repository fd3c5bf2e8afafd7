/// Counters of one size class, from [`BufPool::metrics`](super::BufPool::metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassMetrics {
    /// The capacity of every buffer in this class.
    pub capacity: usize,
    /// Buffers handed out.
    pub acquired: u64,
    /// Buffers whose storage came back (dropped, or the last `Bytes` of a frozen one dropped).
    pub returned: u64,
    /// Buffers handed out and not yet back.
    pub outstanding_buffers: u64,
    /// `outstanding_buffers * capacity`.
    pub outstanding_bytes: usize,
    /// Idle buffers kept for reuse.
    pub retained_buffers: usize,
    /// `retained_buffers * capacity`.
    pub retained_bytes: usize,
    /// Acquisitions served from idle storage.
    pub hits: u64,
    /// Acquisitions that had to allocate.
    pub misses: u64,
    /// The most buffers of this class seen outstanding at once. Sampled, not tracked per acquire (that would put
    /// a shared counter on the fast path): updated at every allocation and every snapshot, so growth served from
    /// idle storage between two samples is not seen. Use a budget's `peak` for an exact high-water mark in bytes.
    pub peak_outstanding_buffers: u64,
}

/// Pool-wide counters, from [`BufPool::metrics`](super::BufPool::metrics). Unpooled buffers (larger than the
/// largest class) are included in the acquired, returned and outstanding figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolTotals {
    /// Buffers handed out.
    pub acquired: u64,
    /// Buffers whose storage came back.
    pub returned: u64,
    /// Buffers handed out and not yet back.
    pub outstanding_buffers: u64,
    /// Capacity of the outstanding buffers, in bytes.
    pub outstanding_bytes: usize,
    /// The most bytes seen outstanding at once, sampled at every allocation and every snapshot. Growth served from
    /// idle storage between two samples is not seen; a budget's `peak` is exact.
    pub peak_outstanding_bytes: usize,
    /// Idle bytes kept for reuse.
    pub retained_bytes: usize,
    /// The current cap on `retained_bytes`.
    pub max_retained_bytes: usize,
    /// Acquisitions served from idle storage.
    pub hits: u64,
    /// Pooled acquisitions that had to allocate.
    pub misses: u64,
    /// Acquisitions larger than the largest class, allocated and freed outside the pool.
    pub unpooled: u64,
    /// Acquisitions refused by the memory budget.
    pub refused: u64,
}

/// A snapshot of a pool's counters: one entry per size class, smallest first, and the totals.
///
/// # Examples
///
/// ```
/// let pool = tidegate::BufPool::new();
/// drop(pool.try_acquire(100).unwrap());
/// let m = pool.metrics();
/// assert_eq!(m.classes[0].capacity, 512);
/// assert_eq!((m.classes[0].acquired, m.classes[0].returned), (1, 1));
/// assert_eq!(m.total.outstanding_buffers, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolMetrics {
    /// Per size class, smallest first.
    pub classes: Vec<ClassMetrics>,
    /// The whole pool.
    pub total: PoolTotals,
}
