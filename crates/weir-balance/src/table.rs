//! The routing table: one immutable snapshot holding everything a request needs.
//!
//! The proxy loads the current `Arc<Table>` from an `ArcSwap` once per request (or per
//! TCP connection) and never sees a half-updated table: listeners, routes, pools and
//! backends all come from the same snapshot. A request that started on an old table
//! finishes on it.
//!
//! The snapshot also carries the metric handles a request bumps: per listener
//! ([`ListenerMetrics`]) and per route ([`RouteMetrics`], the `(listener, pool)` pair,
//! built with its pool's backends so it can count each of their responses by index),
//! resolved when the table is built, so the request path never looks a label up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weir_config::{Config, Http2Config, ListenerTimeouts, Protocol, RouteConfig};
use weir_telemetry::{ListenerMetrics, Metrics, RouteMetrics, NO_BACKEND};

use crate::policy::{AccessList, Limiters, Policy, RateLimiter};
use crate::route_action::{HeaderEdits, Redirect, Rewrite};
use crate::route_match::{Conditions, RequestFacts};
use crate::Pool;

/// How a route matches the request host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// Lower-case exact host.
    Exact(Box<str>),
    /// Lower-case suffix including the dot: `*.example.com` is stored as `.example.com`.
    Suffix(Box<str>),
}

/// Where a route sends the requests it matches.
#[derive(Debug)]
pub enum RouteTarget {
    /// Forwarded to a backend of this pool.
    Pool(Arc<Pool>),
    /// Answered by weir with a redirect.
    Redirect(Redirect),
}

/// One HTTP route of a listener.
#[derive(Debug)]
pub struct Route {
    host: HostMatch,
    path_prefix: Option<Box<str>>,
    /// Methods, headers, query; `None` (most routes) keeps matching to host and path.
    conditions: Option<Box<Conditions>>,
    target: RouteTarget,
    rewrite: Option<Rewrite>,
    request_headers: Option<Box<HeaderEdits>>,
    response_headers: Option<Box<HeaderEdits>>,
    metrics: Option<RouteMetrics>,
    /// The route's `allow`/`deny` (403) and `rate_limit` (429).
    policy: Policy,
}

// === impl Route ===

impl Route {
    /// A route to `pool` for `host` (exact, or `*.suffix`) and `path_prefix`.
    pub fn new(host: Option<&str>, path_prefix: Option<&str>, pool: Arc<Pool>) -> Self {
        Self::with_target(host, path_prefix, RouteTarget::Pool(pool))
    }

