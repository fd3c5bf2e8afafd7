//! The Prometheus text exposition format, version 0.0.4.

use std::fmt::Write;

use super::{Family, Labels, Sample};

/// Every name the exposition writes starts with this.
pub const PREFIX: &str = "tidegate_";

/// Renders samples sorted as [`Registry::collect`](super::Registry::collect) sorts them: one group per family
/// name, `# HELP` and `# TYPE` first, then its series.
///
/// Two rules keep the text valid whatever the parts report. Families of different parts that share a name (the
/// same name with two help texts) render as one group, with the help text that sorts first, so that neither the
/// registration order nor which labels sort first picks it; their types agree, as the name decides the type (only
/// counters end in `_total`). A series reported twice (same name and labels, a faulty observer) renders once, with
/// the smallest value: the format leaves what a scraper does with a repeated series undefined.
pub(crate) fn render(samples: &[Sample]) -> String {
    let mut text = String::new();
    for group in samples.chunk_by(|a, b| a.family.name() == b.family.name()) {
        let Some(family) = group.iter().map(|s| s.family).min_by_key(|f| f.help()) else {
            continue;
        };
        let _ = writeln!(
            text,
            "# HELP {PREFIX}{} {}",
            family.name(),
            escape_help(family.help())
        );
        let _ = writeln!(
            text,
            "# TYPE {PREFIX}{} {}",
            family.name(),
            family.kind().as_str()
        );
        let mut previous: Option<&Labels> = None;
        for sample in group {
            // Sorted by labels then value: a repeated series follows its first, smallest, occurrence.
            if previous == Some(&sample.labels) {
                continue;
            }
            previous = Some(&sample.labels);
            write_sample(&mut text, family, sample);
        }
    }
    text
}

fn write_sample(text: &mut String, family: &Family, sample: &Sample) {
    text.push_str(PREFIX);
    text.push_str(family.name());
    if !sample.labels.is_empty() {
        text.push('{');
        for (i, (key, value)) in sample.labels.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{key}=\"{}\"", escape_label_value(value));
        }
        text.push('}');
    }
    text.push(' ');
    write_value(text, sample.value);
    text.push('\n');
}

/// Integers print without a fraction, other values in Rust's shortest round-trip form; both are valid Go floats.
fn write_value(text: &mut String, value: f64) {
    if value.is_nan() {
        text.push_str("NaN");
    } else if value.is_infinite() {
        text.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(text, "{value}");
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
    }

    #[test]
    fn values_are_go_floats() {
        let mut text = String::new();
        for v in [
            3.0,
            0.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            1e21,
        ] {
            write_value(&mut text, v);
            text.push(' ');
        }
        assert_eq!(text, "3 0.5 NaN +Inf -Inf -0 1000000000000000000000 ");
    }
}
