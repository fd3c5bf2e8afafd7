//! The low, high and hard marks of a watermark queue.

use super::LimitsError;

/// The default low mark: 32 KiB.
pub const DEFAULT_LOW: usize = 32 * 1024;
/// The default high mark: 64 KiB.
pub const DEFAULT_HIGH: usize = 64 * 1024;
/// The default hard cap: 256 KiB.
pub const DEFAULT_HARD: usize = 256 * 1024;

/// The three marks of a watermark queue, in bytes of queued [`Weight`](super::Weight).
///
/// * above `high` the queue turns *unwritable*: [`Sender::send`](super::Sender::send) waits and
///   [`Sender::is_writable`](super::Sender::is_writable) is `false`;
/// * it turns writable again only when it has drained to `low` or below (hysteresis, so a queue hovering around
///   one mark does not flip on every item);
/// * an item that would take the queue over `hard` is refused and handed back, whatever the writability.
///
/// The defaults are Netty's proven 32 KiB / 64 KiB marks: 64 KiB is about one Linux TCP send buffer, so a healthy
/// peer keeps the queue writable while a stalled one is noticed after one buffer's worth. The hard cap of 256 KiB
/// (4 x high) leaves room for bursts from producers that use [`try_send`](super::Sender::try_send) without checking
/// writability, while bounding 10 000 stalled connections to 2.5 GiB; use a
/// [`MemoryBudget`](crate::budget::MemoryBudget) for a process-wide bound.
///
/// # Examples
///
/// ```
/// use tidegate::watermark::Limits;
///
/// let limits = Limits::new(16 * 1024, 64 * 1024, 1 << 20);
/// assert_eq!(limits.high(), 64 * 1024);
/// assert_eq!(Limits::default().hard(), 256 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub(super) low: usize,
    pub(super) high: usize,
    pub(super) hard: usize,
}

impl Limits {
    /// Creates marks with `low <= high <= hard`.
    ///
    /// # Panics
    ///
    /// If the marks are not ordered, or `hard` does not fit in `usize::MAX / 2` (the top bit of the queue's state
    /// word holds the writability). [`try_new`](Self::try_new) returns the reason instead, for marks that come from
    /// a configuration file.
    #[track_caller]
    pub fn new(low: usize, high: usize, hard: usize) -> Self {
        match Self::try_new(low, high, hard) {
            Ok(limits) => limits,
            Err(err) => panic!("{err}"),
        }
    }

    /// Creates marks with `low <= high <= hard`, or says why they cannot describe a queue.
    ///
    /// # Errors
    ///
    /// [`LimitsError::Unordered`] if the marks are not ordered, [`LimitsError::HardTooLarge`] if `hard` is over
    /// `usize::MAX / 2`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::watermark::Limits;
    ///
    /// assert_eq!(Limits::try_new(16, 32, 64)?.high(), 32);
    /// assert!(Limits::try_new(16, 32, 8).is_err());
    /// # Ok::<(), tidegate::watermark::LimitsError>(())
    /// ```
    pub fn try_new(low: usize, high: usize, hard: usize) -> Result<Self, LimitsError> {
        if !(low <= high && high <= hard) {
            return Err(LimitsError::Unordered { low, high, hard });
        }
        let max = usize::MAX / 2;
        if hard > max {
            return Err(LimitsError::HardTooLarge { hard, max });
        }
        Ok(Limits { low, high, hard })
    }

    /// The low mark: an unwritable queue turns writable at or below it.
    pub fn low(&self) -> usize {
        self.low
    }

    /// The high mark: the queue turns unwritable above it.
    pub fn high(&self) -> usize {
        self.high
    }

    /// The hard cap: the queue never holds more.
    pub fn hard(&self) -> usize {
        self.hard
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(DEFAULT_LOW, DEFAULT_HIGH, DEFAULT_HARD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "low <= high <= hard")]
    fn unordered_marks_panic() {
        let _ = Limits::new(10, 5, 20);
    }
}
