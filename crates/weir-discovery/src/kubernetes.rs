//! Backends from the Kubernetes API: the EndpointSlices of one Service, watched.
//!
//! ```text
//! kube::Config::infer (KUBECONFIG, ~/.kube/config, or the pod's service account)
//!   --> watcher(EndpointSlice, labelSelector kubernetes.io/service-name=SERVICE)
//!       list, then watch from its resourceVersion (bookmarks on); 410 Gone -> re-list;
//!       an error -> backoff (0.8 s doubling to 30 s) and retry
//!   --> slices by name --> endpoints() per slice --> merged set --> Report
//! ```
//! A (re-)list is applied whole when it is complete (`InitDone`), so a re-list never
//! shows a half set; a watch event applies at once. Between them the last good set
//! serves: an error or a disconnect is a `failure` (counted, shown in `/status`) and
//! changes nothing; a set that becomes empty is `empty`, and keeps the last good set
//! too, as DNS does (a Deployment scaled to zero marks its pods terminating first, so
//! the kept set is already draining).
//!
//! The conversion from EndpointSlice to backends ([`endpoints`], [`merge`]) is a pure
//! function, fuzzed (`fuzz/fuzz_targets/endpoint_slice.rs`):
//!
//! - `addressType` `IPv4` / `IPv6`: each endpoint's first address (the only one the
//!   EndpointSlice controller writes; kube-proxy reads no other); `FQDN` slices and
//!   addresses that do not parse are skipped.
//! - `port: NAME`: the slice's TCP port of that name (slices of one Service may
//!   disagree while a rollout changes `targetPort`, so each slice's own number is
//!   used); a slice without it gives nothing. `port: NUMBER`: that port on every
//!   address.
//! - conditions: `terminating: true` → terminating (drains, whether `serving` or not);
//!   else `ready: false` → not ready (down); else (true or absent, which the API says
//!   reads as ready) → ready.
//! - one address in several slices (the controller moving it) is one backend: a ready
//!   one over a not-ready one over a terminating one. Weight 1, no backups. At most
//!   [`MAX_BACKENDS`](crate::dns::MAX_BACKENDS), like DNS.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use weir_config::{EndpointState, KubernetesDiscoveryConfig, KubernetesPort};
use weir_telemetry::LookupResult;

use crate::answer::{capped, dedup, Discovered};
use crate::dns::LookupError;

/// The label the EndpointSlice controller puts on every slice of a Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How long a connection to the API server may take before the attempt fails (kube's
/// default is 30 s, which would hold start-up's first list for all of it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits before building the client again after it could not be built (no kubeconfig,
/// a bad one): doubling from the first to the last.
const CLIENT_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

type SliceStream = Pin<Box<dyn Stream<Item = Result<Event<EndpointSlice>, watcher::Error>> + Send>>;

/// The watch of one pool's Service.
pub struct KubernetesSource {
    config: KubernetesDiscoveryConfig,
    stream: Option<SliceStream>,
    /// Each slice's backends, by slice name: the state the watch has applied.
    slices: BTreeMap<String, Vec<Discovered>>,
    /// A (re-)list in progress: applied whole at its end.
    listing: Option<BTreeMap<String, Vec<Discovered>>>,
    /// The wait before the next attempt to build the client.
    client_retry: Duration,
}

impl std::fmt::Debug for KubernetesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSource")
            .field("config", &self.config)
            .field("slices", &self.slices.len())
            .finish_non_exhaustive()
    }
}

// === impl KubernetesSource ===

impl KubernetesSource {
    /// A source for `config`; the client is built on the first [`next_set`](Self::next_set).
    pub fn new(config: KubernetesDiscoveryConfig) -> Self {
        KubernetesSource {
            config,
            stream: None,
            slices: BTreeMap::new(),
            listing: None,
            client_retry: CLIENT_RETRY.0,
        }
    }

