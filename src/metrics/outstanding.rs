//! What one part holds for a leak report: totals, and where its tracked items were acquired.

use std::collections::BTreeMap;
use std::panic::Location;
use std::time::Duration;

/// The memory one part holds right now, as its [`Observer::leaks`](super::Observer::leaks) reports it for a
/// [`LeakReport`](super::LeakReport).
///
/// The totals (`bytes`, `items`) cover everything the part holds, tracked or not. Where the part records
/// acquisitions (a pool's or a budget's [`LeakTracking`](crate::buf::LeakTracking)), `oldest` and `sites` say
/// for how long and from where; with tracking off they are empty and the totals are all there is.
///
/// # Examples
///
/// ```
/// use std::panic::Location;
/// use std::time::Duration;
/// use tidegate::metrics::Outstanding;
///
/// let here = Location::caller();
/// let held = Outstanding::new(300).with_items(3).with_tracked(
///     Duration::from_secs(60),
///     [(here, 100, Duration::from_secs(90)), (here, 100, Duration::from_secs(5)), (here, 100, Duration::from_secs(70))],
/// );
/// assert_eq!(held.oldest, Some(Duration::from_secs(90)));
/// // Only the two items held for a minute or more are listed under their site.
/// assert_eq!((held.sites[0].items, held.sites[0].bytes), (2, 200));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outstanding {
    /// Bytes the part holds now, tracked or not.
    pub bytes: u64,
    /// Items (buffers, reservations) the part holds now, when it counts them.
    pub items: Option<u64>,
    /// Whether the part records where and when its items were acquired.
    pub tracking: bool,
    /// The age of the oldest tracked item, whatever its age; `None` when nothing tracked is outstanding.
    pub oldest: Option<Duration>,
    /// The tracked items held at least as long as the report asked for, grouped by acquisition site: the site
    /// holding the oldest item first, ties by bytes (most first) then by file, line and column.
    pub sites: Vec<LeakSite>,
}

/// Tracked items acquired at one place in the code and still outstanding, from an [`Outstanding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeakSite {
    /// The call that acquired them (`#[track_caller]`: the caller of `try_reserve`, `try_acquire`, ...).
    pub location: &'static Location<'static>,
    /// How many.
    pub items: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The age of the oldest of them.
    pub oldest: Duration,
}

impl Outstanding {
    /// `bytes` held, no item count, nothing tracked.
    pub fn new(bytes: u64) -> Self {
        Outstanding {
            bytes,
            items: None,
            tracking: false,
            oldest: None,
            sites: Vec::new(),
        }
    }

    /// Sets the number of items held.
    pub fn with_items(mut self, items: u64) -> Self {
        self.items = Some(items);
        self
    }

    /// Marks the part as tracking and adds its tracked items, each as (acquisition site, bytes, age): all of them
    /// count for [`oldest`](Self::oldest); those at least `older_than` old are grouped into
    /// [`sites`](Self::sites).
    pub fn with_tracked(
        mut self,
        older_than: Duration,
        tracked: impl IntoIterator<Item = (&'static Location<'static>, u64, Duration)>,
    ) -> Self {
        self.tracking = true;
        // Keyed by (file, line, column) rather than by address, so that the grouping and order never depend on
        // where the linker put the `Location`s.
        let mut sites: BTreeMap<(&str, u32, u32), LeakSite> = BTreeMap::new();
        for site in self.sites.drain(..) {
            sites.insert(key(site.location), site);
        }
        for (location, bytes, age) in tracked {
            self.oldest = Some(self.oldest.map_or(age, |oldest| oldest.max(age)));
            if age < older_than {
                continue;
            }
            let site = sites.entry(key(location)).or_insert(LeakSite {
                location,
                items: 0,
                bytes: 0,
                oldest: age,
            });
            site.items += 1;
            site.bytes += bytes;
            site.oldest = site.oldest.max(age);
        }
        // Stable sort over the key order: equal ages and bytes stay in file/line/column order.
        self.sites = sites.into_values().collect();
        self.sites
            .sort_by(|a, b| b.oldest.cmp(&a.oldest).then(b.bytes.cmp(&a.bytes)));
        self
    }
}

fn key(location: &'static Location<'static>) -> (&'static str, u32, u32) {
    (location.file(), location.line(), location.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn site() -> &'static Location<'static> {
        Location::caller()
    }

    #[test]
    fn sites_group_by_place_and_sort_by_age_then_bytes() {
        let a = site();
        let b = site();
        let c = site();
        let secs = Duration::from_secs;
        let held = Outstanding::new(0).with_tracked(
            secs(10),
            [
                (c, 1, secs(50)),
                (a, 5, secs(20)),
                (b, 7, secs(50)),
                (a, 5, secs(40)),
                (b, 1, secs(3)),
            ],
        );
        let order: Vec<_> = held
            .sites
            .iter()
            .map(|s| (s.location.line(), s.items, s.bytes, s.oldest))
            .collect();
        assert_eq!(
            order,
            [
                (b.line(), 1, 7, secs(50)),
                (c.line(), 1, 1, secs(50)),
                (a.line(), 2, 10, secs(40)),
            ]
        );
        assert_eq!(held.oldest, Some(secs(50)));
        assert!(held.tracking);
    }
}
