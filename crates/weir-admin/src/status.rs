//! The `/status` document.
//!
//! Backends are named by their address exactly as written in the config, pools and
//! listeners by their names: operators' tooling greps for those strings.
//!
//! Per backend: `weight` is the weight in force (a runtime override, else the
//! configured one, shown as `configured_weight`), `admin_state` the operator's word
//! (`ready`, `drain`, `maint`: the runtime API). It explains the state: `state` (`up`/`down`) since when and why, the
//! active checks' consecutive results, live traffic's consecutive failures, whether the
//! backend is passively `ejected`, its total downtime and whether it is in slow start.
//!
//! At the top: the configuration's `generation` (1 at start, +1 per applied reload), its
//! `config_hash` (the same value as `weir_config_info{hash}`) and `config_loaded_unix_ms`;
//! per listener, its routes (`host`, `path_prefix`, `pool`; `null` matches anything;
//! `pool` is `null` on a redirect route) with their other conditions (`methods`,
//! `headers`, `query`) and actions (`redirect`, `rewrite_path_prefix`,
//! `request_headers`, `response_headers`) when they have them, or, for TCP, its `pool`.
//! Each listener and route also shows its traffic policy:
//! `rate_limit` (`requests_per_second`, `burst`, `key`, and `tracked_keys`, the clients
//! whose bucket is not full now; `null` without a limit), `allow` (`null`: no allow
//! list) and `deny`, with blocks as normalised (`10.0.0.0/8`).
//!
//! A pool with `discovery` also has a `discovery` object: `source` (`dns srv NAME`),
//! the unix ms of the `last_lookup`, of the `last_success` (the answer serving now) and
//! of the `last_change` applied, the `last_error` (`null` after a good lookup) and the
//! number of discovered `backends`. Discovered backends are listed among `backends`,
//! named by their `ip:port`.
//!
//! Backend protection: each backend's `max_in_flight` (`null`: unlimited) beside its
//! `in_flight`, and per pool a `queue` object: `depth` (requests waiting now), `max`
//! and `timeout_ms` as configured (`null` for a pool where no backend has a limit).
//!
//! A pool with a sticky cookie has a `sticky` object: the `cookie` name, `ttl_s`
//! (`null`: a session cookie) and `key` (`secret_file`, or `process` for a key made at
//! start); each of its backends shows its `sticky_id`, the value its cookie carries,
//! so an operator can tell which backend a client is pinned to.

use serde::Serialize;
use weir_balance::{Backend, Pool, Table};

use crate::{ConfigStamp, ListenerStatus};

#[derive(Serialize)]
struct Status<'a> {
    generation: u64,
    draining: bool,
    config: String,
    config_hash: &'a str,
    config_loaded_unix_ms: u64,
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
    access_log: bool,
    /// HTTP: in order, first match wins.
    routes: Vec<RouteJson<'a>>,
    /// TCP: the pool every connection goes to.
    pool: Option<&'a str>,
    #[serde(flatten)]
    policy: PolicyJson,
}

#[derive(Serialize)]
struct RouteJson<'a> {
    host: Option<String>,
    path_prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    methods: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(&'a str, &'a str)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    query: Vec<(&'a str, &'a str)>,
    /// `null` for a redirect route.
    pool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect: Option<RedirectJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rewrite_path_prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_headers: Option<EditsJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_headers: Option<EditsJson<'a>>,
    #[serde(flatten)]
    policy: PolicyJson,
}

/// A redirect route's target; `null` parts are the request's.
#[derive(Serialize)]
struct RedirectJson<'a> {
    scheme: Option<&'static str>,
    host: Option<&'a str>,
    port: Option<u16>,
    path: Option<&'a str>,
    code: u16,
}

/// Header edits in the order they apply.
#[derive(Serialize)]
struct EditsJson<'a> {
    remove: Vec<&'a str>,
    set: Vec<(&'a str, &'a str)>,
    add: Vec<(&'a str, &'a str)>,
}

impl<'a> EditsJson<'a> {
    fn of(e: &'a weir_balance::HeaderEdits) -> Self {
        EditsJson {
            remove: e.removed().collect(),
            set: e.set().collect(),
            add: e.added().collect(),
        }
    }
}

