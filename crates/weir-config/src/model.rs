//! The validated configuration model: the only config types other crates see.
//!
//! Every invariant already holds when a value of these types exists: addresses are
//! resolved, durations parsed, every pool a route or listener names exists, weights are
//! non-zero. The data plane can therefore build from a `Config` without re-checking.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::cidr::Cidr;

/// A whole, valid weir configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the configuration was read from (`<built-in>` for generated configs).
    pub source: PathBuf,
    /// The admin server (`/healthz`, `/status`, later `/metrics`).
    pub admin: AdminConfig,
    /// How long SIGTERM waits for in-flight work. Default 30 s.
    pub shutdown_timeout: Duration,
    /// How long weir goes on accepting after SIGTERM, with `/healthz` answering 503
    /// and every HTTP response closing its connection, before it stops accepting and
    /// drains (HAProxy's `grace`, Envoy's `--drain-time-s`). It gives whatever routes
    /// traffic here (keepalived's check, a load balancer's health check, Kubernetes'
    /// endpoint removal) time to send new clients elsewhere, so none is refused.
    /// Default 0: stop accepting at once. `shutdown_timeout` counts from its end.
    pub shutdown_grace: Duration,
    /// Listeners in file order. Names are unique.
    pub listeners: Vec<ListenerConfig>,
    /// Pools in file order. Names are unique.
    pub pools: Vec<PoolConfig>,
}

impl Config {
    /// The pool called `name`, if any.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// The admin server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default `127.0.0.1:9901`: loopback, because `/status` reveals the topology.
    pub listen: SocketAddr,
    /// The runtime API (writes); `None` (the default): read-only endpoints only.
    pub api: Option<crate::ApiConfig>,
}

/// What a listener speaks to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 (prior knowledge, h2c) routed by host and path.
    Http,
    /// Raw TCP relayed to one pool.
    Tcp,
}

/// One listening socket and what to do with its connections.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Unique name, used in logs, `/status` and metric labels.
    pub name: String,
    /// The address to bind; port 0 picks a free port (the bound one is logged).
    pub listen: SocketAddr,
    /// `http` (default) or `tcp`.
    pub protocol: Protocol,
    /// Terminate TLS on this listener (HTTP or TCP). Default `None`: plain TCP.
    pub tls: Option<crate::ListenerTlsConfig>,
    /// HTTP only: first match wins; a route without `match` matches everything.
    /// Empty for TCP listeners.
    pub routes: Vec<RouteConfig>,
    /// TCP only: the pool every connection goes to.
    pub pool: Option<String>,
    /// Client-side timeouts.
    pub timeouts: ListenerTimeouts,
    /// At most this many client connections at once; further clients wait in the
    /// kernel's accept queue (as HAProxy's `maxconn`). Default 10 000.
    pub max_connections: u32,
    /// HTTP only: one `weir::access` log event per request. Default `false` (off costs
    /// nothing per request).
    pub access_log: bool,
    /// TCP only: the PROXY protocol header sent to the backend right after connecting,
    /// so it sees the client's address. Default `None`: nothing sent.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    /// Read a PROXY protocol header (v1 or v2) from these sources before anything else;
    /// the client address it carries replaces the peer's. Default `None`.
    pub accept_proxy_protocol: Option<AcceptProxyConfig>,
    /// HTTP only: requests served on one client connection before weir closes it
    /// (`Connection: close` on HTTP/1, GOAWAY on HTTP/2), so no client holds a connection
    /// forever (nginx's `keepalive_requests`). Default 1 000; `0`: no limit.
    pub max_requests_per_connection: u32,
    /// HTTP only: the HTTP/2 limits of client connections.
    pub http2: Http2Config,
    /// HTTP only: a request rate limit checked before routing. Default `None`.
    pub rate_limit: Option<RateLimitConfig>,
    /// Client addresses allowed to connect; `None` (the default): every address not
    /// denied. Checked on the PROXY header's address when one is accepted.
    pub allow: Option<Vec<Cidr>>,
    /// Client addresses refused (the connection is closed unread); wins over `allow`.
    pub deny: Vec<Cidr>,
}

