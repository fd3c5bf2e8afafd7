//! `Registry::snapshot` and `Snapshot::diff`: which series grew, largest first, named by their part.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tidegate::metrics::{
    Collector, Family, MetricKind, Observe, Observer, Registry, Snapshot, NAME_LABEL,
};
use tidegate::{MemoryBudget, Reservation};

const FRAMES: Family = Family::counter("test_frames_total", "Frames the test part handled.");

/// A part with one counter, standing in for a codec or a queue's refusals.
struct Counting(Arc<AtomicU64>);
struct CountingObserver(Weak<AtomicU64>);

impl Observe for Counting {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(CountingObserver(Arc::downgrade(&self.0)))
    }
}

impl Observer for CountingObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(count) = self.0.upgrade() else {
            return false;
        };
        out.counter(&FRAMES, count.load(Ordering::Relaxed));
        true
    }
}

fn used_bytes(diff_names: &[(Option<&str>, &str)]) -> Vec<String> {
    diff_names
        .iter()
        .filter(|(_, family)| *family == "budget_used_bytes")
        .map(|(name, _)| name.unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn diff_names_the_budget_that_grew_first() {
    let registry = Registry::new();
    let budgets: Vec<MemoryBudget> = (0..6).map(|_| MemoryBudget::new(1 << 30)).collect();
    for (i, budget) in budgets.iter().enumerate() {
        registry.register(&format!("queue-{i}"), budget).unwrap();
    }
    // Everyone holds something, and everyone but one grows a little: the noise the culprit hides in.
    let mut held: Vec<Reservation> = budgets
        .iter()
        .map(|b| b.try_reserve(1000).unwrap())
        .collect();
    let earlier = registry.snapshot();
    tokio::time::advance(Duration::from_secs(30)).await;
    for (i, budget) in budgets.iter().enumerate() {
        let more = if i == 4 { 50_000 } else { 10 * i };
        held.push(budget.try_reserve(more).unwrap());
    }
    let diff = registry.snapshot().diff(&earlier);

    // Its used and peak bytes grew by the same amount: the tie goes to the family name.
    let (peak, used) = (&diff.grew()[0], &diff.grew()[1]);
    assert_eq!(
        (peak.name(), peak.family.name()),
        (Some("queue-4"), "budget_peak_bytes")
    );
    assert_eq!(
        (used.name(), used.family.name()),
        (Some("queue-4"), "budget_used_bytes")
    );
    assert_eq!(used.family.kind(), MetricKind::Gauge);
    assert_eq!(
        (used.before, used.after, used.delta),
        (Some(1000.0), Some(51_000.0), 50_000.0)
    );
    assert_eq!(diff.elapsed(), Duration::from_secs(30));
    // The others follow by growth; queue-0 reserved 0 more bytes, so its gauge did not change.
    let names: Vec<(Option<&str>, &str)> = diff
        .grew()
        .iter()
        .map(|c| (c.name(), c.family.name()))
        .collect();
    assert_eq!(
        used_bytes(&names),
        ["queue-4", "queue-5", "queue-3", "queue-2", "queue-1"]
    );
    assert!(diff.shrank().is_empty(), "{diff}");
}

// Paused, so that both diffs span the same (zero) time and their tables can be compared whole.
#[tokio::test(start_paused = true)]
async fn growth_is_sorted_largest_first_with_ties_in_name_order_whatever_the_registration_order() {
    let budgets: Vec<MemoryBudget> = (0..5).map(|_| MemoryBudget::new(1 << 20)).collect();
    let forward = Registry::new();
    let backward = Registry::new();
    for (i, budget) in budgets.iter().enumerate() {
        forward.register(&format!("b{i}"), budget).unwrap();
    }
    for (i, budget) in budgets.iter().enumerate().rev() {
        backward.register(&format!("b{i}"), budget).unwrap();
    }
    let (before_f, before_b) = (forward.snapshot(), backward.snapshot());
    // b1 and b3 tie for the most, the rest tie below them.
    let _held: Vec<Reservation> = budgets
        .iter()
        .enumerate()
        .map(|(i, b)| b.try_reserve(if i % 2 == 1 { 700 } else { 20 }).unwrap())
        .collect();
    let (diff_f, diff_b) = (
        forward.snapshot().diff(&before_f),
        backward.snapshot().diff(&before_b),
    );
    let order = |diff: &tidegate::metrics::Diff| -> Vec<(String, String)> {
        diff.grew()
            .iter()
            .map(|c| (c.family.name().to_owned(), c.name().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(order(&diff_f), order(&diff_b));
    let used: Vec<(Option<&str>, &str)> = diff_f
        .grew()
        .iter()
        .map(|c| (c.name(), c.family.name()))
        .collect();
    assert_eq!(used_bytes(&used), ["b1", "b3", "b0", "b2", "b4"]);
    // Equal growth of different families (used and peak both rose by 700): family name first.
    assert_eq!(
        order(&diff_f)[..4],
        [
            ("budget_peak_bytes".into(), "b1".into()),
            ("budget_peak_bytes".into(), "b3".into()),
            ("budget_used_bytes".into(), "b1".into()),
            ("budget_used_bytes".into(), "b3".into()),
        ]
    );
    assert_eq!(diff_f.to_string(), diff_b.to_string());
}

#[test]
fn new_series_count_from_zero_and_vanished_ones_shrink_to_zero() {
    let registry = Registry::new();
    let leaving = MemoryBudget::new(1000);
    registry.register("leaving", &leaving).unwrap();
    let earlier = registry.snapshot();

    drop(leaving);
    let arriving = MemoryBudget::new(500);
    registry.register("arriving", &arriving).unwrap();
    let diff = registry.snapshot().diff(&earlier);

    let limit_of = |changes: &[tidegate::metrics::Change], name: &str| {
        changes
            .iter()
            .find(|c| c.name() == Some(name) && c.family.name() == "budget_limit_bytes")
            .cloned()
    };
    let new = limit_of(diff.grew(), "arriving").expect("the new budget's limit grew from 0");
    assert_eq!(
        (new.before, new.after, new.delta),
        (None, Some(500.0), 500.0)
    );
    let gone = limit_of(diff.shrank(), "leaving").expect("the dropped budget's limit vanished");
    assert_eq!(
        (gone.before, gone.after, gone.delta),
        (Some(1000.0), None, -1000.0)
    );
    // The series that were 0 before and are absent or still 0 now changed nothing and are not listed.
    assert!(diff
        .grew()
        .iter()
        .chain(diff.shrank())
        .all(|c| c.delta != 0.0));
    assert_eq!(diff.grew().len(), 1, "{diff}");
    assert_eq!(diff.shrank().len(), 1, "{diff}");
}

#[tokio::test(start_paused = true)]
async fn a_counter_grows_at_a_rate_and_the_table_shows_it() {
    let registry = Registry::new();
    let frames = Counting(Arc::new(AtomicU64::new(100)));
    registry.register("reader", &frames).unwrap();
    let earlier = registry.snapshot();
    tokio::time::advance(Duration::from_secs(4)).await;
    frames.0.fetch_add(10, Ordering::Relaxed);
    let diff = registry.snapshot().diff(&earlier);

    let change = &diff.grew()[0];
    assert_eq!(change.family.kind(), MetricKind::Counter);
    assert_eq!(change.per_second(diff.elapsed()), Some(2.5));
    let table = diff.to_string();
    assert!(table.starts_with("changes over 4.000s\n"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains("tidegate_test_frames_total{name=\"reader\"}"))
        .unwrap_or_else(|| panic!("no row in:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..4], ["+10", "100", "110", "2.500"], "{row}");
}

#[test]
fn top_keeps_the_largest_and_says_how_many_were_left_out() {
    let registry = Registry::new();
    let budgets: Vec<MemoryBudget> = (0..4).map(|_| MemoryBudget::new(1 << 20)).collect();
    for (i, budget) in budgets.iter().enumerate() {
        registry.register(&format!("b{i}"), budget).unwrap();
    }
    let earlier = registry.snapshot();
    let _held: Vec<Reservation> = budgets
        .iter()
        .enumerate()
        .map(|(i, b)| b.try_reserve(100 * (i + 1)).unwrap())
        .collect();
    let diff = registry
        .snapshot()
        .diff(&earlier)
        .retain(|c| c.family.name() == "budget_used_bytes");
    assert_eq!(diff.grew().len(), 4);
    let top = diff.top(2);
    assert_eq!(
        top.grew().iter().map(|c| c.name()).collect::<Vec<_>>(),
        [Some("b3"), Some("b2")]
    );
    let table = top.to_string();
    assert!(
        table.contains("grew: 2 series (10 more left out)"),
        "{table}"
    );
    assert!(
        table.find("{name=\"b3\"}").unwrap() < table.find("{name=\"b2\"}").unwrap(),
        "{table}"
    );
    assert!(!table.contains("{name=\"b1\"}"), "{table}");
}

#[test]
fn a_snapshot_is_plain_sorted_data_that_later_changes_do_not_touch() {
    let registry = Registry::new();
    let budget = MemoryBudget::new(100);
    registry.register("z", &budget).unwrap();
    // A temporary, gone before the snapshot: it leaves no series.
    registry.register("a", &MemoryBudget::new(7)).unwrap();
    let snapshot: Snapshot = registry.snapshot();
    let held = budget.try_reserve(60).unwrap();
    drop(budget);

    assert_eq!(snapshot.get("budget_used_bytes", "z"), Some(0.0));
    assert_eq!(snapshot.get("budget_limit_bytes", "z"), Some(100.0));
    let keys: Vec<(&str, Option<&str>)> = snapshot
        .samples()
        .iter()
        .map(|s| (s.family.name(), s.labels.get(NAME_LABEL)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(snapshot.len(), 6, "one budget's six series: {keys:?}");
    let kept = snapshot.clone();
    drop(held);
    assert_eq!(kept.samples(), snapshot.samples());
}
