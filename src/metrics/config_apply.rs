//! Live reconfiguration: a whole configuration checked, then applied under one registry-wide lock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};

use super::config_diff::{diff_settings, LimitChange};
use super::config_error::{ReconfigureError, Refusal};
use super::{Collector, Configuration, Labels, Observer, Registry, Settings};

/// The registry's reconfiguration state: swaps hold `lock` for writing while they check and apply, readers of
/// the whole configuration hold it for reading, so a reader sees the parts' limits between two swaps, never
/// during one.
#[derive(Default)]
pub(super) struct Swap {
    lock: RwLock<()>,
    version: AtomicU64,
}

impl Swap {
    /// Holds off reconfigurations while the guard lives, so what is read meanwhile is from one configuration.
    /// Fair to a waiting reconfiguration (a stream of scrapes cannot starve it), hence not re-entrant: nothing
    /// may take it again while holding it.
    pub(super) fn reading(&self) -> RwLockReadGuard<'_, ()> {
        self.lock.read()
    }
}

/// What [`Registry::reconfigure`] did: the configuration's new version and every limit it changed.
///
/// Prints one `name.key: old -> new` line per change (nothing if nothing changed).
#[derive(Clone, PartialEq, Eq)]
pub struct Reconfigured {
    version: u64,
    changes: Vec<LimitChange>,
}

impl Reconfigured {
    /// The version this reconfiguration made current, as
    /// [`Registry::configuration_version`] reports it from now on.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every limit that changed, sorted by part then key; empty if the configuration changed nothing.
    pub fn changes(&self) -> &[LimitChange] {
        &self.changes
    }
}

impl fmt::Display for Reconfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for change in &self.changes {
            writeln!(f, "{change}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reconfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconfigured")
            .field("version", &self.version)
            .field("changes", &self.changes)
            .finish()
    }
}

/// A part the configuration names, checked and ready to apply.
struct Planned<'a> {
    name: &'a str,
    observer: &'a Arc<dyn Observer>,
    current: Settings,
    merged: Settings,
}

impl Registry {
    /// The live limits of every registered part that has some, read from the parts themselves, so it includes
    /// parts registered since the last [`reconfigure`](Self::reconfigure) and limits set through the parts'
    /// own handles.
    ///
    /// It is never read halfway through a reconfiguration: it shows every part's limits as they were before one,
    /// or as they are after it. Parts without live limits, and parts that are gone, are left out.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::metrics::Registry;
    /// use tidegate::MemoryBudget;
    ///
    /// let registry = Registry::new();
    /// let budget = MemoryBudget::new(4096);
    /// registry.register("sessions", &budget)?;
    /// assert_eq!(registry.configuration().to_string(), "sessions.limit = 4096\n");
    /// # Ok::<(), tidegate::metrics::RegistryError>(())
    /// ```
    pub fn configuration(&self) -> Configuration {
        self.versioned_configuration().1
    }

    /// [`configuration`](Self::configuration) together with the
    /// [`configuration_version`](Self::configuration_version) it was read at: no reconfiguration happened between
    /// reading the two.
    pub fn versioned_configuration(&self) -> (u64, Configuration) {
        let _reading = self.swap.reading();
        let version = self.swap.version.load(Ordering::Acquire);
        let mut config = Configuration::new();
        for (name, observer) in self.observers() {
            if let Some(settings) = observer.settings() {
                config.insert_unchecked(&name, settings);
            }
        }
        (version, config)
    }

    /// How many reconfigurations this registry has applied (0 for a new registry), read with one atomic load: a
    /// cheap way to tell whether the configuration was swapped since it was last read.
    pub fn configuration_version(&self) -> u64 {
        self.swap.version.load(Ordering::Acquire)
    }