    fn with_target(host: Option<&str>, path_prefix: Option<&str>, target: RouteTarget) -> Self {
        let host = match host {
            None => HostMatch::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase().into()),
                None => HostMatch::Exact(h.to_ascii_lowercase().into()),
            },
        };
        Route {
            host,
            path_prefix: path_prefix.map(Into::into),
            conditions: None,
            target,
            rewrite: None,
            request_headers: None,
            response_headers: None,
            metrics: None,
            policy: Policy::default(),
        }
    }

    /// The route `config` describes, sending to `pool` (`None` for a redirect route).
    pub fn from_config(config: &RouteConfig, pool: Option<Arc<Pool>>) -> Option<Self> {
        let target = match (pool, &config.redirect) {
            (Some(pool), _) => RouteTarget::Pool(pool),
            (None, Some(r)) => RouteTarget::Redirect(Redirect::new(r)),
            (None, None) => return None,
        };
        let mut route = Self::with_target(
            config.host.as_deref(),
            config.path_prefix.as_deref(),
            target,
        );
        route.conditions = Conditions::new(config);
        route.rewrite = match (&config.rewrite_path_prefix, &config.path_prefix) {
            (Some(to), Some(prefix)) => Some(Rewrite::new(prefix.len(), to)),
            _ => None,
        };
        route.request_headers = HeaderEdits::new(&config.request_headers);
        route.response_headers = HeaderEdits::new(&config.response_headers);
        Some(route)
    }

    /// The same route, applying `policy` to its requests.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The route's access list and rate limit (empty when none is configured).
    #[inline]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The same route, recording requests in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: RouteMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Request latency and counters of this `(listener, pool)` (`None` without metrics).
    #[inline]
    pub fn metrics(&self) -> Option<&RouteMetrics> {
        self.metrics.as_ref()
    }

    /// The host to match as configured (`*.example.com` for a suffix), `None` for any.
    pub fn host(&self) -> Option<String> {
        match &self.host {
            HostMatch::Any => None,
            HostMatch::Exact(h) => Some(h.to_string()),
            HostMatch::Suffix(s) => Some(format!("*{s}")),
        }
    }

    /// The path prefix to match, `None` for any.
    pub fn path_prefix(&self) -> Option<&str> {
        self.path_prefix.as_deref()
    }

    /// Where matching requests go.
    #[inline]
    pub fn target(&self) -> &RouteTarget {
        &self.target
    }

    /// The pool this route sends to; `None` for a redirect route.
    #[inline]
    pub fn pool(&self) -> Option<&Arc<Pool>> {
        match &self.target {
            RouteTarget::Pool(p) => Some(p),
            RouteTarget::Redirect(_) => None,
        }
    }

    /// The redirect this route answers with, if it is a redirect route.
    #[inline]
    pub fn redirect(&self) -> Option<&Redirect> {
        match &self.target {
            RouteTarget::Redirect(r) => Some(r),
            RouteTarget::Pool(_) => None,
        }
    }

    /// The path prefix rewrite, if any.
    #[inline]
    pub fn rewrite(&self) -> Option<&Rewrite> {
        self.rewrite.as_ref()
    }

    /// Edits of the request head sent to the backend, if any.
    #[inline]
    pub fn request_headers(&self) -> Option<&HeaderEdits> {
        self.request_headers.as_deref()
    }

    /// Edits of the response head sent to the client, if any.
    #[inline]
    pub fn response_headers(&self) -> Option<&HeaderEdits> {
        self.response_headers.as_deref()
    }

    /// The methods this route requires (empty: any), for `/status`.
    pub fn methods(&self) -> Vec<&str> {
        self.conditions
            .as_ref()
            .map_or_else(Vec::new, |c| c.methods().collect())
    }

    /// The headers this route requires, for `/status`.
    pub fn match_headers(&self) -> Vec<(&str, &str)> {
        self.conditions
            .as_ref()
            .map_or_else(Vec::new, |c| c.headers().collect())
    }

    /// The query parameters this route requires, for `/status`.
    pub fn match_query(&self) -> Vec<(&str, &str)> {
        self.conditions
            .as_ref()
            .map_or_else(Vec::new, |c| c.query().collect())
    }

    /// Whether a request for `host` (without port, any case) and `path` matches the
    /// route's host and path prefix (not its other conditions, see
    /// [`Route::matches_request`]).
    #[inline]
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match (&self.host, host) {
            (HostMatch::Any, _) => true,
            (_, None) => false,
            (HostMatch::Exact(want), Some(h)) => h.eq_ignore_ascii_case(want),
            (HostMatch::Suffix(suffix), Some(h)) => {
                h.len() > suffix.len()
                    && h.get(h.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        };
        host_ok
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
    }

    /// Whether the request matches every condition of the route; `req` is only asked
    /// when the route has methods, headers or query conditions.
    #[inline]
    pub fn matches_request<R: RequestFacts + ?Sized>(
        &self,
        host: Option<&str>,
        path: &str,
        req: &R,
    ) -> bool {
        self.matches(host, path) && self.conditions.as_ref().is_none_or(|c| c.matches(req))
    }
}

/// Everything a listener needs from the table.
#[derive(Debug)]
pub struct ListenerTable {
    name: Arc<str>,
    protocol: Protocol,
    routes: Box<[Route]>,
    tcp_pool: Option<Arc<Pool>>,
    timeouts: ListenerTimeouts,
    max_connections: u32,
    max_requests_per_connection: u32,
    http2: Http2Config,
    access_log: bool,
    metrics: Option<ListenerMetrics>,
    /// Answers weir gives before or without a route (400 on a bad head, 404): counted
    /// under `pool="none"`, `backend="none"`. Built with the table so its counters carry
    /// over reloads like every other series.
    unrouted: Option<RouteMetrics>,
    /// The listener's `allow`/`deny` (connections closed unread) and `rate_limit`
    /// (checked before routing).
    policy: Policy,
}

// === impl ListenerTable ===

impl ListenerTable {
    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The listener's name, shared.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// HTTP or TCP.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// HTTP routes in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The pool of a TCP listener.
    pub fn tcp_pool(&self) -> Option<&Arc<Pool>> {
        self.tcp_pool.as_ref()
    }

    /// Client-side timeouts.
    pub fn timeouts(&self) -> &ListenerTimeouts {
        &self.timeouts
    }

