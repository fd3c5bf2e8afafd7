//! A configuration: every live limit of every part, by part name, and its text form.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::config_diff::{self, LimitChange};
use super::config_error::{EntryError, ParseError, ParseErrors};
use super::registry::is_valid_part_name;
use super::Settings;

/// Live limits of many parts, by the name each part is registered under: what
/// [`Registry::configuration`](super::Registry::configuration) reports and
/// [`Registry::reconfigure`](super::Registry::reconfigure) swaps in whole.
///
/// Its text form, read by [`parse`](Self::parse) and written by `Display`, has one `name.key = value` per line:
/// `value` is a decimal number or `off` for a limit switched off; `#` starts a comment; blank lines are ignored. A
/// part's name may itself contain dots (`edge.v4`), so the key is what follows the *last* dot; keys are ASCII
/// letters, digits and `_`. `Display` prints parts and keys sorted, so printing and parsing round-trip and equal
/// configurations print the same text.
///
/// A part never has empty settings here: it is either absent or has at least one limit.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::Configuration;
///
/// let text = "# the shared budget\nconnections.limit = 1048576\n\nedge.v4.per_ip = off\n";
/// let config: Configuration = text.parse()?;
/// assert_eq!(config.get("connections").unwrap().get("limit"), Some(Some(1 << 20)));
/// assert_eq!(config.get("edge.v4").unwrap().get("per_ip"), Some(None));
/// assert_eq!(config.to_string(), "connections.limit = 1048576\nedge.v4.per_ip = off\n");
/// # Ok::<(), tidegate::metrics::ParseErrors>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Configuration {
    parts: BTreeMap<String, Settings>,
}

impl Configuration {
    /// No parts.
    pub fn new() -> Self {
        Configuration::default()
    }

    /// Parses the text form (see the type's docs).
    ///
    /// # Errors
    ///
    /// [`ParseErrors`] listing every bad line (not only the first) with its 1-based number: no `=`, no `.key`,
    /// a name or key with characters the text form does not allow, a value that is neither a decimal `u64` nor
    /// `off`, or the same `name.key` given twice.
    pub fn parse(text: &str) -> Result<Self, ParseErrors> {
        let mut config = Configuration::new();
        let mut first_seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut errors = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            match parse_entry(content) {
                Err(error) => errors.push(ParseError { line, error }),
                Ok((part, key, value)) => match first_seen.entry((part.to_owned(), key.to_owned()))
                {
                    Entry::Occupied(first) => errors.push(ParseError {
                        line,
                        error: EntryError::Duplicate {
                            first_line: *first.get(),
                        },
                    }),
                    Entry::Vacant(slot) => {
                        slot.insert(line);
                        config.set_unchecked(part, key, value);
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ParseErrors::new(errors))
        }
    }

    /// Sets one limit of one part, replacing an earlier value under the same key.
    ///
    /// # Errors
    ///
    /// [`EntryError::InvalidName`] or [`EntryError::InvalidKey`] if the name or key could not be written in the
    /// text form (names as [`Registry::register`](super::Registry::register) accepts them; keys ASCII letters,
    /// digits and `_`).
    pub fn set(&mut self, part: &str, key: &str, value: Option<u64>) -> Result<(), EntryError> {
        check_name(part)?;
        check_key(key)?;
        self.set_unchecked(part, key, value);
        Ok(())
    }

    /// [`set`](Self::set), for building a configuration in one expression.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn with(mut self, part: &str, key: &str, value: Option<u64>) -> Result<Self, EntryError> {
        self.set(part, key, value)?;
        Ok(self)
    }

    /// Replaces all of one part's settings; empty settings remove the part.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set), for the name and every key; nothing is changed then.
    pub fn insert(&mut self, part: &str, settings: Settings) -> Result<(), EntryError> {
        check_name(part)?;
        for (key, _) in settings.iter() {
            check_key(key)?;
        }
        self.insert_unchecked(part, settings);
        Ok(())
    }

