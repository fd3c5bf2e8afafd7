//! The Grafana dashboard under `contrib/grafana/` queries only series that exist: every `tidegate_…` name in every
//! panel's `expr` is in the exposition of the running `metrics_endpoint` example. A renamed family, or a panel
//! written for a series nobody registers, fails here instead of drawing an empty graph in production.

// Each test binary uses part of the support module.
#[allow(dead_code)]
#[path = "support/metrics_endpoint.rs"]
mod support;

use std::collections::BTreeSet;

use support::{echo, series_names, Endpoint};

const DASHBOARD: &str = include_str!("../contrib/grafana/tidegate.json");

/// What the dashboard is for (issue #14): queued bytes against the budget, unwritable peers, evictions,
/// refusals, resident memory and open descriptors. Each must be drawn by some panel.
const MAIN_SERIES: &[&str] = &[
    "tidegate_queue_queued_bytes",
    "tidegate_budget_used_bytes",
    "tidegate_budget_limit_bytes",
    "tidegate_queue_unwritable",
    "tidegate_queue_evicted_total",
    "tidegate_codec_too_long_total",
    "tidegate_exec_refused_total",
    "tidegate_limiter_refused_total",
    "tidegate_budget_refused_total",
    "tidegate_process_resident_memory_bytes",
    "tidegate_process_open_fds",
];

#[test]
fn every_series_a_panel_queries_is_exposed_by_the_example() {
    let dashboard = parse(DASHBOARD).expect("the dashboard is valid JSON");
    let queried = queried_series(&dashboard);
    for name in MAIN_SERIES {
        assert!(queried.contains(*name), "no panel draws {name}");
    }

    let server = Endpoint::start(&[]);
    // Traffic first, so that nothing is missing only because no connection has been seen yet.
    echo(server.echo, 5, 100);
    let exposed = series_names(&server.scrape());
    let missing: Vec<&String> = queried.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "panels query series the example does not expose: {missing:?}\nexposed: {exposed:?}"
    );
}

#[test]
fn panels_use_the_prometheus_datasource_variable() {
    let dashboard = parse(DASHBOARD).expect("the dashboard is valid JSON");
    let variables = dashboard
        .get("templating")
        .and_then(|t| t.get("list"))
        .and_then(Json::as_array)
        .expect("templating.list");
    assert!(
        variables.iter().any(|v| {
            v.get("type").and_then(Json::as_str) == Some("datasource")
                && v.get("query").and_then(Json::as_str) == Some("prometheus")
                && v.get("name").and_then(Json::as_str) == Some("datasource")
        }),
        "a datasource variable named `datasource` over Prometheus datasources"
    );
    let panels = dashboard
        .get("panels")
        .and_then(Json::as_array)
        .expect("panels");
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel.get("title").and_then(Json::as_str).expect("a title");
        assert!(ids.insert(panel.get("id").and_then(Json::as_f64).expect("an id") as u64));
        let uid = |node: &Json| {
            node.get("datasource")
                .and_then(|d| d.get("uid"))
                .and_then(Json::as_str)
                .map(str::to_owned)
        };
        assert_eq!(uid(panel).as_deref(), Some("${datasource}"), "{title}");
        let targets = panel
            .get("targets")
            .and_then(Json::as_array)
            .expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            assert_eq!(uid(target).as_deref(), Some("${datasource}"), "{title}");
            assert!(target.get("expr").and_then(Json::as_str).is_some());
        }
    }
}