fn route_json(r: &weir_balance::Route, policy: PolicyJson) -> RouteJson<'_> {
    RouteJson {
        host: r.host(),
        path_prefix: r.path_prefix(),
        methods: r.methods(),
        headers: r.match_headers(),
        query: r.match_query(),
        pool: r.pool().map(|p| p.name()),
        redirect: r.redirect().map(|rd| {
            let (scheme, host, port, path) = rd.parts();
            RedirectJson {
                scheme,
                host,
                port,
                path,
                code: rd.code(),
            }
        }),
        rewrite_path_prefix: r.rewrite().map(weir_balance::Rewrite::replacement),
        request_headers: r.request_headers().map(EditsJson::of),
        response_headers: r.response_headers().map(EditsJson::of),
        policy,
    }
}

/// A listener's or route's `rate_limit`, `allow` and `deny` (`null` / `[]` when unset).
#[derive(Serialize, Default)]
struct PolicyJson {
    rate_limit: Option<RateLimitJson>,
    allow: Option<Vec<String>>,
    deny: Vec<String>,
}

#[derive(Serialize)]
struct RateLimitJson {
    requests_per_second: f64,
    burst: u32,
    /// `source_ip`, `header:NAME` or `none`.
    key: String,
    /// Keys whose bucket is not full now (at most `weir_balance::policy::MAX_KEYS`).
    tracked_keys: usize,
}

impl PolicyJson {
    fn of(
        policy: &weir_balance::Policy,
        allow: Option<&[weir_config::Cidr]>,
        deny: &[weir_config::Cidr],
    ) -> Self {
        let text = |list: &[weir_config::Cidr]| list.iter().map(ToString::to_string).collect();
        PolicyJson {
            rate_limit: policy.limiter().map(|l| {
                let c = l.config();
                RateLimitJson {
                    requests_per_second: c.millirequests_per_second as f64 / 1000.0,
                    burst: c.burst,
                    key: c.key.describe(),
                    tracked_keys: l.tracked_keys(),
                }
            }),
            allow: allow.map(text),
            deny: text(deny),
        }
    }
}

#[derive(Serialize)]
struct PoolJson<'a> {
    name: &'a str,
    strategy: &'static str,
    /// Consistent-hash pools: the key (`header:x-user`) and the load bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    hash_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maglev_table_size: Option<usize>,
    health_check: bool,
    fail_open: bool,
    /// Picks made while failing open, since the pool first appeared.
    fail_open_picks: u64,
    backends_up: usize,
    backends: Vec<BackendJson<'a>>,
    /// Where requests over a backend's `max_in_flight` wait; `null` without a limit.
    queue: Option<QueueJson>,
    /// Only for pools with `discovery`.
    #[serde(skip_serializing_if = "Option::is_none")]
    discovery: Option<DiscoveryJson>,
    /// Only for pools with a sticky cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    sticky: Option<StickyJson<'a>>,
}

#[derive(Serialize)]
struct StickyJson<'a> {
    cookie: &'a str,
    ttl_s: Option<u64>,
    key: &'static str,
}

impl<'a> StickyJson<'a> {
    fn of(pool: &'a Pool) -> Option<Self> {
        let sticky = pool.sticky()?;
        Some(StickyJson {
            cookie: sticky.cookie(),
            ttl_s: sticky.ttl().map(|t| t.as_secs()),
            key: if sticky.shared_key() {
                "secret_file"
            } else {
                "process"
            },
        })
    }
}

#[derive(Serialize)]
struct QueueJson {
    /// Requests (or TCP connections) waiting now.
    depth: usize,
    max: u32,
    timeout_ms: u64,
}

