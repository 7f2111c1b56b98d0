//! Validation of `listeners`: names, addresses, protocol-specific fields, routes.

use std::net::SocketAddr;

use super::{field, Validator};
use crate::model::{ListenerConfig, ListenerTimeouts, Protocol, RouteConfig};
use crate::position::index;
use crate::raw::{RawListener, RawRoute};

/// Who already holds a listen address, for the uniqueness check.
struct Bound {
    addr: SocketAddr,
    owner: String,
}

pub(super) fn listeners(
    v: &mut Validator<'_>,
    raw: Option<&[RawListener]>,
    pools: &[&str],
    admin: SocketAddr,
) -> Vec<ListenerConfig> {
    let raw = match raw {
        None => {
            v.missing("", "listeners", " (at least one listener is required)");
            return Vec::new();
        }
        Some([]) => {
            v.error("listeners", "at least one listener is required");
            return Vec::new();
        }
        Some(raw) => raw,
    };
    let mut bound = vec![Bound {
        addr: admin,
        owner: "the admin server (admin.listen)".to_owned(),
    }];
    let mut names: Vec<(String, String)> = Vec::new();
    raw.iter()
        .enumerate()
        .map(|(i, l)| {
            let path = index("listeners", i);
            let config = listener(v, l, &path, pools);
            if let Some(name) = &l.name {
                let name_path = field(&path, "name");
                if let Some((_, first)) = names.iter().find(|(n, _)| n == name.as_str()) {
                    let line = v.line_of(first);
                    v.error(
                        &name_path,
                        format!(
                            "duplicate listener name {name:?} (first defined at line {line})",
                            name = name.as_str()
                        ),
                    );
                } else {
                    names.push((name.as_str().to_owned(), name_path));
                }
            }
            if l.listen.is_some() {
                check_address_free(v, &mut bound, config.listen, &config.name, &path);
            }
            config
        })
        .collect()
}

/// Two sockets cannot bind the same port on the same address, nor on a specific address and
/// the wildcard; say so now rather than when the listener fails to bind.
fn check_address_free(
    v: &mut Validator<'_>,
    bound: &mut Vec<Bound>,
    addr: SocketAddr,
    name: &str,
    path: &str,
) {
    if addr.port() == 0 {
        return;
    }
    let clash = bound.iter().find(|b| {
        b.addr.port() == addr.port()
            && (b.addr.ip() == addr.ip()
                || b.addr.ip().is_unspecified()
                || addr.ip().is_unspecified())
    });
    if let Some(b) = clash {
        v.error(
            &field(path, "listen"),
            format!("address {addr} is already used by {}", b.owner),
        );
    } else {
        bound.push(Bound {
            addr,
            owner: format!("listener {name:?}"),
        });
    }
}

fn listener(v: &mut Validator<'_>, l: &RawListener, path: &str, pools: &[&str]) -> ListenerConfig {
    let name = match &l.name {
        None => {
            v.missing(path, "name", "");
            String::new()
        }
        Some(name) if name.as_str().trim().is_empty() => {
            v.error(&field(path, "name"), "listener name must not be empty");
            String::new()
        }
        Some(name) => name.as_str().to_owned(),
    };
    let listen = match &l.listen {
        None => {
            v.missing(
                path,
                "listen",
                " (the address to bind, e.g. 127.0.0.1:8080)",
            );
            super::PLACEHOLDER_ADDR
        }
        Some(text) => v.socket_addr(text, &field(path, "listen")),
    };
    let protocol = v.keyword(
        l.protocol.as_ref(),
        &field(path, "protocol"),
        "protocol",
        ("http", Protocol::Http),
        &[("tcp", Protocol::Tcp)],
    );
    let tls = l
        .tls
        .as_ref()
        .map(|t| super::tls::listener(v, t, &field(path, "tls")));
    let proxy_protocol = super::proxy_protocol::send(v, l, path, protocol);
    let accept_proxy_protocol = l
        .accept_proxy_protocol
        .as_ref()
        .map(|a| super::proxy_protocol::accept(v, a, &field(path, "accept_proxy_protocol")));
    let (routes, pool) = targets(v, l, path, protocol, pools);
    let timeouts = l
        .timeouts
        .as_ref()
        .map_or_else(ListenerTimeouts::default, |t| {
            let (path, default) = (field(path, "timeouts"), ListenerTimeouts::default());
            ListenerTimeouts {
                header_read: check_field!(v.duration(t.header_read.as_ref() at &path) or default),
                idle: check_field!(v.duration(t.idle.as_ref() at &path) or default),
            }
        });
    let max_connections = v.integer(
        l.max_connections,
        &field(path, "max_connections"),
        1..=i64::from(u32::MAX),
        10_000,
    );
    let access_log = l.access_log.unwrap_or(false);
    if access_log {
        v.http_only(
            &field(path, "access_log"),
            protocol,
            "the access log is per HTTP request; a tcp listener has none",
        );
    }
    let http2 = super::http2::http2(v, l, path, protocol);
    let max_requests_per_connection = super::http2::max_requests(v, l, path, protocol);
    let rate_limit = l.rate_limit.as_ref().and_then(|r| {
        let rl_path = field(path, "rate_limit");
        v.http_only(
            &rl_path,
            protocol,
            "a rate limit counts HTTP requests; a tcp listener has none (use allow/deny, or max_connections)",
        )?;
        super::policy::rate_limit(v, r, &rl_path)
    });
    let (allow, deny) = super::policy::access_lists(v, l.allow.as_deref(), l.deny.as_deref(), path);
    ListenerConfig {
        name,
        listen,
        protocol,
        tls,
        routes,
        pool,
        timeouts,
        max_connections,
        access_log,
        proxy_protocol,
        accept_proxy_protocol,
        max_requests_per_connection,
        http2,
        rate_limit,
        allow,
        deny,
    }
}

