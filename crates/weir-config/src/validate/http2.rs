//! Validation of a listener's `http2` block and `max_requests_per_connection`.
//!
//! The ranges keep every value within what HTTP/2 allows (windows below 2^31, header
//! lists a hyper `u32`) and out of the regions that only help an attacker: a stream cap of
//! 10 000 or a 1 GiB window is never what an edge proxy wants.

use std::time::Duration;

use super::{field, Validator};
use crate::model::{Http2Config, Protocol};
use crate::raw::RawListener;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// nginx's `keepalive_requests` default.
const DEFAULT_MAX_REQUESTS: u32 = 1000;

/// The listener's `http2` limits (defaults where absent); an error when set on a tcp
/// listener, which speaks no HTTP.
pub(super) fn http2(
    v: &mut Validator<'_>,
    l: &RawListener,
    path: &str,
    protocol: Protocol,
) -> Http2Config {
    let defaults = Http2Config::default();
    let Some(raw) = l.http2.as_ref() else {
        return defaults;
    };
    let path = field(path, "http2");
    if protocol == Protocol::Tcp {
        v.error(
            &path,
            "a tcp listener speaks no HTTP/2; `http2` is for http listeners",
        );
        return defaults;
    }
    let f = |name: &str| field(&path, name);
    let max_concurrent_streams = v.integer(
        raw.max_concurrent_streams,
        &f("max_concurrent_streams"),
        1..=1000,
        defaults.max_concurrent_streams,
    );
    let max_header_list_size = v.size(
        raw.max_header_list_size.as_ref(),
        &f("max_header_list_size"),
        KIB..=MIB,
        defaults.max_header_list_size,
    );
    let max_pending_reset_streams = v.integer(
        raw.max_pending_reset_streams,
        &f("max_pending_reset_streams"),
        1..=1000,
        defaults.max_pending_reset_streams,
    );
    let max_stream_errors = v.integer(
        raw.max_stream_errors,
        &f("max_stream_errors"),
        1..=10_000,
        defaults.max_stream_errors,
    );
    let initial_stream_window = v.size(
        raw.initial_stream_window.as_ref(),
        &f("initial_stream_window"),
        KIB..=16 * MIB,
        defaults.initial_stream_window,
    );
    let window_path = f("initial_connection_window");
    let errors_before = v.errors.len();
    let initial_connection_window = v.size(
        raw.initial_connection_window.as_ref(),
        &window_path,
        64 * KIB..=64 * MIB,
        defaults.initial_connection_window,
    );
    if v.errors.len() == errors_before && initial_connection_window < initial_stream_window {
        v.error(
            &window_path,
            format!(
                "initial_connection_window ({initial_connection_window} bytes) must be at least initial_stream_window ({initial_stream_window} bytes): one stream could never use its window"
            ),
        );
    }
    let keepalive_path = f("keepalive_interval");
    let keepalive_interval = v.duration(
        raw.keepalive_interval.as_ref(),
        &keepalive_path,
        defaults.keepalive_interval,
    );
    if keepalive_interval < Duration::from_millis(100) {
        v.error(
            &keepalive_path,
            "keepalive_interval must be at least 100ms (a PING storm helps no one)",
        );
    }
    Http2Config {
        max_concurrent_streams,
        max_header_list_size,
        max_pending_reset_streams,
        max_stream_errors,
        initial_stream_window,
        initial_connection_window,
        keepalive_interval,
    }
}

/// `max_requests_per_connection`: 0 (no limit) or more; http listeners only.
pub(super) fn max_requests(
    v: &mut Validator<'_>,
    l: &RawListener,
    path: &str,
    protocol: Protocol,
) -> u32 {
    let path = field(path, "max_requests_per_connection");
    if l.max_requests_per_connection.is_some() && protocol == Protocol::Tcp {
        v.error(
            &path,
            "a tcp listener has no requests; `max_requests_per_connection` is for http listeners",
        );
        return DEFAULT_MAX_REQUESTS;
    }
    v.integer(
        l.max_requests_per_connection,
        &path,
        0..=i64::from(u32::MAX),
        DEFAULT_MAX_REQUESTS,
    )
}
