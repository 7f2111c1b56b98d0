//! Picking a listener's certificate by the name the client asks for (SNI).
//!
//! Each certificate is indexed under its own DNS names (subject alternative names),
//! so the config never repeats them. Lookup: the exact name, then a wildcard
//! `*.example.com` for `a.example.com` (one label, as RFC 6125 allows), then the first
//! certificate of the list, which is also what a client sending no SNI (or an IP
//! address) gets. When two certificates claim a name, the one listed first wins, the
//! way the list's order already decides the default.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;

/// One certificate and the names it is served for.
pub(super) struct Entry {
    pub(super) key: Arc<CertifiedKey>,
    /// Lower-case DNS names from the leaf certificate; wildcards as `*.example.com`.
    pub(super) names: Vec<String>,
}

/// The lower-case DNS names of the leaf (first) certificate of `chain`.
pub(super) fn names(chain: &[CertificateDer<'_>]) -> Result<Vec<String>, String> {
    let Some(leaf) = chain.first() else {
        return Err("empty certificate chain".to_owned());
    };
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    // Selecting which of our own certificates to present, not verifying a peer: the
    // client still verifies the chosen certificate against the name it asked for.
    Ok(cert
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect())
}

/// rustls' certificate callback for one listener.
#[derive(Debug)]
pub(super) struct Resolver(NameIndex<Arc<CertifiedKey>>);

impl Resolver {
    /// Indexes `entries`; the first is the default.
    pub(super) fn new(entries: Vec<Entry>) -> Result<Self, String> {
        NameIndex::new(entries.into_iter().map(|e| (e.key, e.names)))
            .map(Resolver)
            .ok_or_else(|| "at least one certificate is required".to_owned())
    }

    /// The certificate for `server_name` (`None`: no SNI).
    pub(super) fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        self.0.pick(server_name)
    }
}

/// Values (certificates) by the names they are served for: the matching rules alone,
/// so that they can be tested and fuzzed without keys.
#[derive(Debug)]
pub(crate) struct NameIndex<T> {
    default: T,
    exact: HashMap<String, T>,
    /// Keyed by what follows `*.`.
    wildcard: HashMap<String, T>,
}

impl<T: Clone> NameIndex<T> {
    /// Indexes `entries`, each a value and its lower-case names; the first is the
    /// default. `None` when there is none.
    pub(crate) fn new(entries: impl IntoIterator<Item = (T, Vec<String>)>) -> Option<Self> {
        let mut entries = entries.into_iter().peekable();
        let default = entries.peek()?.0.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (value, names) in entries {
            for name in names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(suffix) => (&mut wildcard, suffix.to_owned()),
                    None => (&mut exact, name),
                };
                map.entry(key).or_insert_with(|| value.clone());
            }
        }
        Some(NameIndex {
            default,
            exact,
            wildcard,
        })
    }

    /// The value for `server_name` (`None`: no SNI).
    pub(crate) fn pick(&self, server_name: Option<&str>) -> &T {
        let Some(name) = server_name else {
            return &self.default;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(value) = self.exact.get(&name) {
            return value;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = self.pick(hello.server_name());
        tracing::trace!(sni = hello.server_name(), "certificate chosen");
        Some(Arc::clone(key))
    }
}
