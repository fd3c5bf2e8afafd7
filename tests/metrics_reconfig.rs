//! Live reconfiguration through `tidegate::metrics::Registry`: the configuration's text form, whole-or-nothing
//! checking, partial configurations, diffs, and a swap under load on loopback connections.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use proptest::prelude::*;
use tidegate::codec::CodecStats;
use tidegate::conn::{ConnectionLimiter, LimitedListener};
use tidegate::exec::ExecLimits;
use tidegate::metrics::{
    Collector, Configuration, EntryError, Family, Observe, Observer, ParseError, Registry, Settings,
};
use tidegate::watermark::{Limits, QueueSet, WatermarkWriter};
use tidegate::{BoundedExecutor, BufPool, MemoryBudget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

// ---------------------------------------------------------------------------------------------------------------
// A part with two limits that must stay ordered, so that merging and whole-part checks can be seen.

const PAIR_LOW: Family = Family::gauge("test_pair_low", "The pair's low limit.");

/// Two limits, `low <= high`, kept under one lock so a reader sees both from one apply.
#[derive(Clone)]
struct Pair(Arc<PairState>);

struct PairState {
    limits: Mutex<(u64, u64)>,
    /// Set while an `apply` runs: two overlapping applies mean two reconfigurations interleaved.
    applying: AtomicBool,
    overlaps: AtomicUsize,
}

impl Pair {
    fn new(low: u64, high: u64) -> Self {
        Pair(Arc::new(PairState {
            limits: Mutex::new((low, high)),
            applying: AtomicBool::new(false),
            overlaps: AtomicUsize::new(0),
        }))
    }

    fn get(&self) -> (u64, u64) {
        *self.0.limits.lock()
    }
}

impl Observe for Pair {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(PairObserver(Arc::downgrade(&self.0)))
    }
}

struct PairObserver(Weak<PairState>);

impl Observer for PairObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(state) = self.0.upgrade() else {
            return false;
        };
        out.gauge(&PAIR_LOW, state.limits.lock().0 as f64);
        true
    }

    fn settings(&self) -> Option<Settings> {
        let (low, high) = *self.0.upgrade()?.limits.lock();
        Some(
            Settings::new()
                .with("low", Some(low))
                .with("high", Some(high)),
        )
    }

    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        let mut value = |key: &str| match settings.get(key) {
            Some(Some(v)) => Some(v),
            Some(None) => {
                reasons.push(format!("{key} cannot be off"));
                None
            }
            None => {
                reasons.push(format!("{key} is missing"));
                None
            }
        };
        let (low, high) = (value("low"), value("high"));
        if let (Some(low), Some(high)) = (low, high) {
            if low > high {
                reasons.push(format!("low {low} is above high {high}"));
            }
        }
        for (key, _) in settings.iter() {
            if key != "low" && key != "high" {
                reasons.push(format!("unknown key {key}"));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    fn apply(&self, settings: &Settings) -> bool {
        let Some(state) = self.0.upgrade() else {
            return false;
        };
        if state.applying.swap(true, Ordering::SeqCst) {
            state.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        // Widen the window in which a second, unserialised reconfiguration would overlap this one.
        std::thread::yield_now();
        let low = settings.get("low").flatten().expect("checked");
        let high = settings.get("high").flatten().expect("checked");
        *state.limits.lock() = (low, high);
        state.applying.store(false, Ordering::SeqCst);
        true
    }
}

fn config(text: &str) -> Configuration {
    text.parse().unwrap_or_else(|err| panic!("{text:?}: {err}"))
}

fn lines<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// The text form.

fn part_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_./-]{1,12}"
}

fn key_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_]{1,10}"
}

fn value() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        Just(None),
        any::<u64>().prop_map(Some),
        (0u64..100).prop_map(Some)
    ]
}

type Model = BTreeMap<(String, String), Option<u64>>;

fn model() -> impl Strategy<Value = Model> {
    prop::collection::btree_map((part_name(), key_name()), value(), 0..24)
}

