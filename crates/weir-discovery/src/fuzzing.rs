//! Fuzz entry points (`fuzz/fuzz_targets/dns_answer.rs`), also replayed over their
//! committed corpus by an ordinary test so that stable CI runs them.
//!
//! Input: a raw DNS message, as a name server would send it. Each record type and
//! target weir interprets is driven through [`Records`] exactly as a lookup would.

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn dns_answer_corpus_replays() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dns_answer");
        let files: Vec<_> = std::fs::read_dir(&dir)
            .expect("the corpus directory")
            .map(|e| std::fs::read(e.expect("a corpus entry").path()).expect("a corpus file"))
            .collect();
        assert!(
            files.len() >= 10,
            "only {} corpus files in {dir:?}",
            files.len()
        );
        let parsed = files
            .iter()
            .filter(|b| hickory_resolver::proto::op::Message::from_vec(b).is_ok())
            .count();
        assert!(
            parsed >= 8,
            "most seeds are valid messages ({parsed} of {})",
            files.len()
        );
        for bytes in files {
            super::dns_answer(&bytes);
        }
    }
}
