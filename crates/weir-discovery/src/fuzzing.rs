//! Fuzz entry points (`fuzz/fuzz_targets/dns_answer.rs`, `endpoint_slice.rs`), also
//! replayed over their committed corpus by an ordinary test so that stable CI runs them.
//!
//! - `dns_answer`: a raw DNS message, as a name server would send it. Each record type
//!   and target weir interprets is driven through [`Records`] exactly as a lookup would.
//! - `endpoint_slice` (feature `kubernetes`): EndpointSlice JSON, one object per line, as
//!   the API server's list items and watch events carry them, through serde and weir's
//!   slice → backend-set rules for a port by name and by number.

use std::net::{IpAddr, Ipv4Addr};

use hickory_resolver::proto::op::Message;
use weir_config::DnsRecordType;

use crate::answer::{Records, MAX_WEIGHT};

/// Parses `data` as a DNS message and turns it into a backend set for each record type;
/// checks the set's invariants. Never panics on any input (that is the property).
pub fn dns_answer(data: &[u8]) {
    let Ok(message) = Message::from_vec(data) else {
        return;
    };
    let mut records = Records::from_message(&message);
    // Unresolved SRV targets get an address, as the follow-up lookup would give them.
    for (i, target) in records.unresolved_targets().into_iter().enumerate() {
        let last = u8::try_from(i % 250).unwrap_or(0);
        records.add_addresses(&target, [IpAddr::V4(Ipv4Addr::new(10, 9, 0, last))], 1);
    }
    for kind in [DnsRecordType::A, DnsRecordType::Aaaa, DnsRecordType::Srv] {
        let set = records.backends(kind, 8080);
        assert!(
            set.windows(2).all(|w| w[0].addr < w[1].addr),
            "sorted, one backend per address: {set:?}"
        );
        assert!(set
            .iter()
            .all(|d| (1..=MAX_WEIGHT).contains(&d.weight.get())));
        assert!(
            set.is_empty() || set.iter().any(|d| !d.backup),
            "a non-empty set has a primary"
        );
        if kind != DnsRecordType::Srv {
            assert!(set.iter().all(|d| d.addr.port() == 8080 && !d.backup));
        }
    }
}

/// Parses each line of `data` as an EndpointSlice (lines that do not parse are
/// skipped, as the watcher would fail on them) and merges their backends for ports
/// `http`, `metrics` and 8080; checks the set's invariants. Never panics on any input.
#[cfg(feature = "kubernetes")]
pub fn endpoint_slice(data: &[u8]) {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use weir_config::KubernetesPort;

    use crate::kubernetes::{endpoints, merge};

    let slices: Vec<EndpointSlice> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    for port in [
        KubernetesPort::Name("http".to_owned()),
        KubernetesPort::Name("metrics".to_owned()),
        KubernetesPort::Number(8080),
    ] {
        let set = merge(slices.iter().flat_map(|s| endpoints(s, &port)));
        assert!(
            set.windows(2).all(|w| w[0].addr < w[1].addr),
            "sorted, one backend per address: {set:?}"
        );
        assert!(set.len() <= crate::dns::MAX_BACKENDS);
        assert!(set
            .iter()
            .all(|d| d.weight.get() == 1 && !d.backup && d.addr.port() != 0));
        if port == KubernetesPort::Number(8080) {
            assert!(set.iter().all(|d| d.addr.port() == 8080));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the corpus directory {dir:?}: {e}"))
            .map(|e| std::fs::read(e.expect("a corpus entry").path()).expect("a corpus file"))
            .collect()
    }

    /// Runs every file of corpus `target` through its fuzz target's body `run`, after
    /// checking that the corpus has at least `min_files` seeds, `min_valid` of which pass
    /// `valid` (`what` they are): seeds that all fail to parse would exercise nothing
    /// past the parser.
    fn replay(
        target: &str,
        (min_files, min_valid): (usize, usize),
        what: &str,
        valid: impl Fn(&[u8]) -> bool,
        run: fn(&[u8]),
    ) {
        let files = corpus(target);
        assert!(
            files.len() >= min_files,
            "only {} corpus files",
            files.len()
        );
        let parsed = files.iter().filter(|b| valid(b)).count();
        assert!(
            parsed >= min_valid,
            "most seeds {what} ({parsed} of {})",
            files.len()
        );
        for bytes in files {
            run(&bytes);
        }
    }

    #[cfg(feature = "kubernetes")]
    #[test]
    fn endpoint_slice_corpus_replays() {
        replay(
            "endpoint_slice",
            (8, 6),
            "hold a valid slice",
            |b| {
                b.split(|&c| c == b'\n').any(|l| {
                    serde_json::from_slice::<k8s_openapi::api::discovery::v1::EndpointSlice>(l)
                        .is_ok()
                })
            },
            super::endpoint_slice,
        );
    }

    #[test]
    fn dns_answer_corpus_replays() {
        replay(
            "dns_answer",
            (10, 8),
            "are valid messages",
            |b| hickory_resolver::proto::op::Message::from_vec(b).is_ok(),
            super::dns_answer,
        );
    }
}
