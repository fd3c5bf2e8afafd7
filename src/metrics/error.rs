//! Why the registry refused a registration.

use thiserror::Error;

/// Why [`Registry::register`](super::Registry::register) refused a part.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is empty or has characters other than ASCII letters, digits, `_`, `-`, `.` and `/`.
    #[error("invalid part name {name:?}: use ASCII letters, digits, '_', '-', '.' or '/'")]
    InvalidName {
        /// The refused name.
        name: String,
    },
    /// A label key is not a Prometheus label name, or is `name`, which the registry sets itself.
    #[error("invalid label name {key:?}: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with __ and not \"name\"")]
    InvalidLabel {
        /// The refused key.
        key: String,
    },
    /// A live part is already registered under this name; names address parts in a configuration, so they are
    /// unique. A name becomes free again when its part is dropped.
    #[error("a live part is already registered as {name:?}")]
    Duplicate {
        /// The name in use.
        name: String,
    },
}