/// The HTTP/2 limits a listener applies to each client connection.
///
/// Pinned here rather than left to hyper's defaults, which are tuned for throughput
/// (200 streams, 1 MiB stream windows), not for facing hostile clients at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Config {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`: streams a client may have open at once, and so
    /// the most requests one connection has at the backends. 1..=1000, default 100.
    pub max_concurrent_streams: u32,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` in bytes: a larger request head (or CONTINUATION
    /// run) is refused. 1 KiB..=1 MiB, default 64 KiB.
    pub max_header_list_size: u32,
    /// Streams the client opened and reset before weir took them (rapid reset,
    /// CVE-2023-44487) tolerated at once; one more and the connection gets GOAWAY.
    /// 1..=1000, default 20.
    pub max_pending_reset_streams: u32,
    /// Streams weir had to reset because the client broke the protocol on them; one more
    /// and the connection gets GOAWAY (HAProxy's glitch threshold). 1..=10 000, default 100.
    pub max_stream_errors: u32,
    /// Bytes a client may send on one stream before weir grants more (backpressure
    /// towards slow backends). 1 KiB..=16 MiB, default 64 KiB.
    pub initial_stream_window: u32,
    /// Bytes a client may send on the whole connection before weir grants more.
    /// 64 KiB..=64 MiB and at least `initial_stream_window`, default 1 MiB.
    pub initial_connection_window: u32,
    /// weir PINGs the client this often (a dead peer would hold its streams until their
    /// timeouts); `None` (`0` or `off`): no PINGs. At least 1 s, default 30 s.
    pub keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed. Apart from the
    /// interval because a PING queues behind the response bytes already in the socket: a
    /// slow but live download must get its PING through in time. At least 1 s; default
    /// max(20 s, 2 × the interval).
    pub keepalive_timeout: Duration,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_concurrent_streams: 100,
            max_header_list_size: 64 * 1024,
            max_pending_reset_streams: 20,
            max_stream_errors: 100,
            initial_stream_window: 64 * 1024,
            initial_connection_window: 1024 * 1024,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(60),
        }
    }
}

/// Which PROXY protocol header to send (HAProxy's `send-proxy` / `send-proxy-v2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// The human-readable line (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary header.
    V2,
}

/// Accepting the PROXY protocol from an L4 balancer in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptProxyConfig {
    /// Sources allowed to send a header; at least one. A trusted source must send one;
    /// a header from any other source closes the connection.
    pub trusted: Vec<Cidr>,
}

impl AcceptProxyConfig {
    /// Whether `ip` may send a PROXY header.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

/// Client-side timeouts of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerTimeouts {
    /// The whole request head must arrive within this (slowloris). Default 10 s.
    pub header_read: Duration,
    /// A connection with no traffic for this long is closed. Default 60 s.
    pub idle: Duration,
}

impl Default for ListenerTimeouts {
    fn default() -> Self {
        ListenerTimeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }
}

/// One HTTP route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteConfig {
    /// Exact host to match (lower-case, without port); `*.example.com` matches any
    /// subdomain. `None` matches any host.
    pub host: Option<String>,
    /// Path prefix to match (starts with `/`). `None` matches any path.
    pub path_prefix: Option<String>,
    /// Methods to match (case-sensitive tokens); empty matches any method.
    pub methods: Vec<String>,
    /// Headers that must all be present with exactly these values (lower-case names;
    /// any field of the name may carry the value).
    pub headers: Vec<(String, String)>,
    /// Query parameters that must all be present with exactly these values, compared
    /// after percent-decoding (any occurrence of a repeated name may carry the value).
    pub query: Vec<(String, String)>,
    /// The pool requests matching this route go to; `None` exactly when `redirect` is
    /// set.
    pub pool: Option<String>,
    /// Answer with a redirect instead of forwarding; `None` exactly when `pool` is set.
    pub redirect: Option<crate::RedirectConfig>,
    /// Replaces the matched `path_prefix` before forwarding (only with a
    /// `path_prefix`).
    pub rewrite_path_prefix: Option<String>,
    /// Changes to the request head sent to the backend.
    pub request_headers: crate::HeaderEdits,
    /// Changes to the backend's response head sent to the client.
    pub response_headers: crate::HeaderEdits,
    /// A request rate limit of this route, checked after the listener's. Default `None`.
    pub rate_limit: Option<RateLimitConfig>,
    /// Client addresses this route serves (others get 403); `None`: every address not
    /// denied.
    pub allow: Option<Vec<Cidr>>,
    /// Client addresses this route refuses with 403; wins over `allow`.
    pub deny: Vec<Cidr>,
}

/// A token bucket rate limit (`rate_limit: { requests_per_second, burst, key }`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitConfig {
    /// `requests_per_second` × 1000: the file allows three decimals (`0.5`, `0.017`
    /// for about one a minute), kept exact so that two loads of one file compare equal
    /// (a reload keeps a limiter's state only when its settings are unchanged).
    /// 1..=10^9 (0.001 to 1,000,000 requests per second).
    pub millirequests_per_second: u64,
    /// Requests let through at once by a full bucket. 1..=1,000,000; default one
    /// second's worth (`requests_per_second` rounded up, at least 1).
    pub burst: u32,
    /// Whose bucket a request takes its token from. Default the client address.
    pub key: RateLimitKey,
}

/// What a rate limit counts separately.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateLimitKey {
    /// One bucket per client address (the PROXY header's when one is accepted).
    SourceIp,
    /// One bucket per value of this request header (name lower-cased); a request
    /// without it is counted under its client address.
    Header(String),
    /// One bucket for every request.
    None,
}

