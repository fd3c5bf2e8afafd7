//! A registry's series at one moment, kept as plain data to compare with a later one.

use tokio::time::Instant;

use super::labels::NAME_LABEL;
use super::{Diff, Registry, Sample};

/// Every series of a [`Registry`] at one moment, sorted by family name, then labels: what
/// [`Registry::collect`] returned, with the time it was taken.
///
/// A snapshot owns plain data (no part is kept alive or read again), so it is cheap to keep one around and
/// [`diff`](Self::diff) a later one against it: the "comparison view" of heap-snapshot tools, for queues.
///
/// The time comes from [`tokio::time::Instant`], which is the system's monotonic clock except under tokio's
/// paused test clock, where it is the paused clock.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::Registry;
/// use tidegate::MemoryBudget;
///
/// let registry = Registry::new();
/// let budget = MemoryBudget::new(1 << 20);
/// registry.register("uploads", &budget)?;
/// let before = registry.snapshot();
/// let _held = budget.try_reserve(4096).unwrap();
/// let after = registry.snapshot();
/// assert_eq!(before.get("budget_used_bytes", "uploads"), Some(0.0));
/// assert_eq!(after.get("budget_used_bytes", "uploads"), Some(4096.0));
/// let diff = after.diff(&before);
/// let grew = &diff.grew()[1]; // after budget_peak_bytes, which grew as much
/// assert_eq!((grew.name(), grew.family.name(), grew.delta), (Some("uploads"), "budget_used_bytes", 4096.0));
/// # Ok::<(), tidegate::metrics::RegistryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Snapshot {
    taken_at: Instant,
    samples: Vec<Sample>,
}

impl Snapshot {
    /// When the snapshot was taken (after its series were collected).
    pub fn taken_at(&self) -> std::time::Instant {
        self.taken_at.into_std()
    }

    /// The series, sorted by family name, then labels, then value.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The value of the first series (in sorted order) of the family named `family` (without the `tidegate_`
    /// prefix) whose part is registered as `name`. A part that reports several series of one family (one per
    /// size class, say) has them all in [`samples`](Self::samples).
    pub fn get(&self, family: &str, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.family.name() == family && s.labels.get(NAME_LABEL) == Some(name))
            .map(|s| s.value)
    }

    /// How many series.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// No series at all.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// What changed since `earlier`, the older snapshot: see [`Diff`]. (Given a newer one, the changes come out
    /// reversed and the elapsed time as zero.)
    pub fn diff(&self, earlier: &Snapshot) -> Diff {
        Diff::between(earlier, self)
    }

    pub(super) fn instant(&self) -> Instant {
        self.taken_at
    }
}

impl Registry {
    /// Collects every series of every live part, as [`collect`](Self::collect) does, into a [`Snapshot`] to keep
    /// and compare with a later one.
    ///
    /// # Examples
    ///
    /// ```
    /// let registry = tidegate::metrics::Registry::new();
    /// let budget = tidegate::MemoryBudget::new(100);
    /// registry.register("b", &budget)?;
    /// assert_eq!(registry.snapshot().get("budget_limit_bytes", "b"), Some(100.0));
    /// # Ok::<(), tidegate::metrics::RegistryError>(())
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        let samples = self.collect();
        Snapshot {
            taken_at: Instant::now(),
            samples,
        }
    }
}
