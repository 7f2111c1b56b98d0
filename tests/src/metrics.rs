//! Reading weir's `/metrics` (DESIGN.md §5) the way Prometheus does.
//!
//! The tests check what a scraper would see, so they parse the text exposition format
//! (0.0.4) themselves instead of trusting the client library: every sample line becomes
//! a [`Sample`] (name, labels, value), every `# TYPE` line a family type. The parser is
//! strict: a malformed line panics naming it, so a broken exposition fails loudly.

use std::collections::{BTreeMap, HashMap};

use crate::client;
use crate::process::Weir;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (for histograms, with its `_bucket`/`_sum`/`_count` suffix).
    pub name: String,
    /// Its labels, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// One scrape: every sample in order, and the `# TYPE` of every family.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    /// Every sample line, in order.
    pub samples: Vec<Sample>,
    /// `# TYPE` per family name (`counter`, `gauge`, `histogram`, ...).
    pub types: HashMap<String, String>,
}

impl Scrape {
    /// Parses a text exposition.
    ///
    /// # Panics
    /// On any malformed line, naming it.
    pub fn parse(text: &str) -> Scrape {
        let mut out = Scrape::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("TYPE line without a type: {line}"));
                out.types.insert(name.to_owned(), kind.trim().to_owned());
            } else if !line.starts_with('#') {
                out.samples.push(parse_sample(line));
            }
        }
        out
    }

    /// Samples named `name` whose labels include every pair of `with`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        with: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// The value of the one sample matching, `None` if none does.
    ///
    /// # Panics
    /// When more than one sample matches.
    pub fn value(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.find(name, with).collect();
        assert!(
            found.len() <= 1,
            "{name} {with:?} matches several: {found:?}"
        );
        found.first().map(|s| s.value)
    }

    /// Asserts that exactly one sample matches, with the value `want`.
    ///
    /// # Panics
    /// When none or several match, or its value is another.
    #[track_caller]
    pub fn assert_value(&self, name: &str, with: &[(&str, &str)], want: f64) {
        assert_eq!(self.value(name, with), Some(want), "{name} {with:?}");
    }

    /// The sum over every sample matching (0 if none does).
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.find(name, with).map(|s| s.value).sum()
    }

    /// Whether any sample of family `name` exists (for a histogram, any of its series).
    pub fn has_family(&self, name: &str) -> bool {
        self.samples.iter().any(|s| {
            s.name == name
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| s.name.strip_suffix(suffix) == Some(name))
        })
    }

    /// Every sample whose labels have `label` = `value`, in any family.
    pub fn with_label<'a>(
        &'a self,
        label: &'a str,
        value: &'a str,
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.label(label) == Some(value))
    }
}

/// Every family of DESIGN.md §5, verbatim (plus the two info gauges, issue 11's
/// discovery families, which have series only for pools with `discovery`, and issue 12's
/// pool queue families): name, type and label names. The one list both the exporter's unit tests and the end-to-end tests
/// check a scrape against.
pub const FAMILIES: &[(&str, &str, &[&str])] = &[
    (
        "weir_http_requests_total",
        "counter",
        &["listener", "pool", "backend", "code"],
    ),
    (
        "weir_http_request_duration_seconds",
        "histogram",
        &["listener", "pool"],
    ),
    (
        "weir_backend_response_duration_seconds",
        "histogram",
        &["pool", "backend"],
    ),
    ("weir_backend_up", "gauge", &["pool", "backend"]),
    ("weir_pool_backends_up", "gauge", &["pool"]),
    (
        "weir_backend_downtime_seconds_total",
        "counter",
        &["pool", "backend"],
    ),
    ("weir_backend_in_flight", "gauge", &["pool", "backend"]),
    (
        "weir_backend_transitions_total",
        "counter",
        &["pool", "backend", "to"],
    ),
    (
        "weir_health_checks_total",
        "counter",
        &["pool", "backend", "result"],
    ),
    (
        "weir_upstream_errors_total",
        "counter",
        &["pool", "backend", "kind"],
    ),
    ("weir_retries_total", "counter", &["pool"]),
    ("weir_pool_queue_depth", "gauge", &["pool"]),
    ("weir_pool_queue_wait_seconds", "histogram", &["pool"]),
    (
        "weir_pool_queue_refused_total",
        "counter",
        &["pool", "reason"],
    ),
    ("weir_listener_connections_active", "gauge", &["listener"]),
    ("weir_listener_connections_total", "counter", &["listener"]),
    (
        "weir_tcp_bytes_total",
        "counter",
        &["listener", "direction"],
    ),
    ("weir_http_protocol_errors_total", "counter", &["listener"]),
    (
        "weir_discovery_lookups_total",
        "counter",
        &["pool", "result"],
    ),
    ("weir_discovery_backends", "gauge", &["pool"]),
    ("weir_config_reloads_total", "counter", &["result"]),
    ("weir_admin_changes_total", "counter", &["result"]),
    ("weir_config_last_reload_successful", "gauge", &[]),
    (
        "weir_config_last_reload_success_timestamp_seconds",
        "gauge",
        &[],
    ),
    ("weir_config_info", "gauge", &["hash"]),
    ("weir_build_info", "gauge", &["version"]),
];

