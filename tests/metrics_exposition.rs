//! The Prometheus text exposition: a golden text for a known state, the same bytes whatever the registration
//! order, the emission order, the hash seed or the process, acceptance by `prometheus-parse` and by a strict
//! reader of the format (version 0.0.4), and the process gauges.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use proptest::prelude::*;
use tidegate::metrics::{
    Collector, Family, Labels, MetricKind, Observe, Observer, ProcessMetrics, Registry, PREFIX,
};
use tidegate::{MemoryBudget, Reservation};

/// Tests that count file descriptors, spawn processes or start runtimes take this, so that the descriptor count
/// one of them measures is not moved by another running in parallel in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const DROPPED: Family = Family::counter("test_dropped_total", "Items dropped, by \"reason\".");
const QUEUED: Family = Family::gauge("test_queued_bytes", "Bytes queued.");
const RATIO: Family = Family::gauge("test_ratio", "Ratio of a\\b,\nover two lines.");

/// One series a test part reports: family, optional extra label, value.
type Series = (&'static Family, Option<(&'static str, &'static str)>, f64);

/// A part that reports fixed series, in the order given, and is held weakly like every real part.
struct TestPart(Arc<Vec<Series>>);

struct TestObserver(Weak<Vec<Series>>);

impl Observe for TestPart {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(TestObserver(Arc::downgrade(&self.0)))
    }
}

impl Observer for TestObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(series) = self.0.upgrade() else {
            return false;
        };
        for &(family, label, value) in series.iter() {
            match (family.kind(), label) {
                (MetricKind::Counter, None) => out.counter(family, value as u64),
                (MetricKind::Counter, Some(l)) => out.counter_with(family, l, value as u64),
                (MetricKind::Gauge, None) => out.gauge(family, value),
                (MetricKind::Gauge, Some(l)) => out.gauge_with(family, l, value),
            }
        }
        true
    }
}

/// Two budgets in known states and two test parts, one with label values that need escaping.
struct KnownState {
    conn: MemoryBudget,
    global: MemoryBudget,
    multi: TestPart,
    weird: TestPart,
    _held: Reservation,
}

const PARTS: usize = 4;

impl KnownState {
    /// `scramble` reorders each test part's series: the order a part reports in must not matter either.
    fn new(mut scramble: impl FnMut(Vec<Series>) -> Vec<Series>) -> Self {
        let conn = MemoryBudget::new(4096);
        let held = conn.try_reserve(1000).unwrap();
        assert!(conn.try_reserve(5000).is_err());
        let global = MemoryBudget::new(1 << 20);
        drop(global.try_reserve(10).unwrap());
        let multi = TestPart(Arc::new(scramble(vec![
            (&DROPPED, Some(("reason", "slow")), 5.0),
            (&RATIO, None, 0.25),
            (&DROPPED, Some(("reason", "idle")), 3.0),
        ])));
        let weird = TestPart(Arc::new(scramble(vec![
            (&QUEUED, None, 42.0),
            (&DROPPED, None, 7.0),
        ])));
        KnownState {
            conn,
            global,
            multi,
            weird,
            _held: held,
        }
    }

    /// Registers part `index` (0..PARTS).
    fn register(&self, registry: &Registry, index: usize) {
        match index {
            0 => registry.register("conn", &self.conn),
            1 => registry.register_with(
                "global",
                Labels::new().with("listener", "echo").unwrap(),
                &self.global,
            ),
            2 => registry.register("multi", &self.multi),
            3 => registry.register_with(
                "weird",
                Labels::new()
                    .with("who", "say \"hi\"")
                    .unwrap()
                    .with("path", "C:\\tmp")
                    .unwrap()
                    .with("note", "line1\nline2")
                    .unwrap(),
                &self.weird,
            ),
            _ => unreachable!("there are {PARTS} parts"),
        }
        .unwrap();
    }

    fn registry(&self, order: impl IntoIterator<Item = usize>) -> Registry {
        let registry = Registry::new();
        for index in order {
            self.register(&registry, index);
        }
        registry
    }
}

