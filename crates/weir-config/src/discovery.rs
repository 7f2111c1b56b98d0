//! The validated `discovery` block of a pool: where backends come from at run time.
//!
//! Only the description lives here; the lookups themselves are `weir-discovery`'s, so
//! this crate still does no network I/O beyond resolving hostnames at load.

use std::net::SocketAddr;
use std::time::Duration;

/// Backends discovered at run time, served beside the pool's static `backends`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryConfig {
    /// Looked up in DNS, again at most every `refresh`.
    Dns(DnsDiscoveryConfig),
    /// Watched in the Kubernetes API: the EndpointSlices of one Service.
    Kubernetes(KubernetesDiscoveryConfig),
}

impl DiscoveryConfig {
    /// A short description for `/status` and logs (`dns srv _http._tcp.web`,
    /// `kubernetes shop/web:http`).
    pub fn source(&self) -> String {
        match self {
            DiscoveryConfig::Dns(d) => d.source(),
            DiscoveryConfig::Kubernetes(k) => k.source(),
        }
    }
}

/// `discovery: { kubernetes: { namespace, service, port } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesDiscoveryConfig {
    /// The Service's namespace; `None`: the client's own (the kubeconfig context's, or
    /// the service account's namespace in a pod).
    pub namespace: Option<String>,
    /// The Service whose EndpointSlices are watched (label
    /// `kubernetes.io/service-name`).
    pub service: String,
    /// Which port of the endpoints weir connects to.
    pub port: KubernetesPort,
}

impl KubernetesDiscoveryConfig {
    /// A short description for `/status` and logs: `kubernetes shop/web:http`.
    pub fn source(&self) -> String {
        let ns = self.namespace.as_deref().unwrap_or("(default namespace)");
        format!("kubernetes {ns}/{}:{}", self.service, self.port)
    }
}

/// The port of a Kubernetes discovery block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubernetesPort {
    /// A Service port's name: each EndpointSlice says which port number it has there
    /// (they may differ from slice to slice while a Deployment rolls).
    Name(String),
    /// This port on every endpoint address (the pods' port, not the Service's).
    Number(u16),
}

impl std::fmt::Display for KubernetesPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KubernetesPort::Name(n) => f.write_str(n),
            KubernetesPort::Number(p) => write!(f, "{p}"),
        }
    }
}

/// `discovery: { dns: { name, type, port, resolver, refresh } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDiscoveryConfig {
    /// The name looked up, as written (`_http._tcp.web.service.consul`).
    pub name: String,
    /// Which records; default [`DnsRecordType::A`].
    pub record_type: DnsRecordType,
    /// The backends' port for `a`/`aaaa` (required there); `None` for `srv`, whose
    /// answer carries the ports.
    pub port: Option<u16>,
    /// The name server to ask; `None`: the system's (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// The longest wait between two lookups; a shorter TTL in the answer wins, never
    /// below [`DnsDiscoveryConfig::MIN_REFRESH`]. Default 30 s.
    pub refresh: Duration,
}

impl DnsDiscoveryConfig {
    /// No lookup comes sooner than this after the previous one, whatever the TTL (a
    /// TTL of 0 would otherwise make weir query in a loop).
    pub const MIN_REFRESH: Duration = Duration::from_secs(1);
    /// `refresh` when the file does not say.
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

    /// A short description for `/status` and logs: `dns srv _http._tcp.web`.
    pub fn source(&self) -> String {
        format!("dns {} {}", self.record_type.as_str(), self.name)
    }
}

/// The DNS record type a pool's backends are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DnsRecordType {
    /// IPv4 addresses, all on the configured port. The default.
    #[default]
    A,
    /// IPv6 addresses, all on the configured port.
    Aaaa,
    /// Targets, ports, priorities and weights (RFC 2782).
    Srv,
}

impl DnsRecordType {
    /// As written in the file: `a`, `aaaa`, `srv`.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::A => "a",
            DnsRecordType::Aaaa => "aaaa",
            DnsRecordType::Srv => "srv",
        }
    }
}