    /// Connection limit.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// Requests per client connection before weir closes it; 0: no limit.
    pub fn max_requests_per_connection(&self) -> u32 {
        self.max_requests_per_connection
    }

    /// The HTTP/2 limits of client connections.
    pub fn http2(&self) -> &Http2Config {
        &self.http2
    }

    /// Whether each request is logged under the `weir::access` target.
    #[inline]
    pub fn access_log(&self) -> bool {
        self.access_log
    }

    /// Connection and byte counters (`None` without metrics).
    #[inline]
    pub fn metrics(&self) -> Option<&ListenerMetrics> {
        self.metrics.as_ref()
    }

    /// Request metrics for answers no route's pool gave (`pool="none"`).
    #[inline]
    pub fn unrouted_metrics(&self) -> Option<&RouteMetrics> {
        self.unrouted.as_ref()
    }

    /// The listener's access list and rate limit (empty when none is configured).
    #[inline]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The first route matching `host` (no port), `path` and, for the routes that have
    /// such conditions, the method, headers and query `req` reports.
    #[inline]
    pub fn find_route<R: RequestFacts + ?Sized>(
        &self,
        host: Option<&str>,
        path: &str,
        req: &R,
    ) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.matches_request(host, path, req))
    }
}

/// An immutable routing snapshot.
#[derive(Debug)]
pub struct Table {
    generation: u64,
    config: Arc<Config>,
    /// Looked up by name for every request: a `BTreeMap` compares the few names a
    /// config has in fewer instructions than a `HashMap` spends on SipHash alone.
    listeners: BTreeMap<Arc<str>, Arc<ListenerTable>>,
    /// Former names of listeners a reload renamed, for this generation only: see
    /// [`Table::alias_listener`]. Usually empty.
    aliases: BTreeMap<Arc<str>, Arc<ListenerTable>>,
    pools: Vec<Arc<Pool>>,
}

// === impl Table ===

impl Table {
    /// Assembles a table from built pools; used by the registry.
    pub(crate) fn assemble(
        generation: u64,
        config: Arc<Config>,
        pools: Vec<Arc<Pool>>,
        metrics: Option<&Metrics>,
        limiters: &Limiters,
    ) -> Self {
        let by_name: HashMap<&str, &Arc<Pool>> = pools.iter().map(|p| (p.name(), p)).collect();
        let listeners = config
            .listeners
            .iter()
            .map(|l| {
                let listener_metrics = metrics.map(|m| ListenerMetrics::new(m, &l.name));
                let routes = l
                    .routes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| {
                        let pool = r.pool.as_deref().and_then(|p| by_name.get(p));
                        let route = Route::from_config(r, pool.map(|p| Arc::clone(p)))?
                            .with_policy(limiters.policy(
                                metrics,
                                (&l.name, Some(i)),
                                r.rate_limit.as_ref(),
                                AccessList::new(r.allow.as_deref(), &r.deny),
                            ));
                        Some(match (&listener_metrics, pool) {
                            (Some(m), Some(pool)) => {
                                let backends = pool.backends().filter_map(|b| b.metrics());
                                route.with_metrics(m.route(pool.name(), backends))
                            }
                            // A redirect is weir's own answer: `pool="none"`.
                            (Some(m), None) => route.with_metrics(m.route(NO_BACKEND, [])),
                            (None, _) => route,
                        })
                    })
                    .collect();
                let unrouted = match (&listener_metrics, l.protocol) {
                    (Some(m), Protocol::Http) => Some(m.route(NO_BACKEND, [])),
                    _ => None,
                };
                let tcp_pool = l
                    .pool
                    .as_deref()
                    .and_then(|p| by_name.get(p))
                    .map(|p| Arc::clone(p));
                let name: Arc<str> = Arc::from(l.name.as_str());
                let table = ListenerTable {
                    name: Arc::clone(&name),
                    protocol: l.protocol,
                    routes,
                    tcp_pool,
                    timeouts: l.timeouts,
                    max_connections: l.max_connections,
                    max_requests_per_connection: l.max_requests_per_connection,
                    http2: l.http2,
                    access_log: l.access_log,
                    metrics: listener_metrics,
                    unrouted,
                    policy: limiters.policy(
                        metrics,
                        (&l.name, None),
                        l.rate_limit.as_ref(),
                        AccessList::new(l.allow.as_deref(), &l.deny),
                    ),
                };
                (name, Arc::new(table))
            })
            .collect();
        Table {
            generation,
            config,
            listeners,
            aliases: BTreeMap::new(),
            pools,
        }
    }

    /// Makes `old`, the name a running listener had until this table, find listener
    /// `new` too. A reload renames a running listener's connections right after storing
    /// the table; a connection that read its name just before would otherwise find no
    /// listener and answer 503. The next table forgets it: by then every connection has
    /// the new name. Does nothing when `old` names a listener of this table (it wins) or
    /// `new` names none.
    pub fn alias_listener(&mut self, old: &str, new: &str) {
        if self.listeners.contains_key(old) {
            return;
        }
        if let Some(l) = self.listeners.get(new) {
            self.aliases.insert(Arc::from(old), Arc::clone(l));
        }
    }

    /// Keeps the listener aliases of `other`, a table this one replaces without a
    /// reload in between ([`crate::BackendRegistry::rebuild`], a discovery update).
    pub fn copy_aliases(&mut self, other: &Table) {
        for (old, l) in &other.aliases {
            self.alias_listener(old, l.name());
        }
    }

    /// Counts reloads: 1 for the configuration weir started with.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The configuration this table was built from.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The listener called `name`.
    #[inline]
    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerTable>> {
        match self.listeners.get(name) {
            Some(l) => Some(l),
            None => self.aliases.get(name),
        }
    }

    /// Pools in config order.
    pub fn pools(&self) -> &[Arc<Pool>] {
        &self.pools
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name() == name)
    }

    /// Every rate limiter of the table's listeners and routes.
    pub(crate) fn limiters(&self) -> impl Iterator<Item = &Arc<RateLimiter>> {
        self.listeners.values().flat_map(|l| {
            let routes = l.routes.iter().filter_map(|r| r.policy.limiter());
            l.policy.limiter().into_iter().chain(routes)
        })
    }
}

