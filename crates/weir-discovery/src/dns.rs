//! DNS lookups with hickory-resolver (the maintained successor of trust-dns).
//!
//! One resolver per pool, built from the pool's `resolver` (UDP, then TCP for a
//! truncated answer) or the system's `/etc/resolv.conf`. Its cache is cleared before
//! each lookup: weir decides when to ask again (the TTL or `refresh`, whichever is
//! sooner), and an answer cached for longer than `refresh` would defeat `refresh`.

use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::TokioResolver;
use weir_config::{DnsDiscoveryConfig, DnsRecordType};
use weir_telemetry::LookupResult;

use crate::answer::{capped, Discovered, Records};

/// How long one query waits for the name server before it counts as failed (each of
/// [`ATTEMPTS`]). Short: a lookup that hangs delays the next one, never traffic.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Queries per lookup before it fails.
const ATTEMPTS: usize = 2;

/// A lookup that gave no backend: the pool keeps its last good answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError {
    /// `Empty` (NXDOMAIN, no records, no usable record) or `Failure` (no answer).
    pub result: LookupResult,
    /// For the log and `/status`.
    pub message: String,
}

/// A lookup that gave backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Sorted by address, one per address.
    pub backends: Vec<Discovered>,
    /// Smallest TTL of the records used, seconds.
    pub ttl: Option<u32>,
}

/// What a pool's discovery looks up, and the resolver it asks.
pub struct DnsSource {
    config: DnsDiscoveryConfig,
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// === impl DnsSource ===

impl DnsSource {
    /// The resolver for `config`.
    ///
    /// # Errors
    ///
    /// Without `resolver`, when the system configuration cannot be read.
    pub fn new(config: DnsDiscoveryConfig) -> Result<Self, String> {
        let mut builder = match config.resolver {
            Some(addr) => {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut server.connections {
                    c.port = addr.port();
                }
                let servers = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
                let mut b =
                    TokioResolver::builder_with_config(servers, TokioRuntimeProvider::default());
                // A named server answers for the name; /etc/hosts has no say in it.
                b.options_mut().use_hosts_file = ResolveHosts::Never;
                b
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("reading the system's DNS configuration: {e}"))?,
        };
        let opts = builder.options_mut();
        opts.timeout = QUERY_TIMEOUT;
        opts.attempts = ATTEMPTS;
        let resolver = builder
            .build()
            .map_err(|e| format!("building the DNS resolver: {e}"))?;
        Ok(DnsSource { config, resolver })
    }

    /// The configuration this source was built from.
    pub fn config(&self) -> &DnsDiscoveryConfig {
        &self.config
    }

    /// Looks the name up once; SRV targets missing from the additional section are
    /// resolved by a lookup each.
    ///
    /// # Errors
    ///
    /// A [`LookupError`] when the answer gives no backend, for whatever reason.
    pub async fn lookup(&self) -> Result<Answer, LookupError> {
        self.resolver.clear_cache();
        let kind = self.config.record_type;
        let record_type = match kind {
            DnsRecordType::A => RecordType::A,
            DnsRecordType::Aaaa => RecordType::AAAA,
            DnsRecordType::Srv => RecordType::SRV,
        };
        let lookup = self
            .resolver
            .lookup(self.config.name.as_str(), record_type)
            .await
            .map_err(|e| classify(&e))?;
        let mut records = Records::from_message(lookup.message());
        if kind == DnsRecordType::Srv {
            self.resolve_targets(&mut records).await;
        }
        let backends = capped(
            records.backends(kind, self.config.port.unwrap_or(0)),
            &self.config.name,
        );
        if backends.is_empty() {
            return Err(LookupError {
                result: LookupResult::Empty,
                message: format!("{}: the answer gave no backend", self.config.name),
            });
        }
        Ok(Answer {
            backends,
            ttl: records.ttl,
        })
    }
}

pub use crate::answer::MAX_BACKENDS;

/// SRV targets looked up at once, at most: against a stalled server the lookups wait
/// side by side instead of one resolver timeout each in turn.
const TARGET_LOOKUPS_AT_ONCE: usize = 16;

/// All of one answer's target lookups end by then (about the resolver's own budget of
/// one query: 2 s × 2 attempts plus margin); a target not resolved by then gives no
/// backend this time.
const TARGET_LOOKUPS_DEADLINE: Duration = Duration::from_secs(6);

// === impl DnsSource (SRV targets) ===

impl DnsSource {
    /// Resolves the SRV targets the answer gave no address for, concurrently (at most
    /// [`TARGET_LOOKUPS_AT_ONCE`]) under one deadline.
    async fn resolve_targets(&self, records: &mut Records) {
        let deadline = tokio::time::Instant::now() + TARGET_LOOKUPS_DEADLINE;
        let mut pending = records.unresolved_targets().into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < TARGET_LOOKUPS_AT_ONCE {
                let Some(target) = pending.next() else { break };
                let resolver = self.resolver.clone();
                running.spawn(async move {
                    let found = resolver.lookup_ip(format!("{target}.")).await;
                    (target, found)
                });
            }
            let next = tokio::time::timeout_at(deadline, running.join_next()).await;
            let (target, found) = match next {
                Ok(Some(Ok(done))) => done,
                Ok(Some(Err(e))) => {
                    tracing::error!(name = %self.config.name, error = %e, "SRV target lookup panicked");
                    continue;
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::debug!(
                        name = %self.config.name,
                        unresolved = running.len() + pending.len(),
                        "SRV target lookups timed out"
                    );
                    running.abort_all();
                    break;
                }
            };
            match found {
                Ok(ips) => {
                    let ttl = ips
                        .as_lookup()
                        .answers()
                        .iter()
                        .map(|r| r.ttl)
                        .min()
                        .unwrap_or(0);
                    records.add_addresses(&target, ips.iter(), ttl);
                }
                // One unresolvable target costs its backends, not the answer.
                Err(e) => tracing::debug!(
                    name = %self.config.name,
                    target,
                    error = %e,
                    "SRV target did not resolve"
                ),
            }
        }
    }
}

/// NXDOMAIN and "no records" are answers (empty); everything else is a failure.
fn classify(e: &NetError) -> LookupError {
    let result = if e.is_nx_domain() || e.is_no_records_found() {
        LookupResult::Empty
    } else {
        LookupResult::Failure
    };
    LookupError {
        result,
        message: e.to_string(),
    }
}