const GOLDEN: &str = r#"# HELP tidegate_budget_granted_total Reservations granted.
# TYPE tidegate_budget_granted_total counter
tidegate_budget_granted_total{listener="echo",name="global"} 1
tidegate_budget_granted_total{name="conn"} 1
# HELP tidegate_budget_limit_bytes Bytes the budget grants at most at once (unlimited budgets report 2^64-1).
# TYPE tidegate_budget_limit_bytes gauge
tidegate_budget_limit_bytes{listener="echo",name="global"} 1048576
tidegate_budget_limit_bytes{name="conn"} 4096
# HELP tidegate_budget_peak_bytes The most bytes ever reserved at once.
# TYPE tidegate_budget_peak_bytes gauge
tidegate_budget_peak_bytes{listener="echo",name="global"} 10
tidegate_budget_peak_bytes{name="conn"} 1000
# HELP tidegate_budget_refused_total Reservations refused because a limit would have been exceeded.
# TYPE tidegate_budget_refused_total counter
tidegate_budget_refused_total{listener="echo",name="global"} 0
tidegate_budget_refused_total{name="conn"} 1
# HELP tidegate_budget_used_bytes Bytes currently reserved from the budget.
# TYPE tidegate_budget_used_bytes gauge
tidegate_budget_used_bytes{listener="echo",name="global"} 0
tidegate_budget_used_bytes{name="conn"} 1000
# HELP tidegate_budget_waits_total Reservations that had to wait for bytes to be released.
# TYPE tidegate_budget_waits_total counter
tidegate_budget_waits_total{listener="echo",name="global"} 0
tidegate_budget_waits_total{name="conn"} 0
# HELP tidegate_test_dropped_total Items dropped, by "reason".
# TYPE tidegate_test_dropped_total counter
tidegate_test_dropped_total{name="multi",reason="idle"} 3
tidegate_test_dropped_total{name="multi",reason="slow"} 5
tidegate_test_dropped_total{name="weird",note="line1\nline2",path="C:\\tmp",who="say \"hi\""} 7
# HELP tidegate_test_queued_bytes Bytes queued.
# TYPE tidegate_test_queued_bytes gauge
tidegate_test_queued_bytes{name="weird",note="line1\nline2",path="C:\\tmp",who="say \"hi\""} 42
# HELP tidegate_test_ratio Ratio of a\\b,\nover two lines.
# TYPE tidegate_test_ratio gauge
tidegate_test_ratio{name="multi"} 0.25
"#;

#[test]
fn golden_text_of_a_known_state() {
    let state = KnownState::new(|series| series);
    let text = state.registry(0..PARTS).render_prometheus();
    assert_eq!(text, GOLDEN, "rendered:\n{text}");
}

#[test]
fn dropped_parts_leave_the_exposition() {
    let state = KnownState::new(|series| series);
    let registry = state.registry(0..PARTS);
    let KnownState {
        conn,
        global,
        multi,
        weird,
        _held,
    } = state;
    drop((multi, weird));
    let text = registry.render_prometheus();
    assert!(!text.contains("tidegate_test_"), "{text}");
    assert!(text.contains("tidegate_budget_used_bytes{name=\"conn\"} 1000\n"));
    drop((conn, global, _held));
    assert_eq!(registry.render_prometheus(), "");
    assert!(registry.names().is_empty());
}

