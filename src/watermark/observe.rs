//! The watermark queues' report to a metrics registry: one queue (through any of its handles) or a whole
//! [`QueueSet`].

use std::sync::{Arc, Weak};

use crate::metrics::{Collector, Family, Observe, Observer, Settings, SettingsCheck};

use super::set_core::SetCore;
use super::shared::Shared;
use super::{FramedSender, Limits, QueueSet, Receiver, Sender, WatermarkWriter};

const QUEUED: Family = Family::gauge(
    "queue_queued_bytes",
    "Bytes queued now, including items the receiver has taken but not yet delivered (a set: summed over its members).",
);
const QUEUED_ITEMS: Family = Family::gauge("queue_queued_items", "Items queued now.");
const UNWRITABLE: Family = Family::gauge(
    "queue_unwritable",
    "Queues over their high mark and not yet drained to their low mark (one queue: 0 or 1).",
);
const PEAK: Family = Family::gauge(
    "queue_max_queued_bytes",
    "The most bytes a queue ever held at once (a set: the largest of its members', gone ones included).",
);
const LARGEST: Family = Family::gauge(
    "queue_largest_queued_bytes",
    "Bytes queued now in the set's fullest member.",
);
const MEMBERS: Family = Family::gauge("queue_members", "Live queues in the set.");
const LIMIT: Family = Family::gauge(
    "queue_limit_bytes",
    "The queue's marks in force, by mark (low, high, hard).",
);
const ACCEPTED: Family = Family::counter("queue_accepted_items_total", "Items a send accepted.");
const DELIVERED: Family = Family::counter(
    "queue_delivered_items_total",
    "Items handed to the receiver's caller or fully written by the writer.",
);
const REFUSED: Family = Family::counter(
    "queue_refused_total",
    "Sends refused because of the hard cap or the memory budget, each counted once.",
);
const EVICTED: Family = Family::counter(
    "queue_evicted_total",
    "Queues whose writer evicted its peer for staying unwritable too long.",
);
const FLIPS: Family = Family::counter(
    "queue_writability_flips_total",
    "Changes of writability, in both directions.",
);
const UNWRITABLE_SECONDS: Family = Family::counter(
    "queue_unwritable_seconds_total",
    "Seconds the queue spent unwritable, including the current stretch.",
);
const SENT: Family = Family::counter(
    "queue_sent_bytes_total",
    "Bytes the writer wrote to its stream.",
);
const WRITES: Family = Family::counter(
    "queue_writes_total",
    "Write calls of the writer that made progress.",
);
const UNDELIVERED_ITEMS: Family = Family::counter(
    "queue_undelivered_items_total",
    "Accepted items dropped without being delivered (abort, write error, eviction, receiver gone).",
);
const UNDELIVERED_BYTES: Family = Family::counter(
    "queue_undelivered_bytes_total",
    "The bytes of accepted items dropped without being delivered.",
);

/// The keys of a queue's settings: its three marks.
const LOW: &str = "low";
const HIGH: &str = "high";
const HARD: &str = "hard";

impl<T: Send + 'static> Observe for Sender<T> {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(QueueObserver(Arc::downgrade(self.shared())))
    }
}

impl<T: Send + 'static> Observe for Receiver<T> {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(QueueObserver(Arc::downgrade(self.shared_arc())))
    }
}

/// Register a writer before spawning it (the registry holds the queue weakly, not the writer).
impl<W> Observe for WatermarkWriter<W> {
    fn observer(&self) -> Arc<dyn Observer> {
        self.receiver().observer()
    }
}

impl<M, E: tokio_util::codec::Encoder<M>> Observe for FramedSender<M, E> {
    fn observer(&self) -> Arc<dyn Observer> {
        self.sender().observer()
    }
}

impl Observe for QueueSet {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(SetObserver(Arc::downgrade(&self.core)))
    }
}

struct QueueObserver<T>(Weak<Shared<T>>);

impl<T: Send> Observer for QueueObserver<T> {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        let m = shared.metrics();
        out.gauge(&QUEUED, m.queued_bytes as f64);
        out.gauge(&QUEUED_ITEMS, m.queued_items as f64);
        out.gauge(&UNWRITABLE, f64::from(u8::from(!m.writable)));
        out.gauge(&PEAK, m.peak_bytes as f64);
        limit_gauges(out, shared.limits().get());
        out.counter(&ACCEPTED, m.accepted_items);
        out.counter(&DELIVERED, m.delivered_items);
        out.counter(&REFUSED, m.refused);
        out.counter(&EVICTED, u64::from(m.evicted));
        out.counter(&FLIPS, m.writability_flips);
        // Through `gauge` because seconds are fractional; the family still renders as a counter.
        out.gauge(&UNWRITABLE_SECONDS, m.time_unwritable.as_secs_f64());
        out.counter(&SENT, m.sent_bytes);
        out.counter(&WRITES, m.writes);
        out.counter(&UNDELIVERED_ITEMS, m.undelivered_items);
        out.counter(&UNDELIVERED_BYTES, m.undelivered_bytes);
        true
    }

    /// `low`, `high` and `hard`. For a member of a [`QueueSet`] these are the set's marks, and applying them
    /// changes them for every member.
    fn settings(&self) -> Option<Settings> {
        Some(limit_settings(self.0.upgrade()?.limits().get()))
    }

    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let headroom = self
            .0
            .upgrade()
            .and_then(|shared| shared.set().map(|set| set.headroom()))
            .unwrap_or(0);
        proposed(settings, headroom).map(drop)
    }

    fn apply(&self, settings: &Settings) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        if let Ok(limits) = proposed(settings, 0) {
            shared.set_limits(limits);
        }
        true
    }
}

