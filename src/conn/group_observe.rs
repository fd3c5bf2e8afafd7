//! A group's report to a metrics registry: a fixed number of series, however many members.

use std::sync::Arc;

use super::group::WeakGroup;
use super::Group;
use crate::metrics::{Collector, Family, Observe, Observer};

const MEMBERS: Family = Family::gauge("group_members", "Members now.");
const ADDED: Family = Family::counter("group_added_total", "Members added.");
const REMOVED: Family = Family::counter(
    "group_removed_total",
    "Members taken out with remove (not counting pruned ones).",
);
const BROADCASTS: Family = Family::counter("group_broadcasts_total", "Calls to broadcast.");
const SENT: Family = Family::counter(
    "group_sent_total",
    "Frames queued to a member: one per member per broadcast that reached it.",
);
const SKIPPED: Family = Family::counter(
    "group_skipped_total",
    "Times a broadcast passed over an open member, which missed that frame (unwritable, or its queue refused it).",
);
const REFUSED: Family = Family::counter(
    "group_refused_total",
    "The skips where the member was writable and its queue refused the frame (hard cap or memory budget).",
);
const PRUNED: Family = Family::counter(
    "group_pruned_total",
    "Members removed because their queue had closed, by reason (evicted, failed, closed).",
);
const QUEUED: Family = Family::gauge(
    "group_queued_bytes",
    "Bytes queued now, summed over the members' queues.",
);
const MAX_QUEUED: Family = Family::gauge(
    "group_max_queued_bytes",
    "Bytes queued now in the fullest member's queue.",
);
const UNWRITABLE: Family = Family::gauge(
    "group_unwritable_members",
    "Members whose queue is unwritable now.",
);

/// A group renders its counters and its members' queues summed: the same dozen series for 10 members or 100,000.
impl Observe for Group {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(GroupObserver(self.downgrade()))
    }
}

struct GroupObserver(WeakGroup);

impl Observer for GroupObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(group) = self.0.upgrade() else {
            return false;
        };
        let m = group.metrics();
        out.gauge(&MEMBERS, m.members as f64);
        out.counter(&ADDED, m.added);
        out.counter(&REMOVED, m.removed);
        out.counter(&BROADCASTS, m.broadcasts);
        out.counter(&SENT, m.sent);
        out.counter(&SKIPPED, m.skipped);
        out.counter(&REFUSED, m.refused);
        for (reason, count) in [
            ("evicted", m.pruned_evicted),
            ("failed", m.pruned_failed),
            ("closed", m.pruned_closed),
        ] {
            out.counter_with(&PRUNED, ("reason", reason), count);
        }
        out.gauge(&QUEUED, m.queued_bytes as f64);
        out.gauge(&MAX_QUEUED, m.max_queued_bytes as f64);
        out.gauge(&UNWRITABLE, m.unwritable_members as f64);
        true
    }
}
