//! The `/status` document.
//!
//! Backends are named by their address exactly as written in the config, pools and
//! listeners by their names: operators' tooling greps for those strings.

use serde::Serialize;
use weir_balance::{Backend, Table};

use crate::ListenerStatus;

#[derive(Serialize)]
struct Status<'a> {
    generation: u64,
    draining: bool,
    config: String,
    listeners: Vec<ListenerJson<'a>>,
    pools: Vec<PoolJson<'a>>,
}

#[derive(Serialize)]
struct ListenerJson<'a> {
    name: &'a str,
    protocol: &'static str,
    listen: String,
    bound: String,
    active_connections: usize,
}

#[derive(Serialize)]
struct PoolJson<'a> {
    name: &'a str,
    strategy: &'static str,
    health_check: bool,
    backends_up: usize,
    backends: Vec<BackendJson<'a>>,
}

#[derive(Serialize)]
struct BackendJson<'a> {
    address: &'a str,
    resolved: String,
    weight: u32,
    backup: bool,
    up: bool,
    in_flight: u32,
    transitions: u64,
    consecutive_successes: u32,
    consecutive_failures: u32,
    last_transition: LastJson,
}

#[derive(Serialize)]
struct LastJson {
    at_unix_ms: u64,
    reason: String,
}

/// Renders `/status` for `table` and the running listeners.
pub fn status_json(table: &Table, listeners: &[ListenerStatus], draining: bool) -> String {
    let status = Status {
        generation: table.generation(),
        draining,
        config: table.config().source.display().to_string(),
        listeners: listeners
            .iter()
            .map(|l| ListenerJson {
                name: &l.name,
                protocol: l.protocol,
                listen: l.listen.to_string(),
                bound: l.bound.to_string(),
                active_connections: l.active_connections,
            })
            .collect(),
        pools: table
            .pools()
            .iter()
            .map(|p| PoolJson {
                name: p.name(),
                strategy: p.strategy_kind().as_str(),
                health_check: p.health_check().is_some(),
                backends_up: p.up_count(),
                backends: p.backends().map(|b| backend_json(b)).collect(),
            })
            .collect(),
    };
    // Serialising plain structs of strings and numbers cannot fail; fall back to an
    // error object rather than panicking if it ever does.
    serde_json::to_string_pretty(&status)
        .unwrap_or_else(|e| format!("{{\"error\":\"status serialisation failed: {e}\"}}"))
}

fn backend_json(b: &Backend) -> BackendJson<'_> {
    let last = b.last_transition();
    let (successes, failures) = b.consecutive();
    BackendJson {
        address: b.address(),
        resolved: b.addr().to_string(),
        weight: b.weight(),
        backup: b.is_backup(),
        up: b.is_up(),
        in_flight: b.in_flight(),
        transitions: b.transitions(),
        consecutive_successes: successes,
        consecutive_failures: failures,
        last_transition: LastJson {
            at_unix_ms: last.at_unix_ms,
            reason: last.reason,
        },
    }
}