struct SetObserver(Weak<SetCore>);

impl Observer for SetObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(set) = self.0.upgrade() else {
            return false;
        };
        let m = set.metrics();
        out.gauge(&MEMBERS, m.members as f64);
        out.gauge(&QUEUED, m.queued_bytes as f64);
        out.gauge(&UNWRITABLE, m.unwritable as f64);
        out.gauge(&LARGEST, m.largest_queued_bytes as f64);
        out.gauge(&PEAK, m.peak_bytes as f64);
        limit_gauges(out, set.limits.get());
        out.counter(&DELIVERED, m.delivered_items);
        out.counter(&REFUSED, m.refused);
        out.counter(&EVICTED, m.evicted);
        out.counter(&FLIPS, m.writability_flips);
        out.counter(&SENT, m.sent_bytes);
        out.counter(&WRITES, m.writes);
        out.counter(&UNDELIVERED_ITEMS, m.undelivered_items);
        out.counter(&UNDELIVERED_BYTES, m.undelivered_bytes);
        true
    }

    /// `low`, `high` and `hard`, of every member.
    fn settings(&self) -> Option<Settings> {
        Some(limit_settings(self.0.upgrade()?.limits.get()))
    }

    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let headroom = self.0.upgrade().map_or(0, |set| set.headroom());
        proposed(settings, headroom).map(drop)
    }

    fn apply(&self, settings: &Settings) -> bool {
        let Some(set) = self.0.upgrade() else {
            return false;
        };
        if let Ok(limits) = proposed(settings, 0) {
            set.set_limits(limits);
        }
        true
    }
}

fn limit_gauges(out: &mut Collector<'_>, limits: Limits) {
    for (mark, bytes) in [
        (LOW, limits.low()),
        (HIGH, limits.high()),
        (HARD, limits.hard()),
    ] {
        out.gauge_with(&LIMIT, ("mark", mark), bytes as f64);
    }
}

fn limit_settings(limits: Limits) -> Settings {
    Settings::new()
        .with(LOW, Some(limits.low() as u64))
        .with(HIGH, Some(limits.high() as u64))
        .with(HARD, Some(limits.hard() as u64))
}

/// The marks `settings` describe, or every reason they cannot: a missing, switched-off or oversized mark, an
/// unknown key, marks out of order, or (for a set of connections) less than `headroom` bytes between high and hard.
fn proposed(settings: &Settings, headroom: usize) -> Result<Limits, Vec<String>> {
    let mut check = SettingsCheck::new(settings, "a queue", &[LOW, HIGH, HARD]);
    let mut mark = |key| check.required(key, usize::MAX as u64).map(|v| v as usize);
    let (low, high, hard) = (mark(LOW), mark(HIGH), mark(HARD));
    let mut limits = None;
    if let (Some(low), Some(high), Some(hard)) = (low, high, hard) {
        match Limits::try_new(low, high, hard) {
            Err(err) => check.refuse(err.to_string()),
            Ok(_) if hard - high < headroom => check.refuse(format!(
                "{HARD} - {HIGH} is {} but the set's connections need {headroom} (their largest frame and a batch)",
                hard - high
            )),
            Ok(ok) => limits = Some(ok),
        }
    }
    check.finish()?;
    Ok(limits.expect("every mark was given and in order when no reason was found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_gives_every_reason() {
        let settings = Settings::new()
            .with(LOW, None)
            .with(HIGH, Some(10))
            .with("size", Some(1));
        let reasons = proposed(&settings, 0).unwrap_err();
        assert_eq!(
            reasons,
            [
                "low cannot be off",
                "hard is missing",
                "unknown key size (a queue has low, high and hard)"
            ]
        );
        let unordered = limit_settings(Limits::new(1, 2, 3)).with(LOW, Some(5));
        assert_eq!(proposed(&unordered, 0).unwrap_err().len(), 1);
        let tight = limit_settings(Limits::new(1, 2, 3));
        assert_eq!(proposed(&tight, 2).unwrap_err().len(), 1);
        assert_eq!(proposed(&tight, 1), Ok(Limits::new(1, 2, 3)));
    }
}
