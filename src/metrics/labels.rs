//! Label sets: the `key="value"` pairs that tell series of one family apart.

use std::fmt;

use super::RegistryError;

/// The label every registered part carries: the name it was registered under.
pub const NAME_LABEL: &str = "name";

/// A set of labels, kept sorted by key so that equal sets compare, hash and render the same whatever order they
/// were built in.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::Labels;
///
/// let a = Labels::new().with("listener", "echo")?.with("region", "eu")?;
/// let b = Labels::new().with("region", "eu")?.with("listener", "echo")?;
/// assert_eq!(a, b);
/// assert!(Labels::new().with("bad-key", "x").is_err());
/// # Ok::<(), tidegate::metrics::RegistryError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels {
    pairs: Vec<(String, String)>,
}

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Labels::default()
    }

    /// Adds (or replaces) one label.
    ///
    /// # Errors
    ///
    /// [`RegistryError::InvalidLabel`] if `key` is not a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not
    /// starting with `__`, which Prometheus reserves) or is `name`, which the registry sets itself.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Result<Self, RegistryError> {
        if !is_valid_label_name(key) || key == NAME_LABEL {
            return Err(RegistryError::InvalidLabel {
                key: key.to_owned(),
            });
        }
        self.insert(key.to_owned(), value.into());
        Ok(self)
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of one label.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// No labels at all.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Inserts without checking the key: for the registry's own `name` label and for the extra labels a part's
    /// collector adds, whose keys are `'static` names chosen in this crate.
    pub(crate) fn insert(&mut self, key: String, value: String) {
        match self.pairs.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.pairs[i].1 = value,
            Err(i) => self.pairs.insert(i, (key, value)),
        }
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

pub(crate) fn is_valid_label_name(key: &str) -> bool {
    let bytes = key.as_bytes();
    match bytes.first() {
        None => false,
        Some(b) if b.is_ascii_digit() => false,
        _ if key.starts_with("__") => false,
        _ => bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(is_valid_label_name("listener"));
        assert!(is_valid_label_name("_x1"));
        assert!(!is_valid_label_name("1x"));
        assert!(!is_valid_label_name("__reserved"));
        assert!(!is_valid_label_name("a.b"));
        assert!(!is_valid_label_name(""));
        assert!(Labels::new().with("name", "x").is_err());
    }

    #[test]
    fn a_repeated_key_replaces_its_value() {
        let labels = Labels::new()
            .with("a", "1")
            .unwrap()
            .with("a", "2")
            .unwrap();
        assert_eq!(labels.len(), 1);
        assert_eq!(labels.get("a"), Some("2"));
    }
}