impl RateLimitKey {
    /// As written in the file: `source_ip`, `header:NAME`, `none`.
    pub fn describe(&self) -> String {
        match self {
            RateLimitKey::SourceIp => "source_ip".to_owned(),
            RateLimitKey::Header(name) => format!("header:{name}"),
            RateLimitKey::None => "none".to_owned(),
        }
    }
}

/// How a pool chooses among its eligible backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    /// Each backend in turn; weights ignored. The default.
    RoundRobin,
    /// Smooth weighted round robin (nginx's interleaving).
    Weighted,
    /// Random choice in proportion to weight.
    Random,
    /// Fewest in-flight requests (or open connections) divided by weight.
    LeastConnections,
    /// Maglev consistent hashing of a request key, with bounded load
    /// (`PoolConfig::consistent_hash` holds the key).
    ConsistentHash,
}

impl StrategyKind {
    /// The name as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::RoundRobin => "round_robin",
            StrategyKind::Weighted => "weighted",
            StrategyKind::Random => "random",
            StrategyKind::LeastConnections => "least_connections",
            StrategyKind::ConsistentHash => "consistent_hash",
        }
    }
}

/// A named group of interchangeable backends.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Unique name.
    pub name: String,
    /// Default `round_robin`.
    pub strategy: StrategyKind,
    /// `Some` exactly when `strategy` is `consistent_hash`: what to hash and the load
    /// bound.
    pub consistent_hash: Option<crate::ConsistentHashConfig>,
    /// At least one backend unless `discovery` is set. Addresses are unique within the
    /// pool.
    pub backends: Vec<BackendConfig>,
    /// Active health checking; `None` sends no probes and keeps every backend up.
    pub health_check: Option<HealthCheckConfig>,
    /// Upstream timeouts.
    pub timeouts: PoolTimeouts,
    /// Further attempts, each on another backend, after a failure listed in `retry_on`.
    /// Default 2.
    pub retries: u32,
    /// Passive health checking: failures seen by live traffic eject a backend.
    pub passive: PassiveConfig,
    /// With every backend down, spread over all of them instead of answering 503.
    /// Default `false`.
    pub fail_open: bool,
    /// A backend coming back up ramps from a small share to its full share over this
    /// long (HAProxy's `slowstart`). Default `None`: off.
    pub slow_start: Option<Duration>,
    /// Which failures are retried. Default: connect failures and resets.
    pub retry_on: RetryOn,
    /// Caps retries relative to the pool's request rate, so a failing pool never sees
    /// a retry storm.
    pub retry_budget: RetryBudgetConfig,
    /// Talk TLS to the backends. Default `None`: plain TCP.
    pub tls: Option<crate::UpstreamTlsConfig>,
    /// HTTP version spoken to the backends. Default HTTP/1.1.
    pub upstream_protocol: UpstreamProtocol,
    /// Backends found at run time, served beside `backends`. Default `None`.
    pub discovery: Option<crate::DiscoveryConfig>,
    /// Requests (HTTP) or connections (TCP) each backend serves at once (HAProxy's
    /// server `maxconn`); a backend entry's own `max_in_flight` overrides it. Default
    /// `None`: unlimited.
    pub max_in_flight: Option<NonZeroU32>,
    /// Where requests over the limit wait for a free backend. Only used when a limit is
    /// set (on the pool or a backend).
    pub queue: QueueConfig,
    /// Sticky sessions by cookie (HTTP listeners only). Default `None`: off.
    pub sticky: Option<crate::StickyConfig>,
}

impl PoolConfig {
    /// The limit of `backend` (one of this pool's): its own, else the pool's.
    pub fn max_in_flight_of(&self, backend: &BackendConfig) -> Option<NonZeroU32> {
        backend.max_in_flight.or(self.max_in_flight)
    }
}

/// The waiting room of a pool whose backends have a `max_in_flight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Requests that may wait at once; one more is refused with 503 at once. `0`: none
    /// wait. Default 1000.
    pub max: u32,
    /// How long a request waits for a free backend before a 503. Default 5 s.
    pub timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max: 1000,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The HTTP version weir speaks to a pool's backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with a pool of keep-alive connections per backend. The default.
    #[default]
    Http1,
    /// HTTP/2 (gRPC needs it): one multiplexed connection per backend, negotiated by ALPN
    /// `h2` over TLS, or prior knowledge (h2c) over plain TCP.
    H2,
}

