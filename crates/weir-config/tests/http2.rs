//! A listener's `http2` limits and `max_requests_per_connection`: defaults, sizes written
//! with units or as bytes, and every range reported at its field.

mod support;

use support::errors;

use std::path::Path;
use std::time::Duration;

use weir_config::{parse, Http2Config};
use weir_e2e::config::{tcp_listener, DB_POOL, MINIMAL, WEB_LISTENER};

/// An http listener with `extra` (indented under the listener) added.
fn with_listener_fields(extra: &str) -> String {
    let pools = MINIMAL
        .strip_prefix(WEB_LISTENER)
        .expect("MINIMAL starts with WEB_LISTENER");
    format!("{WEB_LISTENER}{extra}{pools}")
}

#[test]
fn defaults_are_weirs_not_hypers() {
    let config = parse(&with_listener_fields(""), Path::new("weir.yaml")).expect("valid");
    let l = &config.listeners[0];
    assert_eq!(l.max_requests_per_connection, 1000);
    assert_eq!(
        l.http2,
        Http2Config {
            max_concurrent_streams: 100,
            max_header_list_size: 65_536,
            max_pending_reset_streams: 20,
            max_stream_errors: 100,
            initial_stream_window: 65_536,
            initial_connection_window: 1_048_576,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(60),
        }
    );
    assert_eq!(l.http2, Http2Config::default());
}

#[test]
fn every_field_can_be_set_and_sizes_take_units_or_bytes() {
    let yaml = with_listener_fields(
        "    max_requests_per_connection: 0
    http2:
      max_concurrent_streams: 8
      max_header_list_size: 16KiB
      max_pending_reset_streams: 5
      max_stream_errors: 7
      initial_stream_window: 131072
      initial_connection_window: 2MiB
      keepalive_interval: 5s
      keepalive_timeout: 3s
",
    );
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    let l = &config.listeners[0];
    assert_eq!(l.max_requests_per_connection, 0);
    assert_eq!(
        l.http2,
        Http2Config {
            max_concurrent_streams: 8,
            max_header_list_size: 16_384,
            max_pending_reset_streams: 5,
            max_stream_errors: 7,
            initial_stream_window: 131_072,
            initial_connection_window: 2 << 20,
            keepalive_interval: Some(Duration::from_secs(5)),
            keepalive_timeout: Duration::from_secs(3),
        }
    );
}

#[test]
fn out_of_range_values_are_each_reported_at_their_field() {
    let yaml = with_listener_fields(
        "    max_requests_per_connection: -1
    http2:
      max_concurrent_streams: 0
      max_header_list_size: 2MiB
      max_pending_reset_streams: 1001
      max_stream_errors: 0
      initial_stream_window: 512
      initial_connection_window: 1GiB
      keepalive_interval: 100ms
      keepalive_timeout: 999ms
",
    );
    assert_eq!(
        errors(&yaml),
        [
            "weir.yaml:6:5: listeners[0].max_requests_per_connection: max_requests_per_connection must be at least 0, got -1",
            "weir.yaml:8:7: listeners[0].http2.max_concurrent_streams: max_concurrent_streams must be between 1 and 1000, got 0",
            "weir.yaml:9:7: listeners[0].http2.max_header_list_size: max_header_list_size must be between 1KiB and 1MiB, got \"2MiB\"",
            "weir.yaml:10:7: listeners[0].http2.max_pending_reset_streams: max_pending_reset_streams must be between 1 and 1000, got 1001",
            "weir.yaml:11:7: listeners[0].http2.max_stream_errors: max_stream_errors must be between 1 and 10000, got 0",
            "weir.yaml:12:7: listeners[0].http2.initial_stream_window: initial_stream_window must be between 1KiB and 16MiB, got \"512\"",
            "weir.yaml:13:7: listeners[0].http2.initial_connection_window: initial_connection_window must be between 64KiB and 64MiB, got \"1GiB\"",
            "weir.yaml:14:7: listeners[0].http2.keepalive_interval: keepalive_interval must be at least 1s (`0` or `off` disables keep-alive PINGs)",
            "weir.yaml:15:7: listeners[0].http2.keepalive_timeout: keepalive_timeout must be at least 1s (`0` or `off` disables keep-alive PINGs)",
        ]
    );
}

