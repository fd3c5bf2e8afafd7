//! The `metrics` feature: a registry forwarded to the `metrics` facade, checked with a recorder that writes down
//! every call it receives.
#![cfg(feature = "metrics")]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use tidegate::metrics::{FacadeForwarder, Labels, Registry};
use tidegate::MemoryBudget;
use tokio_util::sync::CancellationToken;

/// One call a metric handle received.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    CounterIncrement(u64),
    CounterAbsolute(u64),
    GaugeIncrement(f64),
    GaugeDecrement(f64),
    GaugeSet(f64),
}

#[derive(Debug, Default)]
struct Log {
    ops: Vec<(Key, Op)>,
    descriptions: Vec<(String, String)>,
}

/// A call as seen by a test: metric name, labels in order, the call.
type Call = (String, Vec<(String, String)>, Op);

/// A recorder that keeps every call, in order.
#[derive(Debug, Clone, Default)]
struct Recording(Arc<Mutex<Log>>);

struct Handle {
    key: Key,
    log: Arc<Mutex<Log>>,
}

impl Handle {
    fn push(&self, op: Op) {
        self.log.lock().unwrap().ops.push((self.key.clone(), op));
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.push(Op::CounterIncrement(value));
    }
    fn absolute(&self, value: u64) {
        self.push(Op::CounterAbsolute(value));
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.push(Op::GaugeIncrement(value));
    }
    fn decrement(&self, value: f64) {
        self.push(Op::GaugeDecrement(value));
    }
    fn set(&self, value: f64) {
        self.push(Op::GaugeSet(value));
    }
}

impl Recording {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        Arc::new(Handle {
            key: key.clone(),
            log: Arc::clone(&self.0),
        })
    }

    fn describe(&self, key: KeyName, description: SharedString) {
        let entry = (key.as_str().to_owned(), description.to_string());
        self.0.lock().unwrap().descriptions.push(entry);
    }

    /// The calls made on series whose `name` label is `part`, as (metric name, labels, op).
    fn ops_of(&self, part: &str) -> Vec<Call> {
        let log = self.0.lock().unwrap();
        log.ops
            .iter()
            .filter(|(key, _)| key.labels().any(|l| l.key() == "name" && l.value() == part))
            .map(|(key, op)| {
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (key.name().to_owned(), labels, op.clone())
            })
            .collect()
    }

    fn last_op(&self, part: &str, metric: &str) -> Option<Op> {
        self.ops_of(part)
            .into_iter()
            .rev()
            .find(|(name, _, _)| name == metric)
            .map(|(_, _, op)| op)
    }
}

impl Recorder for Recording {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }
    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }
    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// The process-wide recorder, for the spawned forwarder (a local recorder does not follow a task).
fn global() -> &'static Recording {
    static GLOBAL: OnceLock<Recording> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let recording = Recording::default();
        metrics::set_global_recorder(recording.clone()).expect("only this binary sets it");
        recording
    })
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn gauges_are_set_and_counters_absolute_with_the_samples_labels() {
    let recording = Recording::default();
    let registry = Registry::new();
    let budget = MemoryBudget::new(10_000);
    let extra = Labels::new().with("region", "eu").unwrap();
    registry
        .register_with("conns", extra, &budget)
        .expect("a fresh name");
    let held = budget.try_reserve(4096).unwrap();
    assert!(budget.try_reserve(8000).is_err());

    let forwarded = metrics::with_local_recorder(&recording, || {
        FacadeForwarder::new(&registry).forward_once()
    });

    let expected = labels(&[("name", "conns"), ("region", "eu")]);
    let ops = recording.ops_of("conns");
    assert_eq!(Some(ops.len()), forwarded, "one call per sample: {ops:?}");
    assert!(ops
        .iter()
        .all(|(name, l, _)| name.starts_with("tidegate_") && *l == expected));
    assert!(ops.contains(&(
        "tidegate_budget_used_bytes".into(),
        expected.clone(),
        Op::GaugeSet(4096.0)
    )));
    assert!(ops.contains(&(
        "tidegate_budget_limit_bytes".into(),
        expected.clone(),
        Op::GaugeSet(10_000.0)
    )));
    assert!(ops.contains(&(
        "tidegate_budget_refused_total".into(),
        expected.clone(),
        Op::CounterAbsolute(1)
    )));
    assert!(ops.contains(&(
        "tidegate_budget_granted_total".into(),
        expected,
        Op::CounterAbsolute(1)
    )));
    // Gauges only ever set, counters only ever absolute: the facade sees the registry's own numbers.
    assert!(ops.iter().all(|(name, _, op)| match op {
        Op::CounterAbsolute(_) => name.ends_with("_total"),
        Op::GaugeSet(_) => !name.ends_with("_total"),
        _ => false,
    }));
    let descriptions = recording.0.lock().unwrap().descriptions.clone();
    assert!(descriptions.contains(&(
        "tidegate_budget_used_bytes".into(),
        "Bytes currently reserved from the budget.".into()
    )));
    drop(held);
}