fn from_model(model: &Model) -> Configuration {
    let mut config = Configuration::new();
    for ((part, key), value) in model {
        config
            .set(part, key, *value)
            .expect("valid by construction");
    }
    config
}

fn to_model(config: &Configuration) -> Model {
    config
        .iter()
        .flat_map(|(part, settings)| {
            settings
                .iter()
                .map(move |(key, value)| ((part.to_owned(), key.to_owned()), value))
        })
        .collect()
}

proptest! {
    #[test]
    fn printing_then_parsing_gives_the_same_configuration(model in model()) {
        let config = from_model(&model);
        let text = config.to_string();
        let parsed = Configuration::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &config);
        prop_assert_eq!(to_model(&parsed), model.clone());
        prop_assert_eq!(parsed.to_string(), text.clone());
        // Sorted: one line per limit, in (part, key) order.
        let expected: Vec<String> = model
            .iter()
            .map(|((p, k), v)| match v {
                Some(v) => format!("{p}.{k} = {v}"),
                None => format!("{p}.{k} = off"),
            })
            .collect();
        prop_assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn comments_blank_lines_spacing_and_order_do_not_matter(
        model in model(),
        seed in any::<u64>(),
        pads in prop::collection::vec((0usize..3, 0usize..3, 0usize..3, any::<bool>(), any::<bool>()), 24),
    ) {
        let mut entries: Vec<_> = model.iter().collect();
        // A cheap deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..entries.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            entries.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut text = String::new();
        for (((part, key), value), (before, around, after, comment, blank)) in entries.into_iter().zip(&pads) {
            if *blank {
                text.push_str("   \n# a comment line = with.dots = 5\n");
            }
            let value = value.map_or("off".to_owned(), |v| v.to_string());
            text.push_str(&" ".repeat(*before));
            text.push_str(&format!("{part}.{key}{}={}{value}", " ".repeat(*around), "\t".repeat(*around)));
            text.push_str(&" ".repeat(*after));
            if *comment {
                text.push_str(" # trailing = comment");
            }
            text.push('\n');
        }
        let parsed = Configuration::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(to_model(&parsed), model);
    }

    #[test]
    fn random_text_parses_or_fails_without_panicking(text in "[a-z0-9_.=# \n+-]{0,200}") {
        match Configuration::parse(&text) {
            Ok(config) => prop_assert_eq!(Configuration::parse(&config.to_string()), Ok(config)),
            Err(errors) => {
                prop_assert!(!errors.errors().is_empty());
                let count = text.lines().count();
                prop_assert!(errors.errors().iter().all(|e| e.line >= 1 && e.line <= count));
            }
        }
    }
}

#[test]
fn parse_errors_name_every_bad_line_with_its_number() {
    let text = "\
# limits
good.limit = 10
no_equals_here
nokey = 5
bad name.limit = 1
part.bad-key = 1
part.limit = ten
part.other = +5
good.limit = 11

part.big = 18446744073709551616
part.neg = -1
part.empty =
";
    let errors = Configuration::parse(text).unwrap_err();
    let got: Vec<(usize, EntryError)> = errors
        .errors()
        .iter()
        .map(|e| (e.line, e.error.clone()))
        .collect();
    let invalid = |value: &str| EntryError::InvalidValue {
        value: value.to_owned(),
    };
    assert_eq!(
        got,
        vec![
            (3, EntryError::MissingEquals),
            (4, EntryError::MissingKey),
            (
                5,
                EntryError::InvalidName {
                    name: "bad name".to_owned()
                }
            ),
            (
                6,
                EntryError::InvalidKey {
                    key: "bad-key".to_owned()
                }
            ),
            (7, invalid("ten")),
            (8, invalid("+5")),
            (9, EntryError::Duplicate { first_line: 2 }),
            (11, invalid("18446744073709551616")),
            (12, invalid("-1")),
            (13, invalid("")),
        ]
    );
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), 10);
    assert!(shown.starts_with("line 3: expected `name.key = value`\n"));
    assert!(shown.contains("line 9: duplicate entry: already set on line 2"));
    assert_eq!(
        ParseError {
            line: 7,
            error: invalid("ten")
        }
        .to_string(),
        "line 7: invalid value \"ten\": expected a decimal number below 2^64 or `off`"
    );
}

