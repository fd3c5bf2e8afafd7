//! What grew between two snapshots, largest growth first.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use super::labels::NAME_LABEL;
use super::{Family, Labels, MetricKind, Sample, Snapshot, PREFIX};

/// The series that changed between two [`Snapshot`]s, from [`Snapshot::diff`]: the "comparison view" of
/// heap-snapshot tools, for queues. [`grew`](Self::grew) lists the series whose value rose, largest growth
/// first; [`shrank`](Self::shrank) those that fell or vanished, largest drop first.
///
/// # Reading it
///
/// * A **gauge** that grew holds more now (bytes queued, buffers outstanding, members): growth is
///   *accumulation*. A queue that grows across many diffs while the traffic is steady is the leak suspect.
/// * A **counter** that grew counted events in between (frames, refusals, evictions): its growth divided by
///   [`elapsed`](Self::elapsed) is a *rate* ([`Change::per_second`]). A counter that shrank belongs to a part that
///   was dropped and registered again under the same name.
/// * A series that did not exist in the earlier snapshot counts from 0 (its `before` is `None`); one that is gone
///   from the later snapshot (its part was dropped) counts to 0 and is listed under `shrank` (its `after` is
///   `None`).
/// * Growth is ranked by its raw value across all families, so a byte gauge usually outranks a count; use
///   [`retain`](Self::retain) to compare like with like. Ties are broken by family name, then labels, so the same
///   two snapshots always give the same order. Series whose value is NaN in either snapshot are left out.
///
/// The [`Display`](fmt::Display) form is a table, largest first; [`top`](Self::top) keeps it short.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::Registry;
/// use tidegate::MemoryBudget;
///
/// let registry = Registry::new();
/// let (quiet, busy) = (MemoryBudget::new(1 << 20), MemoryBudget::new(1 << 20));
/// registry.register("quiet", &quiet)?;
/// registry.register("busy", &busy)?;
/// let earlier = registry.snapshot();
/// let _a = quiet.try_reserve(10).unwrap();
/// let _b = busy.try_reserve(5000).unwrap();
/// let diff = registry.snapshot().diff(&earlier).retain(|c| c.family.name() == "budget_used_bytes");
/// assert_eq!(diff.grew()[0].name(), Some("busy"));
/// assert_eq!(diff.grew()[1].name(), Some("quiet"));
/// println!("{}", diff.top(10));
/// # Ok::<(), tidegate::metrics::RegistryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Diff {
    elapsed: Duration,
    grew: Vec<Change>,
    shrank: Vec<Change>,
    /// How many changes [`top`](Self::top) and [`retain`](Self::retain) left out, in `grew` and `shrank`.
    left_out: (usize, usize),
}

/// One series that changed between two snapshots, in a [`Diff`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Change {
    /// The family: name (without the `tidegate_` prefix), help and kind.
    pub family: &'static Family,
    /// The series' labels, including the part's `name`.
    pub labels: Labels,
    /// The earlier value, or `None` if the series did not exist then.
    pub before: Option<f64>,
    /// The later value, or `None` if the series is gone.
    pub after: Option<f64>,
    /// `after - before`, a missing value counting as 0: positive in [`Diff::grew`], negative in
    /// [`Diff::shrank`].
    pub delta: f64,
}

impl Change {
    /// The name the part was registered under (its `name` label).
    pub fn name(&self) -> Option<&str> {
        self.labels.get(NAME_LABEL)
    }

    /// `delta` per second over `elapsed`: the rate of a counter. `None` if `elapsed` is zero.
    pub fn per_second(&self, elapsed: Duration) -> Option<f64> {
        let secs = elapsed.as_secs_f64();
        (secs > 0.0).then(|| self.delta / secs)
    }

    fn from_pair(earlier: Option<&Sample>, later: Option<&Sample>) -> Option<Change> {
        let sample = later.or(earlier)?;
        let (before, after) = (earlier.map(|s| s.value), later.map(|s| s.value));
        let delta = after.unwrap_or(0.0) - before.unwrap_or(0.0);
        if delta.is_nan() || delta == 0.0 {
            return None;
        }
        Some(Change {
            family: sample.family,
            labels: sample.labels.clone(),
            before,
            after,
            delta,
        })
    }

    /// Family name, then labels: the tie-break.
    fn key_cmp(&self, other: &Change) -> Ordering {
        (self.family.name(), &self.labels).cmp(&(other.family.name(), &other.labels))
    }
}