impl QueueJson {
    fn of(pool: &Pool) -> Option<Self> {
        let settings = pool.settings().queue;
        pool.is_limited().then(|| QueueJson {
            depth: pool.shared().queue().depth(),
            max: settings.max,
            timeout_ms: u64::try_from(settings.timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

#[derive(Serialize)]
struct DiscoveryJson {
    source: String,
    last_lookup_unix_ms: u64,
    last_success_unix_ms: u64,
    last_change_unix_ms: u64,
    last_error: Option<String>,
    backends: usize,
}

#[derive(Serialize)]
struct BackendJson<'a> {
    address: &'a str,
    resolved: String,
    /// The weight in force.
    weight: u32,
    /// The weight the configuration gives; differs while a runtime override is set.
    configured_weight: u32,
    /// `ready`, `drain` or `maint`.
    admin_state: &'static str,
    /// What the backend's source says: `ready`, `not_ready` or `terminating` (a
    /// Kubernetes endpoint's conditions; always `ready` for other backends).
    endpoint_state: &'static str,
    /// Whether new requests and connections may go to it: up, admin state `ready`
    /// and endpoint state `ready`.
    routable: bool,
    backup: bool,
    up: bool,
    /// `up` or `down`.
    state: &'static str,
    /// Unix ms of the last transition, or of the backend's creation.
    since_unix_ms: u64,
    /// Why the backend is in its state (empty if it never changed).
    reason: String,
    in_flight: u32,
    /// The most requests or connections served at once; `null`: unlimited.
    max_in_flight: Option<u32>,
    /// Pools with a sticky cookie: the value naming this backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    sticky_id: Option<&'a str>,
    transitions: u64,
    /// Active checks: passing probes in a row while down (towards `rise`).
    consecutive_successes: u32,
    /// Active checks: failing probes in a row while up (towards `fall`).
    consecutive_failures: u32,
    /// Live traffic: connect failures, resets and timeouts in a row.
    passive_failures: u32,
    /// Down because passive checking ejected it.
    ejected: bool,
    /// Passive ejections so far (each lasts longer in pools without active checks).
    ejections: u32,
    /// Total time down, including the current down period.
    downtime_seconds: f64,
    in_slow_start: bool,
    last_transition: LastJson,
}

#[derive(Serialize)]
struct LastJson {
    at_unix_ms: u64,
    reason: String,
}

/// Renders `/status` for `table`, the running listeners and the configuration stamp.
pub fn status_json(
    table: &Table,
    listeners: &[ListenerStatus],
    draining: bool,
    config: &ConfigStamp,
) -> String {
    let status = Status {
        generation: table.generation(),
        draining,
        config: table.config().source.display().to_string(),
        config_hash: &config.hash,
        config_loaded_unix_ms: config.loaded_unix_ms,
        listeners: listeners
            .iter()
            .map(|l| {
                let routing = table.listener(&l.name);
                let config = table.config().listeners.iter().find(|c| c.name == l.name);
                ListenerJson {
                    name: &l.name,
                    protocol: l.protocol,
                    listen: l.listen.to_string(),
                    bound: l.bound.to_string(),
                    active_connections: l.active_connections,
                    access_log: routing.is_some_and(|t| t.access_log()),
                    routes: routing.map_or_else(Vec::new, |t| {
                        t.routes()
                            .iter()
                            .enumerate()
                            .map(|(i, r)| {
                                let rc = config.and_then(|c| c.routes.get(i));
                                let policy = PolicyJson::of(
                                    r.policy(),
                                    rc.and_then(|c| c.allow.as_deref()),
                                    rc.map_or(&[], |c| &c.deny),
                                );
                                route_json(r, policy)
                            })
                            .collect()
                    }),
                    pool: routing.and_then(|t| t.tcp_pool()).map(|p| p.name()),
                    policy: match (routing, config) {
                        (Some(t), Some(c)) => {
                            PolicyJson::of(t.policy(), c.allow.as_deref(), &c.deny)
                        }
                        _ => PolicyJson::default(),
                    },
                }
            })
            .collect(),
        pools: table
            .pools()
            .iter()
            .map(|p| PoolJson {
                name: p.name(),
                strategy: p.strategy_kind().as_str(),
                hash_on: p.hash_on().map(weir_config::HashOn::describe),
                maglev_table_size: p.maglev_table_size(),
                health_check: p.health_check().is_some(),
                fail_open: p.settings().fail_open,
                fail_open_picks: p.shared().fail_open_picks(),
                backends_up: p.up_count(),
                backends: p.backends().map(|b| backend_json(p, b)).collect(),
                queue: QueueJson::of(p),
                discovery: discovery_json(table, p),
                sticky: StickyJson::of(p),
            })
            .collect(),
    };
    // Serialising plain structs of strings and numbers cannot fail; fall back to an
    // error object rather than panicking if it ever does.
    serde_json::to_string_pretty(&status)
        .unwrap_or_else(|e| format!("{{\"error\":\"status serialisation failed: {e}\"}}"))
}

/// One backend's object, as in `/status` (the runtime API's answer).
pub(crate) fn backend_status(pool: &Pool, b: &Backend) -> String {
    serde_json::to_string_pretty(&backend_json(pool, b))
        .unwrap_or_else(|e| format!("{{\"error\":\"status serialisation failed: {e}\"}}"))
}

fn discovery_json(table: &Table, pool: &Pool) -> Option<DiscoveryJson> {
    let config = table.config().pool(pool.name())?.discovery.as_ref()?;
    let s = pool.shared().discovery().snapshot();
    Some(DiscoveryJson {
        source: if s.source.is_empty() {
            config.source()
        } else {
            s.source
        },
        last_lookup_unix_ms: s.last_lookup_unix_ms,
        last_success_unix_ms: s.last_success_unix_ms,
        last_change_unix_ms: s.last_change_unix_ms,
        last_error: s.last_error,
        backends: s.backends,
    })
}

fn backend_json<'a>(pool: &'a Pool, b: &'a Backend) -> BackendJson<'a> {
    let last = b.last_transition();
    let (successes, failures) = b.consecutive();
    let up = b.is_up();
    BackendJson {
        address: b.address(),
        resolved: b.addr().to_string(),
        weight: b.weight(),
        configured_weight: b.configured_weight(),
        admin_state: b.admin_mode().as_str(),
        endpoint_state: b.endpoint_state().as_str(),
        routable: b.is_routable(),
        backup: b.is_backup(),
        up,
        state: if up { "up" } else { "down" },
        since_unix_ms: b.since_unix_ms(),
        reason: last.reason.clone(),
        in_flight: b.in_flight(),
        max_in_flight: b.max_in_flight(),
        transitions: b.transitions(),
        consecutive_successes: successes,
        consecutive_failures: failures,
        passive_failures: b.passive_failures(),
        ejected: b.is_ejected(),
        ejections: b.ejections(),
        downtime_seconds: b.downtime().as_secs_f64(),
        in_slow_start: pool.in_slow_start(b),
        sticky_id: pool.sticky().and_then(|s| s.id_of(b)),
        last_transition: LastJson {
            at_unix_ms: last.at_unix_ms,
            reason: last.reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use weir_balance::BackendRegistry;

    use super::*;

    const YAML: &str = "
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ pool: app }] }]
pools:
  app:
    backends: [{ address: 127.0.0.1:9 }, { address: 127.0.0.1:10 }]
    slow_start: 10s
";

    fn backend_of(doc: &serde_json::Value, i: usize) -> &serde_json::Value {
        &doc["pools"][0]["backends"][i]
    }

    #[tokio::test(start_paused = true)]
    async fn status_explains_state_reason_and_growing_downtime() {
        let config = Arc::new(weir_config::parse(YAML, "w.yaml".as_ref()).expect("valid"));
        let table = BackendRegistry::new().build(config, 1);
        let pool = &table.pools()[0];
        let (a, b) = (&pool.primaries()[0], &pool.primaries()[1]);
        a.force(false, "connect refused");
        b.force(false, "probe failed");
        b.force(true, "check passed");
        tokio::time::advance(Duration::from_secs(3)).await;

        let doc: serde_json::Value =
            serde_json::from_str(&status_json(&table, &[], false, &ConfigStamp::default()))
                .expect("json");
        let first = backend_of(&doc, 0);
        assert_eq!(first["state"], "down");
        assert_eq!(first["reason"], "connect refused");
        assert_eq!(first["ejected"], false);
        assert_eq!(first["passive_failures"], 0);
        assert!(first["since_unix_ms"].as_u64().expect("number") > 0);
        assert_eq!(first["downtime_seconds"].as_f64(), Some(3.0));
        let second = backend_of(&doc, 1);
        assert_eq!(second["state"], "up");
        assert_eq!(second["in_slow_start"], true);
        assert_eq!(doc["pools"][0]["fail_open"], false);

        tokio::time::advance(Duration::from_secs(2)).await;
        let doc: serde_json::Value =
            serde_json::from_str(&status_json(&table, &[], false, &ConfigStamp::default()))
                .expect("json");
        assert_eq!(
            backend_of(&doc, 0)["downtime_seconds"].as_f64(),
            Some(5.0),
            "downtime grows while down"
        );
    }
}