#[test]
fn names_with_dots_split_at_the_last_dot_and_crlf_is_accepted() {
    let parsed = config("edge.v4.per_ip = off\r\nedge.v4.global = 7\r\n");
    assert_eq!(parsed.len(), 1);
    let edge = parsed.get("edge.v4").unwrap();
    assert_eq!(edge.get("per_ip"), Some(None));
    assert_eq!(edge.get("global"), Some(Some(7)));
    assert_eq!(
        parsed.to_string(),
        "edge.v4.global = 7\nedge.v4.per_ip = off\n"
    );
}

#[test]
fn building_refuses_what_the_text_form_cannot_write() {
    let mut config = Configuration::new();
    assert_eq!(
        config.set("a b", "limit", Some(1)),
        Err(EntryError::InvalidName {
            name: "a b".to_owned()
        })
    );
    assert_eq!(
        config.set("a", "li.mit", Some(1)),
        Err(EntryError::InvalidKey {
            key: "li.mit".to_owned()
        })
    );
    assert_eq!(
        config.insert("a", Settings::new().with("ok", Some(1)).with("", None)),
        Err(EntryError::InvalidKey { key: String::new() })
    );
    assert!(config.is_empty(), "a refused insert changes nothing");
    config
        .insert("a", Settings::new().with("ok", Some(1)))
        .unwrap();
    config.insert("a", Settings::new()).unwrap();
    assert!(config.is_empty(), "empty settings remove the part");
}

#[test]
fn diff_lists_every_changed_limit_as_a_log_line() {
    let old = config("a.limit = 10\nb.per_ip = off\nb.global = 5\ngone.limit = 3\nsame.limit = 1");
    let new = config("a.limit = 20\nb.per_ip = 4\nb.global = 5\nfresh.limit = 9\nsame.limit = 1");
    assert_eq!(
        lines(&old.diff(&new)),
        [
            "a.limit: 10 -> 20",
            "b.per_ip: off -> 4",
            "fresh.limit: unset -> 9",
            "gone.limit: 3 -> unset",
        ]
    );
    assert!(old.diff(&old).is_empty());
    assert_eq!(
        lines(&new.diff(&old)),
        [
            "a.limit: 20 -> 10",
            "b.per_ip: 4 -> off",
            "fresh.limit: 9 -> unset",
            "gone.limit: unset -> 3",
        ]
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Reading and applying through the registry.

#[test]
fn configuration_is_read_from_the_live_parts() {
    let registry = Registry::new();
    let budget = MemoryBudget::new(4096);
    let pair = Pair::new(1, 2);
    registry.register("budget", &budget).unwrap();
    registry.register("pair", &pair).unwrap();
    assert_eq!(registry.configuration_version(), 0);
    assert_eq!(
        registry.configuration().to_string(),
        "budget.limit = 4096\npair.high = 2\npair.low = 1\n"
    );
    budget.set_limit(100);
    drop(pair);
    assert_eq!(registry.configuration(), config("budget.limit = 100"));
}

#[test]
fn reconfigure_applies_and_reports_what_changed() {
    let registry = Registry::new();
    let (a, b) = (MemoryBudget::new(10), MemoryBudget::new(20));
    let pair = Pair::new(1, 2);
    registry.register("a", &a).unwrap();
    registry.register("b", &b).unwrap();
    registry.register("pair", &pair).unwrap();

    let done = registry
        .reconfigure(&config(
            "a.limit = 11\nb.limit = 20\npair.low = 5\npair.high = 6",
        ))
        .unwrap();
    assert_eq!(done.version(), 1);
    assert_eq!(
        lines(done.changes()),
        ["a.limit: 10 -> 11", "pair.high: 2 -> 6", "pair.low: 1 -> 5"]
    );
    assert_eq!(
        done.to_string(),
        "a.limit: 10 -> 11\npair.high: 2 -> 6\npair.low: 1 -> 5\n"
    );
    assert_eq!((a.limit(), b.limit(), pair.get()), (11, 20, (5, 6)));
    assert_eq!(registry.configuration_version(), 1);
    assert_eq!(
        registry.versioned_configuration(),
        (
            1,
            config("a.limit = 11\nb.limit = 20\npair.low = 5\npair.high = 6")
        )
    );

    // The same configuration again changes nothing, but is still one more applied version.
    let again = registry.reconfigure(&registry.configuration()).unwrap();
    assert!(again.changes().is_empty());
    assert_eq!(again.version(), 2);
}

#[test]
fn an_invalid_configuration_is_refused_whole_with_every_reason() {
    let registry = Registry::new();
    let (a, b) = (MemoryBudget::new(10), MemoryBudget::new(20));
    let pair = Pair::new(1, 2);
    let dropped = MemoryBudget::new(5);
    registry.register("a", &a).unwrap();
    registry.register("b", &b).unwrap();
    registry.register("pair", &pair).unwrap();
    registry.register("dropped", &dropped).unwrap();
    drop(dropped);
    let before = registry.configuration();

    let refused = registry
        .reconfigure(&config(
            "\
a.limit = 11
b.limit = off
b.extra = 3
dropped.limit = 6
nobody.limit = 1
pair.low = 9
pair.high = 8
pair.mid = off
",
        ))
        .unwrap_err();
    let reasons: Vec<(String, String)> = refused
        .refusals()
        .iter()
        .map(|r| (r.part.clone(), r.reason.clone()))
        .collect();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(p, r)| (p.to_string(), r.to_string()))
            .collect()
    };
    assert_eq!(
        reasons,
        pairs(&[
            ("b", "limit cannot be off"),
            ("b", "unknown key extra (a budget has only limit)"),
            (
                "dropped",
                "no live part is registered under this name (it was dropped)"
            ),
            ("nobody", "no live part is registered under this name"),
            ("pair", "low 9 is above high 8"),
            ("pair", "unknown key mid"),
        ])
    );
    assert!(refused
        .to_string()
        .starts_with("configuration refused: b: limit cannot be off; b: unknown key extra"));
    // Nothing applied: not even `a`, whose own settings were fine.
    assert_eq!((a.limit(), b.limit(), pair.get()), (10, 20, (1, 2)));
    assert_eq!(registry.configuration(), before);
    assert_eq!(registry.configuration_version(), 0);
}