/// The families of [`FAMILIES`] that have series only while some pool has `discovery`.
pub const DISCOVERY_FAMILIES: &[&str] =
    &["weir_discovery_lookups_total", "weir_discovery_backends"];

fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("sample without a value: {line}"));
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            match c {
                '}' => {
                    rest = &body[i + 1..];
                    break;
                }
                ',' if key.is_empty() => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().map(|(_, c)| c) {
                            Some('"') => break,
                            Some('\\') => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(c) => value.push(c),
                                None => panic!("bad escape: {line}"),
                            },
                            Some(c) => value.push(c),
                            None => panic!("unclosed label value: {line}"),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
    }
    // `value [timestamp]`: weir writes no timestamps, but the format allows them.
    let value = rest
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("sample without a value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|e| panic!("bad value {v:?} ({e}): {line}")),
    };
    Sample {
        name,
        labels,
        value,
    }
}

impl Weir {
    /// `GET /metrics` on the admin server, parsed.
    ///
    /// # Panics
    /// When the request fails, the status is not 200, the content type is not the
    /// Prometheus text format, or the body does not parse.
    pub async fn metrics(&self) -> Scrape {
        let resp = client::get(self.admin_addr(), "/metrics").await;
        assert_eq!(resp.status, 200, "/metrics answered {}", resp.text());
        let content_type = resp.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "/metrics content type {content_type:?}"
        );
        Scrape::parse(&resp.text())
    }

    /// The value of the series `name{labels}` now.
    ///
    /// # Panics
    /// When there is no such series, or as [`Weir::metrics`].
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics()
            .await
            .value(name, labels)
            .unwrap_or_else(|| panic!("no {name} series with labels {labels:?}"))
    }

    /// `weir_discovery_lookups_total{pool, result}` now (0 without the series).
    ///
    /// # Panics
    /// As [`Weir::metrics`].
    pub async fn discovery_lookups(&self, pool: &str, result: &str) -> f64 {
        self.metrics()
            .await
            .value(
                "weir_discovery_lookups_total",
                &[("pool", pool), ("result", result)],
            )
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_special_values() {
        let text = "\
# HELP weir_x A help line.
# TYPE weir_x counter
weir_x{a=\"1\",b=\"q\\\"uote\\\\\"} 3
weir_y 4.5
weir_h_bucket{le=\"+Inf\"} 7
weir_z{a=\"x\",} NaN 1712345678
";
        let scrape = Scrape::parse(text);
        assert_eq!(scrape.types["weir_x"], "counter");
        assert_eq!(scrape.value("weir_x", &[("b", "q\"uote\\")]), Some(3.0));
        assert_eq!(scrape.value("weir_y", &[]), Some(4.5));
        assert_eq!(scrape.value("weir_h_bucket", &[("le", "+Inf")]), Some(7.0));
        assert!(scrape
            .value("weir_z", &[("a", "x")])
            .is_some_and(f64::is_nan));
        assert!(scrape.has_family("weir_h"));
        assert_eq!(scrape.sum("weir_x", &[]), 3.0);
    }
}
