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

/// Gathers every reason proposed [`Settings`] cannot apply, for an [`Observer::check`](super::Observer::check):
/// missing keys, limits that cannot be off, values out of range, and (when finished) keys the part does not have.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::{Settings, SettingsCheck};
///
/// let proposed = Settings::new().with("limit", None).with("colour", Some(3));
/// let mut check = SettingsCheck::new(&proposed, "a budget", &["limit"]);
/// assert_eq!(check.required("limit", u64::MAX), None);
/// assert_eq!(
///     check.finish().unwrap_err(),
///     ["limit cannot be off", "unknown key colour (a budget has only limit)"]
/// );
/// ```
#[derive(Debug)]
pub struct SettingsCheck<'a> {
    settings: &'a Settings,
    part: &'static str,
    keys: &'static [&'static str],
    reasons: Vec<String>,
}

impl<'a> SettingsCheck<'a> {
    /// Checks `settings` for a part described as `part` in messages ("a budget", "an executor") whose keys are
    /// `keys`.
    pub fn new(settings: &'a Settings, part: &'static str, keys: &'static [&'static str]) -> Self {
        SettingsCheck {
            settings,
            part,
            keys,
            reasons: Vec::new(),
        }
    }

    /// A limit that must be given, cannot be off and is at most `max`: its value, or `None` with the reason noted.
    pub fn required(&mut self, key: &str, max: u64) -> Option<u64> {
        match self.settings.get(key) {
            None => self.refuse(format!("{key} is missing")),
            Some(None) => self.refuse(format!("{key} cannot be off")),
            Some(Some(value)) => return self.at_most(key, value, max),
        }
        None
    }

    /// A limit that must be given, may be `off`, and is at most `max`: `Some(value)` (`Some(None)` for off), or
    /// `None` with the reason noted.
    pub fn switchable(&mut self, key: &str, max: u64) -> Option<Option<u64>> {
        match self.settings.get(key) {
            None => self.refuse(format!("{key} is missing (use off to switch it off)")),
            Some(None) => return Some(None),
            Some(Some(value)) => return self.at_most(key, value, max).map(Some),
        }
        None
    }

    /// Notes a reason of the part's own (limits out of order, a combination that cannot work).
    pub fn refuse(&mut self, reason: String) {
        self.reasons.push(reason);
    }

    /// Every reason, including one per key the part does not have, or `Ok` if there are none.
    ///
    /// # Errors
    ///
    /// The reasons, in the order they were found, unknown keys last.
    pub fn finish(mut self) -> Result<(), Vec<String>> {
        let has = match self.keys {
            [only] => format!("only {only}"),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
            [] => "no live limits".to_owned(),
        };
        for (key, _) in self.settings.iter() {
            if !self.keys.contains(&key) {
                self.reasons
                    .push(format!("unknown key {key} ({} has {has})", self.part));
            }
        }
        if self.reasons.is_empty() {
            Ok(())
        } else {
            Err(self.reasons)
        }
    }

    fn at_most(&mut self, key: &str, value: u64, max: u64) -> Option<u64> {
        if value > max {
            self.refuse(format!("{key} {value} is above the largest limit, {max}"));
            return None;
        }
        Some(value)
    }
}