#[test]
fn a_part_without_live_limits_is_refused() {
    struct Plain;
    struct PlainObserver;
    impl Observe for Plain {
        fn observer(&self) -> Arc<dyn Observer> {
            Arc::new(PlainObserver)
        }
    }
    impl Observer for PlainObserver {
        fn collect(&self, out: &mut Collector<'_>) -> bool {
            out.gauge(&PAIR_LOW, 0.0);
            true
        }
    }
    let registry = Registry::new();
    registry.register("plain", &Plain).unwrap();
    assert!(registry.configuration().is_empty());
    let refused = registry
        .reconfigure(&config("plain.limit = 1"))
        .unwrap_err();
    assert_eq!(
        lines(refused.refusals()),
        ["plain: this part has no live limits"]
    );
}

#[test]
fn a_partial_configuration_keeps_the_other_parts_and_keys() {
    let registry = Registry::new();
    let (a, b) = (MemoryBudget::new(10), MemoryBudget::new(20));
    let pair = Pair::new(10, 20);
    registry.register("a", &a).unwrap();
    registry.register("b", &b).unwrap();
    registry.register("pair", &pair).unwrap();

    // Only `pair.high`: merged over the current `low`, `b` untouched.
    let done = registry
        .reconfigure(&config("a.limit = 12\npair.high = 30"))
        .unwrap();
    assert_eq!(
        lines(done.changes()),
        ["a.limit: 10 -> 12", "pair.high: 20 -> 30"]
    );
    assert_eq!((a.limit(), b.limit(), pair.get()), (12, 20, (10, 30)));

    // The merged settings are checked as a whole: `high` alone below the current `low` is out of order.
    let refused = registry.reconfigure(&config("pair.high = 5")).unwrap_err();
    assert_eq!(lines(refused.refusals()), ["pair: low 10 is above high 5"]);
    assert_eq!(pair.get(), (10, 30));

    // An empty configuration changes nothing.
    assert!(registry
        .reconfigure(&Configuration::new())
        .unwrap()
        .changes()
        .is_empty());
    assert_eq!((a.limit(), b.limit(), pair.get()), (12, 20, (10, 30)));
}

