//! The registry: named, labelled, weakly held parts, collected on demand.

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use super::labels::NAME_LABEL;
use super::{exposition, Collector, Labels, Observe, Observer, RegistryError, Sample};

/// Named parts whose metrics are collected when asked: for a Prometheus scrape
/// ([`render_prometheus`](Self::render_prometheus)) or as plain data ([`collect`](Self::collect)).
///
/// The registry holds every part weakly: a dropped part disappears at the next collection, so registering a
/// connection's parts does not keep the connection's memory alive. Nothing is recorded on the parts' hot paths
/// for the registry's sake; a collection reads the counters each part keeps anyway. Collecting calls each part's
/// observer once, outside the registry's lock, so registering is never blocked by a slow scrape.
///
/// Each part is registered under a unique name (the `name` label of all its series, and its key in a
/// configuration) and optional extra labels. The registry is a cheap-to-clone handle; [`Registry::global`] is one
/// shared by the whole process.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::Registry;
/// use tidegate::MemoryBudget;
///
/// let registry = Registry::new();
/// let budget = MemoryBudget::new(1 << 20);
/// registry.register("connections", &budget)?;
/// let _held = budget.try_reserve(4096).unwrap();
/// let text = registry.render_prometheus();
/// assert!(text.contains("tidegate_budget_used_bytes{name=\"connections\"} 4096\n"));
/// # Ok::<(), tidegate::metrics::RegistryError>(())
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Vec<Entry>>>,
}

#[derive(Clone)]
pub(super) struct Entry {
    pub(super) name: Arc<str>,
    pub(super) labels: Labels,
    pub(super) observer: Arc<dyn Observer>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The process-wide registry, created empty on first use.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// Registers `part` under `name`, with no other labels.
    ///
    /// # Errors
    ///
    /// See [`register_with`](Self::register_with).
    pub fn register(&self, name: &str, part: &impl Observe) -> Result<(), RegistryError> {
        self.register_with(name, Labels::new(), part)
    }

    /// Registers `part` under `name` with extra labels on all its series.
    ///
    /// # Errors
    ///
    /// [`RegistryError::InvalidName`] if the name is empty or has characters other than ASCII letters, digits,
    /// `_`, `-`, `.` and `/`; [`RegistryError::Duplicate`] if a live part already has the name.
    pub fn register_with(
        &self,
        name: &str,
        labels: Labels,
        part: &impl Observe,
    ) -> Result<(), RegistryError> {
        if !is_valid_part_name(name) {
            return Err(RegistryError::InvalidName {
                name: name.to_owned(),
            });
        }
        let observer = part.observer();
        let mut labels = labels;
        labels.insert(NAME_LABEL.to_owned(), name.to_owned());
        let mut entries = self.inner.lock();
        if let Some(existing) = entries.iter().position(|e| &*e.name == name) {
            if is_alive(&entries[existing]) {
                return Err(RegistryError::Duplicate {
                    name: name.to_owned(),
                });
            }
            entries.remove(existing);
        }
        entries.push(Entry {
            name: name.into(),
            labels,
            observer,
        });
        Ok(())
    }

    /// The names of the parts registered and, as far as the last collection knows, alive; sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .lock()
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// The registered parts, copied out so that observers are called outside the lock.
    pub(super) fn entries(&self) -> Vec<Entry> {
        self.inner.lock().clone()
    }

    /// Every series of every live part, sorted by family name then labels, and forgets the parts that are gone.
    pub fn collect(&self) -> Vec<Sample> {
        let entries: Vec<Entry> = self.inner.lock().clone();
        let mut samples = Vec::new();
        let mut gone = Vec::new();
        for entry in &entries {
            let mut out = Collector::new(&mut samples, &entry.labels);
            if !entry.observer.collect(&mut out) {
                gone.push(Arc::clone(&entry.observer));
            }
        }
        if !gone.is_empty() {
            self.inner
                .lock()
                .retain(|e| !gone.iter().any(|g| Arc::ptr_eq(g, &e.observer)));
        }
        // A total order on everything a sample shows, so that no tie is left to the order parts were registered
        // or reported in.
        samples.sort_by(|a, b| {
            (a.family.name(), &a.labels)
                .cmp(&(b.family.name(), &b.labels))
                .then(a.value.total_cmp(&b.value))
                .then(a.family.help().cmp(b.family.help()))
        });
        samples
    }

    /// The Prometheus text exposition (format 0.0.4) of every live part: `# HELP` and `# TYPE` lines, names
    /// prefixed `tidegate_`, label values escaped, families sorted by name and series by labels. The same state
    /// renders byte for byte the same text whatever the registration order, the hash seed or the process.
    ///
    /// Families of different parts that share a name render as one (with the help text that sorts first), and a
    /// series a faulty observer reports twice renders once (with the smaller value), so the text stays valid.
    pub fn render_prometheus(&self) -> String {
        exposition::render(&self.collect())
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("parts", &self.inner.lock().len())
            .finish()
    }
}

/// A registry handle that does not keep the registry alive: a background task holding one ends with the
/// registry (the `metrics` feature's forwarder does).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
#[derive(Clone)]
pub(crate) struct WeakRegistry(Weak<Mutex<Vec<Entry>>>);

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
impl WeakRegistry {
    pub(crate) fn new(registry: &Registry) -> Self {
        WeakRegistry(Arc::downgrade(&registry.inner))
    }

    /// The registry, while any [`Registry`] handle to it lives.
    pub(crate) fn upgrade(&self) -> Option<Registry> {
        self.0.upgrade().map(|inner| Registry { inner })
    }
}

/// Whether the part still lives, asked without keeping what it reports.
fn is_alive(entry: &Entry) -> bool {
    let mut scratch = Vec::new();
    entry
        .observer
        .collect(&mut Collector::new(&mut scratch, &entry.labels))
}

fn is_valid_part_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}
