//! A DNS answer turned into a backend set: the part of DNS that weir interprets.
//!
//! Pure functions over a parsed message (no I/O), so the fuzz target can drive them
//! from raw bytes and the unit tests can state the rules exactly:
//!
//! - `a` / `aaaa`: every address record of the answer section (after CNAMEs) on the
//!   configured port, weight 1, all primaries.
//! - `srv`: each record's target resolved from the address records of the answer and
//!   additional sections (or a follow-up lookup, [`Records::add_addresses`]); the
//!   lowest priority value gives the primaries, every other priority the backups
//!   (RFC 2782: higher values are tried only when lower ones fail). Weights become
//!   backend weights in 1..=256, per tier (the primaries, the backups: weights are
//!   relative within a tier only): kept as they are when all of the tier fit (0 reads
//!   as 1, as a weight-0 target still gets some traffic), else scaled by 256 / the
//!   tier's largest. The record's own weight is kept too ([`Discovered::announced`]):
//!   a runtime weight override is cleared only when it changes, not when another
//!   record's weight re-scales the tier.
//!   A target of `.` means "no service here" and gives no backend.
//! - The same `ip:port` twice is one backend: a primary wins over a backup, then the
//!   larger weight. The set is sorted by address, so equal answers give equal sets.
//! - The TTL is the smallest among the answer section's records and the follow-up
//!   lookups', so the next lookup comes when the first of them expires. (Additional
//!   records are hints that come with the answer; their TTLs are not waited on.)

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::{Name, RData, Record};
use weir_config::{DnsRecordType, EndpointState};

/// The largest backend weight weir accepts (`backends[].weight` has the same cap).
pub const MAX_WEIGHT: u32 = 256;

/// One backend an answer gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Discovered {
    /// Where to connect; also the backend's name (`ip:port`) in `/status`, logs, metrics.
    pub addr: SocketAddr,
    /// 1..=[`MAX_WEIGHT`].
    pub weight: NonZeroU32,
    /// From an SRV record of a priority other than the lowest.
    pub backup: bool,
    /// The SRV record's own weight before scaling (1 for a/aaaa): see the module docs.
    pub announced: u32,
    /// The endpoint's own state: always ready from DNS; a Kubernetes endpoint's
    /// conditions (`crate::kubernetes`).
    pub endpoint: EndpointState,
}

/// One SRV record, as the answer gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is preferred.
    pub priority: u16,
    /// Relative share among records of the same priority.
    pub weight: u16,
    /// The backend's port.
    pub port: u16,
    /// Host to resolve; [`key`] form.
    pub target: String,
}

/// The records of an answer that weir reads, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// SRV records of the answer section.
    pub srv: Vec<SrvRecord>,
    /// IPv4 addresses of the answer section (any owner name: after a CNAME chain the
    /// owner is the chain's end).
    pub a: Vec<IpAddr>,
    /// IPv6 addresses of the answer section.
    pub aaaa: Vec<IpAddr>,
    /// Every address of the answer and additional sections by owner name ([`key`]
    /// form), for SRV targets.
    pub hosts: HashMap<String, Vec<IpAddr>>,
    /// Smallest TTL (seconds) among the answer section's records; `None` if it is empty.
    pub ttl: Option<u32>,
}