    /// Checks `config` as a whole and, if every part accepts its settings, applies all of them as one step.
    ///
    /// The configuration may name only some parts: the others keep their limits. It may give only some of a part's
    /// keys: they are merged over the part's current settings, and the part checks the merged result (so
    /// `edge.per_ip = 8` alone keeps `edge.global` as it is).
    ///
    /// Checking comes first and covers everything: names no live part is registered under, parts without live
    /// limits, and every reason each part's [`Observer::check`] gives. If there is any reason, nothing is
    /// applied. Otherwise each part whose limits change gets them in one [`Observer::apply`], under a
    /// registry-wide lock: two reconfigurations never interleave, and
    /// [`configuration`](Self::configuration) never sees one half done. A part dropped between the check and its
    /// turn is skipped (its limits no longer matter) and its changes are not reported.
    ///
    /// Limits set through a part's own handle (`MemoryBudget::set_limit`) do not take this lock; a reader of
    /// the whole configuration may see them at any point.
    ///
    /// # Errors
    ///
    /// [`ReconfigureError`] with every `(part, reason)` found, when anything is refused; nothing was changed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::metrics::{Configuration, Registry};
    /// use tidegate::MemoryBudget;
    ///
    /// let registry = Registry::new();
    /// let (small, large) = (MemoryBudget::new(1024), MemoryBudget::new(1 << 20));
    /// registry.register("small", &small)?;
    /// registry.register("large", &large)?;
    ///
    /// let done = registry.reconfigure(&"small.limit = 2048".parse()?)?;
    /// assert_eq!(done.to_string(), "small.limit: 1024 -> 2048\n");
    /// assert_eq!((small.limit(), large.limit()), (2048, 1 << 20));
    ///
    /// // One bad part refuses the whole configuration, with every reason.
    /// let bad: Configuration = "small.limit = 4096\nlarge.limit = off\nmissing.limit = 1".parse()?;
    /// let refused = registry.reconfigure(&bad).unwrap_err();
    /// assert_eq!(refused.refusals().len(), 2);
    /// assert_eq!(small.limit(), 2048);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reconfigure(&self, config: &Configuration) -> Result<Reconfigured, ReconfigureError> {
        let _swapping = self.swap.lock.write();
        let observers = self.observers();
        let mut refusals = Vec::new();
        let mut plan = Vec::new();
        for (name, proposed) in config.iter() {
            let Some((_, observer)) = observers.iter().find(|(n, _)| &**n == name) else {
                refusals.push(refusal(name, "no live part is registered under this name"));
                continue;
            };
            let Some(current) = observer.settings() else {
                refusals.push(refusal(name, absent_reason(observer)));
                continue;
            };
            let mut merged = current.clone();
            for (key, value) in proposed.iter() {
                merged.set(key, value);
            }
            match observer.check(&merged) {
                Ok(()) => plan.push(Planned {
                    name,
                    observer,
                    current,
                    merged,
                }),
                Err(reasons) if reasons.is_empty() => {
                    refusals.push(refusal(name, "refused by the part, without a reason"))
                }
                Err(reasons) => refusals.extend(reasons.iter().map(|r| refusal(name, r))),
            }
        }
        if !refusals.is_empty() {
            return Err(ReconfigureError::new(refusals));
        }
        let mut changes = Vec::new();
        for part in plan {
            let before = changes.len();
            diff_settings(part.name, &part.current, &part.merged, &mut changes);
            if changes.len() > before && !part.observer.apply(&part.merged) {
                changes.truncate(before);
            }
        }
        let version = self.swap.version.fetch_add(1, Ordering::AcqRel) + 1;
        Ok(Reconfigured { version, changes })
    }
}

fn refusal(part: &str, reason: &str) -> Refusal {
    Refusal {
        part: part.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Why a registered part reported no settings: it has none, or it was dropped and the registry has not yet
/// forgotten it.
fn absent_reason(observer: &Arc<dyn Observer>) -> &'static str {
    let mut scratch = Vec::new();
    let labels = Labels::new();
    if observer.collect(&mut Collector::new(&mut scratch, &labels)) {
        "this part has no live limits"
    } else {
        "no live part is registered under this name (it was dropped)"
    }
}
