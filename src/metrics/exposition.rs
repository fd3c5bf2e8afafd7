//! The Prometheus text exposition format, version 0.0.4.

use std::fmt::Write;

use super::Sample;

/// Every name the exposition writes starts with this.
pub const PREFIX: &str = "tidegate_";

/// Renders sorted samples: one `# HELP` and `# TYPE` pair per family, then its series.
pub(crate) fn render(samples: &[Sample]) -> String {
    let mut text = String::new();
    let mut current: Option<&str> = None;
    for sample in samples {
        let family = sample.family;
        if current != Some(family.name()) {
            current = Some(family.name());
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
        }
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
        write_value(&mut text, sample.value);
        text.push('\n');
    }
    text
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
