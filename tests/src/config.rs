//! YAML snippets for the common test topologies, so each test states only what differs.
//!
//! Everything binds `127.0.0.1:0` (listener and admin): weir reports the ports it got.

use std::net::SocketAddr;

/// The `admin` section on port 0.
pub const ADMIN: &str = "admin:\n  listen: 127.0.0.1:0\n";

/// [`ADMIN`] and `listeners:` opening HTTP listener `web` on port 0; a test goes on with
/// the listener's fields (indented by four spaces), `routes` among them.
pub const WEB_HEAD: &str =
    "admin:\n  listen: 127.0.0.1:0\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n";

/// `listeners:` with HTTP listener `web` on port 0 sending everything to pool `web`; a
/// test appends further listeners, then `pools:`.
pub const WEB_LISTENER: &str =
    "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n      - pool: web\n";

/// [`WEB_LISTENER`] and pool `web` made of `pool_fields` (lines indented by four
/// spaces), no `admin`: for a pool whose backends are not a static list.
pub fn web_pool(pool_fields: &str) -> String {
    format!("{WEB_LISTENER}pools:\n  web:\n{pool_fields}")
}

/// [`ADMIN`], a 10 s `shutdown_timeout` and [`web_pool`] with round robin, two retries,
/// `pool_extra` lines and `discovery: { source: { body } }`: the shape every discovery
/// test (`dns`, `kubernetes`) starts from.
pub fn discovered_web(source: &str, body: &str, pool_extra: &str) -> String {
    let pool = web_pool(&format!(
        "    strategy: round_robin\n    retries: 2\n{pool_extra}    discovery:\n      {source}: {{ {body} }}\n"
    ));
    format!("{ADMIN}shutdown_timeout: 10s\n{pool}")
}

/// The smallest valid config: [`WEB_LISTENER`] and pool `web` with the one backend
/// `127.0.0.1:8081` (never connected to), no `admin`. A test appends pool fields
/// (indented by four spaces) or more pools (by two), so the line numbers of what it adds
/// are those of its own text.
pub const MINIMAL: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n      - pool: web\npools:\n  web:\n    backends:\n      - { address: 127.0.0.1:8081 }\n";

/// `pools:` with pool `db` and its one backend `127.0.0.1:5432` (never connected to), for
/// the end of a config whose TCP listeners relay to `db`.
pub const DB_POOL: &str = "pools:\n  db:\n    backends:\n      - { address: 127.0.0.1:5432 }\n";

/// A TCP listener entry `name` relaying to `pool`, for after [`WEB_LISTENER`].
pub fn tcp_listener(name: &str, pool: &str) -> String {
    format!("  - name: {name}\n    listen: 127.0.0.1:0\n    protocol: tcp\n    pool: {pool}\n")
}

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

/// [`one_pool`] round robin over the one `backend`, with `listener_extra` added to
/// listener `web` (lines indented by four spaces, e.g. `"    timeouts: { idle: 2s }\n"`).
pub fn one_backend_listener(backend: SocketAddr, listener_extra: &str) -> String {
    one_pool("round_robin", &self::backend(backend), "").replace(
        "    protocol: http\n",
        &format!("    protocol: http\n{listener_extra}"),
    )
}

/// [`WEB_HEAD`] with the access log on and `route` (one `routes` entry, e.g.
/// `"pool: web"`) as listener `web`'s only route, then pool `web` over `addrs`.
pub fn access_logged(route: &str, addrs: &[SocketAddr]) -> String {
    format!(
        "{WEB_HEAD}    access_log: true\n    routes:\n      - {route}\npools:\n  web:\n    backends:\n{}",
        backends(addrs)
    )
}

/// An HTTP listener `web` -> pool `web` (health-checked) and a TCP listener `raw` ->
/// pool `db` (one backend), admin on port 0.
pub fn web_and_tcp(web: &[SocketAddr], db: SocketAddr) -> String {
    format!(
        "\
{ADMIN}{WEB_LISTENER}{}pools:
  web:
    strategy: round_robin
    backends:
{}{FAST_HEALTH_CHECK}  db:
    backends:
{}",
        tcp_listener("raw", "db"),
        backends(web),
        backend(db)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openings_agree() {
        assert_eq!(
            format!("{ADMIN}{WEB_LISTENER}"),
            format!("{WEB_HEAD}    routes:\n      - pool: web\n")
        );
        assert_eq!(
            MINIMAL,
            format!("{WEB_LISTENER}pools:\n  web:\n    backends:\n      - {{ address: 127.0.0.1:8081 }}\n")
        );
    }
}