#[test]
fn the_scanner_finds_names_inside_functions_and_selectors() {
    let json = parse(
        r#"{"panels":[{"targets":[{"expr":"sum by (name) (rate(tidegate_a_total{name=\"x\"}[1m])) / tidegate_b"}]},
           {"panels":[{"targets":[{"expr":"max(tidegate_c_bytes)"}]}]}]}"#,
    )
    .unwrap();
    let names: Vec<String> = queried_series(&json).into_iter().collect();
    assert_eq!(
        names,
        ["tidegate_a_total", "tidegate_b", "tidegate_c_bytes"]
    );
    assert!(parse(r#"{"a": [1, 2,]}"#).is_none());
    assert!(parse(r#"{"a": "\u00e9\n"} x"#).is_none());
    assert!(parse("[01]").is_none() && parse("[1.]").is_none() && parse("[+1]").is_none());
    assert_eq!(
        parse(r#"[-0.5e+2, "\u00e9\n"]"#).map(|j| format!("{j:?}")),
        Some(r#"Array([Number(-50.0), String("é\n")])"#.to_owned())
    );
}

/// Every `tidegate_…` metric name in every `expr` of the document, wherever it is nested (rows hold panels).
fn queried_series(node: &Json) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        match node {
            Json::Object(fields) => {
                for (key, value) in fields {
                    if let ("expr", Json::String(expr)) = (key.as_str(), value) {
                        names.extend(metric_names(expr));
                    }
                    stack.push(value);
                }
            }
            Json::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    names
}

/// The PromQL identifiers starting `tidegate_` (label names and values never do in these queries).
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]);
        if starts_word && bytes[i..].starts_with(b"tidegate_") {
            let end = (i..bytes.len())
                .find(|&j| !is_ident(bytes[j]))
                .unwrap_or(bytes.len());
            names.push(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// Just enough JSON: the dashboard must be a document Grafana can import, and its fields are read by path.
#[derive(Debug)]
enum Json {
    Null,
    Bool(#[allow(dead_code)] bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&Vec<Json>> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// The document, or `None` if it is not exactly one JSON value (RFC 8259) with optional whitespace around it.
fn parse(text: &str) -> Option<Json> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value()?;
    parser.skip_ws();
    (parser.at == parser.bytes.len()).then_some(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, literal: &str) -> Option<()> {
        self.bytes[self.at..]
            .starts_with(literal.as_bytes())
            .then(|| self.at += literal.len())
    }

    fn value(&mut self) -> Option<Json> {
        self.skip_ws();
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Json::String),
            b'n' => self.eat("null").map(|()| Json::Null),
            b't' => self.eat("true").map(|()| Json::Bool(true)),
            b'f' => self.eat("false").map(|()| Json::Bool(false)),
            _ => self.number(),
        }
    }

    fn object(&mut self) -> Option<Json> {
        self.eat("{")?;
        let mut fields = Vec::new();
        self.skip_ws();
        if self.eat("}").is_some() {
            return Some(Json::Object(fields));
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            self.eat(":")?;
            fields.push((key, self.value()?));
            self.skip_ws();
            if self.eat("}").is_some() {
                return Some(Json::Object(fields));
            }
            self.eat(",")?;
        }
    }

    fn array(&mut self) -> Option<Json> {
        self.eat("[")?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat("]").is_some() {
            return Some(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            if self.eat("]").is_some() {
                return Some(Json::Array(items));
            }
            self.eat(",")?;
        }
    }

    fn string(&mut self) -> Option<String> {
        self.eat("\"")?;
        let mut out = String::new();
        loop {
            let rest = std::str::from_utf8(&self.bytes[self.at..]).ok()?;
            let c = rest.chars().next()?;
            self.at += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\\' => {
                    let escape = self.peek()?;
                    self.at += 1;
                    out.push(match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        // Surrogate pairs do not occur in the dashboard; a lone one is refused.
                        b'u' => {
                            let hex =
                                std::str::from_utf8(self.bytes.get(self.at..self.at + 4)?).ok()?;
                            self.at += 4;
                            char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
                        }
                        _ => return None,
                    });
                }
                c if (c as u32) < 0x20 => return None,
                c => out.push(c),
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<Json> {
        let start = self.at;
        let _ = self.eat("-");
        if self.eat("0").is_none() {
            self.peek().filter(|b| (b'1'..=b'9').contains(b))?;
            self.digits();
        }
        if self.eat(".").is_some() {
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits()?;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        text.parse().ok().map(Json::Number)
    }

    /// One or more digits.
    fn digits(&mut self) -> Option<()> {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        (self.at > start).then_some(())
    }
}