/// Passive health checking of a pool (Envoy's outlier detection, HAProxy's `observe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveConfig {
    /// Consecutive connect failures, resets or timeouts of live traffic that eject a
    /// backend. Default 3; `0` turns passive checking off.
    pub consecutive_failures: u32,
    /// Passive ejection never takes more than this percentage of the pool's backends
    /// (primaries and backups, down for any reason) out of rotation. 0..=100, default 50.
    pub max_ejected_percent: u32,
    /// In a pool without `health_check`, an ejected backend returns after this times the
    /// number of its ejections so far (at most 10×). Default 30 s.
    pub base_ejection_time: Duration,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        PassiveConfig {
            consecutive_failures: 3,
            max_ejected_percent: 50,
            base_ejection_time: Duration::from_secs(30),
        }
    }
}

/// The conditions under which a request is tried again on another backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// The connection was refused or timed out: nothing left weir, any method.
    pub connect_failure: bool,
    /// The connection closed before any response byte: idempotent methods whose body
    /// weir still holds, or any request that never left weir.
    pub reset: bool,
    /// The backend answered 502 (idempotent requests whose body weir still holds).
    pub status_502: bool,
    /// The backend answered 503 (idempotent requests whose body weir still holds).
    pub status_503: bool,
}

impl Default for RetryOn {
    /// `[connect_failure, reset]`.
    fn default() -> Self {
        RetryOn {
            connect_failure: true,
            reset: true,
            status_502: false,
            status_503: false,
        }
    }
}

impl RetryOn {
    /// Whether a response with `status` is retried.
    pub fn status(&self, status: u16) -> bool {
        (status == 502 && self.status_502) || (status == 503 && self.status_503)
    }
}

/// The retry budget of a pool (Envoy's and tower's): within any second, retries may
/// add at most `percent`% of the requests, plus `min_per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudgetConfig {
    /// 0..=100, default 20.
    pub percent: u32,
    /// Retries always allowed per second, so a quiet pool can still retry. Default 10.
    pub min_per_second: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            percent: 20,
            min_per_second: 10,
        }
    }
}

/// One backend server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// The address exactly as written in the file (`10.0.0.11:80`, `app1:8080`):
    /// backends are named by it in logs, `/status` and metrics.
    pub address: String,
    /// `address` resolved when the config was loaded.
    pub addr: SocketAddr,
    /// 1..=256, default 1. Ignored by `round_robin`.
    pub weight: NonZeroU32,
    /// Hot standby: used only when no primary backend is up.
    pub backup: bool,
    /// The weight as its source gave it, before any scaling into 1..=256: `weight` for
    /// a backend of the file, the SRV record's own weight for a discovered one. A runtime
    /// weight override is cleared only when this changes, so a discovery update that
    /// re-scales every weight (another record's weight changed) keeps the overrides.
    pub announced_weight: u32,
    /// This backend's own `max_in_flight`, overriding the pool's. Default `None`.
    pub max_in_flight: Option<NonZeroU32>,
    /// What the backend's source says of it: always [`EndpointState::Ready`] for a
    /// backend of the file or of DNS; a Kubernetes endpoint's conditions otherwise.
    pub endpoint: EndpointState,
}

/// A discovered endpoint's own word on whether it takes traffic (Kubernetes'
/// EndpointSlice conditions). Only `Ready` is routable; health checks and the runtime
/// API decide on top of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointState {
    /// Takes traffic (`ready`, or no conditions). The default.
    #[default]
    Ready,
    /// Not ready (`ready: false`, not terminating): down, no traffic, until it is.
    NotReady,
    /// Shutting down (`terminating: true`, serving or not): drains, no new requests or
    /// connections, in-flight ones finish.
    Terminating,
}

impl EndpointState {
    /// The name in `/status`: `ready`, `not_ready`, `terminating`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Ready => "ready",
            EndpointState::NotReady => "not_ready",
            EndpointState::Terminating => "terminating",
        }
    }
}

/// Upstream timeouts of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolTimeouts {
    /// TCP connect to a backend. Default 2 s.
    pub connect: Duration,
    /// From request sent to response headers received. Default 30 s.
    pub response: Duration,
}

impl Default for PoolTimeouts {
    fn default() -> Self {
        PoolTimeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(30),
        }
    }
}

/// How an active health check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// The backend is healthy when a TCP connect succeeds.
    Tcp,
    /// The backend is healthy when `GET path` answers a status in `expect_status`.
    Http {
        /// Request path, default `/`.
        path: String,
        /// `Host` header; default the backend's address as written.
        host: Option<String>,
        /// Default `200-399`.
        expect_status: RangeInclusive<u16>,
    },
}

/// Active health checking of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// `tcp` (default) or `http`.
    pub kind: HealthCheckKind,
    /// Time between probes. Default 2 s.
    pub interval: Duration,
    /// A probe not finished within this fails. Default 1 s.
    pub timeout: Duration,
    /// Consecutive successes that mark a down backend up. Default 2.
    pub rise: u32,
    /// Consecutive failures that mark an up backend down. Default 3.
    pub fall: u32,
}