impl Diff {
    /// Pairs the series of two snapshots, both sorted by family name then labels, in one merge pass.
    pub(super) fn between(earlier: &Snapshot, later: &Snapshot) -> Diff {
        let (old, new) = (earlier.samples(), later.samples());
        let (mut i, mut j) = (0, 0);
        let mut changes = Vec::new();
        while i < old.len() || j < new.len() {
            let order = match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) => key(a).cmp(&key(b)),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let (a, b) = match order {
                Ordering::Less => (old.get(i), None),
                Ordering::Greater => (None, new.get(j)),
                Ordering::Equal => (old.get(i), new.get(j)),
            };
            i += usize::from(a.is_some());
            j += usize::from(b.is_some());
            changes.extend(Change::from_pair(a, b));
        }
        let (mut grew, mut shrank): (Vec<Change>, Vec<Change>) =
            changes.into_iter().partition(|c| c.delta > 0.0);
        grew.sort_by(|a, b| b.delta.total_cmp(&a.delta).then_with(|| a.key_cmp(b)));
        shrank.sort_by(|a, b| a.delta.total_cmp(&b.delta).then_with(|| a.key_cmp(b)));
        Diff {
            elapsed: later.instant().saturating_duration_since(earlier.instant()),
            grew,
            shrank,
            left_out: (0, 0),
        }
    }

    /// The time between the two snapshots.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The series whose value rose, largest growth first.
    pub fn grew(&self) -> &[Change] {
        &self.grew
    }

    /// The series whose value fell or that vanished, largest drop first.
    pub fn shrank(&self) -> &[Change] {
        &self.shrank
    }

    /// Nothing changed (or everything was left out).
    pub fn is_empty(&self) -> bool {
        self.grew.is_empty() && self.shrank.is_empty()
    }

    /// Keeps the `n` largest growths and the `n` largest drops; the table says how many were left out.
    #[must_use = "top returns the shortened diff"]
    pub fn top(mut self, n: usize) -> Diff {
        self.left_out.0 += self.grew.len().saturating_sub(n);
        self.left_out.1 += self.shrank.len().saturating_sub(n);
        self.grew.truncate(n);
        self.shrank.truncate(n);
        self
    }

    /// Keeps only the changes `keep` accepts (one family, only byte gauges, one listener's parts ...), in order.
    #[must_use = "retain returns the filtered diff"]
    pub fn retain(mut self, mut keep: impl FnMut(&Change) -> bool) -> Diff {
        let (grew, shrank) = (self.grew.len(), self.shrank.len());
        self.grew.retain(&mut keep);
        self.shrank.retain(&mut keep);
        self.left_out.0 += grew - self.grew.len();
        self.left_out.1 += shrank - self.shrank.len();
        self
    }

    fn table(
        &self,
        f: &mut fmt::Formatter<'_>,
        title: &str,
        changes: &[Change],
        left_out: usize,
    ) -> fmt::Result {
        writeln!(
            f,
            "{title}: {} series{}",
            changes.len(),
            if left_out > 0 {
                format!(" ({left_out} more left out)")
            } else {
                String::new()
            }
        )?;
        if changes.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "{:>14} {:>14} {:>14} {:>12}  series",
            "change", "before", "after", "per second"
        )?;
        for change in changes {
            let rate = match (change.family.kind(), change.per_second(self.elapsed)) {
                (MetricKind::Counter, Some(rate)) => format!("{rate:.3}"),
                _ => "-".to_owned(),
            };
            writeln!(
                f,
                "{:>+14} {:>14} {:>14} {:>12}  {}",
                change.delta,
                value_or(change.before, "new"),
                value_or(change.after, "gone"),
                rate,
                SeriesName(change),
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Diff {
    /// Two tables, "grew" then "shrank", each largest first: change, before, after, the rate per second for
    /// counters, and the series as the exposition names it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "changes over {:.3}s", self.elapsed.as_secs_f64())?;
        self.table(f, "grew", &self.grew, self.left_out.0)?;
        self.table(f, "shrank or vanished", &self.shrank, self.left_out.1)
    }
}

fn key(sample: &Sample) -> (&str, &Labels) {
    (sample.family.name(), &sample.labels)
}

fn value_or(value: Option<f64>, missing: &str) -> String {
    value.map_or_else(|| missing.to_owned(), |v| v.to_string())
}

/// `tidegate_family{key="value",...}`, as a query would name the series.
struct SeriesName<'a>(&'a Change);

impl fmt::Display for SeriesName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.0.family.name())?;
        if self.0.labels.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (key, value)) in self.0.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{key}={value:?}")?;
        }
        f.write_str("}")
    }
}