#[cfg(test)]
mod tests {
    use weir_config::StrategyKind;

    use super::*;
    use crate::test_support::{backend_config, config, http_listener, pool_config, route};
    use crate::BackendRegistry;

    /// A request of this method, without headers or query.
    struct Only(&'static [u8]);

    impl RequestFacts for Only {
        fn method(&self) -> &[u8] {
            self.0
        }
        fn has_header(&self, _: &http::HeaderName, _: &[u8]) -> bool {
            false
        }
        fn query(&self) -> Option<&[u8]> {
            None
        }
    }

    const BARE: Only = Only(b"GET");
    const POST: Only = Only(b"POST");

    /// Round-robin pools of one backend each, named `names`.
    fn round_robin_pools(names: &[&str]) -> Vec<weir_config::PoolConfig> {
        names
            .iter()
            .enumerate()
            .map(|(i, p)| {
                pool_config(
                    p,
                    StrategyKind::RoundRobin,
                    vec![backend_config(i, 1, false)],
                )
            })
            .collect()
    }

    fn pool_of(route: Option<&Route>) -> Option<String> {
        route.and_then(Route::pool).map(|p| p.name().to_owned())
    }

    #[test]
    fn method_conditions_pick_the_route_and_redirects_have_no_pool() {
        let mut writes = route(None, Some("/api/"), "writes");
        writes.methods = vec!["POST".into(), "PUT".into()];
        let redirect = RouteConfig {
            path_prefix: Some("/old/".into()),
            redirect: Some(weir_config::RedirectConfig {
                scheme: None,
                host: None,
                port: None,
                path: Some("/new/".into()),
                code: 308,
            }),
            ..RouteConfig::default()
        };
        let cfg = config(
            vec![http_listener(
                "web",
                vec![writes, redirect, route(None, None, "reads")],
            )],
            round_robin_pools(&["writes", "reads"]),
        );
        let table = BackendRegistry::new().build(Arc::new(cfg), 1);
        let web = table.listener("web").expect("listener web");
        assert_eq!(
            pool_of(web.find_route(None, "/api/x", &POST)).as_deref(),
            Some("writes")
        );
        assert_eq!(
            pool_of(web.find_route(None, "/api/x", &BARE)).as_deref(),
            Some("reads")
        );
        let old = web
            .find_route(None, "/old/x", &BARE)
            .expect("redirect route");
        assert!(old.pool().is_none());
        assert_eq!(old.redirect().map(Redirect::code), Some(308));
    }

    fn pool(name: &str) -> Arc<Pool> {
        let cfg = pool_config(
            name,
            StrategyKind::RoundRobin,
            vec![backend_config(0, 1, false)],
        );
        let backends = vec![Arc::new(crate::Backend::new(name, &cfg.backends[0]))];
        Arc::new(Pool::new(&cfg, backends))
    }

    #[test]
    fn host_matches_exactly_in_any_case() {
        let r = Route::new(Some("API.example.com"), None, pool("p"));
        assert!(r.matches(Some("api.example.com"), "/"));
        assert!(r.matches(Some("Api.Example.COM"), "/x"));
        assert!(!r.matches(Some("www.example.com"), "/"));
        assert!(!r.matches(Some("api.example.com.evil"), "/"));
        assert!(!r.matches(None, "/"), "a host route needs a host");
    }

    #[test]
    fn wildcard_host_matches_subdomains_only() {
        let r = Route::new(Some("*.example.com"), None, pool("p"));
        assert!(r.matches(Some("a.example.com"), "/"));
        assert!(r.matches(Some("a.b.EXAMPLE.com"), "/"));
        assert!(!r.matches(Some("example.com"), "/"));
        assert!(!r.matches(Some("badexample.com"), "/"));
        assert!(!r.matches(Some(".example.com"), "/"));
    }

    #[test]
    fn path_prefix_and_any_host() {
        let r = Route::new(None, Some("/v1/"), pool("p"));
        assert!(r.matches(None, "/v1/users"));
        assert!(r.matches(Some("anything"), "/v1/"));
        assert!(!r.matches(None, "/v1"));
        assert!(!r.matches(None, "/v2/users"));
        let any = Route::new(None, None, pool("p"));
        assert!(any.matches(None, "/"));
    }

    #[test]
    fn first_matching_route_wins() {
        let cfg = config(
            vec![http_listener(
                "web",
                vec![
                    route(Some("api.example.com"), Some("/v1/"), "api"),
                    route(Some("*.example.com"), None, "sites"),
                    route(None, None, "web"),
                    route(Some("api.example.com"), None, "never"),
                ],
            )],
            round_robin_pools(&["api", "sites", "web", "never"]),
        );
        let table = BackendRegistry::new().build(Arc::new(cfg), 1);
        let web = table.listener("web").expect("listener web");
        let pool_for = |host, path| pool_of(web.find_route(host, path, &BARE));
        assert_eq!(
            pool_for(Some("api.example.com"), "/v1/x").as_deref(),
            Some("api")
        );
        assert_eq!(
            pool_for(Some("api.example.com"), "/v2/x").as_deref(),
            Some("sites")
        );
        assert_eq!(
            pool_for(Some("www.example.com"), "/v1/x").as_deref(),
            Some("sites")
        );
        assert_eq!(pool_for(Some("other.org"), "/").as_deref(), Some("web"));
        assert_eq!(pool_for(None, "/").as_deref(), Some("web"));
        assert_eq!(web.protocol(), Protocol::Http);
        assert!(web.tcp_pool().is_none());
        assert_eq!(table.generation(), 1);
        assert_eq!(table.pools().len(), 4);
        assert_eq!(table.pool("sites").map(|p| p.name()), Some("sites"));
        assert!(table.listener("missing").is_none());
    }

    #[test]
    fn listener_without_matching_route_has_no_pool() {
        let cfg = config(
            vec![http_listener("web", vec![route(Some("a.test"), None, "p")])],
            vec![pool_config(
                "p",
                StrategyKind::Weighted,
                vec![backend_config(0, 1, false)],
            )],
        );
        let table = BackendRegistry::new().build(Arc::new(cfg), 3);
        let web = table.listener("web").expect("listener web");
        assert!(web.find_route(Some("b.test"), "/", &BARE).is_none());
        assert!(web.find_route(None, "/", &BARE).is_none());
    }

    #[test]
    fn a_former_name_finds_the_renamed_listener_unless_it_is_taken() {
        let pools = vec![pool_config(
            "p",
            StrategyKind::RoundRobin,
            vec![backend_config(0, 1, false)],
        )];
        let listeners = vec![
            http_listener("www", vec![route(None, None, "p")]),
            http_listener("api", vec![route(None, None, "p")]),
        ];
        let mut table = BackendRegistry::new().build(Arc::new(config(listeners, pools)), 2);
        table.alias_listener("web", "www");
        table.alias_listener("api", "www");
        table.alias_listener("old", "missing");
        let name = |n| table.listener(n).map(|l| l.name().to_owned());
        assert_eq!(name("web").as_deref(), Some("www"));
        assert_eq!(name("api").as_deref(), Some("api"), "a real listener wins");
        assert_eq!(name("old"), None);
    }
}