#[test]
fn concurrent_reconfigurations_never_interleave() {
    const PARTS: usize = 8;
    const SWAPS: usize = 300;
    let registry = Registry::new();
    let pairs: Vec<Pair> = (0..PARTS).map(|_| Pair::new(0, 0)).collect();
    for (i, pair) in pairs.iter().enumerate() {
        registry.register(&format!("p{i}"), pair).unwrap();
    }
    // Each configuration sets every part to the same values; an interleaving would leave them different.
    let uniform = |v: u64| {
        let mut config = Configuration::new();
        for i in 0..PARTS {
            let part = format!("p{i}");
            config.set(&part, "low", Some(v)).unwrap();
            config.set(&part, "high", Some(v)).unwrap();
        }
        config
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for v in [1, 2] {
            let (registry, config) = (registry.clone(), uniform(v));
            scope.spawn(move || {
                for _ in 0..SWAPS {
                    registry.reconfigure(&config).unwrap();
                }
            });
        }
        let reader = scope.spawn(|| {
            let mut seen = 0;
            while !stop.load(Ordering::SeqCst) {
                let values: Vec<Option<u64>> = registry
                    .configuration()
                    .iter()
                    .map(|(_, s)| s.get("low").flatten())
                    .collect();
                assert_eq!(values.len(), PARTS);
                assert!(
                    values.windows(2).all(|w| w[0] == w[1]),
                    "a configuration read mid-swap: {values:?}"
                );
                seen += 1;
            }
            seen
        });
        while registry.configuration_version() < 2 * SWAPS as u64 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::SeqCst);
        assert!(reader.join().unwrap() > 0);
    });
    let last = pairs[0].get();
    assert!(pairs.iter().all(|p| p.get() == last));
    assert!(pairs
        .iter()
        .all(|p| p.0.overlaps.load(Ordering::SeqCst) == 0));
    assert_eq!(registry.configuration_version(), 2 * SWAPS as u64);
}

// ---------------------------------------------------------------------------------------------------------------
// A swap under load.

const CONNECTIONS: usize = 24;
const MESSAGES: usize = 40;
const MIN_SWAPS: usize = 40;
const STEP: Duration = Duration::from_secs(20);

/// Every live limit of the load test's parts; the two configurations differ in each, so any mixture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    read: u64,
    write: u64,
    pair: (u64, u64),
    /// The limiter's limit and per-address limit.
    conns: (usize, Option<usize>),
    exec: ExecLimits,
    queues: Limits,
    max_frame: Option<usize>,
    retained: usize,
}

/// Configuration A; B is the initial state. Both admit every connection (all come from one address) and run
/// every echo at once, so neither restarts or refuses anything.
fn spec_a() -> Spec {
    Spec {
        read: 1 << 20,
        write: (1 << 20) + 1,
        pair: (100, 200),
        conns: (CONNECTIONS + 8, Some(CONNECTIONS + 4)),
        exec: ExecLimits::new(CONNECTIONS + 2, 8, None),
        queues: Limits::new(8 << 10, 16 << 10, 64 << 10),
        max_frame: Some(64 << 10),
        retained: 1 << 20,
    }
}

fn spec_b() -> Spec {
    Spec {
        read: 2 << 20,
        write: (2 << 20) + 1,
        pair: (300, 400),
        conns: (CONNECTIONS + 16, None),
        exec: ExecLimits::new(CONNECTIONS + 4, 16, Some(Duration::from_secs(60))),
        queues: Limits::new(16 << 10, 32 << 10, 128 << 10),
        max_frame: None,
        retained: 2 << 20,
    }
}

