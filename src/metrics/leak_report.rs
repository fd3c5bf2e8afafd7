//! The registry-wide leak report: what every registered pool and budget holds, for how long, and from where.

use std::fmt;
use std::time::Duration;

use super::{Labels, Outstanding, Registry};

/// What every registered part that holds memory (pools, budgets, and your own parts whose
/// [`Observer::leaks`](super::Observer::leaks) reports) holds now, from [`Registry::leak_report`].
///
/// Parts are listed by bytes held, most first, then by name. For parts that track acquisitions, each lists the
/// sites whose items have been held at least [`older_than`](Self::older_than); a site that keeps appearing with a
/// growing age or count is the leak. The [`Display`](fmt::Display) form is a readable table of the parts that hold
/// something.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tidegate::buf::LeakTracking;
/// use tidegate::metrics::Registry;
/// use tidegate::MemoryBudget;
///
/// let registry = Registry::new();
/// let budget = MemoryBudget::new(1 << 20);
/// budget.set_leak_tracking(LeakTracking::All);
/// registry.register("sessions", &budget)?;
/// let held = budget.try_reserve(4096).unwrap(); let line = line!();
///
/// let report = registry.leak_report(Duration::ZERO);
/// let part = report.part("sessions").unwrap();
/// assert_eq!(part.outstanding.bytes, 4096);
/// assert_eq!(part.outstanding.sites[0].location.line(), line);
/// println!("{report}");
/// # drop(held);
/// # Ok::<(), tidegate::metrics::RegistryError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeakReport {
    /// The age from which a tracked item is listed under its site.
    pub older_than: Duration,
    /// Every live part that reports what it holds, most bytes first.
    pub parts: Vec<PartLeaks>,
}

/// One registered part in a [`LeakReport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PartLeaks {
    /// The name the part was registered under.
    pub name: String,
    /// Its labels, including `name`.
    pub labels: Labels,
    /// What it holds.
    pub outstanding: Outstanding,
}

impl LeakReport {
    /// The part registered as `name`, if it is in the report.
    pub fn part(&self, name: &str) -> Option<&PartLeaks> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// Bytes held by all the parts together. Budgets count bytes that their pools, queues and child budgets also
    /// report, so this is an upper bound, not a sum of distinct memory.
    pub fn total_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.outstanding.bytes).sum()
    }
}

impl Registry {
    /// What every registered part that holds memory holds now, and where its tracked items older than
    /// `older_than` were acquired. Parts whose observer has nothing to report (the default of
    /// [`Observer::leaks`](super::Observer::leaks)) and parts that are gone are left out.
    ///
    /// Sites are listed only for parts that track acquisitions: pools built with
    /// [`BufPoolBuilder::leak_tracking`](crate::buf::BufPoolBuilder::leak_tracking) and budgets with
    /// [`MemoryBudget::set_leak_tracking`](crate::MemoryBudget::set_leak_tracking). The others still report
    /// what they hold.
    ///
    /// # Examples
    ///
    /// See [`LeakReport`].
    pub fn leak_report(&self, older_than: Duration) -> LeakReport {
        let mut parts: Vec<PartLeaks> = self
            .entries()
            .into_iter()
            .filter_map(|entry| {
                let outstanding = entry.observer.leaks(older_than)?;
                Some(PartLeaks {
                    name: entry.name.to_string(),
                    labels: entry.labels,
                    outstanding,
                })
            })
            .collect();
        parts.sort_by(|a, b| {
            (b.outstanding.bytes)
                .cmp(&a.outstanding.bytes)
                .then_with(|| a.name.cmp(&b.name))
        });
        LeakReport { older_than, parts }
    }
}

impl fmt::Display for LeakReport {
    /// One line per part that holds something, most bytes first, then one line per site of its tracked items held
    /// at least `older_than`, oldest first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holding: Vec<&PartLeaks> = self
            .parts
            .iter()
            .filter(|p| p.outstanding.bytes > 0 || !p.outstanding.sites.is_empty())
            .collect();
        writeln!(
            f,
            "{} of {} part(s) hold memory; sites list tracked items held for {:?} or more",
            holding.len(),
            self.parts.len(),
            self.older_than
        )?;
        for part in holding {
            let held = &part.outstanding;
            write!(f, "{:>14} bytes  {}", held.bytes, part.name)?;
            if let Some(items) = held.items {
                write!(f, ", {items} item(s)")?;
            }
            match (held.tracking, held.oldest) {
                (false, _) => writeln!(f, ", not tracked")?,
                (true, None) => writeln!(f, ", tracked, none outstanding")?,
                (true, Some(oldest)) => writeln!(f, ", tracked, oldest held {oldest:.3?}")?,
            }
            for site in &held.sites {
                writeln!(
                    f,
                    "{:>14} bytes    in {} item(s), oldest held {:.3?}, acquired at {}",
                    site.bytes, site.items, site.oldest, site.location
                )?;
            }
        }
        Ok(())
    }
}