/// A name in the form used to match SRV targets to address records: lower case, no
/// trailing dot (DNS names compare case-insensitively).
pub fn key(name: &Name) -> String {
    let mut s = name.to_ascii().to_ascii_lowercase();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

// === impl Records ===

impl Records {
    /// The records of `message` weir reads; every other kind is ignored.
    pub fn from_message(message: &Message) -> Self {
        let mut records = Records::default();
        for r in &message.answers {
            records.ttl = Some(records.ttl.map_or(r.ttl, |t| t.min(r.ttl)));
            records.add(r, true);
        }
        for r in &message.additionals {
            records.add(r, false);
        }
        records
    }

    fn add(&mut self, r: &Record, in_answer: bool) {
        match &r.data {
            RData::A(a) => {
                let ip = IpAddr::V4(a.0);
                if in_answer {
                    self.a.push(ip);
                }
                self.hosts.entry(key(&r.name)).or_default().push(ip);
            }
            RData::AAAA(aaaa) => {
                let ip = IpAddr::V6(aaaa.0);
                if in_answer {
                    self.aaaa.push(ip);
                }
                self.hosts.entry(key(&r.name)).or_default().push(ip);
            }
            RData::SRV(srv) if in_answer => self.srv.push(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: key(&srv.target),
            }),
            _ => {}
        }
    }

    /// SRV targets (other than `.`) with no address yet: each needs its own lookup.
    pub fn unresolved_targets(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .srv
            .iter()
            .filter(|s| !s.target.is_empty() && !self.hosts.contains_key(&s.target))
            .map(|s| s.target.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Addresses of `target` found by a follow-up lookup with `ttl` seconds to live.
    pub fn add_addresses(&mut self, target: &str, ips: impl IntoIterator<Item = IpAddr>, ttl: u32) {
        self.hosts.entry(target.to_owned()).or_default().extend(ips);
        self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
    }

    /// The backend set these records give for a lookup of `kind` (`port` for a/aaaa).
    pub fn backends(&self, kind: DnsRecordType, port: u16) -> Vec<Discovered> {
        let found = match kind {
            DnsRecordType::A => at_port(&self.a, port),
            DnsRecordType::Aaaa => at_port(&self.aaaa, port),
            DnsRecordType::Srv => srv_backends(&self.srv, &self.hosts),
        };
        dedup(found)
    }
}

fn at_port(ips: &[IpAddr], port: u16) -> Vec<Discovered> {
    ips.iter()
        .map(|&ip| Discovered {
            addr: SocketAddr::new(ip, port),
            weight: NonZeroU32::MIN,
            backup: false,
            announced: 1,
            endpoint: EndpointState::Ready,
        })
        .collect()
}

/// SRV records with their targets' addresses (see the module docs).
pub fn srv_backends(srv: &[SrvRecord], hosts: &HashMap<String, Vec<IpAddr>>) -> Vec<Discovered> {
    let usable = || {
        srv.iter()
            .filter(|s| !s.target.is_empty() && hosts.get(&s.target).is_some_and(|h| !h.is_empty()))
    };
    let Some(primary) = usable().map(|s| s.priority).min() else {
        return Vec::new();
    };
    // One divisor per tier: a heavy backup must not squash the primaries' weights.
    let largest = |backup: bool| {
        usable()
            .filter(|s| (s.priority != primary) == backup)
            .map(|s| u32::from(s.weight))
            .max()
            .unwrap_or(1)
    };
    let (largest_primary, largest_backup) = (largest(false), largest(true));
    let mut out = Vec::new();
    for s in usable() {
        let backup = s.priority != primary;
        let tier_largest = if backup {
            largest_backup
        } else {
            largest_primary
        };
        let weight = scale_weight(s.weight, tier_largest);
        for &ip in hosts.get(&s.target).map_or(&[][..], Vec::as_slice) {
            out.push(Discovered {
                addr: SocketAddr::new(ip, s.port),
                weight,
                backup,
                announced: u32::from(s.weight),
                endpoint: EndpointState::Ready,
            });
        }
    }
    out
}

/// An SRV weight as a backend weight: as is when every weight of its tier fits in
/// 1..=256 (`largest` ≤ 256), else `weight × 256 / largest` rounded up; never below 1.
pub fn scale_weight(weight: u16, largest: u32) -> NonZeroU32 {
    let w = u32::from(weight);
    let scaled = if largest <= MAX_WEIGHT {
        w
    } else {
        (w * MAX_WEIGHT).div_ceil(largest)
    };
    NonZeroU32::new(scaled.clamp(1, MAX_WEIGHT)).unwrap_or(NonZeroU32::MIN)
}

/// Backends one pool's discovery serves at most: a huge answer (a misconfigured or
/// hostile zone, a runaway Service) costs a warning and the rest of the set, not memory
/// and health tasks without bound.
pub const MAX_BACKENDS: usize = 4096;

/// `set` (sorted by address) cut to [`MAX_BACKENDS`], logged with `source` when cut:
/// primaries before backups and ready endpoints first, then by address, so the same
/// answer keeps the same backends; the result is sorted by address again.
pub fn capped(mut set: Vec<Discovered>, source: &str) -> Vec<Discovered> {
    if set.len() <= MAX_BACKENDS {
        return set;
    }
    tracing::warn!(
        source,
        answered = set.len(),
        kept = MAX_BACKENDS,
        "discovery answer truncated"
    );
    set.sort_by_key(|d| (d.backup, d.endpoint));
    set.truncate(MAX_BACKENDS);
    set.sort_unstable_by_key(|d| d.addr);
    set
}

/// One backend per address: a primary over a backup, then a ready endpoint over a
/// not-ready one over a terminating one, then the larger weight; sorted.
pub fn dedup(mut found: Vec<Discovered>) -> Vec<Discovered> {
    // Best first within each address, then keep the first of each.
    found.sort_unstable_by(|a, b| {
        (a.addr, a.backup, a.endpoint, std::cmp::Reverse(a.weight)).cmp(&(
            b.addr,
            b.backup,
            b.endpoint,
            std::cmp::Reverse(b.weight),
        ))
    });
    found.dedup_by_key(|d| d.addr);
    found
}

#[cfg(test)]
mod tests;