impl Spec {
    fn config(&self) -> Configuration {
        let count = |n: usize| Some(n as u64);
        let entries = [
            ("load.read", "limit", Some(self.read)),
            ("load.write", "limit", Some(self.write)),
            ("load.pair", "low", Some(self.pair.0)),
            ("load.pair", "high", Some(self.pair.1)),
            ("load.limiter", "limit", count(self.conns.0)),
            ("load.limiter", "per_ip", self.conns.1.map(|n| n as u64)),
            (
                "load.exec",
                "max_concurrency",
                count(self.exec.max_concurrency),
            ),
            ("load.exec", "max_pending", count(self.exec.max_pending)),
            (
                "load.exec",
                "shed_after_ms",
                self.exec.shed_after.map(|d| d.as_millis() as u64),
            ),
            ("load.queues", "low", count(self.queues.low())),
            ("load.queues", "high", count(self.queues.high())),
            ("load.queues", "hard", count(self.queues.hard())),
            (
                "load.codec",
                "max_frame_length",
                self.max_frame.map(|n| n as u64),
            ),
            ("load.pool", "max_retained_bytes", count(self.retained)),
        ];
        let mut config = Configuration::new();
        for (part, key, value) in entries {
            config.set(part, key, value).unwrap();
        }
        config
    }
}

/// The load test's parts, all registered under `load.*`.
struct Load {
    registry: Registry,
    read: MemoryBudget,
    write: MemoryBudget,
    pair: Pair,
    limiter: ConnectionLimiter,
    exec: BoundedExecutor,
    queues: QueueSet,
    codec: CodecStats,
    pool: BufPool,
}

impl Load {
    fn new(initial: Spec) -> Self {
        let limiter = ConnectionLimiter::new(initial.conns.0);
        limiter.set_per_ip_limit(initial.conns.1);
        let exec = BoundedExecutor::new(1, 0);
        exec.set_limits(initial.exec);
        let codec = CodecStats::new();
        codec.set_max_frame_length(initial.max_frame).unwrap();
        let pool = BufPool::new();
        pool.set_max_retained_bytes(initial.retained);
        let load = Load {
            registry: Registry::new(),
            read: MemoryBudget::new(initial.read as usize),
            write: MemoryBudget::new(initial.write as usize),
            pair: Pair::new(initial.pair.0, initial.pair.1),
            limiter,
            exec,
            queues: QueueSet::new(initial.queues),
            codec,
            pool,
        };
        let r = &load.registry;
        r.register("load.read", &load.read).unwrap();
        r.register("load.write", &load.write).unwrap();
        r.register("load.pair", &load.pair).unwrap();
        r.register("load.limiter", &load.limiter).unwrap();
        r.register("load.exec", &load.exec).unwrap();
        r.register("load.queues", &load.queues).unwrap();
        r.register("load.codec", &load.codec).unwrap();
        r.register("load.pool", &load.pool).unwrap();
        load
    }

    /// Each part's limits, read from its own handle, each part in one read.
    fn limits(&self) -> Spec {
        Spec {
            read: self.read.limit() as u64,
            write: self.write.limit() as u64,
            pair: self.pair.get(),
            conns: self.limiter.limits(),
            exec: self.exec.limits(),
            queues: self.queues.limits(),
            max_frame: self.codec.max_frame_length(),
            retained: self.pool.max_retained_bytes(),
        }
    }

    /// The two budgets' limits and the pair's low limit, as one collection reports them.
    fn scraped_limits(&self) -> (u64, u64, u64) {
        let samples = self.registry.collect();
        let find = |family: &str, name: &str| {
            samples
                .iter()
                .find(|s| s.family.name() == family && s.labels.get("name") == Some(name))
                .map(|s| s.value as u64)
                .unwrap_or_else(|| panic!("no {family} for {name}"))
        };
        (
            find("budget_limit_bytes", "load.read"),
            find("budget_limit_bytes", "load.write"),
            find("test_pair_low", "load.pair"),
        )
    }
}