    /// One part's settings, if the configuration names it.
    pub fn get(&self, part: &str) -> Option<&Settings> {
        self.parts.get(part)
    }

    /// The parts and their settings, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Settings)> {
        self.parts
            .iter()
            .map(|(name, settings)| (name.as_str(), settings))
    }

    /// How many parts.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// No parts at all.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// What changed from `self` to `newer`, one [`LimitChange`] per `name.key` whose value differs or that only one of
    /// them has, sorted by name then key. Each prints as `name.key: old -> new`, for a log line.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::metrics::Configuration;
    ///
    /// let old: Configuration = "a.limit = 10\nb.per_ip = off".parse()?;
    /// let new: Configuration = "a.limit = 20\nb.per_ip = off".parse()?;
    /// let changes: Vec<String> = old.diff(&new).iter().map(ToString::to_string).collect();
    /// assert_eq!(changes, ["a.limit: 10 -> 20"]);
    /// # Ok::<(), tidegate::metrics::ParseErrors>(())
    /// ```
    pub fn diff(&self, newer: &Configuration) -> Vec<LimitChange> {
        let mut changes = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            self.parts.keys().chain(newer.parts.keys()).collect();
        let empty = Settings::new();
        for name in names {
            let old = self.parts.get(name).unwrap_or(&empty);
            let new = newer.parts.get(name).unwrap_or(&empty);
            config_diff::diff_settings(name, old, new, &mut changes);
        }
        changes
    }

    /// For values reported by parts, whose keys the text form may not be able to write; see `Registry`.
    pub(super) fn insert_unchecked(&mut self, part: &str, settings: Settings) {
        if settings.is_empty() {
            self.parts.remove(part);
        } else {
            self.parts.insert(part.to_owned(), settings);
        }
    }

    fn set_unchecked(&mut self, part: &str, key: &str, value: Option<u64>) {
        self.parts
            .entry(part.to_owned())
            .or_default()
            .set(key, value);
    }
}

impl FromStr for Configuration {
    type Err = ParseErrors;

    fn from_str(text: &str) -> Result<Self, ParseErrors> {
        Configuration::parse(text)
    }
}

impl fmt::Display for Configuration {
    /// The text form: one `name.key = value` line per limit, sorted, each ending in a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, settings) in &self.parts {
            for (key, value) in settings.iter() {
                match value {
                    Some(v) => writeln!(f, "{name}.{key} = {v}")?,
                    None => writeln!(f, "{name}.{key} = off")?,
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Configuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.parts.iter()).finish()
    }
}

/// One non-blank, comment-free line: `name.key = value`.
fn parse_entry(content: &str) -> Result<(&str, &str, Option<u64>), EntryError> {
    let (target, value) = content.split_once('=').ok_or(EntryError::MissingEquals)?;
    let (part, key) = target
        .trim_end()
        .rsplit_once('.')
        .ok_or(EntryError::MissingKey)?;
    check_name(part)?;
    check_key(key)?;
    Ok((part, key, parse_value(value.trim_start())?))
}

fn parse_value(text: &str) -> Result<Option<u64>, EntryError> {
    if text == "off" {
        return Ok(None);
    }
    // `u64::from_str` also takes a leading `+`; the text form has one spelling per value so that it round-trips.
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u64>() {
        Ok(v) if digits => Ok(Some(v)),
        _ => Err(EntryError::InvalidValue {
            value: text.to_owned(),
        }),
    }
}

fn check_name(part: &str) -> Result<(), EntryError> {
    if is_valid_part_name(part) {
        Ok(())
    } else {
        Err(EntryError::InvalidName {
            name: part.to_owned(),
        })
    }
}

fn check_key(key: &str) -> Result<(), EntryError> {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(EntryError::InvalidKey {
            key: key.to_owned(),
        })
    }
}
