//! What changed between two configurations, one limit at a time, for a log line.

use std::collections::BTreeSet;
use std::fmt;

use super::Settings;

/// One limit that differs between two configurations (see
/// [`Configuration::diff`](super::Configuration::diff)), or that a reconfiguration changed.
///
/// Prints as `name.key: old -> new`, where a value is a number, `off` for a limit switched off, or `unset` when one
/// side does not have the key at all.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::Configuration;
///
/// let old: Configuration = "edge.per_ip = off".parse()?;
/// let new: Configuration = "edge.per_ip = 16\nedge.global = 1000".parse()?;
/// let changes = old.diff(&new);
/// assert_eq!(changes[0].to_string(), "edge.global: unset -> 1000");
/// assert_eq!(changes[1].to_string(), "edge.per_ip: off -> 16");
/// assert_eq!((changes[1].before(), changes[1].after()), (Some(None), Some(Some(16))));
/// # Ok::<(), tidegate::metrics::ParseErrors>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LimitChange {
    part: String,
    key: String,
    old: Option<Option<u64>>,
    new: Option<Option<u64>>,
}

impl LimitChange {
    /// The part's name.
    pub fn part(&self) -> &str {
        &self.part
    }

    /// The limit's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value before, as [`Settings::get`] gives it: `None` if unset, `Some(None)` if off.
    pub fn before(&self) -> Option<Option<u64>> {
        self.old
    }

    /// The value after, as [`Settings::get`] gives it: `None` if unset, `Some(None)` if off.
    pub fn after(&self) -> Option<Option<u64>> {
        self.new
    }
}

impl fmt::Display for LimitChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}: {} -> {}",
            self.part,
            self.key,
            Shown(self.old),
            Shown(self.new)
        )
    }
}

impl fmt::Debug for LimitChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LimitChange({self})")
    }
}

struct Shown(Option<Option<u64>>);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("unset"),
            Some(None) => f.write_str("off"),
            Some(Some(v)) => write!(f, "{v}"),
        }
    }
}

/// Appends to `out` one change per key of `part` whose value differs between `old` and `new`, sorted by key.
pub(super) fn diff_settings(
    part: &str,
    old: &Settings,
    new: &Settings,
    out: &mut Vec<LimitChange>,
) {
    let keys: BTreeSet<&str> = old.iter().chain(new.iter()).map(|(key, _)| key).collect();
    for key in keys {
        let (before, after) = (old.get(key), new.get(key));
        if before != after {
            out.push(LimitChange {
                part: part.to_owned(),
                key: key.to_owned(),
                old: before,
                new: after,
            });
        }
    }
}