proptest! {
    /// Every registration order and every order the parts report their series in renders the golden bytes.
    #[test]
    fn any_registration_and_emission_order_renders_the_same_bytes(
        order in Just((0..PARTS).collect::<Vec<_>>()).prop_shuffle(),
        emission in Just((0..3usize).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        // No part reports more than 3 series: `emission` reorders each one's whole list.
        let state = KnownState::new(|series| {
            emission.iter().filter_map(|&i| series.get(i).copied()).collect()
        });
        let text = state.registry(order).render_prometheus();
        prop_assert_eq!(text, GOLDEN);
    }
}

/// Set in a child process: the file the child writes its rendering to.
const CHILD_OUTPUT: &str = "TIDEGATE_EXPOSITION_CHILD_OUTPUT";

/// How a `HashMap` with this process' seed orders 0..64: differs between processes whose seeds differ.
fn hash_order() -> String {
    let map: HashMap<u32, ()> = (0..64).map(|i| (i, ())).collect();
    let keys: Vec<String> = map.keys().map(u32::to_string).collect();
    keys.join(",")
}

/// The known state as a process with its own hash seed builds it: registered and reported in `HashMap` order.
fn render_in_hash_order() -> String {
    let state = KnownState::new(|series| {
        let map: HashMap<usize, Series> = series.into_iter().enumerate().collect();
        map.into_values().collect()
    });
    let order: HashMap<usize, ()> = (0..PARTS).map(|i| (i, ())).collect();
    state.registry(order.into_keys()).render_prometheus()
}

/// Not a test of its own: the mode the next test runs this binary in. Without the variable it does nothing.
#[test]
fn child_renders_the_known_state() {
    let Some(path) = std::env::var_os(CHILD_OUTPUT) else {
        return;
    };
    let output = format!("{}\n{}", hash_order(), render_in_hash_order());
    std::fs::write(path, output).unwrap();
}

#[test]
fn two_processes_with_different_hash_seeds_render_the_same_bytes() {
    let _serial = serial();
    let exe = std::env::current_exe().unwrap();
    let mut outputs = Vec::new();
    for child in 0..2 {
        let path = std::env::temp_dir().join(format!(
            "tidegate-exposition-{}-{child}.txt",
            std::process::id()
        ));
        let status = std::process::Command::new(&exe)
            .args([
                "--exact",
                "child_renders_the_known_state",
                "--test-threads=1",
            ])
            .env(CHILD_OUTPUT, &path)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "child {child} failed: {status}");
        let output = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (order, text) = output.split_once('\n').unwrap();
        outputs.push((order.to_owned(), text.to_owned()));
    }
    let own_order = hash_order();
    let orders: BTreeSet<&str> = outputs
        .iter()
        .map(|(order, _)| order.as_str())
        .chain([own_order.as_str()])
        .collect();
    assert!(
        orders.len() > 1,
        "the three processes share one hash seed, the test proves nothing"
    );
    let parent = render_in_hash_order();
    assert_eq!(outputs[0].1, outputs[1].1);
    assert_eq!(outputs[0].1, parent);
    assert_eq!(parent, GOLDEN);
}

// ---- a strict reader of the text format, version 0.0.4: the reference the exposition is checked against ----

/// A series' labels, in the order written (sorted by key, as tidegate writes them).
type LabelPairs = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
struct ParsedFamily {
    name: String,
    help: String,
    kind: String,
    series: Vec<(LabelPairs, f64)>,
}

/// Reads the exposition, checking every rule tidegate promises, and returns its families in order.
fn parse_strict(text: &str) -> Result<Vec<ParsedFamily>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = text.strip_suffix('\n') else {
        return Err("the last line does not end in a line feed".into());
    };
    let mut families: Vec<ParsedFamily> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut series_seen = BTreeSet::new();
    for (number, line) in body.split('\n').enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", number + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| err("HELP without text"))?;
            if !seen.insert(name.to_owned()) {
                return Err(err("a family comes back or has a second HELP"));
            }
            families.push(ParsedFamily {
                name: name.to_owned(),
                help: unescape(help, false).map_err(|e| err(&e))?,
                kind: String::new(),
                series: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let family = families.last_mut().ok_or_else(|| err("TYPE before HELP"))?;
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without type"))?;
            if name != family.name || !family.kind.is_empty() || !family.series.is_empty() {
                return Err(err("TYPE not right after its family's HELP"));
            }
            if !matches!(kind, "counter" | "gauge") {
                return Err(err("unknown type"));
            }
            family.kind = kind.to_owned();
        } else if line.starts_with('#') {
            return Err(err("a comment that is neither HELP nor TYPE"));
        } else {
            let (name, labels, value) = parse_sample(line).map_err(|e| err(&e))?;
            let family = families
                .last_mut()
                .filter(|f| f.name == name && !f.kind.is_empty())
                .ok_or_else(|| err("a sample outside its family's group, or before its TYPE"))?;
            if !series_seen.insert((name.clone(), labels.clone())) {
                return Err(err("duplicate series"));
            }
            family.series.push((labels, value));
        }
    }
    for family in &families {
        if !family.name.starts_with(PREFIX) {
            return Err(format!("{} lacks the prefix", family.name));
        }
        if (family.kind == "counter") != family.name.ends_with("_total") {
            return Err(format!(
                "{}: counters, and only they, end in _total",
                family.name
            ));
        }
        if family.series.is_empty() {
            return Err(format!("{} has no series", family.name));
        }
    }
    Ok(families)
}

