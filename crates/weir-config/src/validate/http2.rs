//! Validation of a listener's `http2` block and `max_requests_per_connection`.
//!
//! The ranges keep every value within what HTTP/2 allows (windows below 2^31, header
//! lists a hyper `u32`) and out of the regions that only help an attacker: a stream cap of
//! 10 000 or a 1 GiB window is never what an edge proxy wants.

use std::time::Duration;

use super::{field, Validator};
use crate::model::{Http2Config, Protocol};
use crate::raw::{RawListener, Text};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// The shortest keep-alive interval or timeout: below, PINGs are a storm and a deadline
/// shorter than a round trip under load.
const KEEPALIVE_FLOOR: Duration = Duration::from_secs(1);
/// The default keep-alive timeout's lower bound (gRPC's keep-alive timeout).
const KEEPALIVE_TIMEOUT_MIN: Duration = Duration::from_secs(20);
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
    let Some(()) = v.http_only(
        &path,
        protocol,
        "a tcp listener speaks no HTTP/2; `http2` is for http listeners",
    ) else {
        return defaults;
    };
    let f = |name: &str| field(&path, name);
    let max_concurrent_streams =
        check_field!(v.integer(raw.max_concurrent_streams at &path, 1..=1000) or defaults);
    let max_header_list_size =
        check_field!(v.size(raw.max_header_list_size.as_ref() at &path, KIB..=MIB) or defaults);
    let max_pending_reset_streams =
        check_field!(v.integer(raw.max_pending_reset_streams at &path, 1..=1000) or defaults);
    let max_stream_errors =
        check_field!(v.integer(raw.max_stream_errors at &path, 1..=10_000) or defaults);
    let initial_stream_window = check_field!(
        v.size(raw.initial_stream_window.as_ref() at &path, KIB..=16 * MIB) or defaults
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
    let (keepalive_interval, keepalive_timeout) = keepalive(
        v,
        raw.keepalive_interval.as_ref(),
        raw.keepalive_timeout.as_ref(),
        &path,
    );
    Http2Config {
        max_concurrent_streams,
        max_header_list_size,
        max_pending_reset_streams,
        max_stream_errors,
        initial_stream_window,
        initial_connection_window,
        keepalive_interval,
        keepalive_timeout,
    }
}

/// `keepalive_interval` (`0` or `off`: no PINGs) and `keepalive_timeout`, each at least
/// [`KEEPALIVE_FLOOR`]. The timeout defaults to max(20 s, 2 × interval): a PING waits
/// behind the response bytes already queued to the client, and hyper counts only received
/// DATA and new streams as life (not WINDOW_UPDATE), so a long download gets PINGed and a
/// tight deadline would cut a slow but live one.
fn keepalive(
    v: &mut Validator<'_>,
    interval: Option<&Text>,
    timeout: Option<&Text>,
    path: &str,
) -> (Option<Duration>, Duration) {
    let defaults = Http2Config::default();
    let interval_path = field(path, "keepalive_interval");
    let interval = match interval {
        Some(t) if t.as_str() == "off" || is_zero(t) => None,
        Some(_) => {
            let d = v.duration(interval, &interval_path, Duration::ZERO);
            floor(v, d, &interval_path, "keepalive_interval");
            Some(d)
        }
        None => defaults.keepalive_interval,
    };
    let default_timeout = interval.map_or(KEEPALIVE_TIMEOUT_MIN, |i| {
        KEEPALIVE_TIMEOUT_MIN.max(i.saturating_mul(2))
    });
    let timeout_path = field(path, "keepalive_timeout");
    let timeout_set = timeout.is_some();
    let timeout = v.duration(timeout, &timeout_path, default_timeout);
    if timeout_set {
        floor(v, timeout, &timeout_path, "keepalive_timeout");
    }
    (interval, timeout)
}

/// `0`, or a zero duration such as `0s`.
fn is_zero(text: &Text) -> bool {
    text.as_str() == "0" || super::value::duration(text.as_str()).is_ok_and(|d| d.is_zero())
}

/// Reports `d` below [`KEEPALIVE_FLOOR`] (zero was already reported by `duration`).
fn floor(v: &mut Validator<'_>, d: Duration, path: &str, name: &str) {
    if !d.is_zero() && d < KEEPALIVE_FLOOR {
        v.error(
            path,
            format!("{name} must be at least 1s (`0` or `off` disables keep-alive PINGs)"),
        );
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
    if l.max_requests_per_connection.is_some()
        && v.http_only(
            &path,
            protocol,
            "a tcp listener has no requests; `max_requests_per_connection` is for http listeners",
        )
        .is_none()
    {
        return DEFAULT_MAX_REQUESTS;
    }
    v.integer(
        l.max_requests_per_connection,
        &path,
        0..=i64::from(u32::MAX),
        DEFAULT_MAX_REQUESTS,
    )
}
