//! Reading weir's `/status` document (DESIGN.md §5) in tests.
//!
//! `/status` names pools by name and backends by their address as written in the config;
//! these helpers find one entry and panic with the whole document when it is missing, so
//! a failing assertion shows what weir actually reported.

use std::net::SocketAddr;

use serde_json::Value;

/// The entry of pool `pool` in a `/status` document.
///
/// # Panics
/// When the document has no such pool.
pub fn pool<'a>(status: &'a Value, pool: &str) -> &'a Value {
    status["pools"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == pool))
        .unwrap_or_else(|| panic!("pool {pool:?} missing from /status: {status}"))
}

/// Every backend entry of pool `pool`.
///
/// # Panics
/// When the document has no such pool or it lists no backends.
pub fn backends<'a>(status: &'a Value, pool_name: &str) -> &'a [Value] {
    pool(status, pool_name)["backends"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("pool {pool_name:?} lists no backends: {status}"))
}

/// The entry of backend `addr` in pool `pool`.
///
/// # Panics
/// When the document has no such pool or backend.
pub fn backend<'a>(status: &'a Value, pool_name: &str, addr: SocketAddr) -> &'a Value {
    let address = addr.to_string();
    backends(status, pool_name)
        .iter()
        .find(|b| b["address"] == address.as_str())
        .unwrap_or_else(|| panic!("backend {addr} missing from pool {pool_name:?}: {status}"))
}

/// Whether `/status` reports backend `addr` of pool `pool` up.
///
/// # Panics
/// When the entry is missing or has no boolean `up`.
pub fn is_up(status: &Value, pool_name: &str, addr: SocketAddr) -> bool {
    backend(status, pool_name, addr)["up"]
        .as_bool()
        .unwrap_or_else(|| panic!("backend {addr} has no boolean `up`: {status}"))
}

/// How many backends of pool `pool` `/status` reports down.
///
/// # Panics
/// As [`backends`].
pub fn down_count(status: &Value, pool_name: &str) -> usize {
    backends(status, pool_name)
        .iter()
        .filter(|b| b["up"] == false)
        .count()
}
