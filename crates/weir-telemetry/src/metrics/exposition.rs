//! The Prometheus text format (0.0.4), written directly: `# HELP`, `# TYPE`, then one line
//! per sample, histograms as `_bucket{le=...}`, `_sum` and `_count`.
//!
//! Values are written as the client library wrote them (Rust's `f64` display: `3`,
//! `0.25`, `+Inf`), label values and help texts escaped as the format requires. A family
//! without series is left out entirely, as the client library's registry did.

use super::value::{HistogramSnapshot, LATENCY_BUCKETS};

/// A family's type, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family of DESIGN.md §5: name, help text and type.
///
/// Names, types and label names are the product's contract with dashboards and alert
/// rules (`configs/prometheus/weir-rules.yml`): change them only with those.
pub(super) struct Family {
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    pub(super) kind: Kind,
}

/// Label pairs of one series, in the order they are written.
pub(super) type Labels<'a> = [(&'static str, &'a str)];

/// Appends one family to `out`; the header is written with the first sample.
pub(super) struct FamilyWriter<'o> {
    out: &'o mut String,
    family: &'static Family,
    started: bool,
}

impl<'o> FamilyWriter<'o> {
    pub(super) fn new(out: &'o mut String, family: &'static Family) -> Self {
        FamilyWriter {
            out,
            family,
            started: false,
        }
    }

    fn header(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let Family { name, help, kind } = self.family;
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape(self.out, help, false);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// One counter or gauge sample.
    pub(super) fn sample(&mut self, labels: &Labels<'_>, value: f64) {
        self.header();
        self.line("", labels, None, value);
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram series.
    pub(super) fn histogram(&mut self, labels: &Labels<'_>, h: &HistogramSnapshot) {
        self.header();
        for (bound, &count) in LATENCY_BUCKETS.iter().zip(&h.cumulative) {
            let le = bound.to_string();
            self.line("_bucket", labels, Some(&le), count as f64);
        }
        self.line("_bucket", labels, Some("+Inf"), h.count as f64);
        self.line("_sum", labels, None, h.sum_seconds);
        self.line("_count", labels, None, h.count as f64);
    }

    fn line(&mut self, suffix: &str, labels: &Labels<'_>, le: Option<&str>, value: f64) {
        let out = &mut *self.out;
        out.push_str(self.family.name);
        out.push_str(suffix);
        let le = le.map(|v| ("le", v));
        let mut sep = '{';
        for (name, v) in labels.iter().copied().chain(le) {
            out.push(sep);
            out.push_str(name);
            out.push_str("=\"");
            escape(out, v, true);
            out.push('"');
            sep = ',';
        }
        if sep == ',' {
            out.push('}');
        }
        out.push(' ');
        if value == f64::INFINITY {
            out.push_str("+Inf");
        } else if value == f64::NEG_INFINITY {
            out.push_str("-Inf");
        } else {
            out.push_str(&value.to_string());
        }
        out.push('\n');
    }
}

/// Appends `s` with `\`, newline and (in label values) `"` escaped.
fn escape(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static F: Family = Family {
        name: "weir_x",
        help: "A \\ help\nline.",
        kind: Kind::Counter,
    };

    #[test]
    fn samples_are_escaped_and_the_header_written_once() {
        let mut out = String::new();
        let mut f = FamilyWriter::new(&mut out, &F);
        f.sample(&[("a", "q\"\\\n")], 3.0);
        f.sample(&[], 0.5);
        assert_eq!(
            out,
            "# HELP weir_x A \\\\ help\\nline.\n# TYPE weir_x counter\n\
             weir_x{a=\"q\\\"\\\\\\n\"} 3\nweir_x 0.5\n"
        );
    }

    #[test]
    fn a_family_without_samples_writes_nothing() {
        let mut out = String::new();
        let _unused = FamilyWriter::new(&mut out, &F);
        assert!(out.is_empty());
    }
}
