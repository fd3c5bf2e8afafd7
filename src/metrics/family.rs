//! A metric family: the name, help text and type shared by every series of one metric.

/// Whether a family only grows or can go both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricKind {
    /// A count that only grows while its part lives (its name ends in `_total`).
    Counter,
    /// A value that can go up and down (queued bytes, live connections).
    Gauge,
}

impl MetricKind {
    /// The word Prometheus' `# TYPE` line uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// The name, help text and type of one metric, shared by all its series.
///
/// Names are given without the `tidegate_` prefix, which the exposition adds. They follow Prometheus' naming
/// conventions: lower-case words joined by `_`, the unit as a suffix (`_bytes`, `_seconds`), and `_total` at the
/// end of every counter. Families are meant to be `const`s next to the part that reports them, so a collector
/// does not allocate names. Parts that report the same metric may each have their own `Family` of that name: the
/// exposition renders them as one family. The name decides the type (only counters end in `_total`), so one name
/// never has two.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::{Family, MetricKind};
///
/// const QUEUED: Family = Family::gauge("example_queued_bytes", "Bytes waiting in the example queue.");
/// const REFUSED: Family = Family::counter("example_refused_total", "Items the example queue refused.");
/// assert_eq!(QUEUED.kind(), MetricKind::Gauge);
/// assert_eq!(REFUSED.name(), "example_refused_total");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
}

impl Family {
    /// A counter family. `name` must end in `_total`.
    ///
    /// # Panics
    ///
    /// In a `const` context, at compile time, if the name is not a valid metric name or does not end in `_total`.
    #[track_caller]
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        assert!(is_valid_name(name), "invalid metric name");
        assert!(ends_with(name, "_total"), "a counter's name ends in _total");
        Family {
            name,
            help,
            kind: MetricKind::Counter,
        }
    }

    /// A gauge family. `name` must not end in `_total`.
    ///
    /// # Panics
    ///
    /// In a `const` context, at compile time, if the name is not a valid metric name or ends in `_total`.
    #[track_caller]
    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        assert!(is_valid_name(name), "invalid metric name");
        assert!(!ends_with(name, "_total"), "only counters end in _total");
        Family {
            name,
            help,
            kind: MetricKind::Gauge,
        }
    }

    /// The name, without the `tidegate_` prefix.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The help text.
    pub fn help(&self) -> &'static str {
        self.help
    }

    /// Counter or gauge.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }
}

/// `[a-z_][a-z0-9_]*`: Prometheus allows upper case and `:` too, but tidegate's own names do not use them.
const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes[0].is_ascii_digit() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

const fn ends_with(name: &str, suffix: &str) -> bool {
    let (name, suffix) = (name.as_bytes(), suffix.as_bytes());
    if name.len() < suffix.len() {
        return false;
    }
    let start = name.len() - suffix.len();
    let mut i = 0;
    while i < suffix.len() {
        if name[start + i] != suffix[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(is_valid_name("watermark_queued_bytes"));
        assert!(!is_valid_name("Watermark"));
        assert!(!is_valid_name("9lives"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a-b"));
        assert!(ends_with("x_total", "_total"));
        assert!(!ends_with("total", "_total"));
    }

    #[test]
    #[should_panic(expected = "ends in _total")]
    fn a_counter_without_total_is_refused() {
        let _ = Family::counter("queue_refused", "no suffix");
    }
}