#[test]
fn a_second_forward_reports_the_new_totals_and_describes_once() {
    let recording = Recording::default();
    let registry = Registry::new();
    let budget = MemoryBudget::new(100);
    registry.register("again", &budget).unwrap();
    let forwarder = FacadeForwarder::new(&registry);
    assert!(budget.try_reserve(200).is_err());
    metrics::with_local_recorder(&recording, || forwarder.forward_once());
    assert!(budget.try_reserve(300).is_err());
    let held = budget.try_reserve(60).unwrap();
    metrics::with_local_recorder(&recording, || forwarder.forward_once());

    assert_eq!(
        recording.last_op("again", "tidegate_budget_refused_total"),
        Some(Op::CounterAbsolute(2)),
        "the total, not the 1 added since the last forward"
    );
    assert_eq!(
        recording.last_op("again", "tidegate_budget_used_bytes"),
        Some(Op::GaugeSet(60.0))
    );
    let descriptions = recording.0.lock().unwrap().descriptions.clone();
    let used = descriptions
        .iter()
        .filter(|(name, _)| name == "tidegate_budget_used_bytes")
        .count();
    assert_eq!(used, 1, "described once per forwarder: {descriptions:?}");
    drop(held);
}

#[test]
fn forwarding_ends_with_the_registry_and_skips_dropped_parts() {
    let recording = Recording::default();
    let registry = Registry::new();
    let kept = MemoryBudget::new(100);
    let dropped = MemoryBudget::new(100);
    registry.register("kept", &kept).unwrap();
    registry.register("dropped", &dropped).unwrap();
    drop(dropped);
    let forwarder = FacadeForwarder::new(&registry);
    metrics::with_local_recorder(&recording, || {
        assert!(forwarder.forward_once().is_some_and(|n| n > 0));
    });
    assert!(!recording.ops_of("kept").is_empty());
    assert!(recording.ops_of("dropped").is_empty());

    drop(registry);
    assert_eq!(forwarder.forward_once(), None);
}

#[tokio::test(start_paused = true)]
async fn the_spawned_forwarder_samples_on_its_interval_until_cancelled() {
    let recording = global();
    let registry = Registry::new();
    let budget = MemoryBudget::new(1000);
    registry.register("spawned", &budget).unwrap();
    let stop = CancellationToken::new();
    let task = FacadeForwarder::new(&registry)
        .interval(Duration::from_secs(10))
        .spawn(stop.clone());

    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        recording.last_op("spawned", "tidegate_budget_used_bytes"),
        Some(Op::GaugeSet(0.0)),
        "the first forward happens at once"
    );
    let held = budget.try_reserve(700).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        recording.last_op("spawned", "tidegate_budget_used_bytes"),
        Some(Op::GaugeSet(0.0)),
        "nothing before the interval"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        recording.last_op("spawned", "tidegate_budget_used_bytes"),
        Some(Op::GaugeSet(700.0))
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("a cancelled forwarder ends")
        .unwrap();
    let before = recording.ops_of("spawned").len();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(recording.ops_of("spawned").len(), before);
    drop((held, registry));
}

#[tokio::test(start_paused = true)]
async fn the_spawned_forwarder_ends_when_the_registry_is_dropped() {
    let recording = global();
    let registry = Registry::new();
    let budget = MemoryBudget::new(1000);
    registry.register("orphan", &budget).unwrap();
    let task = FacadeForwarder::new(&registry)
        .interval(Duration::from_secs(10))
        .spawn(CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!recording.ops_of("orphan").is_empty());

    drop(registry);
    tokio::time::timeout(Duration::from_secs(11), task)
        .await
        .expect("the forwarder ends at the first tick without a registry")
        .unwrap();
}