fn parse_sample(line: &str) -> Result<(String, LabelPairs, f64), String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .ok_or("no value")?;
    let (name, mut rest) = line.split_at(name_end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("bad metric name".into());
    }
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            let (key, after) = rest.split_once("=\"").ok_or("label without =\"")?;
            if key.is_empty()
                || key.starts_with(|c: char| c.is_ascii_digit())
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("bad label name {key:?}"));
            }
            let mut end = None;
            let mut escaped = false;
            for (i, c) in after.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    (false, '\n') => return Err("raw line feed in a label value".into()),
                    _ => {}
                }
            }
            let end = end.ok_or("unterminated label value")?;
            labels.push((key.to_owned(), unescape(&after[..end], true)?));
            rest = &after[end + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            } else {
                return Err("label value not followed by , or }".into());
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok((name.to_owned(), labels, value))
}

/// Undoes `\\`, `\n` and, in label values only, `\"`; any other escape is an error.
fn unescape(text: &str, label_value: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label_value => out.push('"'),
            other => return Err(format!("bad escape \\{other:?}")),
        }
    }
    Ok(out)
}

/// The escaping the format asks of a label value: `\\`, `\"` and `\n`.
fn escape_label_value(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// What the registry collected, in the shape the strict reader returns.
fn expected_families(registry: &Registry) -> Vec<ParsedFamily> {
    let mut families: Vec<ParsedFamily> = Vec::new();
    for sample in registry.collect() {
        let name = format!("{PREFIX}{}", sample.family.name());
        let labels = sample
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if families.last().is_none_or(|f| f.name != name) {
            families.push(ParsedFamily {
                name,
                help: sample.family.help().to_owned(),
                kind: sample.family.kind().as_str().to_owned(),
                series: Vec::new(),
            });
        }
        families
            .last_mut()
            .unwrap()
            .series
            .push((labels, sample.value));
    }
    families
}

#[test]
fn exposition_follows_the_format_rules() {
    let _serial = serial();
    let state = KnownState::new(|series| series);
    let process = ProcessMetrics::new();
    let registry = state.registry(0..PARTS);
    registry.register("process", &process).unwrap();
    let text = runtime().block_on(async { registry.render_prometheus() });
    let families = parse_strict(&text).unwrap();
    assert!(families
        .iter()
        .any(|f| f.name == "tidegate_runtime_alive_tasks"));
    // Without the process gauges, which move between two collections, it is exactly what was collected.
    drop(process);
    let families = parse_strict(&registry.render_prometheus()).unwrap();
    assert_eq!(families, expected_families(&registry));
}

proptest! {
    /// Any label values (quotes, backslashes, line feeds, any Unicode) come back from the text unchanged.
    #[test]
    fn label_values_round_trip_through_the_text(
        values in proptest::collection::vec(any::<String>(), 1..4),
        help_value in 0u64..1000,
    ) {
        let parts: Vec<TestPart> = values.iter().map(|_| TestPart(Arc::new(vec![
            (&QUEUED, None, help_value as f64),
            (&DROPPED, Some(("reason", "x\"\\\ny")), 1.0),
        ]))).collect();
        let registry = Registry::new();
        for (i, (part, value)) in parts.iter().zip(&values).enumerate() {
            let labels = Labels::new().with("value", value.clone()).unwrap();
            registry.register_with(&format!("part{i}"), labels, part).unwrap();
        }
        let families = parse_strict(&registry.render_prometheus());
        prop_assert!(families.is_ok(), "{:?}", families);
        prop_assert_eq!(families.unwrap(), expected_families(&registry));
    }
}

// ---- families that share a name, and series reported twice ----

const SHARED_A: Family = Family::gauge("test_shared_bytes", "A: the first help text.");
const SHARED_B: Family = Family::gauge("test_shared_bytes", "B: another help text.");

#[test]
fn families_sharing_a_name_render_one_group_with_one_help() {
    let a = TestPart(Arc::new(vec![(&SHARED_B, None, 1.0)]));
    let b = TestPart(Arc::new(vec![(&SHARED_A, None, 2.0)]));
    for order in [[0, 1], [1, 0]] {
        let registry = Registry::new();
        for i in order {
            registry.register(["a", "b"][i], [&a, &b][i]).unwrap();
        }
        assert_eq!(
            registry.render_prometheus(),
            "# HELP tidegate_test_shared_bytes A: the first help text.\n\
             # TYPE tidegate_test_shared_bytes gauge\n\
             tidegate_test_shared_bytes{name=\"a\"} 1\n\
             tidegate_test_shared_bytes{name=\"b\"} 2\n"
        );
    }
}

#[test]
fn a_counter_and_a_gauge_cannot_share_a_name() {
    // Counters must end in _total and gauges must not, so one name never has two types.
    let counter = std::panic::catch_unwind(|| Family::counter("test_thing", "x"));
    let gauge = std::panic::catch_unwind(|| Family::gauge("test_thing_total", "x"));
    assert!(counter.is_err() && gauge.is_err());
}

#[test]
fn a_series_reported_twice_renders_once() {
    // A faulty observer: the format leaves what a scraper does with a repeated series undefined.
    for series in [
        vec![(&QUEUED, None, 9.0), (&QUEUED, None, 4.0)],
        vec![(&QUEUED, None, 4.0), (&QUEUED, None, 9.0)],
    ] {
        let part = TestPart(Arc::new(series));
        let registry = Registry::new();
        registry.register("twice", &part).unwrap();
        let text = registry.render_prometheus();
        assert_eq!(
            text,
            "# HELP tidegate_test_queued_bytes Bytes queued.\n\
             # TYPE tidegate_test_queued_bytes gauge\n\
             tidegate_test_queued_bytes{name=\"twice\"} 4\n"
        );
        assert!(parse_strict(&text).is_ok());
    }
}

// ---- acceptance by prometheus-parse ----

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn prometheus_parse_accepts_the_exposition() {
    let _serial = serial();
    let state = KnownState::new(|series| series);
    let process = ProcessMetrics::new();
    let registry = state.registry(0..PARTS);
    registry.register("process", &process).unwrap();
    // Inside a runtime, so that the runtime gauges are there too.
    let text = runtime().block_on(async { registry.render_prometheus() });

    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let strict = parse_strict(&text).unwrap();
    let sample_lines = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "a sample line was skipped"
    );

    let mut names: BTreeSet<&str> = BTreeSet::new();
    for family in &strict {
        names.insert(family.name.as_str());
        // prometheus-parse keeps HELP text as written, escapes included.
        let help = scrape.docs.get(&family.name).expect("HELP is there");
        assert_eq!(unescape(help, false).unwrap(), family.help);
        for (labels, value) in &family.series {
            let found = scrape
                .samples
                .iter()
                .filter(|s| s.metric == family.name)
                .filter(|s| {
                    s.labels.len() == labels.len()
                        && labels.iter().all(|(k, v)| {
                            // It keeps label values as written, escapes included, less every `"` at either end
                            // (so an escaped quote at the end loses its quote but keeps its backslash).
                            s.labels.get(k) == Some(escape_label_value(v).trim_matches('"'))
                        })
                })
                .collect::<Vec<_>>();
            assert_eq!(found.len(), 1, "{} {labels:?}", family.name);
            let parsed = match (family.kind.as_str(), &found[0].value) {
                ("counter", prometheus_parse::Value::Counter(v)) => *v,
                ("gauge", prometheus_parse::Value::Gauge(v)) => *v,
                (kind, other) => panic!("{} is a {kind}, parsed as {other:?}", family.name),
            };
            assert_eq!(parsed, *value);
        }
    }
    let mut wanted = vec![
        "tidegate_budget_used_bytes",
        "tidegate_test_dropped_total",
        "tidegate_runtime_alive_tasks",
        "tidegate_runtime_workers",
    ];
    if cfg!(target_os = "linux") {
        wanted.extend([
            "tidegate_process_resident_memory_bytes",
            "tidegate_process_open_fds",
        ]);
    }
    for name in wanted {
        assert!(names.contains(name), "{name} missing from\n{text}");
    }
    // And the parts' series are exactly what was collected (process gauges move between two collections).
    let without_process = |families: Vec<ParsedFamily>| {
        families
            .into_iter()
            .filter(|f| !f.name.contains("_process_") && !f.name.contains("_runtime_"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        without_process(strict),
        without_process(expected_families(&registry))
    );
}

// ---- the process gauges ----

fn gauge(registry: &Registry, family: &str) -> Option<f64> {
    registry
        .collect()
        .into_iter()
        .find(|s| s.family.name() == family)
        .map(|s| s.value)
}

#[cfg(target_os = "linux")]
#[test]
fn open_fds_count_exactly_the_descriptors_opened() {
    let _serial = serial();
    let process = ProcessMetrics::new();
    let registry = Registry::new();
    registry.register("process", &process).unwrap();
    let before = gauge(&registry, "process_open_fds").unwrap();
    let files: Vec<std::fs::File> = (0..16)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let during = gauge(&registry, "process_open_fds").unwrap();
    drop(files);
    let after = gauge(&registry, "process_open_fds").unwrap();
    assert_eq!(during - before, 16.0);
    assert_eq!(after, before);
}

#[cfg(target_os = "linux")]
#[test]
fn resident_memory_grows_with_touched_memory() {
    let _serial = serial();
    let process = ProcessMetrics::new();
    let registry = Registry::new();
    registry.register("process", &process).unwrap();
    let before = gauge(&registry, "process_resident_memory_bytes").unwrap();
    assert!(
        before > 1e6,
        "a test binary's RSS is more than 1 MB: {before}"
    );
    const SIZE: usize = 64 << 20;
    let mut block = vec![0u8; SIZE];
    // Touch every page so that it is resident, not only reserved.
    for i in (0..SIZE).step_by(4096) {
        block[i] = 1;
    }
    let during = gauge(&registry, "process_resident_memory_bytes").unwrap();
    assert!(std::hint::black_box(&block)
        .iter()
        .step_by(4096)
        .all(|b| *b == 1));
    assert!(
        during - before >= (SIZE / 2) as f64,
        "RSS went from {before} to {during} while 64 MiB were touched"
    );
}

#[test]
fn runtime_gauges_count_alive_tasks_inside_a_runtime_only() {
    let _serial = serial();
    let process = ProcessMetrics::new();
    let registry = Registry::new();
    registry.register("process", &process).unwrap();
    assert_eq!(
        gauge(&registry, "runtime_alive_tasks"),
        None,
        "no runtime here"
    );
    assert_eq!(gauge(&registry, "runtime_workers"), None);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let before = gauge(&registry, "runtime_alive_tasks").unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let _ = rx.wait_for(|done| *done).await;
                })
            })
            .collect();
        assert_eq!(
            gauge(&registry, "runtime_alive_tasks").unwrap() - before,
            5.0
        );
        assert_eq!(gauge(&registry, "runtime_workers"), Some(2.0));
        tx.send(true).unwrap();
        for task in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(gauge(&registry, "runtime_alive_tasks"), Some(before));
    });
}

#[test]
fn dropped_process_metrics_leave_the_registry() {
    let process = ProcessMetrics::new();
    let registry = Registry::new();
    registry.register("process", &process).unwrap();
    drop(process);
    assert_eq!(registry.render_prometheus(), "");
    assert!(registry.names().is_empty());
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "other than `name`")]
fn a_part_cannot_replace_its_name_label() {
    // It would make the part's series collide with another part's, and one of them would not be rendered.
    let part = TestPart(Arc::new(vec![(&DROPPED, Some(("name", "other")), 1.0)]));
    let registry = Registry::new();
    registry.register("impostor", &part).unwrap();
    let _ = registry.render_prometheus();
}