/// Where a listener sends its traffic: an http listener's routes, or a tcp listener's
/// one pool; the key the other protocol takes is refused.
fn targets(
    v: &mut Validator<'_>,
    l: &RawListener,
    path: &str,
    protocol: Protocol,
    pools: &[&str],
) -> (Vec<RouteConfig>, Option<String>) {
    match protocol {
        Protocol::Http => {
            if l.pool.is_some() {
                v.error(
                    &field(path, "pool"),
                    "an http listener sends requests to pools through `routes`; `pool` is for tcp listeners",
                );
            }
            (http_routes(v, l.routes.as_deref(), path, pools), None)
        }
        Protocol::Tcp => {
            if l.routes.is_some() {
                v.error(
                    &field(path, "routes"),
                    "a tcp listener cannot route (it sees no hosts or paths); give it a `pool`",
                );
            }
            let pool = match &l.pool {
                None => {
                    v.missing(
                        path,
                        "pool",
                        " (a tcp listener relays every connection to one pool)",
                    );
                    None
                }
                Some(p) => {
                    check_pool_exists(v, p.as_str(), &field(path, "pool"), "listener", pools);
                    Some(p.as_str().to_owned())
                }
            };
            (Vec::new(), pool)
        }
    }
}

pub(super) fn check_pool_exists(
    v: &mut Validator<'_>,
    pool: &str,
    path: &str,
    who: &str,
    pools: &[&str],
) {
    if !pools.contains(&pool) {
        let known = if pools.is_empty() {
            "no pools are defined".to_owned()
        } else {
            format!("defined pools: {}", pools.join(", "))
        };
        v.error(path, format!("{who} names missing pool {pool:?} ({known})"));
    }
}

fn http_routes(
    v: &mut Validator<'_>,
    raw: Option<&[RawRoute]>,
    path: &str,
    pools: &[&str],
) -> Vec<RouteConfig> {
    let routes_path = field(path, "routes");
    let raw = match raw {
        None => {
            v.missing(
                path,
                "routes",
                " (an http listener needs at least one route)",
            );
            return Vec::new();
        }
        Some([]) => {
            v.error(&routes_path, "at least one route is required");
            return Vec::new();
        }
        Some(raw) => raw,
    };
    let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.len());
    // Routes whose match is valid, by index: a route with a bad match must not look like a
    // catch-all and drag every later route into a second, misleading error.
    let mut matchable: Vec<usize> = Vec::with_capacity(raw.len());
    for (j, r) in raw.iter().enumerate() {
        let path = index(&routes_path, j);
        let errors_before = v.errors.len();
        let route = super::route::route(v, r, &path, pools);
        let match_ok = !v.errors[errors_before..]
            .iter()
            .any(|e| e.path.starts_with(&field(&path, "match")));
        // First match wins, so a route an earlier one always takes first is dead config,
        // almost always a mistake in the order.
        let shadow = matchable.iter().copied().find(|&k| {
            let earlier = &routes[k];
            takes_every_request(earlier) || same_match(earlier, &route)
        });
        if match_ok {
            matchable.push(j);
        }
        if let (Some(k), true) = (shadow, match_ok) {
            let why = if takes_every_request(&routes[k]) {
                "has no match and takes every request"
            } else {
                "has the same match and comes first"
            };
            v.error(&path, format!("route is unreachable: routes[{k}] {why}"));
        }
        routes.push(route);
    }
    routes
}

/// A route without any condition: every later route is dead.
fn takes_every_request(r: &RouteConfig) -> bool {
    r.host.is_none()
        && r.path_prefix.is_none()
        && r.methods.is_empty()
        && r.headers.is_empty()
        && r.query.is_empty()
}

/// Two routes with the same conditions (in the same order): the second never matches.
fn same_match(a: &RouteConfig, b: &RouteConfig) -> bool {
    a.host == b.host
        && a.path_prefix == b.path_prefix
        && a.methods == b.methods
        && a.headers == b.headers
        && a.query == b.query
}
