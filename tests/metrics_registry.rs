//! The registry core: names, labels, weak holding, collection order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tidegate::metrics::{
    Collector, Family, Labels, Observe, Observer, Registry, RegistryError, Settings,
};
use tidegate::MemoryBudget;

const HITS: Family = Family::counter("test_hits_total", "Hits.");
const LEVEL: Family = Family::gauge("test_level", "Level.");

/// A part with one counter, held weakly by its observer.
struct Part(Arc<AtomicU64>);

struct PartObserver(Weak<AtomicU64>);

impl Observe for Part {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(PartObserver(Arc::downgrade(&self.0)))
    }
}

impl Observer for PartObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(hits) = self.0.upgrade() else {
            return false;
        };
        out.counter(&HITS, hits.load(Ordering::Relaxed));
        out.gauge_with(&LEVEL, ("side", "left"), 1.5);
        true
    }
}

fn part(hits: u64) -> Part {
    Part(Arc::new(AtomicU64::new(hits)))
}

#[test]
fn series_carry_the_name_and_the_labels_given_at_registration() {
    let registry = Registry::new();
    let a = part(7);
    let labels = Labels::new().with("listener", "echo").unwrap();
    registry.register_with("a", labels, &a).unwrap();
    let samples = registry.collect();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].family.name(), "test_hits_total");
    assert_eq!(samples[0].value, 7.0);
    let keys: Vec<(&str, &str)> = samples[0].labels.iter().collect();
    assert_eq!(keys, [("listener", "echo"), ("name", "a")]);
    assert_eq!(samples[1].labels.get("side"), Some("left"));
    a.0.store(9, Ordering::Relaxed);
    assert_eq!(registry.collect()[0].value, 9.0);
}

#[test]
fn a_dropped_part_leaves_the_registry_and_frees_its_name() {
    let registry = Registry::new();
    let a = part(1);
    registry.register("a", &a).unwrap();
    assert_eq!(
        registry.register("a", &part(2)),
        Err(RegistryError::Duplicate { name: "a".into() })
    );
    drop(a);
    assert!(registry.collect().is_empty());
    assert!(registry.names().is_empty());
    let b = part(3);
    registry.register("a", &b).unwrap();
    assert_eq!(registry.collect()[0].value, 3.0);
}

#[test]
fn a_dead_part_under_a_name_is_replaced_without_a_collection_first() {
    let registry = Registry::new();
    let a = part(1);
    registry.register("a", &a).unwrap();
    drop(a);
    let b = part(2);
    registry.register("a", &b).unwrap();
    assert_eq!(registry.names(), ["a"]);
}

#[test]
fn the_registry_does_not_keep_a_budget_alive() {
    let registry = Registry::new();
    let budget = MemoryBudget::new(100);
    registry.register("budget", &budget).unwrap();
    let weak_probe = budget.clone();
    drop(budget);
    assert_eq!(registry.names(), ["budget"], "a clone still holds it");
    drop(weak_probe);
    assert!(registry.render_prometheus().is_empty());
}

#[test]
fn bad_names_and_labels_are_refused() {
    let registry = Registry::new();
    let a = part(1);
    for name in ["", "a b", "ä", "a\"b"] {
        assert_eq!(
            registry.register(name, &a),
            Err(RegistryError::InvalidName { name: name.into() })
        );
    }
    registry.register("edge.listener-1/v2_x", &a).unwrap();
    assert!(matches!(
        Labels::new().with("name", "x"),
        Err(RegistryError::InvalidLabel { .. })
    ));
    assert!(Labels::new().with("__x", "x").is_err());
}

#[test]
fn collection_is_sorted_by_family_then_labels_whatever_the_registration_order() {
    let parts: Vec<Part> = (0..5).map(part).collect();
    let forward = Registry::new();
    for (i, p) in parts.iter().enumerate() {
        forward.register(&format!("p{i}"), p).unwrap();
    }
    let backward = Registry::new();
    for (i, p) in parts.iter().enumerate().rev() {
        backward.register(&format!("p{i}"), p).unwrap();
    }
    assert_eq!(forward.render_prometheus(), backward.render_prometheus());
    let names: Vec<String> = forward
        .collect()
        .iter()
        .map(|s| format!("{}{:?}", s.family.name(), s.labels))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn a_budget_checks_its_settings_whole_and_applies_them() {
    let budget = MemoryBudget::new(100);
    let observer = budget.observer();
    assert_eq!(
        observer.settings(),
        Some(Settings::new().with("limit", Some(100)))
    );
    let bad = Settings::new().with("limit", None).with("colour", Some(1));
    let reasons = observer.check(&bad).unwrap_err();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        observer.check(&Settings::new()).is_err(),
        "limit is missing"
    );
    let good = Settings::new().with("limit", Some(50));
    observer.check(&good).unwrap();
    assert!(observer.apply(&good));
    assert_eq!(budget.limit(), 50);
    drop(budget);
    assert!(!observer.apply(&good), "gone");
    assert_eq!(observer.settings(), None);
}

#[test]
fn the_global_registry_is_one_registry() {
    let a = part(1);
    Registry::global().register("global-test-part", &a).unwrap();
    assert!(Registry::global()
        .names()
        .contains(&"global-test-part".to_owned()));
}
