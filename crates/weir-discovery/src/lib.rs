//! weir's backend discovery: DNS lookups and Kubernetes EndpointSlice watches, their
//! answers as backend sets, one task per pool.
//!
//! ```text
//! Task (per pool) --lookup--> DnsSource (hickory-resolver) --Message--> answer::Records
//!      --backends()--> Vec<Discovered> --changed?--> Update --> the server's table swap
//! Task (per pool) --watch--> KubernetesSource (kube-rs watcher, feature `kubernetes`)
//!      --EndpointSlices--> kubernetes::endpoints() --> Vec<Discovered> --> (same)
//! merge::effective_config(file config, discovered sets) --> BackendRegistry::build
//! ```
//! A discovered backend becomes an ordinary `BackendConfig` named by its `ip:port`,
//! so the registry hands the same `Arc<Backend>` to every table while the address
//! stays in the answer (health, in-flight count, pooled connections and metrics carry
//! over, as across a reload). A lookup that gives nothing never empties a pool: the
//! task only ever reports a non-empty set.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod answer;
pub mod dns;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod merge;
pub mod task;

pub use answer::{Discovered, Records};
pub use dns::{Answer, DnsSource, LookupError};
pub use merge::{effective_config, SetChange};
pub use task::{next_lookup, Report, Step, Task, Update};
