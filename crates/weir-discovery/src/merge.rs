//! Discovered sets merged into the configuration a table is built from.
//!
//! The file's configuration stays as loaded; each table is built from a copy whose
//! pools with `discovery` list their static `backends` followed by the discovered
//! ones. The registry then treats a discovered backend as any other: the same
//! `(pool, "ip:port", addr)` key gives the same `Arc<Backend>`, so only backends that
//! joined are created and only those that left are dropped.

use std::collections::HashMap;
use std::net::SocketAddr;

use weir_config::{BackendConfig, Config};

use crate::answer::Discovered;

/// `base` with each pool's discovered backends after its static ones. A pool without
/// `discovery` in `base` gets none (its block was removed); a discovered address that a
/// static backend already has is left out (the static one, as written, wins).
pub fn effective_config(base: &Config, sets: &HashMap<String, Vec<Discovered>>) -> Config {
    let mut config = base.clone();
    for pool in &mut config.pools {
        if pool.discovery.is_none() {
            continue;
        }
        let Some(set) = sets.get(&pool.name) else {
            continue;
        };
        let statics: Vec<SocketAddr> = pool.backends.iter().map(|b| b.addr).collect();
        pool.backends.extend(
            set.iter()
                .filter(|d| !statics.contains(&d.addr))
                .map(backend_config),
        );
    }
    config
}

/// A discovered backend as a configured one, named by its `ip:port`.
pub fn backend_config(d: &Discovered) -> BackendConfig {
    BackendConfig {
        address: d.addr.to_string(),
        addr: d.addr,
        weight: d.weight,
        backup: d.backup,
        announced_weight: d.announced,
        // A discovered backend takes its pool's limit.
        max_in_flight: None,
        endpoint: d.endpoint,
    }
}

/// What an update changes in a pool's discovered set: the `discovery updated` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetChange {
    /// Addresses only in the new set.
    pub added: Vec<SocketAddr>,
    /// Addresses only in the old set.
    pub removed: Vec<SocketAddr>,
    /// Addresses in both whose weight or backup flag changed.
    pub changed: Vec<SocketAddr>,
    /// Addresses in both whose endpoint state changed, as `ip:port=state`.
    pub restated: Vec<String>,
}

// === impl SetChange ===

impl SetChange {
    /// Compares two sets (each sorted by address, one entry per address).
    pub fn between(old: &[Discovered], new: &[Discovered]) -> Self {
        let old_by: HashMap<SocketAddr, &Discovered> = old.iter().map(|d| (d.addr, d)).collect();
        let new_by: HashMap<SocketAddr, &Discovered> = new.iter().map(|d| (d.addr, d)).collect();
        let mut c = SetChange::default();
        for d in new {
            match old_by.get(&d.addr) {
                None => c.added.push(d.addr),
                Some(o) => {
                    if (o.weight, o.backup, o.announced) != (d.weight, d.backup, d.announced) {
                        c.changed.push(d.addr);
                    }
                    if o.endpoint != d.endpoint {
                        c.restated
                            .push(format!("{}={}", d.addr, d.endpoint.as_str()));
                    }
                }
            }
        }
        c.removed = old
            .iter()
            .filter(|d| !new_by.contains_key(&d.addr))
            .map(|d| d.addr)
            .collect();
        c
    }

    /// Whether the sets are the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.restated.is_empty()
    }

    /// `a, b` for a log field.
    pub fn list(addrs: &[SocketAddr]) -> String {
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    const YAML: &str = "
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ pool: web }] }]
pools:
  web:
    backends: [{ address: 127.0.0.1:9 }]
    discovery: { dns: { name: web.example, port: 80 } }
  other:
    backends: [{ address: 127.0.0.1:10 }]
";

    /// `127.0.0.LAST:80`, except that 9 is the static backend's `127.0.0.1:9`.
    fn d(last: u8, weight: u32, backup: bool) -> Discovered {
        let addr = if last == 9 {
            SocketAddr::from(([127, 0, 0, 1], 9))
        } else {
            SocketAddr::from(([127, 0, 0, last], 80))
        };
        Discovered {
            addr,
            weight: NonZeroU32::new(weight).expect("weight"),
            backup,
            announced: weight,
            endpoint: weir_config::EndpointState::Ready,
        }
    }

    #[test]
    fn discovered_backends_follow_the_static_ones_named_by_ip_port() {
        let base = weir_config::parse(YAML, "w.yaml".as_ref()).expect("valid");
        let sets = HashMap::from([
            (
                "web".to_owned(),
                vec![d(2, 3, false), d(9, 1, false), d(3, 1, true)],
            ),
            ("other".to_owned(), vec![d(4, 1, false)]),
        ]);
        let c = effective_config(&base, &sets);
        let names = |pool: &str| -> Vec<String> {
            c.pool(pool)
                .expect("pool")
                .backends
                .iter()
                .map(|b| format!("{} w{} {}", b.address, b.weight, b.backup))
                .collect()
        };
        assert_eq!(
            names("web"),
            [
                "127.0.0.1:9 w1 false",
                "127.0.0.2:80 w3 false",
                "127.0.0.3:80 w1 true"
            ],
            "the static 127.0.0.1:9 wins over the same discovered address"
        );
        assert_eq!(
            names("other"),
            ["127.0.0.1:10 w1 false"],
            "no discovery block, no set"
        );
        assert_eq!(
            base.pool("web").expect("web").backends.len(),
            1,
            "the base is untouched"
        );
    }

    #[test]
    fn set_change_lists_added_removed_and_changed() {
        let old = [d(2, 1, false), d(3, 1, false), d(4, 1, false)];
        let new = [d(3, 2, false), d(4, 1, false), d(5, 1, false)];
        let c = SetChange::between(&old, &new);
        assert_eq!(SetChange::list(&c.added), "127.0.0.5:80");
        assert_eq!(SetChange::list(&c.removed), "127.0.0.2:80");
        assert_eq!(SetChange::list(&c.changed), "127.0.0.3:80");
        assert!(SetChange::between(&new, &new).is_empty());
    }
}
