//! One part's live limits, by key: what a configuration sets and a part checks and applies.

use std::collections::BTreeMap;
use std::fmt;

/// One part's limits, each under a key the part chooses (`limit`, `high`, `max_frame_length`), sorted by key.
/// `None` is a limit switched off (a per-IP limit that is not set).
///
/// A part's [`Observer`](super::Observer) reports its current settings, checks proposed ones as a whole and applies
/// them in one step, so that nobody reading the part sees some old and some new values.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::Settings;
///
/// let settings = Settings::new().with("limit", Some(1024)).with("per_ip", None);
/// assert_eq!(settings.get("limit"), Some(Some(1024)));
/// assert_eq!(settings.get("per_ip"), Some(None));
/// assert_eq!(settings.get("missing"), None);
/// assert_eq!(settings.to_string(), "limit=1024 per_ip=off");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Settings {
    values: BTreeMap<String, Option<u64>>,
}

impl Settings {
    /// No settings.
    pub fn new() -> Self {
        Settings::default()
    }

    /// Sets one limit, replacing an earlier value under the same key.
    pub fn with(mut self, key: &str, value: Option<u64>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets one limit, replacing an earlier value under the same key.
    pub fn set(&mut self, key: &str, value: Option<u64>) {
        self.values.insert(key.to_owned(), value);
    }

    /// One limit: `None` if the key is absent, `Some(None)` if the limit is off.
    pub fn get(&self, key: &str) -> Option<Option<u64>> {
        self.values.get(key).copied()
    }

    /// The limits, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<u64>)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// How many limits.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No limits at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Display for Settings {
    /// `key=value` pairs separated by spaces, `off` for a limit switched off.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match value {
                Some(v) => write!(f, "{key}={v}")?,
                None => write!(f, "{key}=off")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Settings({self})")
    }
}
