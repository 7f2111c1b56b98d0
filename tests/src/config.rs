//! YAML snippets for the common test topologies, so each test states only what differs.
//!
//! Everything binds `127.0.0.1:0` (listener and admin): weir reports the ports it got.

use std::net::SocketAddr;

/// An active HTTP health check fast enough for tests: `/health` every 50 ms, one failure
/// marks a backend down, one success up.
pub const FAST_HEALTH_CHECK: &str =
    "    health_check: { type: http, path: /health, interval: 50ms, timeout: 500ms, rise: 1, fall: 1 }\n";

/// One backend list entry (indented for [`one_pool`]).
pub fn backend(addr: SocketAddr) -> String {
    format!("      - {{ address: {addr} }}\n")
}

/// One backend list entry with extra fields, e.g. `"weight: 5"` or `"backup: true"`.
pub fn backend_with(addr: SocketAddr, extra: &str) -> String {
    format!("      - {{ address: {addr}, {extra} }}\n")
}

/// Backend entries for every address.
pub fn backends(addrs: &[SocketAddr]) -> String {
    addrs.iter().map(|a| backend(*a)).collect()
}

/// A config with admin and one HTTP listener `web` (both on port 0) routing everything to
/// pool `web` with `strategy` and `backends` (from [`backend`]). `pool_extra` is appended
/// to the pool (lines indented by four spaces, e.g. [`FAST_HEALTH_CHECK`]).
pub fn one_pool(strategy: &str, backends: &str, pool_extra: &str) -> String {
    format!(
        "\
admin:
  listen: 127.0.0.1:0
shutdown_timeout: 10s
listeners:
  - name: web
    listen: 127.0.0.1:0
    protocol: http
    routes:
      - pool: web
pools:
  web:
    strategy: {strategy}
    backends:
{backends}{pool_extra}"
    )
}

/// An active HTTP health check on `/health` with the given timings (milliseconds) and
/// thresholds, indented for [`one_pool`]'s `pool_extra`.
pub fn health_check(interval_ms: u64, timeout_ms: u64, rise: u32, fall: u32) -> String {
    format!(
        "    health_check: {{ type: http, path: /health, interval: {interval_ms}ms, \
         timeout: {timeout_ms}ms, rise: {rise}, fall: {fall} }}\n"
    )
}
