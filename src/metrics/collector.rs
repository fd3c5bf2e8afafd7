//! What a part's observer writes its series into.

use super::{Family, Labels};

/// One series' value at the moment it was collected.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// The family: name (without the `tidegate_` prefix), help and type.
    pub family: &'static Family,
    /// The part's labels (its registered `name` and any labels given at registration) plus the sample's own.
    pub labels: Labels,
    /// The value. Counters and byte counts are integers; they are exact below 2^53.
    pub value: f64,
}

/// Receives the series of one part during a collection. Handed to [`Observer::collect`](super::Observer::collect).
///
/// Every sample gets the part's labels; [`counter_with`](Self::counter_with) and [`gauge_with`](Self::gauge_with)
/// add one more (a size class, a close reason).
#[derive(Debug)]
pub struct Collector<'a> {
    samples: &'a mut Vec<Sample>,
    labels: &'a Labels,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(samples: &'a mut Vec<Sample>, labels: &'a Labels) -> Self {
        Collector { samples, labels }
    }

    /// Reports a counter.
    pub fn counter(&mut self, family: &'static Family, value: u64) {
        self.push(family, None, value as f64);
    }

    /// Reports a gauge.
    pub fn gauge(&mut self, family: &'static Family, value: f64) {
        self.push(family, None, value);
    }

    /// Reports a counter with one more label.
    pub fn counter_with(
        &mut self,
        family: &'static Family,
        label: (&'static str, &str),
        value: u64,
    ) {
        self.push(family, Some(label), value as f64);
    }

    /// Reports a gauge with one more label.
    pub fn gauge_with(&mut self, family: &'static Family, label: (&'static str, &str), value: f64) {
        self.push(family, Some(label), value);
    }

    fn push(&mut self, family: &'static Family, label: Option<(&'static str, &str)>, value: f64) {
        // Not `name`: replacing the part's name would make its series collide with another part's.
        debug_assert!(
            label.is_none_or(
                |(key, _)| super::labels::is_valid_label_name(key) && key != super::NAME_LABEL
            ),
            "a collector's extra label key must be a label name other than `name`"
        );
        let mut labels = self.labels.clone();
        if let Some((key, val)) = label {
            labels.insert(key.to_owned(), val.to_owned());
        }
        self.samples.push(Sample {
            family,
            labels,
            value,
        });
    }
}