/// Whether every part's limits are A's or B's, each part whole (parts may differ from one another: they are read
/// one after the other while swaps go on).
fn each_part_whole(seen: &Spec, a: &Spec, b: &Spec) -> bool {
    let either = |f: &dyn Fn(&Spec) -> String| f(seen) == f(a) || f(seen) == f(b);
    either(&|s| format!("{}", s.read))
        && either(&|s| format!("{}", s.write))
        && either(&|s| format!("{:?}", s.pair))
        && either(&|s| format!("{:?}", s.conns))
        && either(&|s| format!("{:?}", s.exec))
        && either(&|s| format!("{:?}", s.queues))
        && either(&|s| format!("{:?}", s.max_frame))
        && either(&|s| format!("{}", s.retained))
}

/// Echoes one connection through a watermark writer in the queue set, holding a reservation from both budgets for
/// each chunk until it is queued. Returns the bytes echoed.
async fn echo(load: Arc<Load>, stream: TcpStream) -> usize {
    let (mut rd, wr) = stream.into_split();
    let (tx, writer) = WatermarkWriter::new(wr);
    assert!(load.queues.add(&tx));
    let writing = writer.spawn();
    let mut buf = vec![0u8; 4096];
    let mut echoed = 0;
    loop {
        let n = timeout(STEP, rd.read(&mut buf))
            .await
            .expect("server read timed out")
            .expect("server read");
        if n == 0 {
            break;
        }
        let _read = timeout(STEP, load.read.reserve(n))
            .await
            .expect("reserve timed out")
            .expect("read budget");
        let _write = timeout(STEP, load.write.reserve(n))
            .await
            .expect("reserve timed out")
            .expect("write budget");
        timeout(STEP, tx.send(Bytes::copy_from_slice(&buf[..n])))
            .await
            .expect("queueing timed out")
            .expect("queue refused an echo");
        echoed += n;
    }
    drop(tx);
    timeout(STEP, writing)
        .await
        .expect("writer timed out")
        .expect("writer task");
    echoed
}