/// The keep-alive timeout is not tied to the interval: a PING queued behind a slow
/// download's bytes must not get a 100 ms (or interval-long) deadline.
#[test]
fn keepalive_timeout_defaults_apart_from_the_interval_and_pings_can_be_off() {
    let http2 = |extra: &str| {
        let yaml = with_listener_fields(&format!("    http2:\n{extra}"));
        parse(&yaml, Path::new("weir.yaml"))
            .expect("valid")
            .listeners[0]
            .http2
    };
    let h = http2("      keepalive_interval: 1s\n");
    assert_eq!(h.keepalive_interval, Some(Duration::from_secs(1)));
    assert_eq!(
        h.keepalive_timeout,
        Duration::from_secs(20),
        "at least 20 s"
    );
    let h = http2("      keepalive_interval: 45s\n");
    assert_eq!(
        h.keepalive_timeout,
        Duration::from_secs(90),
        "twice the interval"
    );
    let h = http2("      keepalive_interval: 5s\n      keepalive_timeout: 1s\n");
    assert_eq!(
        h.keepalive_timeout,
        Duration::from_secs(1),
        "set: as written"
    );
    for off in ["0", "0s", "off"] {
        let h = http2(&format!("      keepalive_interval: {off}\n"));
        assert_eq!(h.keepalive_interval, None, "{off} disables PINGs");
    }
    assert_eq!(
        errors(&with_listener_fields(
            "    http2:\n      keepalive_interval: 999ms\n      keepalive_timeout: 0s\n"
        )),
        [
            "weir.yaml:7:7: listeners[0].http2.keepalive_interval: keepalive_interval must be at least 1s (`0` or `off` disables keep-alive PINGs)",
            "weir.yaml:8:7: listeners[0].http2.keepalive_timeout: must be greater than zero",
        ]
    );
}

#[test]
fn malformed_sizes_and_a_window_smaller_than_a_stream_are_refused() {
    let yaml = with_listener_fields(
        "    http2:
      max_header_list_size: 64kb
      initial_stream_window: 1MiB
      initial_connection_window: 512KiB
",
    );
    assert_eq!(
        errors(&yaml),
        [
            "weir.yaml:7:7: listeners[0].http2.max_header_list_size: invalid size \"64kb\" (expected bytes or a number and a unit: 65536, 64KiB, 1MiB)",
            "weir.yaml:9:7: listeners[0].http2.initial_connection_window: initial_connection_window (524288 bytes) must be at least initial_stream_window (1048576 bytes): one stream could never use its window",
        ]
    );
}

#[test]
fn tcp_listeners_refuse_http_limits_and_unknown_fields_are_named() {
    let yaml = format!(
        "listeners:\n{}    max_requests_per_connection: 10\n    http2: {{ max_concurrent_streams: 10 }}\n{DB_POOL}",
        tcp_listener("db", "db")
    );
    assert_eq!(
        errors(&yaml),
        [
            "weir.yaml:6:5: listeners[0].max_requests_per_connection: a tcp listener has no requests; `max_requests_per_connection` is for http listeners",
            "weir.yaml:7:5: listeners[0].http2: a tcp listener speaks no HTTP/2; `http2` is for http listeners",
        ]
    );
    let unknown = errors(&with_listener_fields("    http2: { max_streams: 10 }\n"));
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].starts_with("weir.yaml:6:")
            && unknown[0].contains("listeners[0].http2")
            && unknown[0].contains("unknown field `max_streams`"),
        "{unknown:?}"
    );
}
