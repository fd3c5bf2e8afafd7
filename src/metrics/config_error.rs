//! Why a configuration could not be read, or was refused.

use std::fmt;

use thiserror::Error;

/// Why one `name.key = value` entry is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The line has no `=`.
    #[error("expected `name.key = value`")]
    MissingEquals,
    /// The left of `=` has no `.` separating the part's name from the key.
    #[error("expected `name.key` before `=`")]
    MissingKey,
    /// The part's name is empty or has characters other than ASCII letters, digits, `_`, `-`, `.` and `/`.
    #[error("invalid part name {name:?}: use ASCII letters, digits, '_', '-', '.' or '/'")]
    InvalidName {
        /// The refused name.
        name: String,
    },
    /// The key is empty or has characters other than ASCII letters, digits and `_`.
    #[error("invalid key {key:?}: use ASCII letters, digits or '_'")]
    InvalidKey {
        /// The refused key.
        key: String,
    },
    /// The value is neither a decimal number that fits in 64 bits nor `off`.
    #[error("invalid value {value:?}: expected a decimal number below 2^64 or `off`")]
    InvalidValue {
        /// The refused value.
        value: String,
    },
    /// The same `name.key` was given on an earlier line.
    #[error("duplicate entry: already set on line {first_line}")]
    Duplicate {
        /// The line that set it first.
        first_line: usize,
    },
}

/// One bad line of a configuration's text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {error}")]
pub struct ParseError {
    /// The line's number, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub error: EntryError,
}

/// Every bad line of a configuration's text, in line order; never empty.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ParseErrors {
    errors: Vec<ParseError>,
}

impl ParseErrors {
    pub(super) fn new(errors: Vec<ParseError>) -> Self {
        debug_assert!(!errors.is_empty());
        ParseErrors { errors }
    }

    /// The bad lines, in line order.
    pub fn errors(&self) -> &[ParseError] {
        &self.errors
    }
}

impl fmt::Display for ParseErrors {
    /// One bad line per line of text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// One reason a part cannot take its proposed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The part's name, as the configuration gives it.
    pub part: String,
    /// Why, as the registry or the part itself says it.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.part, self.reason)
    }
}

/// Why [`Registry::reconfigure`](super::Registry::reconfigure) refused a configuration: every reason, for every
/// part, found before anything was applied. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ReconfigureError {
    refusals: Vec<Refusal>,
}

impl ReconfigureError {
    pub(super) fn new(refusals: Vec<Refusal>) -> Self {
        debug_assert!(!refusals.is_empty());
        ReconfigureError { refusals }
    }

    /// Every reason, sorted by part name, each part's in the order the part gave them.
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }
}

impl fmt::Display for ReconfigureError {
    /// `configuration refused:` then `part: reason` for every reason, separated by `; `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("configuration refused: ")?;
        for (i, refusal) in self.refusals.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{refusal}")?;
        }
        Ok(())
    }
}