/// One client: sends its messages and reads back exactly what it sent, on one connection.
async fn client(addr: std::net::SocketAddr, id: usize) -> usize {
    let stream = timeout(STEP, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let sent: Vec<u8> = (0..MESSAGES)
        .flat_map(|m| {
            let len = 1 + (m * 977 + id * 131) % 3000;
            (0..len).map(move |i| (i + m + id) as u8)
        })
        .collect();
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        for chunk in to_send.chunks(1500) {
            timeout(STEP, wr.write_all(chunk))
                .await
                .expect("client write timed out")
                .expect("client write");
            tokio::task::yield_now().await;
        }
        wr.shutdown().await.expect("client shutdown");
    });
    let mut received = Vec::with_capacity(sent.len());
    timeout(STEP, rd.read_to_end(&mut received))
        .await
        .expect("client read timed out")
        .expect("client read");
    timeout(STEP, writer)
        .await
        .expect("writer timed out")
        .unwrap();
    assert_eq!(received.len(), sent.len(), "client {id}: bytes lost");
    assert!(received == sent, "client {id}: bytes differ");
    sent.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swap_under_load_applies_everywhere_without_restarts_or_mixtures() {
    let (a, b) = (spec_a(), spec_b());
    let load = Arc::new(Load::new(b));
    let (config_a, config_b) = (a.config(), b.config());
    assert_eq!(load.registry.configuration(), config_b);
    assert_eq!(load.limits(), b);

    let listener = LimitedListener::builder()
        .limiter(load.limiter.clone())
        .bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let server = {
        let (load, accepted) = (Arc::clone(&load), Arc::clone(&accepted));
        tokio::spawn(async move {
            let mut echoes = Vec::new();
            for _ in 0..CONNECTIONS {
                let (stream, _, permit) = timeout(STEP, listener.accept())
                    .await
                    .expect("accept timed out")
                    .expect("accept");
                accepted.fetch_add(1, Ordering::SeqCst);
                let conn_load = Arc::clone(&load);
                let echoing = timeout(
                    STEP,
                    load.exec.spawn(async move {
                        let echoed = echo(conn_load, stream).await;
                        drop(permit);
                        echoed
                    }),
                )
                .await
                .expect("admission timed out");
                echoes.push(echoing.unwrap_or_else(|_| panic!("the executor refused an echo")));
            }
            let mut total = 0;
            for echo in echoes {
                total += timeout(STEP, echo).await.expect("echo timed out").unwrap();
            }
            total
        })
    };

    let clients_done = Arc::new(AtomicBool::new(false));
    let swapping_done = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (load, clients_done, swapping_done) = (
            Arc::clone(&load),
            Arc::clone(&clients_done),
            Arc::clone(&swapping_done),
        );
        let (config_a, config_b) = (config_a.clone(), config_b.clone());
        let every_key = config_a.diff(&config_b).len();
        tokio::spawn(async move {
            let mut swaps = 0usize;
            let mut during_load = 0usize;
            // Odd versions are A, even ones B; end on A so the final limits differ from the initial ones.
            while swaps < MIN_SWAPS || !clients_done.load(Ordering::SeqCst) || swaps % 2 == 0 {
                assert!(swaps < 1_000_000, "swapping never ended");
                let next = if swaps % 2 == 0 { &config_a } else { &config_b };
                let done = load.registry.reconfigure(next).unwrap();
                swaps += 1;
                assert_eq!(done.version(), swaps as u64);
                assert_eq!(
                    done.changes().len(),
                    every_key,
                    "every limit changes each swap"
                );
                if !clients_done.load(Ordering::SeqCst) {
                    during_load += 1;
                }
                tokio::task::yield_now().await;
            }
            swapping_done.store(true, Ordering::SeqCst);
            (swaps, during_load)
        })
    };

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (load, swapping_done) = (Arc::clone(&load), Arc::clone(&swapping_done));
            let (config_a, config_b) = (config_a.clone(), config_b.clone());
            tokio::spawn(async move {
                let mut samples = 0usize;
                while !swapping_done.load(Ordering::SeqCst) {
                    let (version, seen) = load.registry.versioned_configuration();
                    let expected = if version % 2 == 1 {
                        &config_a
                    } else {
                        &config_b
                    };
                    assert_eq!(&seen, expected, "version {version} read mixed");
                    // A scrape, too, reports limits from one configuration.
                    let scraped = load.scraped_limits();
                    assert!(
                        scraped == (a.read, a.write, a.pair.0)
                            || scraped == (b.read, b.write, b.pair.0),
                        "scrape mixed: {scraped:?}"
                    );
                    let parts = load.limits();
                    assert!(each_part_whole(&parts, &a, &b), "a part mixed: {parts:?}");
                    samples += 1;
                    tokio::task::yield_now().await;
                }
                samples
            })
        })
        .collect();

    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|id| tokio::spawn(client(addr, id)))
        .collect();
    let mut sent = 0;
    for client in clients {
        sent += timeout(STEP, client)
            .await
            .expect("client timed out")
            .unwrap();
    }
    clients_done.store(true, Ordering::SeqCst);

    let (swaps, during_load) = timeout(STEP, swapper)
        .await
        .expect("swapper timed out")
        .unwrap();
    for reader in readers {
        let samples = timeout(STEP, reader)
            .await
            .expect("reader timed out")
            .unwrap();
        assert!(samples > 0);
    }
    let echoed = timeout(STEP, server)
        .await
        .expect("server timed out")
        .unwrap();

    assert!(
        during_load > 0,
        "no swap happened while clients were sending"
    );
    assert_eq!(swaps % 2, 1);
    // Same connections throughout: exactly one accept per client, every byte echoed on it, nothing refused.
    assert_eq!(accepted.load(Ordering::SeqCst), CONNECTIONS);
    assert_eq!(echoed, sent);
    assert_eq!(load.limiter.active(), 0);
    assert_eq!((load.read.used(), load.write.used()), (0, 0));
    assert_eq!(load.queues.metrics().refused, 0);
    // The final swap applied everywhere.
    assert_eq!(load.limits(), a);
    assert_eq!(
        load.registry.versioned_configuration(),
        (swaps as u64, config_a)
    );
}