    /// Waits for the watch's next change and gives the whole set it leaves.
    ///
    /// # Errors
    ///
    /// A [`LookupError`] (`failure`: the client or the watch failed; `empty`: the
    /// Service has no usable endpoint now) with the time to wait before the next call.
    pub async fn next_set(&mut self) -> Result<Vec<Discovered>, (LookupError, Duration)> {
        if self.stream.is_none() {
            // A future that holds no borrow of `self` (whose stream is not `Sync`).
            match connect(self.config.clone()).await {
                Ok(stream) => {
                    self.client_retry = CLIENT_RETRY.0;
                    self.stream = Some(stream);
                }
                Err(message) => {
                    let wait = self.client_retry;
                    self.client_retry = (wait * 2).min(CLIENT_RETRY.1);
                    return Err((failure(message), wait));
                }
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err((failure("no watch".to_owned()), CLIENT_RETRY.0));
        };
        loop {
            let Some(event) = stream.next().await else {
                // The watcher never ends by itself; start over if it ever does.
                self.stream = None;
                return Err((failure("the watch ended".to_owned()), CLIENT_RETRY.0));
            };
            let applied = match event {
                Err(e) => {
                    // The stream backs off before its next poll; no wait of our own.
                    return Err((failure(format!("watch: {e}")), Duration::ZERO));
                }
                Ok(Event::Init) => {
                    self.listing = Some(BTreeMap::new());
                    false
                }
                Ok(Event::InitApply(slice)) => {
                    let (name, set) = convert(&slice, &self.config.port);
                    self.listing
                        .get_or_insert_with(BTreeMap::new)
                        .insert(name, set);
                    false
                }
                Ok(Event::InitDone) => {
                    self.slices = self.listing.take().unwrap_or_default();
                    true
                }
                Ok(Event::Apply(slice)) => {
                    let (name, set) = convert(&slice, &self.config.port);
                    self.slices.insert(name, set);
                    true
                }
                Ok(Event::Delete(slice)) => {
                    let name = slice.metadata.name.clone().unwrap_or_default();
                    self.slices.remove(&name);
                    true
                }
            };
            if !applied {
                continue;
            }
            let set = merge(self.slices.values().flatten().copied());
            if set.is_empty() {
                return Err((
                    LookupError {
                        result: LookupResult::Empty,
                        message: format!(
                            "service {} has no endpoint on port {}",
                            self.config.service, self.config.port
                        ),
                    },
                    Duration::ZERO,
                ));
            }
            return Ok(set);
        }
    }
}

/// The client (from the environment) and the watch of the Service's slices, with the
/// watcher's default backoff between attempts after an error.
async fn connect(k8s: KubernetesDiscoveryConfig) -> Result<SliceStream, String> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| format!("no Kubernetes client configuration: {e}"))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let client =
        Client::try_from(config).map_err(|e| format!("building the Kubernetes client: {e}"))?;
    let api: Api<EndpointSlice> = match &k8s.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::default_namespaced(client),
    };
    let selector = format!("{SERVICE_NAME_LABEL}={}", k8s.service);
    let watch = watcher::watcher(api, watcher::Config::default().labels(&selector));
    Ok(Box::pin(watch.default_backoff()))
}

fn convert(slice: &EndpointSlice, port: &KubernetesPort) -> (String, Vec<Discovered>) {
    let name = slice.metadata.name.clone().unwrap_or_default();
    (name, endpoints(slice, port))
}

fn failure(message: String) -> LookupError {
    LookupError {
        result: LookupResult::Failure,
        message,
    }
}

/// The backends one slice gives for `port` (see the module docs); not deduplicated.
pub fn endpoints(slice: &EndpointSlice, port: &KubernetesPort) -> Vec<Discovered> {
    let ipv6 = match slice.address_type.as_str() {
        "IPv4" => false,
        "IPv6" => true,
        _ => return Vec::new(),
    };
    let number = match port {
        KubernetesPort::Number(n) => *n,
        KubernetesPort::Name(name) => {
            let found = slice.ports.iter().flatten().find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().is_none_or(|proto| proto == "TCP")
            });
            match found
                .and_then(|p| p.port)
                .and_then(|n| u16::try_from(n).ok())
            {
                Some(n) if n != 0 => n,
                _ => return Vec::new(),
            }
        }
    };
    slice
        .endpoints
        .iter()
        .filter_map(|e| {
            let ip: IpAddr = e.addresses.first()?.parse().ok()?;
            if ip.is_ipv6() != ipv6 {
                return None;
            }
            let conditions = e.conditions.as_ref();
            let terminating = conditions.and_then(|c| c.terminating) == Some(true);
            let ready = conditions.and_then(|c| c.ready) != Some(false);
            let endpoint = if terminating {
                EndpointState::Terminating
            } else if ready {
                EndpointState::Ready
            } else {
                EndpointState::NotReady
            };
            Some(Discovered {
                addr: SocketAddr::new(ip, number),
                weight: NonZeroU32::MIN,
                backup: false,
                announced: 1,
                endpoint,
            })
        })
        .collect()
}

/// The set of several slices' backends: one per address (the best state), sorted, at
/// most [`MAX_BACKENDS`](crate::answer::MAX_BACKENDS) (ready ones first, then by address).
pub fn merge(found: impl IntoIterator<Item = Discovered>) -> Vec<Discovered> {
    capped(dedup(found.into_iter().collect()), "kubernetes")
}

#[cfg(test)]
mod tests;
